"""Permission checks of the integration user: check now, the report list, the newest report.

"Check now" runs :func:`engine.jobs.permission_check.run_permission_check` synchronously: it is
a login and a few REST queries and describes, so the answer (201) is the stored report with its
three lists. It is an on-demand check (``trigger = manual``): it does not move the monthly
schedule. The report is also queued for every admin address in the outbox (and mailed when SMTP
is configured). The endpoints are plain ``def`` so the Salesforce calls run in FastAPI's
worker threads, never on the event loop.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from api.deps import Admin, Ctx, Viewer
from api.errors import error_responses
from api.paging import NEXT_HEADERS, Offset, page
from engine.catalog import orgs as corgs
from engine.catalog.models import JobTrigger
from engine.jobs.permission_check import StoredReport, latest_report, report_summaries, run_permission_check

router = APIRouter(tags=["permissions"])

ORG_NAME = r"^[A-Za-z0-9._-]{1,128}$"
OrgName = Annotated[str, PathParam(pattern=ORG_NAME, description="the org's name", examples=["acme-prod"])]


# --- models ----------------------------------------------------------------------------------


class FieldAccessOut(BaseModel):
    object: str = Field(examples=["Account"])
    field: str = Field(examples=["Tax_Id__c"])
    readable: bool = Field(description="false: the field cannot be backed up", examples=[False])
    editable: bool = Field(examples=[False])


class ObjectAccessOut(BaseModel):
    object: str = Field(examples=["Account"])
    readable: bool = Field(description="false: the object cannot be backed up", examples=[True])
    view_all_records: bool = Field(examples=[True])
    modify_all_records: bool = Field(examples=[False])
    needs_permission: bool = Field(
        True,
        description="false: Salesforce has no object permission for it (User, Organization, *History, "
        "EventLogFile ...); every API user reads it, so it is backed up",
        examples=[True],
    )


class UserPermissionOut(BaseModel):
    permission: str = Field(examples=["PermissionsQueryAllFiles"])
    label: str = Field(examples=["Query All Files"])
    granted: bool = Field(examples=[True])
    needed_for: str = Field(description="backup, restore, metadata or event logs", examples=["backup"])
    why: str = Field(examples=["read every ContentDocument and ContentVersion, also files not shared"])


class PermissionSummary(BaseModel):
    """One report of the list: what is missing, counted."""

    id: int = Field(examples=[12])
    trigger: str = Field(description="scheduled or manual (check now)", examples=["scheduled"])
    created_at: datetime
    unreadable_fields: int = Field(examples=[1])
    unreadable_objects: int = Field(examples=[0])
    missing_permissions: int = Field(examples=[0])


class PermissionReportOut(BaseModel):
    """A permission report with its three lists (PRODUCT.md "Permission checks")."""

    id: int = Field(examples=[12])
    org: str = Field(examples=["acme-prod"])
    trigger: str = Field(examples=["manual"])
    created_at: datetime
    fields: list[FieldAccessOut] = Field(description="every field with its object; readable or not")
    objects: list[ObjectAccessOut] = Field(description="the org's objects; readable or not")
    user_permissions: list[UserPermissionOut] = Field(
        description="the system permissions backup and restore need, granted or not, and what for"
    )
    unreadable_fields: int = Field(examples=[1])
    unreadable_objects: list[str] = Field(examples=[[]])
    missing_permissions: list[str] = Field(
        description="labels of the required permissions not granted", examples=[["Bulk API Hard Delete"]]
    )
    messages_queued: int = Field(0, description="outbox messages queued for admins by this check")


def _out(r: StoredReport) -> PermissionReportOut:
    return PermissionReportOut(
        id=r.id,
        org=r.org,
        trigger=r.trigger,
        created_at=r.created_at,
        fields=[FieldAccessOut.model_validate(f) for f in r.fields],
        objects=[ObjectAccessOut.model_validate({"readable": True, **o}) for o in r.objects],
        user_permissions=[UserPermissionOut.model_validate(p) for p in r.user_permissions],
        unreadable_fields=len(r.unreadable_fields),
        unreadable_objects=r.unreadable_objects,
        missing_permissions=[str(p["label"]) for p in r.missing_permissions],
        messages_queued=r.messages_queued,
    )


# --- endpoints -------------------------------------------------------------------------------


@router.post(
    "/v1/orgs/{org}/permission-checks",
    status_code=201,
    summary="Check the integration user's permissions now",
    responses=error_responses(401, 403, 404, 422, 502),
)
def check_now(org: OrgName, ctx: Ctx, _: Admin) -> PermissionReportOut:
    """Read the user's permission sets, object and field permissions from the org; store the
    report, queue it for the admins and answer with it. 404 SFV-101 for an unknown org;
    Salesforce failures answer with their SFV-4xx code (nothing is stored then)."""
    with ctx.tx() as s:
        corgs.get_org_by_name(s, org)
    stored = run_permission_check(
        ctx.settings, ctx.sessions, org, trigger=JobTrigger.MANUAL, clock=ctx.clock, sealer=ctx.sealer
    )
    return _out(stored)


@router.get(
    "/v1/orgs/{org}/permission-checks",
    summary="The org's permission reports, newest first",
    responses={200: {"headers": NEXT_HEADERS}, **error_responses(401, 403, 404, 422)},
)
def list_checks(
    org: OrgName,
    ctx: Ctx,
    _: Viewer,
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many reports")] = 100,
    offset: Offset = 0,
) -> list[PermissionSummary]:
    """Summaries (counts of what is missing), newest first, one page at a time (``X-Next-Offset``
    and ``Link`` name the next); an empty list before the first check."""
    with ctx.tx() as s:
        rows = report_summaries(s, org, limit=limit + 1, offset=offset)
    return [
        PermissionSummary.model_validate(r, from_attributes=True)
        for r in page(rows, limit=limit, offset=offset, request=request, response=response)
    ]


@router.get(
    "/v1/orgs/{org}/permission-checks/latest",
    summary="The newest permission report with its three lists",
    responses=error_responses(401, 403, 404, 422),
)
def latest_check(org: OrgName, ctx: Ctx, _: Viewer) -> PermissionReportOut:
    """404 SFV-101 for an unknown org, 404 SFV-915 when no check has run yet."""
    with ctx.tx() as s:
        stored = latest_report(s, org)
    return _out(stored)
