"""Salesforce API usage: per job, and per day for an org with its remaining daily allowance.

The numbers come from the catalog's append-only usage ledger (:mod:`engine.catalog.usage`),
which every backup job writes when it finishes: its API calls by API (``api_calls``, the requests
that count against the org's ``DailyApiRequests``, is their sum: the same figure as the CLI, the
job report and the Data view, decision 0027), Bulk API 2.0 query jobs and result pages, Bulk API
1.0 batches, and the org's daily allowance as last seen. Days are UTC days.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, NoReturn

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.deps import Ctx, Viewer
from api.errors import error_responses
from api.schemas_calls import ApiCallsOut
from engine.catalog import jobs as cjobs
from engine.catalog import orgs as corgs
from engine.catalog.models import ApiUsage
from engine.catalog.usage import DailyUsage, UsageTotals, usage_by_day, usage_of_job
from engine.model import CALL_COUNT_FIELDS, call_counts

router = APIRouter(tags=["usage"])

ORG_NAME = r"^[A-Za-z0-9._-]{1,128}$"
JOB_ID = r"^[A-Za-z0-9._:-]{1,128}$"
OrgName = Annotated[str, PathParam(pattern=ORG_NAME, description="the org's name", examples=["acme-prod"])]
JobId = Annotated[
    str, PathParam(pattern=JOB_ID, description="the job's id", examples=["20261125T000000Z-ab12cd34ef56"])
]
DEFAULT_DAYS = 30
"""Without ``since``, the usage of the last 30 days (today included) is answered."""
MAX_DAYS = 366
"""The longest range one request may ask for."""


class Counters(ApiCallsOut):
    """API calls by API (``api_calls`` is their sum), and Bulk jobs, pages and batches."""

    bulk2_jobs: int = Field(
        description="Bulk API 2.0 query jobs created (DailyBulkV2QueryJobs; 0 where Bulk 2.0 was not used)",
        examples=[9],
    )
    bulk2_pages: int = Field(
        description="Bulk API 2.0 result pages read (also in bulk2_calls)", examples=[14]
    )

    @classmethod
    def of_totals(cls, t: UsageTotals) -> dict[str, int]:
        return {"api_calls": t.api_calls, **call_counts(t)}


class JobUsage(Counters):
    """The Salesforce API calls one backup job made."""

    job: str = Field(examples=["20261125T000000Z-ab12cd34ef56"])
    org: str = Field(examples=["acme-prod"])


class DayUsage(Counters):
    """One UTC day of an org's API usage."""

    day: date = Field(examples=["2026-11-25"])
    remaining: int | None = Field(
        description="the daily allowance left, as last seen that day (null if never seen)", examples=[14937]
    )
    daily_limit: int | None = Field(description="the org's daily allowance that day", examples=[15000])


class Allowance(BaseModel):
    """The org's daily API allowance as last seen by a job."""

    remaining: int = Field(description="requests left in the org's rolling 24 hours", examples=[14937])
    daily_limit: int | None = Field(description="the org's DailyApiRequests maximum", examples=[15000])
    recorded_at: datetime = Field(description="when it was seen", examples=["2026-11-25T00:04:41Z"])


class UsageTotalsOut(Counters):
    """Sums over the days of the range."""


class OrgUsage(BaseModel):
    """An org's API usage per day over ``[since, until]`` and its latest allowance."""

    org: str = Field(examples=["acme-prod"])
    since: date = Field(examples=["2026-10-27"])
    until: date = Field(examples=["2026-11-25"])
    days: list[DayUsage] = Field(description="the days with usage, oldest first")
    totals: UsageTotalsOut
    allowance: Allowance | None = Field(description="the latest allowance seen (null: no job has run yet)")


@router.get(
    "/v1/jobs/{job_id}/usage",
    response_model=JobUsage,
    summary="API usage of one job",
    responses=error_responses(401, 404, 422),
)
def job_usage(job_id: JobId, ctx: Ctx, _who: Viewer) -> JobUsage:
    """The job's API calls (`api_calls`: what counted against the org's DailyApiRequests) by API,
    its Bulk API 2.0 jobs and result pages and Bulk API 1.0 batches (zero until it finishes)."""
    with ctx.tx() as s:
        job = cjobs.get_job(s, job_id)
        org = corgs.get_org(s, job.org_id).name
        totals = usage_of_job(s, job.id)
    return JobUsage(job=job_id, org=org, **Counters.of_totals(totals))


@router.get(
    "/v1/orgs/{org}/usage",
    response_model=OrgUsage,
    summary="API usage per day and the remaining daily allowance",
    responses=error_responses(401, 404, 422),
)
def org_usage(
    org: OrgName,
    ctx: Ctx,
    _who: Viewer,
    since: Annotated[
        date | None,
        Query(description="first UTC day (default: 29 days before `until`)", examples=["2026-10-27"]),
    ] = None,
    until: Annotated[
        date | None, Query(description="last UTC day (default: today)", examples=["2026-11-25"])
    ] = None,
) -> OrgUsage:
    """Per UTC day in `[since, until]`: API calls by API, Bulk jobs, pages and batches, and the
    allowance as last seen that day; plus the org's latest allowance. `since` after `until`, or a
    range longer than 366 days, answers 422 naming `query.since`."""
    last = until or ctx.clock.now().date()
    first = since or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        _refuse(("query", "since"), f"since ({first}) is after until ({last})")
    if (last - first).days + 1 > MAX_DAYS:
        _refuse(("query", "since"), f"the range {first}..{last} is longer than {MAX_DAYS} days")
    with ctx.tx() as s:
        row = corgs.get_org_by_name(s, org)
        days = usage_by_day(s, row.id, since=first, until=last)
        latest = s.execute(
            select(ApiUsage.remaining, ApiUsage.daily_limit, ApiUsage.recorded_at)
            .where(ApiUsage.org_id == row.id, ApiUsage.remaining.is_not(None))
            .order_by(ApiUsage.recorded_at.desc(), ApiUsage.id.desc())
            .limit(1)
        ).first()
    out = [_day(d) for d in days]
    summed = UsageTotals(**{k: sum(getattr(d, k) for d in days) for k in CALL_COUNT_FIELDS})
    totals = UsageTotalsOut(**Counters.of_totals(summed))
    allowance = None
    if latest is not None and latest[0] is not None:
        allowance = Allowance(remaining=latest[0], daily_limit=latest[1], recorded_at=latest[2])
    return OrgUsage(org=org, since=first, until=last, days=out, totals=totals, allowance=allowance)


def _refuse(field: tuple[str, str], message: str) -> NoReturn:
    """422 SFV-903 naming the field, like every other validation error."""
    raise RequestValidationError([{"loc": field, "msg": message, "type": "value_error"}])


def _day(d: DailyUsage) -> DayUsage:
    return DayUsage(day=d.day, remaining=d.remaining, daily_limit=d.daily_limit, **Counters.of_totals(d))
