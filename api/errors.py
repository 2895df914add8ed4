"""One JSON error shape for every failure: ``{"code": "SFV-xxx", "message": ..., "details": {...}}``.

The code is the one documented in docs/TROUBLESHOOTING.md; the HTTP status comes from the
error class (``http_status``). Validation errors answer 422 with code SFV-903 and name every
offending field, so a client knows what to fix; an unexpected exception answers 500 SFV-000
without its text (it may hold data we must not leak) and is logged with a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from engine.catalog.models import Role
from engine.errors import InvalidRequest, RouteNotFound, SfvaultError

log = logging.getLogger("sfvault.api")


class ErrorBody(BaseModel):
    """The body of every error response."""

    code: str = Field(examples=["SFV-601"], description="see docs/TROUBLESHOOTING.md")
    message: str = Field(examples=["a job of org acme is already running (job 20261125T000000Z-ab12)"])
    details: dict[str, Any] = Field(default_factory=dict)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the listed statuses, all with :class:`ErrorBody`."""
    return {status: {"model": ErrorBody} for status in statuses}


def _json(status: int, code: str, message: str, details: dict[str, Any] | None = None, *,
          headers: Mapping[str, str] | None = None) -> JSONResponse:  # fmt: skip
    body = {"code": code, "message": message, "details": details or {}}
    return JSONResponse(status_code=status, content=body, headers=dict(headers) if headers else None)


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app takes on the request's path (a path's methods are often
    separate routes, so Starlette's own ``Allow`` would name only the first one's)."""
    routes = request.app.router.routes
    return [
        m for m in METHODS
        if any(route.matches({**request.scope, "method": m})[0] is Match.FULL for route in routes)
    ]  # fmt: skip


LOCATION_DETAILS = ("url", "path", "location", "storage_location", "repository", "file", "lock")
"""Error details that name where data lives (a repository URL, a file path); a viewer's error
answers carry ``HIDDEN`` instead, in the details and in the message."""
HIDDEN = "(hidden: an operator or admin sees where)"


def _is_viewer(request: Request) -> bool:
    principal = getattr(request.state, "principal", None)
    return principal is not None and not principal.at_least(Role.OPERATOR)


def _redact_locations(message: str, details: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    out = dict(details)
    for key in LOCATION_DETAILS:
        value = out.get(key)
        if isinstance(value, str) and value:
            message = message.replace(value, HIDDEN)
            out[key] = HIDDEN
    return message, out


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SfvaultError)
    async def sfvault_error(request: Request, err: SfvaultError) -> JSONResponse:
        details = {k: _jsonable(v) for k, v in err.details.items()}
        message = err.message
        if _is_viewer(request):
            message, details = _redact_locations(message, details)
        return _json(err.http_status, err.code, message, details)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, err: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in err.errors()]
        what = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "malformed request"
        refused = InvalidRequest(what=what)
        return _json(refused.http_status, refused.code, refused.message, {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        if err.status_code == 404 and err.detail == "Not Found":
            missing = RouteNotFound(method=request.method, path=request.url.path)
            return _json(404, missing.code, missing.message)
        code = "SFV-904" if err.status_code == 404 else "SFV-900"
        if err.status_code == 405:
            allow = ", ".join(allowed_methods(request))
            body = _json(405, "SFV-900", f"method {request.method} is not allowed on {request.url.path}",
                         {"allow": allow})  # fmt: skip
            body.headers["Allow"] = allow  # RFC 9110 §15.5.6: a 405 names the methods the path takes
            return body
        return _json(err.status_code, code, str(err.detail), headers=err.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _json(500, "SFV-000", "internal error; the service log has the details")


EDGE_RESPONSES: dict[str, dict[str, Any]] = {
    "MethodNotAllowed": {
        "description": "The path does not take this method (SFV-900); `Allow` names the ones it takes.",
        "headers": {
            "Allow": {
                "description": "the methods the path takes, comma separated",
                "schema": {"type": "string", "examples": ["GET, PATCH"]},
            }
        },
    },
    "RequestTooLarge": {
        "description": "The request body is larger than the API accepts (SFV-906); "
        "`details.limit_bytes` gives the limit.",
    },
}
"""Answers every operation can get before it runs: 405 from the router, 413 from the body limit."""


def document_edge_responses(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the 405 and 413 answers (and the error body's schema) to an OpenAPI document: both come
    from outside the routes (the router, the body-limit middleware), so FastAPI does not list them,
    and clients and schemathesis would see undocumented statuses."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("ErrorBody", ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}"))
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    responses = components.setdefault("responses", {})
    for name, spec in EDGE_RESPONSES.items():
        responses[name] = {**spec, "content": content}
    for item in doc.get("paths", {}).values():
        for method, op in item.items():
            if method.upper() not in METHODS:
                continue
            answers = op.setdefault("responses", {})
            answers.setdefault("405", {"$ref": "#/components/responses/MethodNotAllowed"})
            answers.setdefault("413", {"$ref": "#/components/responses/RequestTooLarge"})
    return doc
