"""Bulk 2.0 polling state machine (pure) and the tiny loop around it, without sleeping."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.clock import FrozenClock
from engine.errors import SalesforceBulkUnsupported, SalesforceJobFailed, SalesforceQueryTimeout
from engine.extract.bulk2 import (
    TERMINAL_STATES,
    JobInfo,
    JobPace,
    Pacing,
    PollPolicy,
    next_poll,
    poll_delay,
    wait_for_job,
)
from engine.extract.classify import classify_failed_job

POLICY = PollPolicy(first=0.5, factor=2.0, max=8.0, timeout=100.0)


@given(
    st.sampled_from(["UploadComplete", "InProgress", "JobComplete", "Failed", "Aborted"]), st.integers(0, 50)
)
def test_next_poll(state: str, attempt: int) -> None:
    clock = FrozenClock()
    at = next_poll(state, attempt, clock.now(), POLICY)
    if state in TERMINAL_STATES:
        assert at is None
    else:
        assert at is not None
        delay = (at - clock.now()).total_seconds()
        assert 0.5 <= delay <= 8.0
        later = next_poll(state, attempt + 1, clock.now(), POLICY)
        assert later is not None and later >= at  # backoff never shrinks


class FakeJobs:
    """A scripted sequence of job states; the clock moves only when the loop sleeps."""

    def __init__(self, states: list[str], clock: FrozenClock) -> None:
        self.states = states
        self.clock = clock
        self.polls = 0
        self.aborted = False

    def get_job(self, job_id: str) -> JobInfo:
        state = self.states[min(self.polls, len(self.states) - 1)]
        self.polls += 1
        return JobInfo(job_id, state, "Account", "query", "62.0")

    def abort_job(self, job_id: str) -> JobInfo:
        self.aborted = True
        return JobInfo(job_id, "Aborted", "Account", "query", "62.0")


def test_wait_polls_with_backoff_until_terminal() -> None:
    clock = FrozenClock()
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock.advance(timedelta(seconds=s))

    jobs = FakeJobs(["UploadComplete", "InProgress", "InProgress", "InProgress", "JobComplete"], clock)
    info = wait_for_job(jobs, JobInfo("750x", "UploadComplete", "Account", "query", "62.0"),
                        clock=clock, sleep=sleep, policy=POLICY)  # fmt: skip
    assert info.state == "JobComplete" and jobs.polls == 5
    assert slept == [0.5, 1.0, 2.0, 4.0, 8.0]  # no status call right after the create


def test_wait_gives_up_and_aborts() -> None:
    clock = FrozenClock()
    jobs = FakeJobs(["InProgress"], clock)
    with pytest.raises(SalesforceQueryTimeout):
        wait_for_job(jobs, JobInfo("750x", "UploadComplete", "Account", "query", "62.0"), clock=clock,
                     sleep=lambda s: clock.advance(timedelta(seconds=s)), policy=POLICY)  # fmt: skip
    assert jobs.aborted


def test_failed_jobs_are_typed() -> None:
    msg = "Your query request was running for too long. (QUERY_TIMEOUT: retried more than 15 times)"
    assert isinstance(classify_failed_job("Account", "Failed", msg), SalesforceQueryTimeout)
    unsupported = classify_failed_job("X", "Failed", "Entity 'X' is not supported by the Bulk API.")
    assert isinstance(unsupported, SalesforceBulkUnsupported)
    assert isinstance(classify_failed_job("Account", "Failed", "InternalServerError"), SalesforceJobFailed)
    assert isinstance(classify_failed_job("Account", "Aborted", None), SalesforceJobFailed)


# --- polls paced by what Salesforce reports (decision 0019) ------------------------------------

TASK_POLICY = PollPolicy(first=0.2, factor=1.6, max=5.0, timeout=3600.0)
"""The policy the partition tasks use (JobOptions.poll_first / poll_max, factor 1.6)."""


class TimedJob:
    """A job that Salesforce completes ``takes`` seconds after its creation, ``records`` records."""

    def __init__(self, clock: FrozenClock, takes: float, records: int) -> None:
        self.clock = clock
        self.done_at = clock.monotonic() + takes
        self.takes = takes
        self.records = records
        self.polls = 0

    def get_job(self, job_id: str) -> JobInfo:
        self.polls += 1
        if self.clock.monotonic() >= self.done_at:
            return JobInfo(job_id, "JobComplete", "Account", "query", "62.0", records_processed=self.records,
                           processing_ms=int(self.takes * 1000))  # fmt: skip
        return JobInfo(job_id, "InProgress", "Account", "query", "62.0")

    def abort_job(self, job_id: str) -> JobInfo:
        return JobInfo(job_id, "Aborted", "Account", "query", "62.0")


def _wait(clock: FrozenClock, job: TimedJob, pacing: Pacing | None) -> float:
    """Wait for ``job``; the seconds between its completion and when the loop saw it."""
    wait_for_job(job, JobInfo("750x", "UploadComplete", "Account", "query", "62.0"), clock=clock,
                 sleep=lambda s: clock.advance(timedelta(seconds=s)), policy=TASK_POLICY,
                 pacing=pacing)  # fmt: skip
    return clock.monotonic() - job.done_at


def test_a_paced_job_is_polled_about_when_it_should_be_done() -> None:
    """Issue 16: a 20 s job took 17 status calls with the backoff alone; once the pace knows
    how long this org takes per record, a job of the same size takes at most 2, and is seen
    complete no later than the backoff would see it."""
    clock = FrozenClock()
    unpaced = TimedJob(clock, 20.0, 60_000)
    late_unpaced = _wait(clock, unpaced, None)
    assert unpaced.polls >= 10
    pace = JobPace()
    pace.observe(JobInfo("750a", "JobComplete", "Account", "query", "62.0", records_processed=60_000,
                         processing_ms=20_000))  # fmt: skip
    pace.observe(JobInfo("750b", "JobComplete", "Account", "query", "62.0", records_processed=1,
                         processing_ms=1_000))  # fmt: skip
    paced = TimedJob(clock, 20.0, 60_000)
    late = _wait(clock, paced, Pacing(pace, 60_000))
    assert paced.polls <= 2
    assert 0 <= late <= max(late_unpaced, TASK_POLICY.first)


def test_a_job_slower_than_expected_costs_a_few_polls_and_is_seen_late_by_a_bounded_share() -> None:
    clock = FrozenClock()
    pace = JobPace()
    pace.observe(JobInfo("750a", "JobComplete", "Account", "query", "62.0", records_processed=10_000,
                         processing_ms=5_000))  # fmt: skip
    slow = TimedJob(clock, 40.0, 10_000)  # eight times slower than the pace says
    late = _wait(clock, slow, Pacing(pace, 10_000))
    assert slow.polls <= 12
    assert late <= TASK_POLICY.max


def test_the_pace_learns_completed_jobs_only_and_grows_with_records() -> None:
    pace = JobPace()
    assert pace.expected(1000) is None
    pace.observe(JobInfo("750a", "Failed", "Account", "query", "62.0", processing_ms=100))
    pace.observe(JobInfo("750b", "JobComplete", "Account", "query", "62.0"))  # no processing time
    assert pace.expected(1000) is None
    pace.observe(JobInfo("750c", "JobComplete", "Account", "query", "62.0", records_processed=0,
                         processing_ms=500))  # fmt: skip
    pace.observe(JobInfo("750d", "JobComplete", "Account", "query", "62.0", records_processed=100_000,
                         processing_ms=10_500))  # fmt: skip
    small, large = pace.expected(0), pace.expected(100_000)
    assert small == pytest.approx(0.5) and large == pytest.approx(10.5)


def test_after_one_job_a_larger_job_is_expected_to_take_longer_in_proportion() -> None:
    """With one completed job the pace cannot tell its fixed cost from its per-record cost; it
    took the whole time as fixed, so a job seven times larger was expected to be as quick, and
    was polled again and again until a second job completed."""
    pace = JobPace()
    pace.observe(JobInfo("750a", "JobComplete", "ContentVersion", "query", "62.0",
                         records_processed=16_000, processing_ms=1_500))  # fmt: skip
    assert pace.expected(112_000, "Contact") == pytest.approx(10.5)
    assert pace.expected(8_000, "Contact") == pytest.approx(0.75)
    assert pace.expected(None) == pytest.approx(1.5)  # no estimate: the one job's time


def test_while_nothing_is_known_one_scout_polls_and_the_others_wait_for_it() -> None:
    pace = JobPace()
    scout, other = Pacing(pace, 1000), Pacing(pace, 1000)
    assert scout.expected("750a", TASK_POLICY) is None  # the first to ask polls with the backoff
    assert other.expected("750b", TASK_POLICY) == float("inf")  # the others wait (policy.max)
    pace.release("750a")
    assert other.expected("750b", TASK_POLICY) is None  # the next one takes over
    pace.observe(JobInfo("750a", "JobComplete", "Account", "query", "62.0", records_processed=1000,
                         processing_ms=2_000))  # fmt: skip
    assert scout.expected("750c", TASK_POLICY) == pytest.approx(2.0)


@given(st.integers(0, 30), st.floats(0, 3600), st.one_of(st.none(), st.floats(0, 3600)))
def test_poll_delay_stays_within_its_bounds(attempt: int, elapsed: float, expected: float | None) -> None:
    d = poll_delay(attempt, elapsed, expected, TASK_POLICY)
    assert TASK_POLICY.first <= d <= max(TASK_POLICY.max, TASK_POLICY.max_expected)
    if expected is not None and expected - elapsed >= TASK_POLICY.first:
        assert d == min(expected - elapsed, TASK_POLICY.max_expected)  # no poll before it should be done


def test_other_jobs_completing_do_not_cost_a_waiting_job_status_calls() -> None:
    """The pace's sleep is cut short whenever another job of the worker completes; a paced job
    goes back to sleep until it should be done instead of polling at every wake-up."""
    clock = FrozenClock()
    pace = JobPace()
    pace.observe(JobInfo("750a", "JobComplete", "Account", "query", "62.0", records_processed=60_000,
                         processing_ms=20_000))  # fmt: skip
    pace.observe(JobInfo("750b", "JobComplete", "Account", "query", "62.0", records_processed=1,
                         processing_ms=1_000))  # fmt: skip
    job = TimedJob(clock, 20.0, 60_000)
    wakes: list[float] = []

    def woken_every_second(s: float) -> None:  # another job completes every second
        wakes.append(s)
        clock.advance(timedelta(seconds=min(s, 1.0)))

    wait_for_job(job, JobInfo("750x", "UploadComplete", "Account", "query", "62.0"), clock=clock,
                 sleep=woken_every_second, policy=TASK_POLICY, pacing=Pacing(pace, 60_000))  # fmt: skip
    assert len(wakes) >= 15  # it was woken often ...
    assert job.polls <= 2  # ... and asked Salesforce about the job only when it should be done


def test_a_short_job_later_than_expected_is_polled_with_the_backoff_not_every_first_step() -> None:
    """Status calls answer at once (issue 16): a 3 s job the pace expects in 0.5 s (a busy org)
    is polled at its expected time, then further apart each time (the backoff, or a quarter of its
    age), not every ``first`` seconds; it is seen complete within about a third of its age."""
    clock = FrozenClock()
    pace = JobPace()
    pace.observe(JobInfo("750a", "JobComplete", "Account", "query", "62.0", records_processed=1000,
                         processing_ms=500))  # fmt: skip
    slow = TimedJob(clock, 3.0, 1000)
    late = _wait(clock, slow, Pacing(pace, 1000))
    assert slow.polls <= 7  # every first step (0.2 s) from 0.5 s to 3 s would be 13
    assert late <= max(TASK_POLICY.first, 0.35 * 3.0)


def test_no_status_call_before_the_first_backoff_step_or_the_scout_learns() -> None:
    """A job just created is never done: the scout's first poll comes after ``first``; a job that
    is not the scout makes none until the scout has completed (its wait is cut short then)."""
    clock = FrozenClock()
    pace = JobPace()
    scout = TimedJob(clock, 0.0, 1000)
    assert _wait(clock, scout, Pacing(pace, 1000)) == pytest.approx(TASK_POLICY.first)
    assert scout.polls == 1


class QueuedJob(TimedJob):
    """A job that waits ``queued`` seconds in the org's queue (``UploadComplete``), then runs
    ``takes`` seconds (``InProgress``)."""

    def __init__(self, clock: FrozenClock, queued: float, takes: float, records: int) -> None:
        super().__init__(clock, queued + takes, records)
        self.starts_at = clock.monotonic() + queued
        self.takes = takes
        self.seen: list[str] = []

    def get_job(self, job_id: str) -> JobInfo:
        info = super().get_job(job_id)
        if info.state == "InProgress" and self.clock.monotonic() < self.starts_at:
            info = JobInfo(job_id, "UploadComplete", "Account", "query", "62.0")
        self.seen.append(info.state)
        return info


def test_a_job_is_paced_by_its_processing_from_when_it_is_seen_running() -> None:
    """Salesforce reports ``totalProcessingTime`` without the time a job waited in its queue
    (``UploadComplete``): a queued job is polled at a growing share of its age, and once seen
    ``InProgress`` it is asked again when its processing should be done: one poll, not one per
    backoff step (a job 10 s in the queue and 2 s running cost 10 polls before)."""
    clock = FrozenClock()
    pace = JobPace()
    pace.observe(JobInfo("750a", "JobComplete", "Account", "query", "62.0", records_processed=1000,
                         processing_ms=2_000))  # fmt: skip
    job = QueuedJob(clock, 10.0, 2.0, 1000)
    late = _wait(clock, job, Pacing(pace, 1000))
    assert job.seen.count("InProgress") == 1 and job.seen[-1] == "JobComplete"
    assert job.polls <= 6
    assert late <= 0.5 * 12.0  # seen complete within the queued share of its age


def test_a_job_seen_running_before_the_pace_learns_is_asked_again_when_its_processing_ends() -> None:
    """A job that is not the scout polls blind while nothing is known; when the scout's job then
    completes, the job's next poll is what the pace says from what that poll saw (running since
    then: when its processing should end), not at once because its creation plus its expected
    time has passed (measured: polls 0.2-0.3 s apart on a 2M-record realistic full)."""
    clock = FrozenClock()
    pace = JobPace()
    assert pace.scout("750s")  # another job of the worker polls with the backoff
    start = clock.monotonic()
    job = QueuedJob(clock, 4.0, 8.0, 1000)  # running from 4 s, complete at 12 s
    observed: list[float] = []

    def scout_completes_at_7s(s: float) -> None:
        clock.advance(timedelta(seconds=min(s, 1.0)))
        if clock.monotonic() - start >= 7.0 and not observed:
            observed.append(clock.monotonic() - start)
            pace.observe(JobInfo("750s", "JobComplete", "Account", "query", "62.0", records_processed=1000,
                                 processing_ms=8_000))  # fmt: skip

    wait_for_job(job, JobInfo("750x", "UploadComplete", "Account", "query", "62.0"), clock=clock,
                 sleep=scout_completes_at_7s, policy=TASK_POLICY, pacing=Pacing(pace, 1000))  # fmt: skip
    assert observed, "the scout never completed"
    assert job.seen == ["InProgress", "JobComplete"], job.seen  # blind at 5 s; then at 5 + 8 s
    assert clock.monotonic() - start <= 13.0 + TASK_POLICY.first


def test_a_worker_full_of_reads_asks_about_no_job_until_one_read_ends() -> None:
    """A worker whose threads all read results could not read a job that completes now any
    sooner (:class:`ReadGate`): a due status call waits until a read ends, then is made."""
    from engine.extract.bulk2 import ReadGate

    clock = FrozenClock()
    gate = ReadGate(1)
    job = TimedJob(clock, 0.0, 1000)
    read = gate.reading()
    read.__enter__()
    waiter = threading.Thread(target=_wait, args=(clock, job, Pacing(JobPace(), 1000, gate=gate)))
    waiter.start()
    while gate.waiting == 0:  # synchronisation only: until the waiter stands at the gate
        waiter.join(0.01)
    assert job.polls == 0
    read.__exit__(None, None, None)
    waiter.join()
    assert job.polls == 1 and gate.waiting == 0


def test_a_job_is_paced_by_its_own_objects_rate_once_one_of_its_jobs_completed() -> None:
    """The org processes bytes, and one object's rows are wider than another's: a job of an object
    whose own job completed is expected at that object's rate, not at the median of all."""
    pace = JobPace()
    for i, (obj, n, ms) in enumerate([("Account", 1, 200), ("Account", 10_000, 1_200),
                                      ("Account", 20_000, 2_200), ("Task", 10_000, 5_200)]):  # fmt: skip
        pace.observe(JobInfo(f"750{i}", "JobComplete", obj, "query", "62.0", records_processed=n,
                             processing_ms=ms))  # fmt: skip
    assert pace.expected(100_000, "Task") == pytest.approx(0.2 + 100_000 * 0.0005)
    assert pace.expected(100_000, "Account") == pytest.approx(0.2 + 100_000 * 0.0001)
    # an object none of whose jobs completed: the median of all
    assert pace.expected(100_000, "Case") == pytest.approx(0.2 + 100_000 * 0.0001)
