"""The admin API under ``/__emulator`` (a path real Salesforce does not have).

Every call needs the header ``X-Emulator-Admin-Secret: <admin_secret>``. It drives the org
(churn, clock), exposes ground truth (change log, counts, digest, records, read-only SQL), the
request log and usage counters, the profile's knobs, faults, and session expiry.
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse

from emulator.context import ApiError
from emulator.profiles import Fault

if TYPE_CHECKING:
    from emulator.context import Org

MAX_SQL_ROWS = 100_000


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    return value


def _ok(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(_plain(body), status_code=status)


def _bad(message: str, status: int = 400) -> ApiError:
    return ApiError(status, "EMULATOR_ADMIN", message)


def _parse_dt(raw: str) -> datetime:
    from emulator.store import parse_datetime

    try:
        return parse_datetime(raw)
    except ValueError:
        raise _bad(f"not an ISO-8601 datetime: {raw!r}") from None


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    import json

    try:
        body = json.loads(raw)
    except ValueError:
        raise _bad("body is not JSON") from None
    if not isinstance(body, dict):
        raise _bad("body must be a JSON object")
    return body


def make_router(org: Org) -> APIRouter:
    def check_secret(
        x_emulator_admin_secret: Annotated[str | None, Header()] = None,
    ) -> None:
        secret = org.config.credentials.admin_secret
        if x_emulator_admin_secret is None or not hmac.compare_digest(
            x_emulator_admin_secret.encode(), secret.encode()
        ):
            raise ApiError(401, "INVALID_ADMIN_SECRET", "missing or wrong X-Emulator-Admin-Secret header")

    router = APIRouter(dependencies=[Depends(check_secret)])
    store = org.store

    @router.get("/info")
    def info() -> Response:
        return _ok(
            {
                "org_id": org.org_id,
                "user_id": org.user_id,
                "instance_url": org.instance_url,
                "profile": org.profile.to_dict(),
                "sessions": org.sessions.count(),
                "session_ttl": org.sessions.ttl,
                "jobs": org.jobs.counts(),
                "running_jobs": org.jobs.running,
                "open_cursors": org.cursors.open_count(),
                "clock": store.clock.now().isoformat(),
            }
        )

    @router.post("/churn")
    async def churn(request: Request) -> Response:
        from emulator.churn import churn as do_churn

        body = await _body(request)
        try:
            percent = float(body.get("percent", 1.0))
            seed = int(body.get("seed", 1))
        except (TypeError, ValueError):
            raise _bad("percent must be a number and seed an integer") from None
        purges = body.get("purges", True)
        if not isinstance(purges, bool):
            raise _bad("purges must be true or false")
        run = functools.partial(do_churn, store, percent, seed, purges=purges)
        summary = await anyio.to_thread.run_sync(run)
        return _ok(summary)

    @router.post("/recycle-bin/empty")
    async def empty_recycle_bin(request: Request) -> Response:
        """Purge the recycle bin's rows deleted ``older_than_seconds`` ago or earlier (default 0:
        all of them), as an administrator emptying it or its 15-day auto purge (``older_than_seconds``
        = 1296000) would; the delete log's ``earliestDateAvailable`` moves forward."""
        body = await _body(request)
        try:
            older = timedelta(seconds=float(body.get("older_than_seconds", 0)))
        except (TypeError, ValueError):
            raise _bad("older_than_seconds must be a number") from None
        return _ok({"purged": await anyio.to_thread.run_sync(lambda: store.empty_recycle_bin(older))})

    @router.post("/archive-activities")
    async def archive_activities(request: Request) -> Response:
        body = await _body(request)
        try:
            limit = None if body.get("limit") is None else int(body["limit"])
        except (TypeError, ValueError):
            raise _bad("limit must be an integer") from None
        return _ok(await anyio.to_thread.run_sync(lambda: store.archive_activities(limit)))

    @router.get("/clock")
    def get_clock() -> Response:
        return _ok({"now": store.clock.now().isoformat(), "frozen": store.clock.frozen})

    @router.post("/clock")
    async def set_clock(request: Request) -> Response:
        body = await _body(request)
        clock = store.clock
        if "set" in body:
            clock.set(_parse_dt(str(body["set"])))
        elif "advance" in body:
            try:
                clock.advance(float(body["advance"]))
            except (TypeError, ValueError):
                raise _bad("advance takes seconds") from None
        elif body.get("freeze"):
            clock.freeze()
        elif body.get("unfreeze"):
            clock.unfreeze()
        else:
            raise _bad("give one of: set (ISO datetime), advance (seconds), freeze, unfreeze")
        return _ok({"now": clock.now().isoformat(), "frozen": clock.frozen})

    @router.get("/changes")
    def changes(since: str) -> Response:
        return _ok(store.change_log(_parse_dt(since)))

    @router.get("/counts")
    def counts(include_deleted: bool = False) -> Response:
        return _ok(store.counts(include_deleted=include_deleted))

    @router.get("/digest")
    def digest() -> Response:
        return _ok({"digest": store.digest()})

    @router.get("/records/{obj}/{record_id}")
    def record(obj: str, record_id: str) -> Response:
        from emulator.store import StoreError

        try:
            rec = store.get(obj, record_id)
        except StoreError as exc:
            raise _bad(f"{exc.error_code}: {exc.message}", 404) from None
        if rec is None:
            raise _bad("no such record", 404)
        return _ok(rec)

    @router.post("/sql")
    async def sql(request: Request) -> Response:
        """Read-only SQL over the store (tests compute ground truth with it)."""
        body = await _body(request)
        text = str(body.get("sql", "")).strip()
        if not text.lower().startswith(("select", "with")):
            raise _bad("only SELECT / WITH statements")
        params = list(body.get("params", []))

        def run() -> dict[str, Any]:
            with store.cursor() as cur:
                res = cur.execute(text, params)
                columns = [d[0] for d in res.description or []]
                rows = res.fetchmany(MAX_SQL_ROWS)
            return {"columns": columns, "rows": [list(r) for r in rows]}

        try:
            return _ok(await anyio.to_thread.run_sync(run))
        except Exception as exc:  # the SQL is the caller's; tell them what DuckDB said
            raise _bad(f"{type(exc).__name__}: {exc}") from None

    @router.get("/requests")
    def requests_log(since: int = 0, limit: int | None = None) -> Response:
        return _ok({"last_seq": org.request_log.last_seq, "requests": org.request_log.entries(since, limit)})

    @router.delete("/requests")
    def clear_requests() -> Response:
        org.request_log.clear()
        return Response(status_code=204)

    @router.get("/limits")
    def limits_state() -> Response:
        return _ok(org.limits.state())

    @router.post("/limits")
    async def set_limits(request: Request) -> Response:
        body = await _body(request)
        if body.get("reset"):
            org.limits.reset()
        if "name" in body:
            try:
                org.limits.set(str(body["name"]), max_=body.get("max"), used=body.get("used"))
            except KeyError:
                raise _bad(f"not a counted limit: {body['name']}") from None
        return _ok(org.limits.state())

    @router.post("/limits/reset")
    def reset_limits() -> Response:
        org.limits.reset()
        return _ok(org.limits.state())

    @router.get("/profile")
    def get_profile() -> Response:
        return _ok(org.profile.to_dict())

    @router.patch("/profile")
    @router.post("/profile")
    async def set_profile(request: Request) -> Response:
        body = await _body(request)
        try:
            org.profile.update(body)
        except KeyError as exc:
            raise _bad(f"unknown profile knob: {exc.args[0]}") from None
        except (TypeError, ValueError) as exc:
            raise _bad(str(exc)) from None
        return _ok(org.profile.to_dict())

    def user_permissions() -> dict[str, Any]:
        from emulator.files import user_permission

        flags = [f.name for f in store.object_def("PermissionSet").fields if f.name.startswith("Permissions")]
        return {
            "user_id": org.user_id,
            "permissions": {f: user_permission(store, org.user_id, f) for f in flags},
        }

    @router.get("/user-permissions")
    def get_user_permissions() -> Response:
        """The integration user's effective system permissions (any assigned set grants)."""
        return _ok(user_permissions())

    @router.post("/user-permissions")
    async def set_user_permissions(request: Request) -> Response:
        """``{"PermissionsQueryAllFiles": false}``: set the flags on every permission set assigned
        to the integration user (its profile's included), as an admin would in Setup."""
        from emulator.files import set_user_permission

        body = await _body(request)
        for name, value in body.items():
            if not isinstance(value, bool):
                raise _bad(f"{name} takes true or false")
            try:
                await anyio.to_thread.run_sync(set_user_permission, store, org.user_id, name, value)
            except ValueError as exc:
                raise _bad(str(exc)) from None
        return _ok(user_permissions())

    @router.get("/faults")
    def list_faults() -> Response:
        return _ok({"faults": org.faults.list(), "fired_total": org.faults.fired_total})

    @router.post("/faults")
    async def add_fault(request: Request) -> Response:
        body = await _body(request)
        if "path_regex" not in body:
            raise _bad("path_regex is required")
        subrequests = body.get("subrequests", False)
        if not isinstance(subrequests, bool):
            raise _bad("subrequests takes true or false")
        try:
            fault = Fault(
                path_regex=str(body["path_regex"]),
                kind=str(body.get("kind", "error")),
                status=int(body.get("status", 503)),
                error_code=str(body.get("error_code", "SERVER_UNAVAILABLE")),
                message=str(body.get("message", "Server temporarily unavailable")),
                method=body.get("method"),
                remaining=int(body.get("count", 1)),
                delay_s=float(body.get("delay_s", 0.0)),
                subrequests=subrequests,
            )
            org.faults.add(fault)
        except (ValueError, TypeError) as exc:
            raise _bad(str(exc)) from None
        return _ok(fault.to_dict(), status=201)

    @router.delete("/faults")
    def clear_faults() -> Response:
        return _ok({"cleared": org.faults.clear()})

    @router.post("/faults/{fault_id}/release")
    def release_fault(fault_id: int) -> Response:
        """Let the requests a ``hold`` fault stalls go on."""
        if not org.faults.release(fault_id):
            raise _bad(f"no fault {fault_id}")
        return _ok({"released": fault_id})

    @router.post("/sessions/expire")
    def expire_sessions() -> Response:
        return _ok({"expired": org.sessions.expire_all()})

    @router.post("/sessions")
    async def session_settings(request: Request) -> Response:
        body = await _body(request)
        if "ttl" in body:
            org.sessions.set_ttl(float(body["ttl"]))
        return _ok({"ttl": org.sessions.ttl, "sessions": org.sessions.count()})

    @router.post("/password")
    async def change_password(request: Request) -> Response:
        """Change the integration user's password, as an org admin's "Reset password" does.

        Salesforce resets the user's security token with every password change (and mails it);
        the emulator does the same and answers the new token here instead of mailing it. Give
        ``security_token`` to choose it. Sessions already issued stay valid, as in Salesforce.
        """
        from emulator.context import random_secret

        body = await _body(request)
        password = body.get("password")
        if not isinstance(password, str) or not password:
            raise _bad("password must be a non-empty string")
        token = body.get("security_token") or random_secret(24)
        if not isinstance(token, str):
            raise _bad("security_token must be a string")
        org.config.credentials = dataclasses.replace(
            org.config.credentials, password=password, security_token=token
        )
        return _ok({"username": org.config.credentials.username, "security_token": token})

    @router.patch("/organization")
    async def set_organization(request: Request) -> Response:
        """Change fields of the org's one ``Organization`` record (e.g. ``TimeZoneSidKey``)."""
        from emulator.store import StoreError

        body = await _body(request)
        try:
            await anyio.to_thread.run_sync(lambda: store.update("Organization", org.org_id, body))
        except StoreError as exc:
            raise _bad(f"{exc.error_code}: {exc.message}") from None
        return _ok(store.get("Organization", org.org_id))

    @router.get("/jobs")
    def jobs() -> Response:
        return _ok(
            {
                "counts": org.jobs.counts(),
                "running": org.jobs.running,
                "created_total": org.jobs.created_total,
                "jobs": [j.info(full=True) for j in org.jobs.all()],
            }
        )

    return router
