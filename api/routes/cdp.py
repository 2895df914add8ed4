"""Continuous data protection of an org: ``GET`` / ``PUT /v1/orgs/{org}/cdp`` (decision 0033).

``PUT`` (admin, as the org's settings) turns protection on for the objects given, with a start
time and an interval, or off; the same checks as ``sfvault cdp enable|disable`` run
(:func:`engine.jobs.cdp.set_protection`: file objects SFV-621, objects the org publishes no change
events for SFV-622, asked through the Pub/Sub API's ``GetTopic``; no objects SFV-620; a start
time out of range SFV-624), then the service's subscribers are brought in step at once
(:meth:`api.cdp_supervisor.CdpSupervisor.sync`). ``GET`` (viewer) shows the setting and what the
org's subscriber in this process is doing (running, waiting for its start, backing off after a
failure with the failure's code).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Admin, Ctx, Viewer
from api.errors import error_responses
from api.routes.data import ObjectName, OrgName, org_scope
from api.schemas_orgs import Instant
from engine.catalog import orgs as corgs
from engine.jobs.cdp import set_protection
from engine.jobs.cdp_settings import DEFAULT_INTERVAL_S, MAX_INTERVAL_S, MIN_INTERVAL_S, setting_of

router = APIRouter(tags=["orgs"])


class CdpSubscriberOut(BaseModel):
    """The org's change event subscriber in this service process."""

    state: str = Field(
        description="`waiting` (start time ahead), `running`, `backoff` (after a failure), `starting`, "
        "`stopped`",
        examples=["running"],
    )
    started_at: datetime | None = Field(None, description="when its current run subscribed")
    runs: int = Field(description="subscriptions since the service started", examples=[1])
    failures: int = Field(description="runs that ended on an error", examples=[0])
    events: int = Field(description="change events sealed by ended runs", examples=[0])
    segments: int = Field(description="segments sealed by ended runs", examples=[0])
    last_error_code: str | None = Field(None, description="code of the last failure", examples=["SFV-453"])
    last_error_message: str | None = Field(None, description="message of the last failure")
    last_error_at: datetime | None = Field(None, description="when the last failure happened")
    retry_at: datetime | None = Field(None, description="when a backing-off subscriber tries again")
    catch_up_jobs: list[str] = Field(
        description="catch-up backup jobs started after an expired replay id (SFV-452)", examples=[[]]
    )


class CdpOut(BaseModel):
    """An org's continuous data protection setting and its subscriber."""

    enabled: bool = Field(description="protection on / off", examples=[True])
    objects: list[str] = Field(description="the protected objects", examples=[["Account", "Opportunity"]])
    start_at: datetime | None = Field(
        None, description="when streaming starts; none = as soon as protection is on"
    )
    interval_s: int = Field(
        description="the longest a received change waits before its segment is sealed (seconds)",
        examples=[DEFAULT_INTERVAL_S],
    )
    subscriber: CdpSubscriberOut | None = Field(
        None, description="the subscriber in this process; none = not running here"
    )


class CdpPut(BaseModel):
    """The whole setting: protection on for ``objects`` (with start and interval), or off."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"enabled": True, "objects": ["Account"], "interval_s": 3600}]},
    )

    enabled: bool = Field(description="protection on / off (off keeps the segments)", examples=[True])
    objects: list[ObjectName] = Field(
        default_factory=list,
        max_length=200,
        description="objects to protect (required when enabled)",
        examples=[["Account", "Opportunity"]],
    )
    start_at: Instant | None = Field(
        None,
        description="when streaming starts (ISO 8601 with an offset); null = keep the stored one "
        "(none stored: at once); a past instant = at once",
        examples=["2026-12-07T02:00:00Z"],
    )
    interval_s: int | None = Field(
        None,
        ge=MIN_INTERVAL_S,
        le=MAX_INTERVAL_S,
        description="longest a change waits before it is sealed, 60 to 86,400 s; null = keep (default 3600)",
        examples=[3600],
    )


def _out(ctx: Ctx, org: str) -> CdpOut:
    with ctx.tx() as s:
        st = setting_of(corgs.get_org_by_name(s, org).settings)
    status = ctx.cdp.status(org) if ctx.cdp is not None else None
    return CdpOut(
        enabled=st.enabled, objects=list(st.objects), start_at=st.start_at, interval_s=st.interval_s,
        subscriber=CdpSubscriberOut(**vars(status)) if status is not None else None,
    )  # fmt: skip


@router.get(
    "/v1/orgs/{org}/cdp",
    response_model=CdpOut,
    responses=error_responses(401, 404, 422),
    summary="Continuous data protection: the setting and the org's change event subscriber",
)
def get_cdp(org: OrgName, ctx: Ctx, _: Viewer) -> CdpOut:
    return _out(ctx, org)


@router.put(
    "/v1/orgs/{org}/cdp",
    response_model=CdpOut,
    responses=error_responses(401, 403, 404, 422, 502, 503),
    summary="Turn continuous data protection on (objects, start, interval) or off; answers like GET",
)
def put_cdp(org: OrgName, body: CdpPut, ctx: Ctx, _: Admin) -> CdpOut:
    """On: each object is checked (422 SFV-621 file object, 422 SFV-622 Change Data Capture not
    enabled for it in the org, 422 SFV-620 no object), which logs in to the org. Off: the service's
    subscriber of the org stops after sealing what it holds; the segments stay."""
    name = org_scope(ctx, org).name  # 404 before any login
    set_protection(
        ctx.settings, name, list(body.objects) if body.enabled else None, clock=ctx.clock,
        start_at=body.start_at, interval_s=body.interval_s,
    )  # fmt: skip
    if ctx.cdp is not None:
        ctx.cdp.sync()
    return _out(ctx, name)
