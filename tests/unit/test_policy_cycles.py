"""Backup cycles: full first, incrementals, yearly rollover beside incrementals, redo of failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import FrozenClock
from engine.policy import (
    Action,
    BackupSettings,
    JobFact,
    JobKind,
    JobState,
    OrgFacts,
    ReasonCode,
    blocking_job,
    current_cycle,
    cycles,
    decide_scheduled_run,
    new_cycle_id,
    next_full_at,
    objects_to_redo,
    plan_backup,
)
from engine.policy.cycles import add_year

START = datetime(2025, 3, 1, 2, tzinfo=UTC)
SETTINGS = BackupSettings("UTC", START - timedelta(days=1))


def j(
    id_: str,
    at: datetime,
    kind: JobKind = JobKind.INCREMENTAL,
    state: JobState = JobState.SUCCEEDED,
    cycle: str | None = "c1",
    failed: frozenset[str] = frozenset(),
    objects: frozenset[str] | None = None,
    finished: datetime | None = None,
) -> JobFact:
    return JobFact(
        id_,
        kind,
        state,
        at,
        cycle_id=cycle,
        started_at=at,
        failed_objects=failed,
        requested_objects=objects,
        finished_at=finished or (None if state.active else at),
    )


def facts(*jobs: JobFact) -> OrgFacts:
    return OrgFacts("acme", storage_location="file:///r", jobs=jobs)


def test_one_year_from_the_first_full_and_leap_day() -> None:
    assert add_year(START) == datetime(2026, 3, 1, 2, tzinfo=UTC)
    assert add_year(datetime(2028, 2, 29, 12, tzinfo=UTC)) == datetime(2029, 2, 28, 12, tzinfo=UTC)
    assert new_cycle_id(datetime(2026, 3, 1, 2, 3, 4, 999, tzinfo=UTC)) == "cycle-20260301T020304Z"


def test_a_failed_full_opens_no_cycle_and_a_partial_full_does() -> None:
    failed = j("f0", START, JobKind.FULL, JobState.FAILED, cycle="c0")
    assert current_cycle([failed]) is None
    assert plan_backup([failed], START + timedelta(days=1)).kind is JobKind.FULL
    partial = j("f1", START + timedelta(days=1), JobKind.FULL, JobState.PARTIAL, failed=frozenset({"Case"}))
    cyc = current_cycle([failed, partial])
    assert cyc is not None and (cyc.id, cyc.full_job_id) == ("c1", "f1")
    plan = plan_backup([failed, partial], START + timedelta(days=2))
    assert (plan.kind, plan.cycle_id, plan.full_objects) == (JobKind.INCREMENTAL, "c1", frozenset({"Case"}))


def test_the_full_job_of_a_cycle_starts_it_and_the_year_ends_it_exactly() -> None:
    clock = FrozenClock(START)
    full = j("f1", START, JobKind.FULL)
    cyc = current_cycle([full])
    assert cyc is not None and cyc.ends_at == datetime(2026, 3, 1, 2, tzinfo=UTC)
    clock.advance(timedelta(days=365) - timedelta(microseconds=1))  # 2025 is not a leap year
    assert plan_backup([full], clock.now()).kind is JobKind.INCREMENTAL
    assert next_full_at([full], clock.now()) == cyc.ends_at
    clock.advance(timedelta(microseconds=1))
    plan = plan_backup([full], clock.now())
    assert plan.kind is JobKind.FULL and plan.new_cycle and plan.cycle_id == new_cycle_id(clock.now())
    assert next_full_at([full], clock.now()) == clock.now()


def test_rollover_full_runs_while_incrementals_of_the_old_cycle_go_on_beside_it() -> None:
    clock = FrozenClock(add_year(START))
    old_full = j("f1", START, JobKind.FULL)
    jobs: list[JobFact] = [old_full]
    first = decide_scheduled_run(SETTINGS, facts(*jobs), clock.now())
    assert first.action is Action.RUN_FULL and first.plan is not None
    new_cycle = first.plan.cycle_id
    jobs.append(j("f2", clock.now(), JobKind.FULL, JobState.RUNNING, cycle=new_cycle))
    # the big full runs for days; daily incrementals keep protecting the org in the old cycle
    for day in range(1, 4):
        clock.advance(timedelta(days=1))
        d = decide_scheduled_run(SETTINGS, facts(*jobs), clock.now())
        assert d.action is Action.RUN_INCREMENTAL, d
        assert d.plan is not None and d.plan.cycle_id == "c1" and d.plan.beside_job_id == "f2"
        # while that incremental runs, the next slot is skipped (two incrementals never overlap)
        inc = j(f"i{day}", clock.now(), state=JobState.RUNNING, cycle="c1")
        busy = decide_scheduled_run(SETTINGS, facts(*jobs, inc), clock.now() + timedelta(minutes=1))
        assert busy.reason is ReasonCode.JOB_RUNNING and busy.details["job"] == f"i{day}"
        jobs.append(j(f"i{day}", clock.now(), cycle="c1"))
    # the new full commits: the new cycle is current and incrementals join it
    jobs[1] = j(
        "f2", jobs[1].created_at, JobKind.FULL, JobState.SUCCEEDED, cycle=new_cycle, finished=clock.now()
    )
    clock.advance(timedelta(days=1))
    after = decide_scheduled_run(SETTINGS, facts(*jobs), clock.now())
    assert after.action is Action.RUN_INCREMENTAL and after.plan is not None
    assert after.plan.cycle_id == new_cycle and after.plan.beside_job_id is None
    assert [c.id for c in cycles(jobs)] == ["c1", new_cycle]


def test_a_second_full_never_runs_beside_a_rollover_full() -> None:
    jobs = [
        j("f1", START, JobKind.FULL),
        j("f2", add_year(START), JobKind.FULL, JobState.RUNNING, cycle="c2"),
    ]
    later = add_year(START) + timedelta(days=1)
    assert blocking_job(jobs) is None
    assert plan_backup(jobs, later).kind is JobKind.INCREMENTAL


def test_the_first_full_blocks_everything() -> None:
    first = j("f1", START, JobKind.FULL, JobState.RUNNING)
    assert blocking_job([first]) is first
    d = decide_scheduled_run(SETTINGS, facts(first), START + timedelta(days=1))
    assert d.reason is ReasonCode.JOB_RUNNING and d.record_skip


def test_a_failed_rollover_full_is_tried_again_at_the_next_slot() -> None:
    end = add_year(START)
    jobs = [j("f1", START, JobKind.FULL), j("f2", end, JobKind.FULL, JobState.FAILED, cycle="c2")]
    plan = plan_backup(jobs, end + timedelta(days=1))
    assert plan.kind is JobKind.FULL and plan.new_cycle


def test_objects_with_exceptions_are_redone_in_full_until_backed_up_cleanly() -> None:
    t = START
    jobs = [
        j("f1", t, JobKind.FULL),
        j("i1", t + timedelta(days=1), state=JobState.PARTIAL, failed=frozenset({"Account", "Case"})),
    ]
    assert objects_to_redo(jobs) == {"Account", "Case"}
    plan = plan_backup(jobs, t + timedelta(days=2))
    assert plan.kind is JobKind.INCREMENTAL and plan.full_objects == {"Account", "Case"}
    # an object-scoped job that backs up Case cleanly clears only Case
    jobs.append(j("m1", t + timedelta(days=2), objects=frozenset({"Case"})))
    assert objects_to_redo(jobs) == {"Account"}
    # a failed job commits nothing: Account stays pending, and what it failed on is added
    jobs.append(j("i2", t + timedelta(days=3), state=JobState.FAILED, failed=frozenset({"Lead"})))
    assert objects_to_redo(jobs) == {"Account", "Lead"}
    # a chosen set redoes only its own pending objects
    scoped = plan_backup(jobs, t + timedelta(days=4), objects=["Lead", "Contact"])
    assert scoped.objects == {"Lead", "Contact"} and scoped.full_objects == {"Lead"}
    # a clean all-objects job clears everything
    jobs.append(j("i3", t + timedelta(days=4)))
    assert objects_to_redo(jobs) == frozenset()


def test_skipped_and_active_jobs_do_not_change_the_redo_set() -> None:
    jobs = [
        j("f1", START, JobKind.FULL, state=JobState.PARTIAL, failed=frozenset({"Case"})),
        j("s1", START + timedelta(days=1), state=JobState.SKIPPED),
        j("r1", START + timedelta(days=2), state=JobState.RUNNING),
    ]
    assert objects_to_redo(jobs) == {"Case"}


def test_jobs_without_cycle_id_open_their_own_cycle() -> None:
    legacy = j("f-legacy", START, JobKind.FULL, cycle=None)
    cyc = current_cycle([legacy])
    assert cyc is not None and cyc.id == "f-legacy"
    assert plan_backup([legacy], START + timedelta(days=1)).cycle_id == "f-legacy"


kinds = st.sampled_from(list(JobKind))
states = st.sampled_from([s for s in JobState if not s.active])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 800), kinds, states), max_size=20), st.integers(0, 900))
def test_property_plan_is_full_exactly_when_no_cycle_is_current(
    specs: list[tuple[int, JobKind, JobState]], day: int
) -> None:
    jobs = [j(f"j{i}", START + timedelta(days=d), k, s, cycle=f"c{d}") for i, (d, k, s) in enumerate(specs)]
    now = START + timedelta(days=day, hours=1)
    plan = plan_backup(jobs, now)
    cyc = current_cycle(jobs)
    assert (plan.kind is JobKind.FULL) == (cyc is None or now >= cyc.ends_at)
    if plan.kind is JobKind.INCREMENTAL:
        assert cyc is not None and plan.cycle_id == cyc.id
        assert plan.full_objects <= objects_to_redo(jobs)


def test_the_slot_that_opens_a_new_cycle_starts_the_full_beside_a_running_incremental() -> None:
    """The cycle's year ends while an incremental runs: the due slot starts the new cycle's full
    beside it (one job per lane, decision 0016); a second full still waits for the first."""
    end = add_year(START)
    inc = j("i1", end - timedelta(minutes=10), state=JobState.RUNNING)
    jobs = [j("f1", START, JobKind.FULL), inc]
    d = decide_scheduled_run(SETTINGS, facts(*jobs), end + timedelta(minutes=1))
    assert d.action is Action.RUN_FULL and d.plan is not None and d.plan.new_cycle
    assert blocking_job(jobs, JobKind.FULL) is None and blocking_job(jobs) is inc
    f2 = j("f2", end, JobKind.FULL, JobState.RUNNING, cycle=None)
    assert blocking_job([*jobs, f2], JobKind.FULL) is f2
