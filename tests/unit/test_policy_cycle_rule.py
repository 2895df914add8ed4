"""One cycle rule (issue 14, defect 6): the scheduler's plan and the runner's decision agree.

The scheduler predicts the kind of the next job from the catalog (:func:`engine.policy.plan_backup`
over :class:`~engine.policy.facts.JobFact`); the runner decides it from the committed manifests
(:func:`engine.jobs.planning.decide`). Both must end a cycle at the same instant, including across
leap days: a cycle opened on 1 March 2027 lasts until 1 March 2028 (366 days), one opened on
29 February 2028 until 28 February 2029.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.jobs.planning import BackupRequest, decide
from engine.model import Manifest, ObjectEntry
from engine.policy import JobFact, JobKind, JobState, plan_backup
from engine.policy.cycles import add_year, cycle_ended

SCOPE = {"Account": None}
TICK = timedelta(microseconds=1)


def _both(start: datetime, now: datetime) -> tuple[str, str]:
    """(the scheduler's predicted kind, the runner's decided kind) at ``now`` for a cycle whose
    full job started and committed at ``start``."""
    fact = JobFact(id="full-1", kind=JobKind.FULL, state=JobState.SUCCEEDED, created_at=start,
                   cycle_id="full-1", started_at=start, finished_at=start)  # fmt: skip
    full = Manifest(org="acme", job_id="full-1", created_at=start, kind="full", cycle_id="full-1",
                    objects={"Account": ObjectEntry(rows=1, mode="full")})  # fmt: skip
    predicted = plan_backup([fact], now).kind.value
    decided = decide(BackupRequest("acme"), [full], SCOPE, now=now).kind
    return predicted, decided


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2027, 3, 1, 12, tzinfo=UTC), datetime(2028, 3, 1, 12, tzinfo=UTC)),  # spans 29 Feb 2028
        (datetime(2028, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC)),  # a leap year: 366 days
        (datetime(2028, 2, 29, 8, 30, tzinfo=UTC), datetime(2029, 2, 28, 8, 30, tzinfo=UTC)),  # 29 Feb start
        (datetime(2026, 6, 15, 23, 59, 59, tzinfo=UTC), datetime(2027, 6, 15, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_scheduler_and_runner_end_a_cycle_at_the_same_instant(start: datetime, end: datetime) -> None:
    assert add_year(start) == end
    assert _both(start, end - TICK) == ("incremental", "incremental")
    assert _both(start, end) == ("full", "full")
    # 365 days after a start before 29 February is still inside the calendar year
    if (end - start).days == 366:
        assert _both(start, start + timedelta(days=365)) == ("incremental", "incremental")


@given(
    start=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(UTC)
    ),
    offset=st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=3)),
)
def test_the_two_never_disagree_near_the_boundary(start: datetime, offset: timedelta) -> None:
    now = add_year(start) + offset
    predicted, decided = _both(start, now)
    assert predicted == decided == ("full" if cycle_ended(start, now) else "incremental")


def _both_with_duration(started: datetime, committed: datetime, now: datetime) -> tuple[str, str]:
    """Like :func:`_both`, for a full job that started at ``started`` and committed at
    ``committed``, as the catalog row and the manifest record them (the commit instant is the
    catalog's ``finished_at`` and the manifest's ``created_at``, the same instant)."""
    from engine.model import JobRecord

    fact = JobFact(id="full-1", kind=JobKind.FULL, state=JobState.SUCCEEDED, created_at=started,
                   cycle_id="full-1", started_at=started, finished_at=committed)  # fmt: skip
    full = Manifest(org="acme", job_id="full-1", created_at=committed, kind="full", cycle_id="full-1",
                    objects={"Account": ObjectEntry(rows=1, mode="full")},
                    job=JobRecord(started_at=started, finished_at=committed))  # fmt: skip
    predicted = plan_backup([fact], now).kind.value
    decided = decide(BackupRequest("acme"), [full], SCOPE, now=now).kind
    return predicted, decided


@given(
    start=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(UTC)
    ),
    duration=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)),
    offset=st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=3)),
)
def test_a_full_that_ran_for_hours_ends_its_cycle_at_one_instant_for_both(
    start: datetime, duration: timedelta, offset: timedelta
) -> None:
    """A full of a large org runs for hours: the scheduler (catalog) and the runner (manifests)
    count its cycle's year from the same instant of it, the commit (weak point carried from
    session 6: the scheduler counted from the job's start, the runner from its commit)."""
    committed = start + duration
    now = add_year(committed) + offset
    predicted, decided = _both_with_duration(start, committed, now)
    assert predicted == decided == ("full" if cycle_ended(committed, now) else "incremental")
