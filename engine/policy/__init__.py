"""engine.policy: pure, clock-injected backup rules.

Every function here is a pure function of plain values (:mod:`engine.policy.facts`), the
settings and ``now``: no I/O, no sleeping, no reading of the clock. The catalog layer adapts
its rows into the fact dataclasses; the scheduler loop calls :func:`due_runs` and
:func:`decide_scheduled_run` on each tick and carries out the decision.

Modules: :mod:`~engine.policy.schedule` (slots, next run, due runs, daylight saving),
:mod:`~engine.policy.entitlements` (quota, expiry, seats, compare / export),
:mod:`~engine.policy.cycles` (cycles, full or incremental, objects to redo),
:mod:`~engine.policy.decision` (the scheduled decision), :mod:`~engine.policy.manual`
("back up now"), :mod:`~engine.policy.permissions` (permission checks and their report).
"""

from engine.policy.cycles import (
    Cycle,
    JobPlan,
    blocking_job,
    current_cycle,
    cycles,
    has_full_backup,
    new_cycle_id,
    next_full_at,
    objects_to_redo,
    plan_backup,
)
from engine.policy.decision import (
    Action,
    Decision,
    ScheduleStatus,
    decide_scheduled_run,
    schedule_status,
    schedule_stop_reason,
    stop_reasons,
)
from engine.policy.entitlements import (
    QuotaUsage,
    ReasonCode,
    Verdict,
    backup_entitlement,
    may_compare,
    may_export,
    quota_usage,
)
from engine.policy.facts import (
    DEFAULT_PLAN_QUOTAS,
    BackupSettings,
    JobFact,
    JobKind,
    JobState,
    JobTrigger,
    OrgFacts,
    Role,
    Subscription,
    UserRow,
    count_billable_users,
    org_zone,
)
from engine.policy.manual import ManualRequest, decide_manual_run, may_back_up_now, require_back_up_now_role
from engine.policy.permissions import (
    REQUIRED,
    PermissionCheckSettings,
    PermissionReport,
    build_permission_report,
    next_permission_check,
    permission_check_due,
)
from engine.policy.schedule import daily_schedule, due_runs, next_run, next_slot, resolve_local, slot_times

__all__ = [
    "DEFAULT_PLAN_QUOTAS",
    "REQUIRED",
    "Action",
    "BackupSettings",
    "Cycle",
    "Decision",
    "JobFact",
    "JobKind",
    "JobPlan",
    "JobState",
    "JobTrigger",
    "ManualRequest",
    "OrgFacts",
    "PermissionCheckSettings",
    "PermissionReport",
    "QuotaUsage",
    "ReasonCode",
    "Role",
    "ScheduleStatus",
    "Subscription",
    "UserRow",
    "Verdict",
    "backup_entitlement",
    "blocking_job",
    "build_permission_report",
    "count_billable_users",
    "current_cycle",
    "cycles",
    "daily_schedule",
    "decide_manual_run",
    "decide_scheduled_run",
    "due_runs",
    "has_full_backup",
    "may_back_up_now",
    "may_compare",
    "may_export",
    "new_cycle_id",
    "next_full_at",
    "next_permission_check",
    "next_run",
    "next_slot",
    "objects_to_redo",
    "org_zone",
    "permission_check_due",
    "plan_backup",
    "quota_usage",
    "require_back_up_now_role",
    "resolve_local",
    "schedule_status",
    "schedule_stop_reason",
    "slot_times",
    "stop_reasons",
]
