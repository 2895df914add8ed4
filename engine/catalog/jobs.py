"""Backup jobs, their per-object results and their errors.

A job moves ``queued → running → succeeded | partial | failed | cancelled``; a scheduled job
that could not start is recorded directly as ``skipped``. Finished jobs never change state
again (:class:`InvalidJobTransition`). Functions take an open session and do not commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from engine.catalog.models import (
    ACTIVE_JOB_STATES,
    Job,
    JobError,
    JobKind,
    JobObject,
    JobState,
    JobTrigger,
    ObjectState,
    Org,
)
from engine.clock import Clock, SystemClock
from engine.errors import InvalidJobTransition, NotFound
from engine.model import CallCounts, ObjectAsOf, call_counts, lane_of

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED, JobState.SKIPPED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.PARTIAL, JobState.FAILED, JobState.CANCELLED}),
}
COUNTED_STATES = (JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED, JobState.PARTIAL, JobState.CANCELLED)
"""States that count against a plan's jobs-per-24-hours quota (skipped and failed do not)."""


@dataclass(frozen=True)
class ObjectResult(CallCounts):
    """What a job learned about one object (one row of the job report); its calls and Bulk usage
    are the keyword-only :class:`engine.model.CallCounts` fields."""

    object_name: str
    state: ObjectState | str = ObjectState.SUCCEEDED
    records: int = 0
    bytes: int = 0
    chunks: int = 0
    duration_s: float = 0.0
    error_code: str | None = None
    error_message: str | None = None
    files_unavailable: int = 0
    """File bodies Salesforce answered with 403/404 although their record was queried."""
    warning_code: str | None = None
    """A warning on an object that succeeded (SFV-805: files not shared with the backup user)."""
    warning_message: str | None = None


def new_job_id(now: datetime) -> str:
    """A job id that sorts by creation time: ``20260101T000000Z-<12 hex>``.

    The hex starts with the microsecond (5 digits) and ends with 7 random ones, so two jobs
    created within the same second still list in creation order (ids made before this had 12
    random digits: readers that need commit order sort by the manifest's ``created_at``).
    """
    return f"{now:%Y%m%dT%H%M%SZ}-{now.microsecond:05x}{uuid.uuid4().hex[:7]}"


def create_job(
    session: Session,
    org: Org,
    *,
    kind: JobKind | str,
    trigger: JobTrigger | str = JobTrigger.SCHEDULED,
    cycle_id: str | None = None,
    requested_objects: Sequence[str] | None = None,
    job_id: str | None = None,
    clock: Clock | None = None,
) -> Job:
    """A queued job. ``requested_objects=None`` means every object in scope.

    Raises ``IntegrityError`` when a job of the same lane of the org is already queued or
    running (the unique index ``ux_jobs_org_active_lane``)."""
    job = _job_row(org, kind, trigger, cycle_id, requested_objects, job_id, (clock or SystemClock()).now())
    session.add(job)
    session.flush()
    return job


def _job_row(
    org: Org, kind: JobKind | str, trigger: JobTrigger | str, cycle_id: str | None,
    requested_objects: Sequence[str] | None, job_id: str | None, now: datetime,
) -> Job:  # fmt: skip
    return Job(
        id=job_id or new_job_id(now),
        org_id=org.id,
        kind=JobKind(kind).value,
        trigger=JobTrigger(trigger).value,
        state=JobState.QUEUED.value,
        cycle_id=cycle_id,
        requested_objects=sorted(requested_objects) if requested_objects is not None else None,
        lane=lane_of(JobKind(kind), requested_objects).value,
        cancel_requested=False,
        created_at=now,
        records=0,
        bytes=0,
        metadata_items=0,
    )


def record_skipped_job(
    session: Session,
    org: Org,
    *,
    kind: JobKind | str,
    reason_code: str,
    reason: str,
    trigger: JobTrigger | str = JobTrigger.SCHEDULED,
    cycle_id: str | None = None,
    clock: Clock | None = None,
) -> Job:
    """A scheduled job that did not run (another job still running, quota, seats...). Never
    queued, so it never takes its lane (a job of that lane may be what it was skipped for)."""
    job = _job_row(org, kind, trigger, cycle_id, None, None, (clock or SystemClock()).now())
    _move(job, JobState.SKIPPED)
    job.finished_at = job.created_at
    job.error_code, job.error_message = reason_code, reason
    session.add(job)
    session.flush()
    return job


def _move(job: Job, target: JobState) -> None:
    current = JobState(job.state)
    if target not in TRANSITIONS.get(current, frozenset()):
        raise InvalidJobTransition(name=job.id, state=current.value, target=target.value)
    job.state = target.value


def start_job(session: Session, job: Job, *, clock: Clock | None = None) -> Job:
    """``queued`` → ``running`` (:class:`InvalidJobTransition` when it is no longer queued, e.g.
    cancelled while it waited)."""
    _move(job, JobState.RUNNING)
    job.started_at = (clock or SystemClock()).now()
    session.flush()
    return job


def request_cancel(session: Session, job: Job, *, clock: Clock | None = None) -> Job:
    """Ask a running job to stop (the runner polls ``cancel_requested``); a queued job is
    cancelled at once."""
    if JobState(job.state) is JobState.QUEUED:
        _move(job, JobState.CANCELLED)
        job.finished_at = (clock or SystemClock()).now()
    elif JobState(job.state) is JobState.RUNNING:
        job.cancel_requested = True
    else:
        raise InvalidJobTransition(name=job.id, state=job.state, target=JobState.CANCELLED.value)
    session.flush()
    return job


def record_object_result(session: Session, job: Job, result: ObjectResult) -> JobObject:
    """Insert or replace the result of one object of the job (running jobs report progress)."""
    row = session.scalar(
        select(JobObject).where(JobObject.job_id == job.id, JobObject.object_name == result.object_name)
    )
    if row is None:
        row = JobObject(job_id=job.id, object_name=result.object_name)
        session.add(row)
    row.state = ObjectState(result.state).value
    row.records, row.bytes, row.chunks, row.duration_s = (
        result.records,
        result.bytes,
        result.chunks,
        result.duration_s,
    )
    for column, n in call_counts(result).items():
        setattr(row, column, n)
    row.error_code, row.error_message = result.error_code, result.error_message
    row.files_unavailable = result.files_unavailable
    row.warning_code, row.warning_message = result.warning_code, result.warning_message
    session.flush()
    return row


def add_job_error(
    session: Session,
    job: Job,
    *,
    code: str,
    message: str,
    object_name: str | None = None,
    details: dict[str, Any] | None = None,
    clock: Clock | None = None,
) -> JobError:
    err = JobError(
        job_id=job.id,
        object_name=object_name,
        code=code,
        message=message,
        details=details,
        occurred_at=(clock or SystemClock()).now(),
    )
    session.add(err)
    session.flush()
    return err


def finish_job(
    session: Session,
    job: Job,
    state: JobState | str,
    *,
    snapshot_ref: str | None = None,
    metadata_items: int | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    clock: Clock | None = None,
) -> Job:
    """Close the job; ``records`` and ``bytes`` become the sums over its object results."""
    _move(job, JobState(state))
    job.finished_at = (clock or SystemClock()).now()
    if job.started_at is None:
        job.started_at = job.finished_at
    job.snapshot_ref = snapshot_ref
    if metadata_items is not None:
        job.metadata_items = metadata_items
    job.error_code, job.error_message = error_code, error_message
    records, size = session.execute(
        select(
            func.coalesce(func.sum(JobObject.records), 0), func.coalesce(func.sum(JobObject.bytes), 0)
        ).where(JobObject.job_id == job.id)
    ).one()
    job.records, job.bytes = int(records), int(size)
    session.flush()
    return job


def get_job(session: Session, job_id: str, *, with_objects: bool = False) -> Job:
    stmt = select(Job).where(Job.id == job_id)
    if with_objects:
        stmt = stmt.options(selectinload(Job.objects), selectinload(Job.errors))
    job = session.scalar(stmt)
    if job is None:
        raise NotFound(kind="job", name=job_id)
    return job


def jobs_of_org(
    session: Session,
    org_id: int,
    *,
    limit: int = 50,
    before_id: str | None = None,
    states: Iterable[JobState | str] | None = None,
) -> list[Job]:
    """The org's jobs, newest first (by creation time, then id).

    Page with ``before_id=<id of the last job of the previous page>`` (keyset paging: stable
    while new jobs arrive, and exact when several jobs share a creation time).
    """
    stmt = select(Job).where(Job.org_id == org_id)
    if before_id is not None:
        last = get_job(session, before_id)
        stmt = stmt.where(
            or_(Job.created_at < last.created_at, and_(Job.created_at == last.created_at, Job.id < last.id))
        )
    if states is not None:
        stmt = stmt.where(Job.state.in_([JobState(s).value for s in states]))
    stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def latest_jobs(
    session: Session, org_ids: Iterable[int] | None = None, *, states: Iterable[JobState | str] | None = None
) -> dict[int, Job]:
    """The newest job of each org (for the overview tiles), in one query."""
    ranked = select(
        Job.id,
        func.row_number()
        .over(partition_by=Job.org_id, order_by=(Job.created_at.desc(), Job.id.desc()))
        .label("rn"),
    )
    if org_ids is not None:
        ranked = ranked.where(Job.org_id.in_(list(org_ids)))
    if states is not None:
        ranked = ranked.where(Job.state.in_([JobState(s).value for s in states]))
    sub = ranked.subquery()
    rows = session.scalars(select(Job).join(sub, sub.c.id == Job.id).where(sub.c.rn == 1))
    return {job.org_id: job for job in rows}


def active_job(session: Session, org_id: int) -> Job | None:
    """The org's oldest queued or running job, if any (an org is not deleted while one runs; which
    jobs may start beside it is the policy's lane rule, ``engine.policy.blocking_job``)."""
    return session.scalar(
        select(Job)
        .where(Job.org_id == org_id, Job.state.in_([s.value for s in ACTIVE_JOB_STATES]))
        .order_by(Job.created_at)
        .limit(1)
    )


def last_full_job(session: Session, org_id: int, *, cycle_id: str | None = None) -> Job | None:
    """The newest full job that committed a snapshot (succeeded or partial)."""
    stmt = select(Job).where(
        Job.org_id == org_id,
        Job.kind == JobKind.FULL.value,
        Job.state.in_([JobState.SUCCEEDED.value, JobState.PARTIAL.value]),
    )
    if cycle_id is not None:
        stmt = stmt.where(Job.cycle_id == cycle_id)
    return session.scalar(stmt.order_by(Job.created_at.desc()).limit(1))


def objects_to_retry(session: Session, org_id: int) -> list[str]:
    """Objects that failed in the org's newest finished backup (the next job backs them up again).

    Only a job that got as far as its objects counts: a job closed before it ran any (refused by
    the runner, a login that failed, a dead process) says nothing about them, so the failures of
    the job before it still stand."""
    ran_objects = select(JobObject.id).where(JobObject.job_id == Job.id).exists()
    last = session.scalar(
        select(Job)
        .where(
            Job.org_id == org_id,
            Job.state.in_([JobState.SUCCEEDED.value, JobState.PARTIAL.value, JobState.FAILED.value]),
            ran_objects,
        )
        .order_by(Job.created_at.desc())
        .limit(1)
    )
    if last is None:
        return []
    return list(
        session.scalars(
            select(JobObject.object_name)
            .where(JobObject.job_id == last.id, JobObject.state == ObjectState.FAILED.value)
            .order_by(JobObject.object_name)
        )
    )


def count_jobs_since(session: Session, org_id: int, since: datetime) -> int:
    """Jobs created since ``since`` that count against the plan quota (not skipped, not failed)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(
                Job.org_id == org_id,
                Job.created_at >= since,
                Job.state.in_([s.value for s in COUNTED_STATES]),
            )
        )
        or 0
    )


def objects_as_of(session: Session, job: Job) -> dict[str, ObjectAsOf]:
    """Per object row of ``job``, which job its data in the job's recovery point is as of.

    An object the job backed up is ``this_job``; one that failed (or did not finish) is as of the
    newest earlier committed job of the same cycle whose row for it succeeded (``earlier_job``),
    or ``absent`` when there is none. Empty for a job that committed nothing (no recovery point).
    The same rule as :func:`engine.diff.recovery.object_as_of`, over the catalog's rows.
    """
    if job.snapshot_ref is None:
        return {}
    rows = list(job.objects)
    out = {o.object_name: ObjectAsOf(o.object_name, "this_job", job.id)
           for o in rows if o.state == ObjectState.SUCCEEDED.value}  # fmt: skip
    missing = {o.object_name: o.error_code for o in rows if o.object_name not in out}
    found = _earlier_captures(session, job, sorted(missing)) if missing and job.cycle_id else {}
    for name, code in missing.items():
        as_of = found.get(name)
        out[name] = ObjectAsOf(name, "earlier_job" if as_of else "absent", as_of, code)
    return dict(sorted(out.items()))


def _earlier_captures(session: Session, job: Job, names: list[str]) -> dict[str, str]:
    """Per object of ``names``, the newest committed job of ``job``'s cycle before it that backed it up."""
    earlier = session.execute(
        select(JobObject.object_name, Job.id)
        .join(Job, Job.id == JobObject.job_id)
        .where(
            Job.org_id == job.org_id,
            Job.cycle_id == job.cycle_id,
            Job.snapshot_ref.is_not(None),
            or_(Job.created_at < job.created_at, and_(Job.created_at == job.created_at, Job.id < job.id)),
            JobObject.state == ObjectState.SUCCEEDED.value,
            JobObject.object_name.in_(names),
        )
        .order_by(Job.created_at.desc(), Job.id.desc())
    )
    found: dict[str, str] = {}
    for name, job_id in earlier:
        found.setdefault(name, job_id)
    return found


def _last_sign_of_life() -> Any:
    return func.coalesce(Job.heartbeat_at, Job.started_at, Job.created_at)


def record_job_heartbeat(session: Session, job_id: str, *, now: datetime) -> bool:
    """Stamp the heartbeat of a queued or running job; False when it is no longer active."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_([s.value for s in ACTIVE_JOB_STATES]))
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], result).rowcount == 1


def dead_jobs(
    session: Session, *, now: datetime, stale_after: timedelta, org_id: int | None = None
) -> list[Job]:
    """Active jobs with a heartbeat older than ``now - stale_after`` (their process died).

    Only jobs that have a heartbeat count: a row that never had one (written by hand, or by a
    version before the job service) is left to the repository lock's rule (SFV-804 when the next
    job of the org takes the lock)."""
    stmt = select(Job).where(
        Job.state.in_([s.value for s in ACTIVE_JOB_STATES]),
        Job.heartbeat_at.is_not(None),
        _last_sign_of_life() < now - stale_after,
    )
    if org_id is not None:
        stmt = stmt.where(Job.org_id == org_id)
    return list(session.scalars(stmt.order_by(Job.created_at)))


def close_dead_job(
    session: Session,
    job_id: str,
    *,
    now: datetime,
    stale_after: timedelta,
    error_code: str,
    error_message: str,
) -> bool:
    """End an active job ``failed`` if its heartbeat is still older than ``now - stale_after``
    (one conditional UPDATE: a job that beat meanwhile is left alone); False then."""
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.state.in_([s.value for s in ACTIVE_JOB_STATES]),
            _last_sign_of_life() < now - stale_after,
        )
        .values(
            state=JobState.FAILED.value,
            finished_at=now,
            error_code=error_code,
            error_message=error_message[:2000],
        )
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    return cast(CursorResult[Any], result).rowcount == 1


def mark_pruned(session: Session, snapshot_refs: list[str], *, now: datetime) -> int:
    """Stamp ``pruned_at`` on the jobs whose snapshot prune removed; returns how many."""
    if not snapshot_refs:
        return 0
    jobs = session.scalars(
        select(Job).where(Job.snapshot_ref.in_(snapshot_refs), Job.pruned_at.is_(None))
    ).all()
    for job in jobs:
        job.pruned_at = now
    session.flush()
    return len(jobs)
