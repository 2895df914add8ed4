"""The emulator's FastAPI application: ``create_app(store, config)``.

One pure-ASGI middleware (:class:`SalesforceMiddleware`, no ``BaseHTTPMiddleware`` so result
streams are not buffered) does what every Salesforce request goes through, in this order:
admin faults, profile shaping (latency, random 5xx/stalls), API version check, session check
(401 ``INVALID_SESSION_ID``), the daily request allowance (403 ``REQUEST_LIMIT_EXCEEDED``),
then the route; on the way out it adds ``Sforce-Limit-Info`` and writes the request log
(method, path, status, bytes; never query strings, so never tokens).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator import admin, auth, bulk1, bulk2, composite, rest
from emulator.context import (
    ADMIN_PREFIX,
    ApiError,
    EmulatorConfig,
    Org,
    invalid_session,
    not_found,
    parse_version,
)
from emulator.limits import SUBREQUESTS_STATE, RequestLog, UsageLimits, categorize
from emulator.profiles import HOLD_MAX_S, FaultInjector, Randomness, profile_by_name
from emulator.wire import WireMiddleware

if TYPE_CHECKING:
    from emulator.store import OrgStore

log = logging.getLogger("emulator")
JSON_UTF8 = "application/json;charset=UTF-8"


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers, media_type=JSON_UTF8)


def _raw_json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, headers=headers, media_type=JSON_UTF8)


class SalesforceMiddleware:
    """Faults, shaping, auth, limits, ``Sforce-Limit-Info`` and the request log."""

    def __init__(self, app: ASGIApp, org: Org) -> None:
        self.app = app
        self.org = org
        self.random = Randomness(org.profile.seed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        org = self.org
        method: str = scope["method"]
        path: str = scope["path"]
        category = categorize(method, path)
        limit_header = path.startswith("/services/data")
        state = {"status": 0, "bytes": 0, "length": -1}
        t0 = time.perf_counter()
        logged = False

        def log_request() -> None:
            nonlocal logged
            if not logged:
                logged = True
                took = (time.perf_counter() - t0) * 1000
                subs = tuple(scope.get("state", {}).get(SUBREQUESTS_STATE, ()))
                org.request_log.add(method, path, state["status"], state["bytes"], category, took, subs)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-length":
                        state["length"] = int(value)
                if limit_header:
                    headers = [
                        *message.get("headers", []),
                        (b"Sforce-Limit-Info", org.limits.header().encode()),
                    ]
                    message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                state["bytes"] += len(message.get("body", b""))
                # a client that knows the length has the whole answer with its last byte, before
                # a streamed answer's closing empty message (a bandwidth-capped Bulk result page)
                if not message.get("more_body", False) or 0 <= state["length"] <= state["bytes"]:
                    # logged before the last bytes leave: a client that has read the whole answer
                    # then finds the request in the log (logged after, it raced the client's next call)
                    log_request()
            await send(message)

        try:
            early = None if category == "admin" else await self._before(scope, method, path, category)
            if early is not None:
                await early(scope, receive, send_wrapper)
            else:
                await self.app(scope, receive, send_wrapper)
        finally:
            log_request()  # an answer that never ended (a dropped client) is logged here

    async def _before(self, scope: Scope, method: str, path: str, category: str) -> Response | None:
        org = self.org
        fault = org.faults.take(method, path, ("error", "delay", "hold"))
        if fault is not None:
            if fault.kind == "delay":
                await asyncio.sleep(fault.delay_s)
            elif fault.kind == "hold":
                await anyio.to_thread.run_sync(fault.released.wait, fault.delay_s or HOLD_MAX_S)
            else:
                return _raw_json(fault.status, [{"message": fault.message, "errorCode": fault.error_code}])
        api_call = category not in ("login", "other") or path.startswith("/services/data/v")
        profile = org.profile
        if api_call:
            if profile.latency_ms > 0:
                await asyncio.sleep(profile.latency_ms / 1000)
            if self.random.chance(profile.timeout_rate):
                await asyncio.sleep(profile.timeout_s)
                return _raw_json(
                    503, [{"message": "Server temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE"}]
                )
            if self.random.chance(profile.error_rate):
                return _raw_json(
                    503, [{"message": "Server temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE"}]
                )
        if not path.startswith("/services/data/v"):
            return None
        segment = path.split("/", 4)[3]
        if parse_version(segment) is None:
            return error_response(not_found())
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        session = org.sessions.check(auth.bearer_token(headers))
        if session is None:
            return error_response(invalid_session())
        scope.setdefault("state", {})["sf_session"] = session
        if category == "limits" and not org.config.count_limits_calls:
            return None
        if not org.limits.try_consume_api(category):
            return error_response(ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
        return None


def build_org(store: OrgStore, config: EmulatorConfig) -> Org:
    """Everything the routes share, around one store."""
    from emulator.bulk2 import JobManager
    from emulator.rest import QueryCursors

    profile = profile_by_name(config.profile_name)
    work = config.resolved_work_dir()
    org = Org(
        store=store,
        config=config,
        sessions=auth.SessionStore(str(store.org_id)[:15], config.session_ttl),
        limits=UsageLimits(config.daily_api_requests),
        request_log=RequestLog(config.request_log_size),
        faults=FaultInjector(),
        profile=profile,
        jobs=None,  # type: ignore[arg-type]  # set just below; JobManager needs the Org
        cursors=QueryCursors(work / "cursors"),
    )
    org.jobs = JobManager(org, work / "jobs")
    return org


def create_app(store: OrgStore, config: EmulatorConfig, *, org: Org | None = None) -> FastAPI:
    """The ASGI app of one emulated org. ``config.instance_url`` must already be final."""
    org = org or build_org(store, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # result streams and DuckDB calls run in the thread pool: leave room for many at once
        anyio.to_thread.current_default_thread_limiter().total_tokens = config.threads
        try:
            yield
        finally:
            org.jobs.shutdown()
            if org.bulk1 is not None:
                org.bulk1.shutdown()
            org.cursors.shutdown()
            if config.work_dir is not None:
                shutil.rmtree(config.work_dir, ignore_errors=True)

    app = FastAPI(
        title="sfvault Salesforce emulator",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.org = org

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "GET,HEAD")
            return error_response(
                ApiError(
                    405,
                    "METHOD_NOT_ALLOWED",
                    f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}",
                )
            )
        if exc.status_code == 404:
            return error_response(not_found())
        return error_response(ApiError(exc.status_code, "UNKNOWN_EXCEPTION", str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return error_response(ApiError(400, "INVALID_QUERY_PARAMETER_VALUE", "Invalid request parameters"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(
            ApiError(
                500,
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred. Please include this ErrorId if you "
                "contact support: 1234567890-12345 (-1234567890)",
            )
        )

    app.include_router(auth.make_router(org))
    app.include_router(admin.make_router(org), prefix=ADMIN_PREFIX)
    app.include_router(bulk2.make_router(org))
    bulk1.install(app, org)
    app.include_router(rest.make_router(org))
    app.include_router(composite.make_router(org))
    app.add_middleware(SalesforceMiddleware, org=org)
    # outermost: sees the path first and the headers last; ``Date`` is the org's time
    app.add_middleware(WireMiddleware, clock=store.clock.now)
    return app
