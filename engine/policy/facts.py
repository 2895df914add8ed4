"""The plain inputs of every policy: settings, subscription, jobs and users of one org.

Policies never read the catalog. The catalog layer adapts its rows into these frozen
dataclasses (``Org`` + ``OrgSettings`` -> :class:`BackupSettings` and :class:`Subscription`,
``Job`` + failed ``JobObject`` rows -> :class:`JobFact`), so the rules stay pure functions of
``(settings, facts, now)`` and are tested without a database. Enumerations carry the same
string values as the catalog's: both use the one job vocabulary of :mod:`engine.model`.

Every timestamp is timezone-aware; naive datetimes are refused, because a policy that mixes
local and UTC wall times is wrong twice a year.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.errors import InvalidPolicySetting, UnknownPlan, UnknownTimeZone
from engine.model import JobKind, JobState, JobTrigger
from engine.model import Role as Role  # re-exported: the policies name roles too

MAX_JOBS_PER_DAY = 24


def require_aware(value: datetime, what: str) -> datetime:
    """``value`` if it is timezone-aware, else :class:`InvalidPolicySetting`."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidPolicySetting(field=what, what=f"naive datetime {value.isoformat()}; use an aware one")
    return value


@lru_cache(maxsize=512)
def org_zone(name: str) -> ZoneInfo:
    """The IANA zone of an org (its ``Organization.TimeZoneSidKey``, e.g. ``Europe/Berlin``).

    Raises:
        UnknownTimeZone: ``name`` is not in the IANA database.
    """
    if not name or name != name.strip():
        raise UnknownTimeZone(name=name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UnknownTimeZone(name=name) from exc


@dataclass(frozen=True)
class BackupSettings:
    """What decides when an org is backed up (``Org`` + ``OrgSettings`` in the catalog).

    Attributes:
        time_zone: IANA name of the org's time zone; the schedule is in local wall time.
        connected_at: when the org was connected; no scheduled job runs at or before it.
        backup_enabled: "data backup on / off"; off stops the schedule (manual jobs still run).
        jobs_per_day: 1..24 jobs per local day, spread evenly from ``first_start_time``.
        first_start_time: local wall time of the first job of the day (naive ``time``).
    """

    time_zone: str
    connected_at: datetime
    backup_enabled: bool = True
    jobs_per_day: int = 1
    first_start_time: time = time(0, 0)

    def __post_init__(self) -> None:
        org_zone(self.time_zone)
        require_aware(self.connected_at, "connected_at")
        if isinstance(self.jobs_per_day, bool) or not 1 <= self.jobs_per_day <= MAX_JOBS_PER_DAY:
            raise InvalidPolicySetting(
                field="jobs_per_day", what=f"{self.jobs_per_day!r} is not between 1 and {MAX_JOBS_PER_DAY}"
            )
        if self.first_start_time.tzinfo is not None:
            raise InvalidPolicySetting(
                field="first_start_time", what="a local wall time without a time zone is expected"
            )

    @property
    def zone(self) -> ZoneInfo:
        return org_zone(self.time_zone)


DEFAULT_PLAN_QUOTAS: Mapping[str, int | None] = {
    "trial": 2,
    "basic": 2,
    "standard": 6,
    "professional": 12,
    "enterprise": 30,
    "unlimited": None,
}
"""Jobs per org per 24 hours for each plan (None = no quota); a deployment may pass its own."""


@dataclass(frozen=True)
class Subscription:
    """The org's subscription, as far as policies care.

    Attributes:
        plan: plan name, or None for a self-hosted org without a subscription.
        jobs_per_24h: the plan's job quota per 24 hours; None = unlimited.
        expires_at: first instant at which the subscription is no longer valid; None = never.
        purchased_seats: seats bought; None = no seat limit.
    """

    plan: str | None = None
    jobs_per_24h: int | None = None
    expires_at: datetime | None = None
    purchased_seats: int | None = None

    def __post_init__(self) -> None:
        if self.expires_at is not None:
            require_aware(self.expires_at, "subscription_expires_at")
        if self.jobs_per_24h is not None and self.jobs_per_24h < 0:
            raise InvalidPolicySetting(field="jobs_per_24h", what="must not be negative")
        if self.purchased_seats is not None and self.purchased_seats < 0:
            raise InvalidPolicySetting(field="purchased_seats", what="must not be negative")

    @classmethod
    def for_plan(
        cls,
        plan: str | None,
        *,
        expires_at: datetime | None = None,
        purchased_seats: int | None = None,
        plans: Mapping[str, int | None] = DEFAULT_PLAN_QUOTAS,
    ) -> Subscription:
        """A subscription whose quota comes from the plan table.

        ``plan=None`` (self-hosted, no subscription) has no quota. An unknown plan name raises
        :class:`UnknownPlan` instead of silently granting an unlimited quota.
        """
        if plan is None:
            return cls(None, None, expires_at, purchased_seats)
        if plan not in plans:
            raise UnknownPlan(plan=plan, known=", ".join(sorted(plans)))
        return cls(plan, plans[plan], expires_at, purchased_seats)

    def expired(self, at: datetime) -> bool:
        """True from the instant ``expires_at`` on (the expiry instant itself is expired)."""
        return self.expires_at is not None and at >= self.expires_at


@dataclass(frozen=True)
class JobFact:
    """One backup job of the org, as the catalog records it.

    Attributes:
        id: job id.
        kind: full or incremental.
        state: catalog state.
        created_at: when the job was created (queued).
        trigger: scheduled or manual.
        cycle_id: the backup cycle the job belongs to (set when the job is planned).
        requested_objects: the chosen objects of an object-scoped job; None = all objects.
        started_at: when it started running, if it did.
        finished_at: when it finished, if it did.
        failed_objects: objects that hit an exception in this job.
        scheduled_for: the schedule slot a scheduled job was created for. The quota counts a
            scheduled job at its slot, so a job started a little late yesterday does not push
            today's job at the same slot over the quota. None = use ``created_at``.
    """

    id: str
    kind: JobKind
    state: JobState
    created_at: datetime
    trigger: JobTrigger = JobTrigger.SCHEDULED
    cycle_id: str | None = None
    requested_objects: frozenset[str] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    failed_objects: frozenset[str] = frozenset()
    scheduled_for: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("created_at", "started_at", "finished_at", "scheduled_for"):
            value = getattr(self, name)
            if value is not None:
                require_aware(value, name)
        # accept the catalog's plain strings and any iterable of object names
        object.__setattr__(self, "kind", JobKind(self.kind))
        object.__setattr__(self, "state", JobState(self.state))
        object.__setattr__(self, "trigger", JobTrigger(self.trigger))
        object.__setattr__(self, "failed_objects", frozenset(self.failed_objects))
        if self.requested_objects is not None:
            object.__setattr__(self, "requested_objects", frozenset(self.requested_objects))

    @property
    def began_at(self) -> datetime:
        """When the job began: ``started_at``, else ``created_at``."""
        return self.started_at or self.created_at

    @property
    def quota_instant(self) -> datetime:
        """The instant the job counts at in the 24-hour quota window."""
        return self.scheduled_for or self.created_at

    def covers(self, obj: str) -> bool:
        """Whether this job was asked to back up ``obj``."""
        return self.requested_objects is None or obj in self.requested_objects


@dataclass(frozen=True)
class UserRow:
    """A Salesforce ``User`` row, as far as seat counting cares (SALESFORCE_API.md section 7).

    Attributes:
        id: User Id.
        is_active: ``IsActive``.
        user_type: ``UserType`` (``Standard``, ``PowerPartner``, ``CsnOnly``, ``Guest`` ...).
    """

    id: str
    is_active: bool
    user_type: str


def count_billable_users(users: Iterable[UserRow], *, org_is_sandbox: bool) -> int:
    """Users that take a purchased seat.

    Rule: an active user with a Standard licence (``UserType == "Standard"``) of a production
    org. Inactive users, partner/community/portal/guest users and every user of a sandbox org
    (``Organization.IsSandbox``) take no seat.
    """
    if org_is_sandbox:
        return 0
    return sum(1 for u in users if u.is_active and u.user_type == "Standard")


@dataclass(frozen=True)
class OrgFacts:
    """What the catalog knows about one org at decision time.

    Attributes:
        org: org name (used in messages and error details).
        subscription: plan, quota, expiry, seats.
        storage_location: the configured storage location; None or empty = none configured.
        billable_users: active Standard users of the production org (see
            :func:`count_billable_users`).
        jobs: the org's backup jobs, any order. It must hold at least every active job, the
            jobs of the last 25 hours, the latest committed full job and every job after it.
    """

    org: str
    subscription: Subscription = field(default_factory=Subscription)
    storage_location: str | None = None
    billable_users: int = 0
    jobs: tuple[JobFact, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "jobs", tuple(self.jobs))
        if self.billable_users < 0:
            raise InvalidPolicySetting(field="billable_users", what="must not be negative")

    @property
    def has_storage(self) -> bool:
        return bool(self.storage_location and self.storage_location.strip())

    @property
    def seats_exceeded(self) -> bool:
        """More billable users than purchased seats (equal is fine; no seat limit never exceeds)."""
        seats = self.subscription.purchased_seats
        return seats is not None and self.billable_users > seats


def utc(value: datetime) -> datetime:
    """``value`` in UTC (aware in, aware out)."""
    return require_aware(value, "datetime").astimezone(UTC)
