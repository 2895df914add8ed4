"""The scheduler's decision for one due slot: run a full, run an incremental, or skip.

:func:`decide_scheduled_run` checks, in this order (the first that applies wins):

1. ``now`` not after ``connected_at``: skip ``not_connected``.
2. The schedule is stopped (:func:`schedule_stop_reason`): backup disabled, subscription
   expired (at or after ``expires_at``), no storage location, seats exceeded. A stopped
   schedule records nothing: :func:`engine.policy.schedule.next_run` shows no next job and
   :func:`schedule_status` says why.
3. A job of the lane of the job to run is queued or running (an incremental runs beside a new
   cycle's full, see :mod:`engine.policy.cycles`): skip ``job_running``, **recorded** as a
   skipped job.
4. The plan's 24-hour quota is used up: skip ``quota_exhausted``, **recorded**. Skipped
   jobs do not count toward the quota, so recording them costs nothing.
5. Otherwise run the job :func:`engine.policy.cycles.plan_backup` plans: the full of a new
   cycle, or an incremental (with the objects to redo in full).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.errors import PolicyError
from engine.policy.cycles import JobPlan, blocking_job, plan_backup
from engine.policy.entitlements import REASON_ERRORS, ReasonCode, Verdict, backup_entitlement, quota_verdict
from engine.policy.facts import BackupSettings, JobKind, OrgFacts, utc


class Action(enum.StrEnum):
    RUN_FULL = "run_full"
    RUN_INCREMENTAL = "run_incremental"
    SKIP = "skip"


@dataclass(frozen=True)
class Decision:
    """The outcome of deciding one scheduled slot.

    Attributes:
        action: run full, run incremental, or skip.
        reason: why it is skipped (None when it runs).
        record_skip: True when the skip must be recorded as a skipped job (``state=skipped``,
            ``error_code`` = :meth:`error`'s code); False when the schedule is stopped.
        plan: the job to create when it runs.
        details: the values for the reason's error message.
    """

    action: Action
    reason: ReasonCode | None = None
    record_skip: bool = False
    plan: JobPlan | None = None
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def runs(self) -> bool:
        return self.action is not Action.SKIP

    def error(self) -> PolicyError | None:
        """The error behind a skip (its ``code`` is what a recorded skipped job carries)."""
        if self.reason is None or self.reason not in REASON_ERRORS:
            return None
        return REASON_ERRORS[self.reason](**dict(self.details))

    @classmethod
    def skip(cls, verdict: Verdict, *, record: bool) -> Decision:
        assert verdict.reason is not None
        return cls(Action.SKIP, verdict.reason, record, None, verdict.details)


def schedule_stop_reason(settings: BackupSettings, facts: OrgFacts, now: datetime) -> Verdict | None:
    """Why the org's schedule is stopped at ``now``, or None when it runs.

    Stopped: backup disabled; subscription expired; no storage location; seats exceeded.
    """
    if not settings.backup_enabled:
        return Verdict.refused(ReasonCode.BACKUP_DISABLED, org=facts.org)
    verdict = backup_entitlement(facts, now)
    return None if verdict.allowed else verdict


def decide_scheduled_run(settings: BackupSettings, facts: OrgFacts, now: datetime) -> Decision:
    """Decide a scheduled slot that came due at (or just before) ``now``; see the module doc."""
    if utc(now) <= utc(settings.connected_at):
        return Decision.skip(Verdict.refused(ReasonCode.NOT_CONNECTED, org=facts.org), record=False)
    stop = schedule_stop_reason(settings, facts, now)
    if stop is not None:
        return Decision.skip(stop, record=False)
    plan = plan_backup(facts.jobs, now)
    running = blocking_job(facts.jobs, plan.kind)
    if running is not None:
        return Decision.skip(
            Verdict.refused(ReasonCode.JOB_RUNNING, org=facts.org, job=running.id), record=True
        )
    quota = quota_verdict(facts, settings.zone, now)
    if not quota.allowed:
        return Decision.skip(quota, record=True)
    action = Action.RUN_FULL if plan.kind is JobKind.FULL else Action.RUN_INCREMENTAL
    return Decision(action, plan=plan)


@dataclass(frozen=True)
class ScheduleStatus:
    """What an org tile shows about the schedule.

    Attributes:
        next_run: the next scheduled job's start in the org's zone, None when stopped.
        stopped: why the schedule is stopped, None when it runs.
        error_code: the stable code of ``stopped`` when it has one (e.g. ``SFV-604``).
    """

    next_run: datetime | None
    stopped: ReasonCode | None
    error_code: str | None


def schedule_status(settings: BackupSettings, facts: OrgFacts, now: datetime) -> ScheduleStatus:
    """Next run and stop reason together (the org tile, the org details)."""
    from engine.policy.schedule import next_run

    stop = schedule_stop_reason(settings, facts, now)
    # A subscription that ends before the next slot leaves no next run, but it has not expired
    # yet: "expired" is shown from ``expires_at`` on, not before (issue 15, finding 21).
    at = next_run(settings, facts, now)
    err = stop.error() if stop is not None else None
    return ScheduleStatus(at, stop.reason if stop else None, err.code if err else None)


def stop_reasons(settings: BackupSettings, facts: OrgFacts, now: datetime) -> tuple[Verdict, ...]:
    """Every reason the schedule is stopped at ``now``, not only the first one.

    :func:`schedule_stop_reason` answers the first that applies (what a skipped slot records);
    the org tile lists them all, so an operator who renews an expired subscription learns at
    the same time that the seats are exceeded too. Each applies from its own moment on (an
    expiry from ``expires_at``), never before.
    """
    out: list[Verdict] = []
    if not settings.backup_enabled:
        out.append(Verdict.refused(ReasonCode.BACKUP_DISABLED, org=facts.org))
    if not facts.has_storage:
        out.append(Verdict.refused(ReasonCode.NO_STORAGE_LOCATION, org=facts.org))
    sub = facts.subscription
    if sub.expired(now):
        assert sub.expires_at is not None
        expired_at = sub.expires_at.astimezone(UTC).isoformat()
        out.append(Verdict.refused(ReasonCode.SUBSCRIPTION_EXPIRED, org=facts.org, expired_at=expired_at))
    if facts.seats_exceeded:
        out.append(
            Verdict.refused(
                ReasonCode.SEATS_EXCEEDED,
                org=facts.org,
                active=facts.billable_users,
                seats=sub.purchased_seats,
            )
        )
    return tuple(out)
