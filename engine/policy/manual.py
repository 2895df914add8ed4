""""Back up now": who may, and whether and how the job starts.

Rules (PRODUCT.md "Backup cycles and jobs"; issue 7 "Back up now"):

* **Roles.** admin and operator may back up now; viewer may not. A deployment may grant the
  permission to further roles (``granted_roles``).
* **Scope.** All objects, or a chosen non-empty set. Choosing objects needs a committed full
  backup (:class:`~engine.errors.FullBackupRequired`).
* **Refusals**, checked in this order, each a typed error with a stable code: role
  (``SFV-607``, 403), no storage location (``SFV-605``, the API offers to configure one),
  subscription expired (``SFV-603``), seats exceeded (``SFV-604``), objects chosen before
  the first full (``SFV-606``), another job of the org's lane running (``SFV-601``, 409: an
  incremental runs beside a new cycle's full, a second full never; decision 0016), quota used
  up (``SFV-602``, 429).
* "Data backup off" stops only the schedule: an explicit "back up now" still runs.
* The job kind follows the cycle rules (:func:`engine.policy.cycles.plan_backup`): all objects
  with no full yet, or after the cycle's year, is the full of a new cycle; otherwise an
  incremental, which re-extracts in full the chosen objects that hit exceptions before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from engine.errors import FullBackupRequired, InvalidPolicySetting, JobAlreadyRunning, RoleNotAllowed
from engine.policy.cycles import JobPlan, blocking_job, has_full_backup, plan_backup
from engine.policy.entitlements import backup_entitlement, quota_verdict
from engine.policy.facts import BackupSettings, OrgFacts, Role

BACK_UP_NOW_ROLES = frozenset({Role.ADMIN.value, Role.OPERATOR.value})


def may_back_up_now(role: str, *, granted_roles: Iterable[str] = ()) -> bool:
    """Whether ``role`` may start a manual backup (admin, operator, or a granted role)."""
    return role in BACK_UP_NOW_ROLES or role in frozenset(granted_roles)


def require_back_up_now_role(role: str, *, granted_roles: Iterable[str] = ()) -> None:
    """Raise :class:`RoleNotAllowed` unless :func:`may_back_up_now`."""
    if not may_back_up_now(role, granted_roles=granted_roles):
        raise RoleNotAllowed(role=role, action="back up now")


@dataclass(frozen=True)
class ManualRequest:
    """A "back up now" request.

    Attributes:
        role: the caller's role.
        objects: the chosen objects, None = all objects.
        full: extract in full: with all objects, the full of a new cycle.
    """

    role: str
    objects: frozenset[str] | None = None
    full: bool = False

    def __post_init__(self) -> None:
        if self.objects is not None:
            names = frozenset(o.strip() for o in self.objects)
            if not names or "" in names:
                raise InvalidPolicySetting(field="objects", what="choose at least one object, by API name")
            object.__setattr__(self, "objects", names)


def decide_manual_run(
    settings: BackupSettings,
    facts: OrgFacts,
    request: ManualRequest,
    now: datetime,
    *,
    granted_roles: Iterable[str] = (),
) -> JobPlan:
    """The job to start for a "back up now" request, or the typed error that refuses it.

    Raises:
        RoleNotAllowed, NoStorageLocation, SubscriptionExpired, SeatsExceeded,
        FullBackupRequired, JobAlreadyRunning, JobQuotaExhausted: see the module docstring.
    """
    require_back_up_now_role(request.role, granted_roles=granted_roles)
    backup_entitlement(facts, now).raise_if_refused()
    if request.objects is not None and not has_full_backup(facts.jobs):
        raise FullBackupRequired(org=facts.org)
    plan = plan_backup(facts.jobs, now, request.objects, full=request.full)
    running = blocking_job(facts.jobs, plan.kind)
    if running is not None:
        raise JobAlreadyRunning(org=facts.org, job=running.id)
    quota_verdict(facts, settings.zone, now).raise_if_refused()
    return plan
