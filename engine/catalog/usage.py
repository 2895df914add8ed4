"""Salesforce API usage: an append-only ledger, summed per job and per day (UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.catalog.models import ApiUsage
from engine.clock import Clock, SystemClock


@dataclass(frozen=True)
class UsageTotals:
    rest_calls: int = 0
    bulk2_jobs: int = 0
    bulk2_pages: int = 0


@dataclass(frozen=True)
class DailyUsage:
    day: date
    rest_calls: int
    bulk2_jobs: int
    bulk2_pages: int
    remaining: int | None
    daily_limit: int | None


def record_api_usage(
    session: Session,
    *,
    org_id: int,
    job_id: str | None = None,
    rest_calls: int = 0,
    bulk2_jobs: int = 0,
    bulk2_pages: int = 0,
    remaining: int | None = None,
    daily_limit: int | None = None,
    clock: Clock | None = None,
) -> ApiUsage:
    """Append calls made (and the allowance last seen) to the ledger; ``day`` is the UTC day."""
    now = (clock or SystemClock()).now()
    row = ApiUsage(
        org_id=org_id,
        job_id=job_id,
        day=now.date(),
        rest_calls=rest_calls,
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
    rest, jobs, pages = session.execute(
        select(
            func.coalesce(func.sum(ApiUsage.rest_calls), 0),
            func.coalesce(func.sum(ApiUsage.bulk2_jobs), 0),
            func.coalesce(func.sum(ApiUsage.bulk2_pages), 0),
        ).where(ApiUsage.job_id == job_id)
    ).one()
    return UsageTotals(int(rest), int(jobs), int(pages))


def usage_by_day(session: Session, org_id: int, *, since: date, until: date) -> list[DailyUsage]:
    """Per UTC day in ``[since, until]``: calls summed, and the allowance as last recorded."""
    sums = session.execute(
        select(
            ApiUsage.day,
            func.sum(ApiUsage.rest_calls),
            func.sum(ApiUsage.bulk2_jobs),
            func.sum(ApiUsage.bulk2_pages),
        )
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
    return [DailyUsage(d, int(r), int(j), int(p), *last.get(d, (None, None))) for d, r, j, p in sums]
