""" "Back up now": roles, scope, refusals in order, and the job kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.errors import (
    FullBackupRequired,
    InvalidPolicySetting,
    JobAlreadyRunning,
    JobQuotaExhausted,
    NoStorageLocation,
    PolicyError,
    RoleNotAllowed,
    SeatsExceeded,
    SubscriptionExpired,
)
from engine.policy import (
    BackupSettings,
    JobFact,
    JobKind,
    JobState,
    ManualRequest,
    OrgFacts,
    Subscription,
    decide_manual_run,
    may_back_up_now,
    require_back_up_now_role,
)

NOW = datetime(2026, 4, 10, 9, 30, tzinfo=UTC)
SETTINGS = BackupSettings("Europe/Berlin", datetime(2026, 1, 1, tzinfo=UTC))
FULL = JobFact("f1", JobKind.FULL, JobState.SUCCEEDED, datetime(2026, 1, 2, tzinfo=UTC), cycle_id="c1")


def facts(
    *jobs: JobFact, sub: Subscription | None = None, users: int = 0, storage: str | None = "file:///r"
) -> OrgFacts:
    return OrgFacts("acme", sub or Subscription(), storage, users, jobs)


@pytest.mark.parametrize(
    ("role", "allowed"), [("admin", True), ("operator", True), ("viewer", False), ("", False)]
)
def test_roles(role: str, allowed: bool) -> None:
    assert may_back_up_now(role) is allowed
    if allowed:
        require_back_up_now_role(role)
    else:
        with pytest.raises(RoleNotAllowed) as exc:
            require_back_up_now_role(role)
        assert exc.value.code == "SFV-607" and exc.value.http_status == 403
    assert may_back_up_now("auditor", granted_roles={"auditor"})


def test_all_objects_before_the_first_full_is_a_full() -> None:
    plan = decide_manual_run(SETTINGS, facts(), ManualRequest("operator"), NOW)
    assert plan.kind is JobKind.FULL and plan.new_cycle and plan.objects is None


def test_chosen_objects_are_refused_before_the_first_full() -> None:
    failed_full = JobFact("f0", JobKind.FULL, JobState.FAILED, NOW - timedelta(days=1), cycle_id="c0")
    with pytest.raises(FullBackupRequired) as exc:
        decide_manual_run(SETTINGS, facts(failed_full), ManualRequest("admin", frozenset({"Account"})), NOW)
    assert exc.value.code == "SFV-606" and exc.value.http_status == 409


def test_chosen_objects_after_the_first_full_are_an_incremental_of_those_objects() -> None:
    partial = JobFact(
        "i1",
        JobKind.INCREMENTAL,
        JobState.PARTIAL,
        NOW - timedelta(hours=5),
        cycle_id="c1",
        failed_objects=frozenset({"Account", "Lead"}),
    )
    plan = decide_manual_run(
        SETTINGS, facts(FULL, partial), ManualRequest("admin", frozenset({" Account", "Case"})), NOW
    )
    assert plan.kind is JobKind.INCREMENTAL and plan.cycle_id == "c1"
    assert plan.objects == {"Account", "Case"} and plan.full_objects == {"Account"}


def test_an_empty_choice_is_invalid() -> None:
    for objects in (frozenset(), frozenset({" "})):
        with pytest.raises(InvalidPolicySetting) as exc:
            ManualRequest("admin", objects)
        assert exc.value.http_status == 422 and exc.value.details["field"] == "objects"


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.RUNNING])
def test_refused_with_409_while_a_job_runs(state: JobState) -> None:
    running = JobFact("i9", JobKind.INCREMENTAL, state, NOW - timedelta(minutes=5), cycle_id="c1")
    with pytest.raises(JobAlreadyRunning) as exc:
        decide_manual_run(SETTINGS, facts(FULL, running), ManualRequest("operator"), NOW)
    assert exc.value.http_status == 409 and exc.value.details == {"org": "acme", "job": "i9"}


def test_runs_beside_a_rollover_full() -> None:
    old = JobFact("f1", JobKind.FULL, JobState.SUCCEEDED, datetime(2025, 4, 1, tzinfo=UTC), cycle_id="c1")
    new = JobFact("f2", JobKind.FULL, JobState.RUNNING, datetime(2026, 4, 1, tzinfo=UTC), cycle_id="c2")
    plan = decide_manual_run(SETTINGS, facts(old, new), ManualRequest("admin"), NOW)
    assert plan.kind is JobKind.INCREMENTAL and plan.cycle_id == "c1" and plan.beside_job_id == "f2"


def test_quota_refusal() -> None:
    recent = JobFact(
        "i1", JobKind.INCREMENTAL, JobState.SUCCEEDED, NOW - timedelta(hours=23, minutes=59), cycle_id="c1"
    )
    with pytest.raises(JobQuotaExhausted) as exc:
        decide_manual_run(
            SETTINGS, facts(FULL, recent, sub=Subscription("one", 1)), ManualRequest("admin"), NOW
        )
    assert exc.value.http_status == 429
    assert exc.value.details["free_at"] == "2026-04-10T11:31:00+02:00"  # org-local time
    assert (
        decide_manual_run(
            SETTINGS,
            facts(FULL, recent, sub=Subscription("one", 1)),
            ManualRequest("admin"),
            NOW + timedelta(minutes=1),
        ).kind
        is JobKind.INCREMENTAL
    )


def test_backup_disabled_does_not_stop_a_manual_backup() -> None:
    off = BackupSettings("Europe/Berlin", datetime(2026, 1, 1, tzinfo=UTC), backup_enabled=False)
    assert decide_manual_run(off, facts(FULL), ManualRequest("admin"), NOW).kind is JobKind.INCREMENTAL


def test_refusal_order() -> None:
    """role, storage, subscription, seats, scope, running, quota: the first that applies."""
    running = JobFact("r", JobKind.FULL, JobState.RUNNING, NOW, cycle_id="c0")
    everything = facts(running, sub=Subscription("p", 0, NOW, 1), users=2, storage=None)
    scoped = ManualRequest("viewer", frozenset({"Account"}))
    expected: list[type[PolicyError]] = [
        RoleNotAllowed,
        NoStorageLocation,
        SubscriptionExpired,
        SeatsExceeded,
        FullBackupRequired,
        JobAlreadyRunning,
        JobQuotaExhausted,
    ]
    steps = [
        lambda f, r: (f, ManualRequest("admin", r.objects)),
        lambda f, r: (OrgFacts(f.org, f.subscription, "file:///r", f.billable_users, f.jobs), r),
        lambda f, r: (
            OrgFacts(f.org, Subscription("p", 0, None, 1), f.storage_location, f.billable_users, f.jobs),
            r,
        ),
        lambda f, r: (OrgFacts(f.org, f.subscription, f.storage_location, 1, f.jobs), r),
        lambda f, r: (f, ManualRequest("admin")),
        lambda f, r: (OrgFacts(f.org, f.subscription, f.storage_location, f.billable_users, ()), r),
    ]
    f, r = everything, scoped
    for i, err in enumerate(expected):
        with pytest.raises(err):
            decide_manual_run(SETTINGS, f, r, NOW)
        if i < len(steps):
            f, r = steps[i](f, r)


def test_a_full_of_a_new_cycle_starts_beside_an_incremental_and_never_beside_another_full() -> None:
    """One job per lane (decision 0016): "back up now" with ``full`` opens a new cycle beside a
    running incremental; a second full is refused with SFV-601, an incremental runs beside it."""
    inc = JobFact("i9", JobKind.INCREMENTAL, JobState.RUNNING, NOW - timedelta(minutes=5), cycle_id="c1")
    plan = decide_manual_run(SETTINGS, facts(FULL, inc), ManualRequest("admin", full=True), NOW)
    assert plan.kind is JobKind.FULL and plan.new_cycle
    queued = JobFact("f2", JobKind.FULL, JobState.QUEUED, NOW - timedelta(minutes=1))
    with pytest.raises(JobAlreadyRunning) as exc:
        decide_manual_run(SETTINGS, facts(FULL, queued), ManualRequest("admin", full=True), NOW)
    assert exc.value.details == {"org": "acme", "job": "f2"}
    beside = decide_manual_run(SETTINGS, facts(FULL, queued), ManualRequest("admin"), NOW)
    assert beside.kind is JobKind.INCREMENTAL and beside.beside_job_id == "f2"
    # an object-scoped full extract is an incremental: it waits for the running incremental
    with pytest.raises(JobAlreadyRunning):
        decide_manual_run(
            SETTINGS, facts(FULL, inc), ManualRequest("admin", objects=frozenset({"Account"}), full=True), NOW
        )
    # before the first full commits nothing runs beside it
    first = JobFact("f0", JobKind.FULL, JobState.RUNNING, NOW - timedelta(minutes=1))
    with pytest.raises(JobAlreadyRunning):
        decide_manual_run(SETTINGS, facts(first), ManualRequest("admin", full=True), NOW)
