"""Scheduled decisions: disabled, running, quota, expiry, seats, storage; compare and export."""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.catalog import models as catalog
from engine.clock import FrozenClock
from engine.errors import InvalidPolicySetting, SeatsExceeded, UnknownPlan
from engine.policy import (
    DEFAULT_PLAN_QUOTAS,
    Action,
    BackupSettings,
    JobFact,
    JobKind,
    JobState,
    JobTrigger,
    OrgFacts,
    ReasonCode,
    Role,
    Subscription,
    UserRow,
    count_billable_users,
    daily_schedule,
    decide_scheduled_run,
    may_compare,
    may_export,
    quota_usage,
    schedule_status,
    stop_reasons,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
FULL_AT = datetime(2025, 12, 1, tzinfo=UTC)  # a cycle that is current throughout 2026's first half
STORE = "az://backups/acme"


def s(zone: str = "UTC", **kw: object) -> BackupSettings:
    return BackupSettings(zone, T0, **kw)  # type: ignore[arg-type]


def job(
    id_: str,
    at: datetime,
    state: JobState = JobState.SUCCEEDED,
    kind: JobKind = JobKind.INCREMENTAL,
    cycle_id: str = "c1",
    trigger: JobTrigger = JobTrigger.SCHEDULED,
) -> JobFact:
    return JobFact(id_, kind, state, at, trigger=trigger, started_at=at, cycle_id=cycle_id)


def full(at: datetime = FULL_AT, cycle_id: str = "c1") -> JobFact:
    return job("full-1", at, kind=JobKind.FULL, cycle_id=cycle_id)


def facts(
    *jobs: JobFact, sub: Subscription | None = None, users: int = 0, storage: str | None = STORE
) -> OrgFacts:
    return OrgFacts("acme", sub or Subscription(), storage, users, jobs)


def test_policy_enums_match_the_catalog() -> None:
    for ours, theirs in [
        (JobKind, catalog.JobKind),
        (JobState, catalog.JobState),
        (JobTrigger, catalog.JobTrigger),
        (Role, catalog.Role),
    ]:
        assert {m.value for m in ours} == {m.value for m in theirs}
    assert {s for s in JobState if s.active} == set(catalog.ACTIVE_JOB_STATES)


def test_runs_full_first_then_incremental() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    first = decide_scheduled_run(s(), facts(), now)
    assert first.action is Action.RUN_FULL and first.runs
    assert first.plan is not None and first.plan.new_cycle
    then = decide_scheduled_run(s(), facts(full(datetime(2026, 1, 1, tzinfo=UTC))), now)
    assert then.action is Action.RUN_INCREMENTAL
    assert then.plan is not None and then.plan.cycle_id == "c1"
    assert then.reason is None and then.error() is None


def test_backup_disabled_stops_without_recording() -> None:
    d = decide_scheduled_run(s(backup_enabled=False), facts(), datetime(2026, 1, 2, tzinfo=UTC))
    assert (d.action, d.reason, d.record_skip, d.error()) == (
        Action.SKIP,
        ReasonCode.BACKUP_DISABLED,
        False,
        None,
    )


def test_before_connection_nothing_runs() -> None:
    d = decide_scheduled_run(s(), facts(), T0)
    assert d.reason is ReasonCode.NOT_CONNECTED and not d.record_skip


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.RUNNING])
def test_a_running_job_skips_the_slot_and_the_skip_is_recorded(state: JobState) -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    running = job("inc-9", now - timedelta(hours=1), state=state)
    d = decide_scheduled_run(s(), facts(full(), running), now)
    assert d.action is Action.SKIP and d.reason is ReasonCode.JOB_RUNNING
    assert d.record_skip
    err = d.error()
    assert err is not None and err.code == "SFV-601" and err.http_status == 409
    assert "inc-9" in err.message
    assert pickle.loads(pickle.dumps(err)).message == err.message


# --- quota ---------------------------------------------------------------------------------------


def quota_facts(*jobs: JobFact, n: int = 2) -> OrgFacts:
    return facts(full(FULL_AT), *jobs, sub=Subscription("custom", n))


def test_quota_window_boundary_is_exactly_24_hours() -> None:
    clock = FrozenClock(datetime(2026, 5, 1, 12, tzinfo=UTC))
    jobs = (job("a", clock.now() - timedelta(hours=20)), job("b", clock.now() - timedelta(hours=10)))
    f = quota_facts(*jobs)
    d = decide_scheduled_run(s(), f, clock.now())
    assert d.reason is ReasonCode.QUOTA_EXHAUSTED and d.record_skip
    err = d.error()
    assert err is not None and err.code == "SFV-602" and err.http_status == 429
    usage = quota_usage(f, ZoneInfo("UTC"), clock.now())
    assert usage.used == 2 and usage.exhausted
    assert usage.next_free_at == clock.now() + timedelta(hours=4)
    clock.advance(timedelta(hours=4) - timedelta(microseconds=1))
    assert decide_scheduled_run(s(), f, clock.now()).reason is ReasonCode.QUOTA_EXHAUSTED
    clock.advance(timedelta(microseconds=1))  # job "a" is exactly 24 hours old: it no longer counts
    assert decide_scheduled_run(s(), f, clock.now()).action is Action.RUN_INCREMENTAL


@pytest.mark.parametrize("state", [JobState.SKIPPED, JobState.FAILED])
def test_skipped_and_failed_jobs_do_not_count(state: JobState) -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    f = quota_facts(
        *(job(f"x{i}", now - timedelta(hours=i + 1), state=state) for i in range(10)),
        job("ok", now - timedelta(hours=1)),
    )
    assert quota_usage(f, ZoneInfo("UTC"), now).used == 1
    assert decide_scheduled_run(s(), f, now).runs


@pytest.mark.parametrize("state", [JobState.SUCCEEDED, JobState.PARTIAL, JobState.CANCELLED])
def test_finished_jobs_that_ran_count(state: JobState) -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    f = quota_facts(job("a", now - timedelta(hours=1), state=state), job("b", now - timedelta(hours=2)))
    assert decide_scheduled_run(s(), f, now).reason is ReasonCode.QUOTA_EXHAUSTED


def test_manual_jobs_count_like_scheduled_ones() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    f = quota_facts(job("m", now - timedelta(hours=3), trigger=JobTrigger.MANUAL), n=1)
    assert decide_scheduled_run(s(), f, now).reason is ReasonCode.QUOTA_EXHAUSTED


def test_no_plan_means_no_quota_and_unknown_plan_is_an_error() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    many = facts(full(FULL_AT), *(job(f"j{i}", now - timedelta(minutes=i)) for i in range(1, 50)))
    assert decide_scheduled_run(s(), many, now).runs
    assert Subscription.for_plan(None).jobs_per_24h is None
    assert Subscription.for_plan("standard").jobs_per_24h == DEFAULT_PLAN_QUOTAS["standard"]
    assert Subscription.for_plan("gold", plans={"gold": 3}).jobs_per_24h == 3
    with pytest.raises(UnknownPlan) as exc:
        Subscription.for_plan("platinum")
    assert exc.value.code == "SFV-610" and "standard" in exc.value.message


def test_quota_of_one_fits_a_daily_midnight_job_across_a_23_hour_day() -> None:
    ny = "America/New_York"
    cfg = s(ny)
    prev = daily_schedule(cfg, date(2026, 3, 8))[0]  # 00:00 EST on the spring-forward day
    nxt = daily_schedule(cfg, date(2026, 3, 9))[0]  # 00:00 EDT, only 23 hours later
    assert nxt.astimezone(UTC) - prev.astimezone(UTC) == timedelta(hours=23)
    f = facts(full(FULL_AT, cycle_id="c1"), job("d1", prev), sub=Subscription("one", 1))
    assert decide_scheduled_run(cfg, f, nxt).action is Action.RUN_INCREMENTAL
    # one minute earlier the quota is still used
    assert decide_scheduled_run(cfg, f, nxt - timedelta(minutes=1)).reason is ReasonCode.QUOTA_EXHAUSTED


def test_quota_counts_a_late_scheduled_job_at_its_slot() -> None:
    slot = datetime(2026, 5, 1, tzinfo=UTC)
    late = JobFact(
        "d1",
        JobKind.INCREMENTAL,
        JobState.SUCCEEDED,
        slot + timedelta(minutes=3),
        cycle_id="c1",
        scheduled_for=slot,
    )
    f = facts(full(FULL_AT), late, sub=Subscription("one", 1))
    # the next day's job is decided a few seconds after its slot, less late than yesterday's
    assert decide_scheduled_run(s(), f, slot + timedelta(days=1, seconds=5)).runs


def test_zero_quota_never_frees() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    f = facts(full(FULL_AT), sub=Subscription("none", 0))
    usage = quota_usage(f, ZoneInfo("UTC"), now)
    assert usage.exhausted and usage.next_free_at is None
    assert decide_scheduled_run(s(), f, now).reason is ReasonCode.QUOTA_EXHAUSTED


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 6),
    st.lists(st.integers(0, 48 * 60), max_size=12),
    st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata"]),
)
def test_property_quota_counts_exactly_the_jobs_of_the_last_24_hours(
    quota: int, ages: list[int], zone: str
) -> None:
    now = datetime(2026, 7, 1, 12, tzinfo=UTC)  # no change of offset within two days here
    jobs = [job(f"j{i}", now - timedelta(minutes=a)) for i, a in enumerate(ages)]
    f = facts(*jobs, sub=Subscription("p", quota))
    usage = quota_usage(f, ZoneInfo(zone), now)
    assert usage.used == sum(1 for a in ages if a < 24 * 60)
    assert usage.exhausted == (usage.used >= quota)
    if usage.exhausted and usage.next_free_at is not None:
        assert usage.next_free_at > now
        assert not quota_usage(f, ZoneInfo(zone), usage.next_free_at).exhausted


# --- subscription, seats, storage -------------------------------------------------------------


def test_subscription_expiry_at_the_exact_instant() -> None:
    expires = datetime(2026, 6, 30, 22, tzinfo=UTC)
    f = facts(full(FULL_AT), sub=Subscription(expires_at=expires))
    before = decide_scheduled_run(s(), f, expires - timedelta(microseconds=1))
    assert before.runs
    at = decide_scheduled_run(s(), f, expires)
    assert at.reason is ReasonCode.SUBSCRIPTION_EXPIRED and not at.record_skip
    err = at.error()
    assert err is not None and err.code == "SFV-603"
    assert "2026-06-30T22:00:00+00:00" in err.message
    st_ = schedule_status(s(), f, expires)
    assert (st_.next_run, st_.stopped, st_.error_code) == (None, ReasonCode.SUBSCRIPTION_EXPIRED, "SFV-603")


def test_status_before_expiry_shows_no_next_run_when_it_ends_first() -> None:
    """No slot is left before the expiry, but it has not expired yet: not "expired" (issue 15, 21)."""
    expires = datetime(2026, 6, 30, 22, tzinfo=UTC)
    f = facts(full(FULL_AT), sub=Subscription(expires_at=expires))
    status = schedule_status(s(), f, expires - timedelta(hours=1))
    assert status.next_run is None and status.stopped is None and status.error_code is None
    assert stop_reasons(s(), f, expires - timedelta(microseconds=1)) == ()
    assert [v.reason for v in stop_reasons(s(), f, expires)] == [ReasonCode.SUBSCRIPTION_EXPIRED]
    ok = schedule_status(s(), f, expires - timedelta(days=2))
    assert ok.next_run == datetime(2026, 6, 29, tzinfo=UTC) and ok.stopped is None and ok.error_code is None


def test_seat_count_rule() -> None:
    users = [
        UserRow("005A", True, "Standard"),
        UserRow("005B", True, "Standard"),
        UserRow("005C", False, "Standard"),  # inactive
        UserRow("005D", True, "PowerPartner"),  # partner licence
        UserRow("005E", True, "CsnOnly"),
        UserRow("005F", True, "Guest"),
    ]
    assert count_billable_users(users, org_is_sandbox=False) == 2
    assert count_billable_users(users, org_is_sandbox=True) == 0


@pytest.mark.parametrize(
    ("users", "seats", "stopped"), [(2, 2, False), (3, 2, True), (0, 0, False), (99, None, False)]
)
def test_seats_exceeded_stops_backups_but_not_compare_or_export(
    users: int, seats: int | None, stopped: bool
) -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    f = facts(full(FULL_AT), sub=Subscription(purchased_seats=seats), users=users)
    d = decide_scheduled_run(s(), f, now)
    assert (d.reason is ReasonCode.SEATS_EXCEEDED) == stopped
    if stopped:
        assert not d.record_skip
        err = d.error()
        assert isinstance(err, SeatsExceeded) and err.code == "SFV-604" and err.http_status == 403
        assert "3 active Standard users but 2 purchased seats" in err.message
        assert schedule_status(s(), f, now).error_code == "SFV-604"
    assert may_compare(f, now).allowed and may_export(f, now).allowed


def test_expired_subscription_keeps_compare_and_export() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    f = facts(full(FULL_AT), sub=Subscription(expires_at=now - timedelta(days=30)))
    assert may_compare(f, now).allowed and may_export(f, now).allowed


def test_no_storage_location_refuses_clearly() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    for storage in (None, "", "   "):
        f = facts(storage=storage)
        d = decide_scheduled_run(s(), f, now)
        assert d.reason is ReasonCode.NO_STORAGE_LOCATION and not d.record_skip
        err = d.error()
        assert err is not None and err.code == "SFV-605" and "sfvault settings set" in err.message
        assert may_compare(f, now).reason is ReasonCode.NO_STORAGE_LOCATION
        assert not may_export(f, now).allowed


def test_stop_reasons_come_before_running_and_quota() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    busy = job("r", now, state=JobState.RUNNING)
    f = facts(full(FULL_AT), busy, sub=Subscription("p", 0, expires_at=now), users=5)
    assert decide_scheduled_run(s(backup_enabled=False), f, now).reason is ReasonCode.BACKUP_DISABLED
    assert decide_scheduled_run(s(), f, now).reason is ReasonCode.SUBSCRIPTION_EXPIRED
    f2 = facts(full(FULL_AT), busy, sub=Subscription("p", 0))
    assert decide_scheduled_run(s(), f2, now).reason is ReasonCode.JOB_RUNNING


def test_fact_validation() -> None:
    with pytest.raises(InvalidPolicySetting):
        JobFact("x", JobKind.FULL, JobState.QUEUED, datetime(2026, 1, 1))
    with pytest.raises(InvalidPolicySetting):
        Subscription(purchased_seats=-1)
    with pytest.raises(InvalidPolicySetting):
        Subscription(expires_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        JobFact("x", "weekly", "queued", T0)  # type: ignore[arg-type]
    from_catalog = JobFact("x", "full", "partial", T0, trigger="manual", failed_objects=["Case"])  # type: ignore[arg-type]
    assert from_catalog.kind is JobKind.FULL and from_catalog.state is JobState.PARTIAL
    assert from_catalog.failed_objects == frozenset({"Case"})
    assert s(first_start_time=time(0, 0)).zone == ZoneInfo("UTC")
