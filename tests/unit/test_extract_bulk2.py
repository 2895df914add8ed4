"""Bulk 2.0 polling state machine (pure) and the tiny loop around it, without sleeping."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.clock import FrozenClock
from engine.errors import SalesforceBulkUnsupported, SalesforceJobFailed, SalesforceQueryTimeout
from engine.extract.bulk2 import TERMINAL_STATES, JobInfo, PollPolicy, next_poll, wait_for_job
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
    assert slept == [0.5, 1.0, 2.0, 4.0]


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
