"""What the subscription allows: the job quota, expiry, seats and the storage precondition.

Rules (PRODUCT.md "Backup cycles and jobs"):

* **Quota.** Each plan allows ``jobs_per_24h`` jobs per org in 24 hours; None = no quota.
  Skipped and failed jobs do not count; queued, running, succeeded, partial and cancelled
  jobs do (a cancelled job did run, and only the two listed states are exempt). A job counts
  from its quota instant (its schedule slot, else its creation) for 24 hours *of the org's
  local clock*: it counts while ``wall(now) - wall(instant) < 24 h``. At exactly 24 hours
  the place is free again, so a daily job at 00:00 always fits a one-job quota, also across
  a 23-hour spring-forward day. Manual jobs count like scheduled ones.
* **Expiry.** ``expires_at`` is the first instant without a subscription: at that exact
  instant and after, the schedule stops and no new backup (scheduled or manual) starts.
* **Seats.** Active Standard users of a production org (sandbox orgs' users, inactive and
  non-Standard users are not counted) above the purchased seats stop backups; equal is fine.
* **Compare and export** of existing backups keep working when the subscription expired or
  the seats are exceeded: they only need a storage location to read from.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.errors import (
    JobAlreadyRunning,
    JobQuotaExhausted,
    NoStorageLocation,
    PolicyError,
    SeatsExceeded,
    SubscriptionExpired,
)
from engine.policy.facts import JobFact, JobState, OrgFacts, utc
from engine.policy.schedule import resolve_local

QUOTA_WINDOW = timedelta(hours=24)

QUOTA_EXEMPT_STATES = frozenset({JobState.SKIPPED, JobState.FAILED})
"""Job states that do not count toward the quota."""


class ReasonCode(enum.StrEnum):
    """Why a job does not run (stable strings, stored with skipped jobs and shown by the API)."""

    BACKUP_DISABLED = "backup_disabled"
    NOT_CONNECTED = "not_connected"
    SUBSCRIPTION_EXPIRED = "subscription_expired"
    NO_STORAGE_LOCATION = "no_storage_location"
    SEATS_EXCEEDED = "seats_exceeded"
    JOB_RUNNING = "job_running"
    QUOTA_EXHAUSTED = "quota_exhausted"


REASON_ERRORS: Mapping[ReasonCode, type[PolicyError]] = {
    ReasonCode.SUBSCRIPTION_EXPIRED: SubscriptionExpired,
    ReasonCode.NO_STORAGE_LOCATION: NoStorageLocation,
    ReasonCode.SEATS_EXCEEDED: SeatsExceeded,
    ReasonCode.JOB_RUNNING: JobAlreadyRunning,
    ReasonCode.QUOTA_EXHAUSTED: JobQuotaExhausted,
}
"""The error (and so the stable ``SFV-6xx`` code) behind each reason that has one."""


@dataclass(frozen=True)
class Verdict:
    """Allowed, or refused with a reason code and the details for its error message."""

    allowed: bool
    reason: ReasonCode | None = None
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def ok(cls) -> Verdict:
        return cls(True)

    @classmethod
    def refused(cls, reason: ReasonCode, **details: Any) -> Verdict:
        return cls(False, reason, details)

    def error(self) -> PolicyError | None:
        """The error to raise or record, or None (allowed, or a reason without an error)."""
        if self.reason is None or self.reason not in REASON_ERRORS:
            return None
        return REASON_ERRORS[self.reason](**dict(self.details))

    def raise_if_refused(self) -> None:
        err = self.error()
        if err is not None:
            raise err
        if not self.allowed:  # pragma: no cover - every refusal used with this has an error
            raise PolicyError(what=str(self.reason))


@dataclass(frozen=True)
class QuotaUsage:
    """Jobs counted in the 24-hour window ending at ``now``.

    Attributes:
        used: jobs that count.
        quota: the plan's quota, None = unlimited.
        next_free_at: when one more job fits again (None if one fits now).
    """

    used: int
    quota: int | None
    next_free_at: datetime | None

    @property
    def exhausted(self) -> bool:
        return self.quota is not None and self.used >= self.quota


def counts_toward_quota(job: JobFact) -> bool:
    return job.state not in QUOTA_EXEMPT_STATES


def quota_usage(facts: OrgFacts, zone: ZoneInfo, now: datetime) -> QuotaUsage:
    """How much of the org's 24-hour job quota is used at ``now`` (rule "Quota" above)."""
    quota = facts.subscription.jobs_per_24h
    wall_now = _wall(now, zone)
    counted = sorted(
        _wall(j.quota_instant, zone)
        for j in facts.jobs
        if counts_toward_quota(j) and wall_now - _wall(j.quota_instant, zone) < QUOTA_WINDOW
    )
    free_at = None
    if quota is not None and len(counted) >= quota:
        # the (used - quota + 1)-th oldest job must leave the window for one more to fit
        leaving = counted[len(counted) - quota] if quota > 0 else None
        if leaving is not None:
            free_at = resolve_local(leaving + QUOTA_WINDOW, zone)
    return QuotaUsage(len(counted), quota, free_at)


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return utc(instant).astimezone(zone).replace(tzinfo=None)


def quota_verdict(facts: OrgFacts, zone: ZoneInfo, now: datetime) -> Verdict:
    usage = quota_usage(facts, zone, now)
    if not usage.exhausted:
        return Verdict.ok()
    return Verdict.refused(
        ReasonCode.QUOTA_EXHAUSTED,
        org=facts.org,
        used=usage.used,
        quota=usage.quota,
        plan=facts.subscription.plan,
        free_at=usage.next_free_at.isoformat() if usage.next_free_at else "never (quota is 0)",
    )


def backup_entitlement(facts: OrgFacts, now: datetime) -> Verdict:
    """Whether a new backup may start at all: storage, then subscription, then seats.

    A running job and the quota are checked separately (they pass by themselves).
    """
    if not facts.has_storage:
        return Verdict.refused(ReasonCode.NO_STORAGE_LOCATION, org=facts.org)
    sub = facts.subscription
    if sub.expired(now):
        assert sub.expires_at is not None
        expired_at = sub.expires_at.astimezone(UTC).isoformat()
        return Verdict.refused(ReasonCode.SUBSCRIPTION_EXPIRED, org=facts.org, expired_at=expired_at)
    if facts.seats_exceeded:
        return Verdict.refused(
            ReasonCode.SEATS_EXCEEDED, org=facts.org, active=facts.billable_users, seats=sub.purchased_seats
        )
    return Verdict.ok()


def may_compare(facts: OrgFacts, now: datetime) -> Verdict:
    """Compare of existing backups: allowed with expired subscription or exceeded seats.

    Only a missing storage location refuses it (there is nothing to read).
    """
    del now  # nothing about compare depends on the time; kept for a uniform signature
    if not facts.has_storage:
        return Verdict.refused(ReasonCode.NO_STORAGE_LOCATION, org=facts.org)
    return Verdict.ok()


def may_export(facts: OrgFacts, now: datetime) -> Verdict:
    """Export of existing backups: the same rule as :func:`may_compare`."""
    return may_compare(facts, now)
