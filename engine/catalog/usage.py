"""Salesforce API usage: an append-only ledger, summed per job and per day (UTC).

"API calls" means what :func:`engine.model.api_calls_of` computes (decision 0027): the requests
that count against the org's ``DailyApiRequests``, by API (REST, Bulk API 2.0, Bulk API 1.0);
:attr:`UsageTotals.api_calls` is their sum. Bulk 2.0 jobs, result pages and Bulk 1.0 batches are
counted beside them (they are not calls).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.catalog.models import ApiUsage
from engine.clock import Clock, SystemClock
from engine.model import CALL_COUNT_FIELDS, ApiCalls, CallCounts


@dataclass(frozen=True)
class UsageTotals(CallCounts):
    """The ledger's counters summed (over a job, or a span of days)."""


@dataclass(frozen=True)
class DailyUsage(UsageTotals):
    day: date = date.min
    remaining: int | None = None
    daily_limit: int | None = None


def calls_columns(calls: ApiCalls) -> dict[str, int]:
    """The ledger's (and ``job_objects``') call columns of ``calls``."""
    return {
        "rest_calls": calls.rest, "bulk2_calls": calls.bulk2, "bulk1_calls": calls.bulk1,
        "bulk1_batches": calls.bulk1_batches,
    }  # fmt: skip


_SUMMED = (
    ApiUsage.rest_calls, ApiUsage.bulk2_jobs, ApiUsage.bulk2_pages, ApiUsage.bulk2_calls,
    ApiUsage.bulk1_calls, ApiUsage.bulk1_batches,
)  # fmt: skip
"""The ledger's counters, in :class:`UsageTotals`' field order."""


def record_api_usage(
    session: Session,
    *,
    org_id: int,
    job_id: str | None = None,
    rest_calls: int = 0,
    bulk2_calls: int = 0,
    bulk1_calls: int = 0,
    bulk1_batches: int = 0,
    bulk2_jobs: int = 0,
    bulk2_pages: int = 0,
    remaining: int | None = None,
    daily_limit: int | None = None,
    clock: Clock | None = None,
) -> ApiUsage:
    """Append calls made by API (and the allowance last seen) to the ledger; ``day`` is the UTC
    day. Jobs pass :func:`calls_columns` of :func:`engine.model.api_calls_of`."""
    now = (clock or SystemClock()).now()
    row = ApiUsage(
        org_id=org_id,
        job_id=job_id,
        day=now.date(),
        rest_calls=rest_calls,
        bulk2_calls=bulk2_calls,
        bulk1_calls=bulk1_calls,
        bulk1_batches=bulk1_batches,
        bulk2_jobs=bulk2_jobs,
        bulk2_pages=bulk2_pages,
        remaining=remaining,
        daily_limit=daily_limit,
        recorded_at=now,
    )
    session.add(row)
    session.flush()
    return row


def usage_of_job(session: Session, job_id: str) -> UsageTotals:
    sums = session.execute(
        select(*(func.coalesce(func.sum(c), 0) for c in _SUMMED)).where(ApiUsage.job_id == job_id)
    ).one()
    return UsageTotals(**dict(zip(CALL_COUNT_FIELDS, (int(v) for v in sums), strict=True)))


def usage_by_day(session: Session, org_id: int, *, since: date, until: date) -> list[DailyUsage]:
    """Per UTC day in ``[since, until]``: calls summed, and the allowance as last recorded."""
    sums = session.execute(
        select(ApiUsage.day, *(func.sum(c) for c in _SUMMED))
        .where(ApiUsage.org_id == org_id, ApiUsage.day >= since, ApiUsage.day <= until)
        .group_by(ApiUsage.day)
        .order_by(ApiUsage.day)
    ).all()
    ranked = (
        select(
            ApiUsage.day,
            ApiUsage.remaining,
            ApiUsage.daily_limit,
            func.row_number()
            .over(partition_by=ApiUsage.day, order_by=(ApiUsage.recorded_at.desc(), ApiUsage.id.desc()))
            .label("rn"),
        )
        .where(
            ApiUsage.org_id == org_id,
            ApiUsage.day >= since,
            ApiUsage.day <= until,
            ApiUsage.remaining.is_not(None),
        )
        .subquery()
    )
    last = {
        d: (r, lim)
        for d, r, lim in session.execute(
            select(ranked.c.day, ranked.c.remaining, ranked.c.daily_limit).where(ranked.c.rn == 1)
        )
    }
    out = []
    for d, *counts in sums:
        remaining, limit = last.get(d, (None, None))
        totals = dict(zip(CALL_COUNT_FIELDS, (int(v) for v in counts), strict=True))
        out.append(DailyUsage(**totals, day=d, remaining=remaining, daily_limit=limit))
    return out
