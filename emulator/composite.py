"""``POST /services/data/vXX.X/composite`` (SALESFORCE_API.md §2.7).

Up to 25 subrequests run one after another in one API call ("The entire series of requests counts
as a single call toward your API limits"); at most 5 of them may be queries ("Up to 5 of these
subrequests can be sObject Collections or query operations, including Query and QueryAll
requests"). The profile's latency, faults and the API count apply once, to the outer request.

The emulator serves the subrequests a backup makes: ``GET sobjects/{name}/describe``,
``GET query?q=``/``queryAll?q=`` (with ``httpHeaders`` ``Sforce-Query-Options``) and the
``nextRecordsUrl`` of a query. Any other subrequest answers 400 ``NOT_SUPPORTED_BY_EMULATOR``.
With ``allOrNone`` true, the subrequests after a failed one answer 400 ``PROCESSING_HALTED``.
The error codes for a malformed body and for too many subrequests are unverified.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request, Response

from emulator.context import ApiError, not_found
from emulator.rest import _json, _json_body, batch_size, query_more, run_query
from emulator.schema import describe_object, find_object

if TYPE_CHECKING:
    from emulator.context import Org

MAX_SUBREQUESTS = 25
MAX_QUERIES = 5
HALTED = [
    {
        "message": "The transaction was rolled back since another operation in the same transaction failed.",
        "errorCode": "PROCESSING_HALTED",
    }
]
_VERSIONED = re.compile(r"^/?services/data/v(\d+\.\d+)/(.*)$")


def _query_options(headers: dict[str, Any]) -> str | None:
    """The subrequest's ``Sforce-Query-Options`` header (``httpHeaders`` keys are case-insensitive)."""
    return next((str(v) for k, v in headers.items() if k.lower() == "sforce-query-options"), None)


def _is_query(url: str) -> bool:
    m = _VERSIONED.match(urlsplit(url).path)
    return m is not None and m.group(2).split("/")[0] in ("query", "queryAll")


def _one(org: Org, sub: dict[str, Any]) -> tuple[int, Any]:
    """``(status, body)`` of one subrequest; an :class:`ApiError` becomes its JSON error list."""
    try:
        if str(sub.get("method", "")).upper() != "GET":
            raise ApiError(
                400, "NOT_SUPPORTED_BY_EMULATOR", "the emulator's composite serves GET subrequests"
            )
        parts = urlsplit(str(sub.get("url", "")))
        m = _VERSIONED.match(parts.path)
        if m is None:
            raise ApiError(400, "INVALID_URL", "subrequest url must start with /services/data/vXX.X/")
        version, rest = m.group(1), m.group(2).rstrip("/").split("/")
        headers = sub.get("httpHeaders") or {}
        if len(rest) == 3 and rest[0] == "sobjects" and rest[2] == "describe":
            obj = find_object(org.schema, rest[1])
            if obj is None:
                raise not_found()
            return 200, describe_object(obj, version, org.schema)
        if len(rest) == 1 and rest[0] in ("query", "queryAll"):
            soql = (parse_qs(parts.query).get("q") or [""])[0]
            if not soql.strip():
                raise ApiError(400, "MALFORMED_QUERY", "SOQL statements cannot be empty or null")
            batch = batch_size(_query_options(headers))
            return 200, run_query(org, soql, version, rest[0] == "queryAll", batch)
        if len(rest) == 2 and rest[0] in ("query", "queryAll"):
            return 200, query_more(org, rest[1], version, _query_options(headers))
        raise ApiError(
            400, "NOT_SUPPORTED_BY_EMULATOR", f"the emulator's composite does not serve {parts.path}"
        )
    except ApiError as exc:
        return exc.status, exc.body()


def make_router(org: Org) -> APIRouter:
    router = APIRouter()

    @router.post("/services/data/{ver}/composite")
    @router.post("/services/data/{ver}/composite/")
    async def composite(request: Request, ver: str) -> Response:
        import anyio.to_thread

        body = await _json_body(request)
        subs = body.get("compositeRequest")
        if not isinstance(subs, list) or not subs or not all(isinstance(s, dict) for s in subs):
            raise ApiError(
                400, "JSON_PARSER_ERROR", "compositeRequest must be a non-empty list of subrequests"
            )
        if len(subs) > MAX_SUBREQUESTS:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"Composite requests cannot have more than {MAX_SUBREQUESTS} subrequests",
            )
        if sum(1 for s in subs if _is_query(str(s.get("url", "")))) > MAX_QUERIES:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"Composite requests cannot have more than {MAX_QUERIES} query subrequests",
            )
        all_or_none = bool(body.get("allOrNone", False))

        def run() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            halted = False
            for sub in subs:  # serially, in order, as Salesforce runs them
                if halted:
                    status, result = 400, HALTED
                else:
                    status, result = _one(org, sub)
                    halted = all_or_none and status >= 400
                out.append(
                    {
                        "body": result,
                        "httpHeaders": {},
                        "httpStatusCode": status,
                        "referenceId": sub.get("referenceId"),
                    }
                )
            return out

        return _json({"compositeResponse": await anyio.to_thread.run_sync(run)})

    return router
