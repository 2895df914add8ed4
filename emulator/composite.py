"""``POST /services/data/vXX.X/composite`` (SALESFORCE_API.md §2.7).

Up to 25 subrequests run one after another in one API call ("The entire series of requests counts
as a single call toward your API limits"); at most 5 of them may be queries ("Up to 5 of these
subrequests can be sObject Collections or query operations, including Query and QueryAll
requests"). The profile's latency, faults and the API count apply once, to the outer request.

The emulator serves the subrequests a backup makes: ``GET sobjects/{name}/describe``,
``GET query?q=``/``queryAll?q=`` (with ``httpHeaders`` ``Sforce-Query-Options``), the
``nextRecordsUrl`` of a query, and the replication resources ``GET sobjects/{name}/deleted/?start=&end=``
and ``GET sobjects/{name}/updated/?start=&end=`` (with or without the trailing slash; Salesforce's
composite serves "All sObject resources (/services/data/vXX.X/sobjects/)" but sObject Blob Get).
A replication subrequest answers exactly what its plain route answers (the same functions of
:mod:`emulator.rest`: body, status and error codes); it is not a query, so up to 25 of them fit
in one request. Any other subrequest answers 400 ``NOT_SUPPORTED_BY_EMULATOR``. With
``allOrNone`` true, the subrequests after a failed one answer 400 ``PROCESSING_HALTED``.

Faults armed with ``subrequests`` meet a subrequest by its own method and path (an ``error``
becomes its answer; a ``delay`` or a ``hold`` stalls the whole request, as one slow subrequest
does on Salesforce). The request log lists each composite's subrequest paths.
The error codes for a malformed body and for too many subrequests are unverified.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from fastapi import APIRouter, Request, Response

from emulator.context import ApiError, not_found
from emulator.limits import SUBREQUESTS_STATE
from emulator.profiles import HOLD_MAX_S
from emulator.rest import _json, _json_body, batch_size, deleted, query_more, run_query, updated
from emulator.schema import describe_object, find_object

if TYPE_CHECKING:
    from emulator.context import Org

MAX_SUBREQUESTS = 25
MAX_QUERIES = 5
"""Query and queryAll subrequests of one request (replication and describe ones are not queries)."""
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


def _fault(org: Org, method: str, path: str) -> tuple[int, Any] | None:
    """A fault armed with ``subrequests`` that meets this subrequest: an error's answer, or None
    once a delay or hold has stalled it (then it is handled normally)."""
    fault = org.faults.take(method, path, ("error", "delay", "hold"), subrequest=True)
    if fault is None:
        return None
    if fault.kind == "delay":
        time.sleep(fault.delay_s)
    elif fault.kind == "hold":
        fault.released.wait(fault.delay_s or HOLD_MAX_S)
    else:
        return fault.status, [{"message": fault.message, "errorCode": fault.error_code}]
    return None


REPLICATION = {"deleted": deleted, "updated": updated}
"""The replication resources ``sobjects/{name}/deleted|updated/?start=&end=``: the plain routes' rules."""


def _one(org: Org, sub: dict[str, Any]) -> tuple[int, Any]:
    """``(status, body)`` of one subrequest; an :class:`ApiError` becomes its JSON error list."""
    method, path = str(sub.get("method", "")).upper(), urlsplit(str(sub.get("url", ""))).path
    faulted = _fault(org, method, path)
    if faulted is not None:
        return faulted
    try:
        if method != "GET":
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
        if len(rest) == 3 and rest[0] == "sobjects" and rest[2] in REPLICATION:
            return 200, REPLICATION[rest[2]](org, rest[1], dict(parse_qsl(parts.query)))
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
        request.scope.setdefault("state", {})[SUBREQUESTS_STATE] = tuple(
            urlsplit(str(s.get("url", ""))).path for s in subs
        )

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
