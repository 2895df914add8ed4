"""Admin routes of the Pub/Sub event bus, under ``/__emulator/pubsub`` (same secret header).

* ``GET  /pubsub``              the bus state (enabled entities, events held, last replay id ...)
* ``POST /pubsub/cdc``          ``{"entities": ["Account", "Invoice__c"], "enabled": true}`` —
  Setup > Change Data Capture (select or deselect objects; at most ``max_entities``, default 5)
* ``POST /pubsub/gap``          ``{"entity": "Account", "changeType": "GAP_UPDATE", "recordIds": [...]}``
  publishes a gap event (``GAP_OVERFLOW`` takes no ids)
* ``POST /pubsub/streams/drop`` every open Subscribe stream fails with UNAVAILABLE
* ``POST /pubsub/settings``     ``{"keepalive_s", "retention_hours", "overflow_threshold", "max_entities"}``
* ``POST /pubsub/allocation``   ``{"max": N, "used": N}`` of ``DailyDeliveredPlatformEvents``
"""

from __future__ import annotations

import hmac
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse

from emulator.context import ApiError
from emulator.pubsub.bus import DELIVERY_LIMIT, EventBus, TopicError

if TYPE_CHECKING:
    from emulator.context import Org


def _bad(message: str, status: int = 400) -> ApiError:
    return ApiError(status, "EMULATOR_ADMIN", message)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        raise _bad("body is not JSON") from None
    if not isinstance(body, dict):
        raise _bad("body must be a JSON object")
    return body


def make_router(org: Org, bus: EventBus) -> APIRouter:
    def check_secret(x_emulator_admin_secret: Annotated[str | None, Header()] = None) -> None:
        secret = org.config.credentials.admin_secret
        if x_emulator_admin_secret is None or not hmac.compare_digest(
            x_emulator_admin_secret.encode(), secret.encode()
        ):
            raise ApiError(401, "INVALID_ADMIN_SECRET", "missing or wrong X-Emulator-Admin-Secret header")

    router = APIRouter(prefix="/pubsub", dependencies=[Depends(check_secret)])

    def allocation() -> dict[str, Any]:
        state = org.limits.state()
        return {"max": state["max"][DELIVERY_LIMIT], "used": state["used"].get(DELIVERY_LIMIT, 0)}

    @router.get("")
    def state() -> Response:
        return JSONResponse({**bus.state(), "allocation": allocation()})

    @router.post("/cdc")
    async def enable(request: Request) -> Response:
        body = await _body(request)
        entities = body.get("entities")
        if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
            raise _bad("entities must be a list of object names")
        try:
            enabled = bus.enable(entities, bool(body.get("enabled", True)))
        except TopicError as exc:
            raise _bad(str(exc)) from None
        return JSONResponse({"enabled": enabled})

    @router.post("/gap")
    async def gap(request: Request) -> Response:
        body = await _body(request)
        try:
            ids = [str(i) for i in body.get("recordIds") or []]
            replay = bus.inject_gap(str(body.get("entity", "")), str(body.get("changeType", "")), ids)
        except (TopicError, ValueError) as exc:
            raise _bad(str(exc)) from None
        return JSONResponse({"replay_id": replay})

    @router.post("/streams/drop")
    def drop() -> Response:
        return JSONResponse({"drop_generation": bus.drop_streams()})

    @router.post("/settings")
    async def settings(request: Request) -> Response:
        body = await _body(request)
        with bus.cond:
            if "keepalive_s" in body:
                bus.keepalive_s = float(body["keepalive_s"])
            if "retention_hours" in body:
                bus.retention = timedelta(hours=float(body["retention_hours"]))
            if "overflow_threshold" in body:
                bus.overflow_threshold = int(body["overflow_threshold"])
            if "max_entities" in body:
                bus.max_entities = int(body["max_entities"])
            bus.cond.notify_all()
        return JSONResponse(bus.state())

    @router.post("/allocation")
    async def set_allocation(request: Request) -> Response:
        body = await _body(request)
        org.limits.set(DELIVERY_LIMIT, max_=body.get("max"), used=body.get("used"))
        return JSONResponse(allocation())

    return router
