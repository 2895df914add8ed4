"""Orgs: connect, the overview tiles, details, hide and show, disconnect, and backup settings.

Handlers stay thin: the request model checks the input (422 naming the field), one call into
:mod:`engine.jobs.connect` or :mod:`engine.catalog.orgs` does the work in a short catalog
transaction, and the answer is a response model. Connecting logs in to Salesforce before
anything is saved, with no catalog session open meanwhile.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy.orm import Session

from api.deps import Admin, Ctx, Operator, Principal, Viewer, storage_for
from api.errors import error_responses
from api.paging import NEXT_HEADERS, Offset, page
from api.schemas_orgs import (
    ORG_NAME_PATTERN,
    Connected,
    ConnectOrg,
    LastJob,
    OrgDetails,
    OrgSettingsOut,
    OrgSettingsPatch,
    OrgTile,
    StopReasonOut,
    UpdateCredentials,
)
from engine.catalog import orgs as corgs
from engine.catalog.models import Org
from engine.clock import Clock
from engine.jobs import connect as conn
from engine.jobs.credentials import credentials_record

router = APIRouter(tags=["orgs"])

OrgName = Annotated[str, Path(pattern=ORG_NAME_PATTERN, description="the org's name", examples=["acme-prod"])]


def tile_model(t: conn.OrgTile) -> OrgTile:
    """The API's shape of a tile (``GET /v1/orgs``, ``sfvault org list --json``)."""
    return OrgTile(
        name=t.name, hidden=t.hidden, last_job=_last(t.last_job), next_job_at=t.next_job_at,
        schedule_stopped=t.schedule_stopped, schedule_stopped_code=t.schedule_stopped_code,
        stops=[StopReasonOut(reason=r.reason, code=r.code, message=r.message) for r in t.stops],
        protection_ends_at=t.protection_ends_at,
    )  # fmt: skip


_tile = tile_model


def _last(j: conn.LastJob | None) -> LastJob | None:
    if j is None:
        return None
    return LastJob(
        id=j.id, state=j.state, kind=j.kind, trigger=j.trigger, created_at=j.created_at,
        started_at=j.started_at, finished_at=j.finished_at, error_code=j.error_code,
    )  # fmt: skip


def _details(v: conn.OrgView, who: Principal) -> OrgDetails:
    o = v.org
    return OrgDetails(
        **_tile(v.tile).model_dump(),
        instance_url=o.instance_url, sf_org_id=o.sf_org_id, auth_kind=o.auth_kind, time_zone=o.time_zone,
        connected_at=o.connected_at, storage_location=storage_for(who, o.storage_location), plan=o.plan,
        purchased_seats=o.purchased_seats, subscription_expires_at=o.subscription_expires_at,
        next_incremental_at=v.next_incremental_at, next_full_at=v.next_full_at,
    )  # fmt: skip


def settings_view(org: Org, now: datetime, who: Principal | None = None) -> OrgSettingsOut:
    """An org's settings as ``GET /v1/orgs/{org}/settings`` answers them to ``who`` (viewers do not
    see the storage location); ``who=None`` is the local operator (``sfvault settings show``)."""
    st = org.settings
    day = conn.day_schedule(org, now)
    return OrgSettingsOut(
        backup_enabled=st.backup_enabled, include_feed=st.include_feed, include_share=st.include_share,
        event_logs=st.event_logs,  # type: ignore[arg-type]  # CHECK constraint: off | daily | hourly
        excluded_objects=list(st.excluded_objects), excluded_metadata_types=list(st.excluded_metadata_types),
        jobs_per_day=st.jobs_per_day, first_start_time=st.first_start_time.strftime("%H:%M"),
        permission_check_enabled=st.permission_check_enabled,
        permission_check_start=st.permission_check_start,
        permission_check_interval_days=st.permission_check_interval_days,
        storage_location=org.storage_location if who is None else storage_for(who, org.storage_location),
        time_zone=org.time_zone, plan=org.plan,
        purchased_seats=org.purchased_seats, subscription_expires_at=org.subscription_expires_at,
        schedule_date=day.day, daily_schedule=[at.strftime("%H:%M") for at in day.starts],
        daily_schedule_at=day.starts,
    )  # fmt: skip


def apply_settings(s: Session, org: Org, body: OrgSettingsPatch, clock: Clock) -> None:
    """Write a checked settings change (``PATCH .../settings``, ``sfvault settings set``) in ``s``."""
    changes = body.org_changes()
    if changes:
        corgs.update_org(s, org, clock=clock, **changes)
    settings = body.settings_changes()
    if settings:
        corgs.update_settings(s, org, clock=clock, **settings)


def _settings(org: Org, ctx: Ctx, who: Principal) -> OrgSettingsOut:
    return settings_view(org, ctx.clock.now(), who)


def _tile_of(s: Session, ctx: Ctx, name: str) -> OrgTile:
    return _tile(conn.org_view(s, name, now=ctx.clock.now()).tile)


@router.post(
    "/v1/orgs",
    status_code=201,
    response_model=Connected,
    responses=error_responses(400, 401, 403, 409, 422, 502),
    summary="Connect an org (credentials checked against Salesforce, then stored sealed)",
)
def connect(body: ConnectOrg, ctx: Ctx, _who: Admin) -> Connected:
    """Log in with the given credentials and read the org's API limits; only if that works is
    the org stored, its credentials sealed. Refused credentials answer Salesforce's auth error
    (SFV-402) and store nothing; a taken name answers 409 (SFV-503). The schedule starts with
    one job a day at the next 00:00 in the org's time zone: the one given, else the org's own
    (``Organization.TimeZoneSidKey``, read at the login)."""
    record = credentials_record(**body.credentials())
    org = conn.connect_org(
        ctx.settings, ctx.sessions, name=body.name, record=record, time_zone=body.time_zone,
        storage_location=body.storage_location, plan=body.plan, purchased_seats=body.purchased_seats,
        subscription_expires_at=body.subscription_expires_at, sealer=ctx.sealer, clock=ctx.clock,
    )  # fmt: skip
    return _connected(org)


def _connected(org: conn.ConnectedOrg) -> Connected:
    return Connected(
        name=org.name, sf_org_id=org.sf_org_id, auth_kind=org.auth_kind, time_zone=org.time_zone,
        storage_location=org.storage_location, connected_at=org.connected_at,
        api_remaining=org.api_remaining, api_max=org.api_max,
    )  # fmt: skip


@router.get(
    "/v1/orgs",
    response_model=list[OrgTile],
    responses={200: {"headers": NEXT_HEADERS}, **error_responses(401, 422)},
    summary="The overview tiles: last job, next job start, hidden flag",
)
def list_tiles(
    ctx: Ctx,
    _who: Viewer,
    request: Request,
    response: Response,
    hidden: Annotated[
        Literal["false", "true", "all"],
        Query(description="false: the visible tiles; true: the hidden section; all: both"),
    ] = "false",
    limit: Annotated[int, Query(ge=1, le=1000, description="page size", examples=[100])] = 1000,
    offset: Offset = 0,
) -> list[OrgTile]:
    """The tiles by org name, one page at a time (``X-Next-Offset`` and ``Link`` name the next)."""
    which = None if hidden == "all" else hidden == "true"
    with ctx.tx() as s:
        tiles = conn.org_tiles(s, hidden=which, now=ctx.clock.now(), limit=limit + 1, offset=offset)
    return [_tile(t) for t in page(tiles, limit=limit, offset=offset, request=request, response=response)]


@router.get(
    "/v1/orgs/{org}",
    response_model=OrgDetails,
    responses=error_responses(401, 404, 422),
    summary="An org's details: tile, time zone, storage, subscription, next incremental and full",
)
def details(org: OrgName, ctx: Ctx, who: Viewer) -> OrgDetails:
    with ctx.tx() as s:
        return _details(conn.org_view(s, org, now=ctx.clock.now()), who)


@router.post(
    "/v1/orgs/{org}/hide",
    response_model=OrgTile,
    responses=error_responses(401, 403, 404, 422),
    summary="Move the org's tile to the hidden section",
)
def hide(org: OrgName, ctx: Ctx, _who: Operator) -> OrgTile:
    with ctx.tx() as s:
        corgs.set_hidden(s, corgs.get_org_by_name(s, org), True, clock=ctx.clock)
        return _tile_of(s, ctx, org)


@router.post(
    "/v1/orgs/{org}/show",
    response_model=OrgTile,
    responses=error_responses(401, 403, 404, 422),
    summary="Move the org's tile back from the hidden section",
)
def show(org: OrgName, ctx: Ctx, _who: Operator) -> OrgTile:
    with ctx.tx() as s:
        corgs.set_hidden(s, corgs.get_org_by_name(s, org), False, clock=ctx.clock)
        return _tile_of(s, ctx, org)


@router.delete(
    "/v1/orgs/{org}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404, 409, 422),
    summary="Disconnect an org (catalog rows go; the repository keeps its snapshots)",
)
def disconnect(org: OrgName, ctx: Ctx, _who: Admin) -> Response:
    """Refused with 409 (SFV-601) while a job of the org is queued or running: cancel it first."""
    conn.disconnect_org(ctx.sessions, org)
    return Response(status_code=204)


@router.patch(
    "/v1/orgs/{org}",
    response_model=Connected,
    responses=error_responses(400, 401, 403, 404, 409, 422, 502),
    summary="Change an org's credentials (checked against Salesforce before they are saved)",
)
def update_credentials(org: OrgName, body: UpdateCredentials, ctx: Ctx, _who: Admin) -> Connected:
    """Only the fields given change (an empty string removes one). The merged credentials log in
    and read the org's limits first; refused ones answer SFV-402 and save nothing, credentials of
    another Salesforce org answer 409 (SFV-511). Settings, schedule and jobs stay as they are;
    an org recreated by ``sfvault catalog rebuild`` (no credentials) gets them here."""
    done = conn.update_credentials(
        ctx.settings, ctx.sessions, name=org, changes=body.changes(), sealer=ctx.sealer, clock=ctx.clock
    )
    return _connected(done)


@router.get(
    "/v1/orgs/{org}/settings",
    response_model=OrgSettingsOut,
    responses=error_responses(401, 404, 422),
    summary="Backup settings and the computed daily schedule in the org's time zone",
)
def get_settings(org: OrgName, ctx: Ctx, who: Viewer) -> OrgSettingsOut:
    with ctx.tx() as s:
        return _settings(corgs.get_org_by_name(s, org), ctx, who)


@router.patch(
    "/v1/orgs/{org}/settings",
    response_model=OrgSettingsOut,
    responses=error_responses(401, 403, 404, 422),
    summary="Change settings (only the fields given); answers like GET",
)
def patch_settings(org: OrgName, body: OrgSettingsPatch, ctx: Ctx, who: Admin) -> OrgSettingsOut:
    """Every field is checked before anything is written, and all changes are one transaction."""
    with ctx.tx() as s:
        row = corgs.get_org_by_name(s, org)
        apply_settings(s, row, body, ctx.clock)
        return _settings(row, ctx, who)
