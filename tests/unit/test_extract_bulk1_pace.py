"""Bulk API 1.0 status polls are paced as Bulk 2.0's (issue 16): a PK-chunked job's batch list is
read as one job's status by :class:`engine.extract.bulk1.ChunkedJob` and waited for by the same
loop, :func:`engine.extract.bulk2.wait_for_job`, with the worker's Bulk 1.0 pace."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal

from engine.clock import FrozenClock
from engine.extract.bulk1 import BatchInfo, ChunkedJob, job_time_ms
from engine.extract.bulk2 import JobInfo, JobPace, Pacing, PollPolicy, new_job_paces, wait_for_job

TASK_POLICY = PollPolicy(first=0.2, factor=1.6, max=5.0, timeout=3600.0)
"""The policy the partition tasks use (JobOptions.poll_first / poll_max, factor 1.6)."""
JOB = JobInfo("750j", "Open", "Task", "query", "62.0")


class ChunkingOrg:
    """A PK-chunked job of ``chunks`` chunks of ``rows`` records each that Salesforce finishes
    ``takes`` seconds after the batch was submitted; the clock moves only when the loop sleeps."""

    def __init__(self, clock: FrozenClock, takes: float, chunks: int = 4, rows: int = 10_000) -> None:
        self.clock = clock
        self.created: datetime = clock.now()
        self.done_at = clock.monotonic() + takes
        self.takes = takes
        self.chunks = chunks
        self.rows = rows
        self.polls = 0
        self.states: list[str] = []
        self.first_state = "Queued"
        """The first chunk's state until the job is done (the others stay ``Queued``)."""

    def batches(self, job_id: str) -> list[BatchInfo]:
        self.polls += 1
        done = self.clock.monotonic() >= self.done_at
        end = self.created + timedelta(seconds=self.takes) if done else self.clock.now()
        submitted = BatchInfo("751s", "NotProcessed" if done else "InProgress", created=self.created,
                              modstamp=self.created)  # fmt: skip
        state, rows = ("Completed", self.rows) if done else ("Queued", 0)
        chunks = [BatchInfo(f"751c{i}", state, None, rows, self.created, end) for i in range(self.chunks)]
        if not done and self.first_state != "Queued":
            chunks[0] = replace(chunks[0], state=self.first_state)
        return [submitted, *chunks]

    def set_state(self, job_id: str, state: Literal["Closed", "Aborted"]) -> None:
        self.states.append(state)


def _wait(clock: FrozenClock, org: ChunkingOrg, pace: JobPace | None) -> JobInfo:
    pacing = Pacing(pace, org.chunks * org.rows) if pace is not None else None
    return wait_for_job(ChunkedJob(org, JOB, "751s"), JOB, clock=clock,
                        sleep=lambda s: clock.advance(timedelta(seconds=s)), policy=TASK_POLICY,
                        pacing=pacing)  # fmt: skip


def test_the_batch_list_reads_as_one_jobs_status() -> None:
    clock = FrozenClock()
    org = ChunkingOrg(clock, 3.0)
    status = ChunkedJob(org, JOB, "751s")
    # every chunk queued: the org has not started the job (a pace counts its time from a start)
    assert status.get_job(JOB.id).state == "UploadComplete"
    org.first_state = "InProgress"
    assert status.get_job(JOB.id).state == "InProgress"
    clock.advance(timedelta(seconds=3))
    done = status.get_job(JOB.id)
    assert (done.state, done.records_processed, done.processing_ms) == ("JobComplete", 40_000, 3000)
    assert [b.id for b in status.chunks()] == ["751c0", "751c1", "751c2", "751c3"]
    assert status.abort_job(JOB.id).state == "Aborted" and org.states == ["Aborted"]


def test_a_chunk_that_did_not_complete_ends_the_job_failed() -> None:
    clock = FrozenClock()

    class OneFailed(ChunkingOrg):
        def batches(self, job_id: str) -> list[BatchInfo]:
            listed = super().batches(job_id)
            return [*listed[:-1], BatchInfo("751cx", "Failed", "InvalidBatch : timeout")]

    org = OneFailed(clock, 0.0)
    assert ChunkedJob(org, JOB, "751s").get_job(JOB.id).state == "Failed"


def test_the_job_time_is_salesforces_first_creation_to_last_change() -> None:
    t0 = datetime(2026, 1, 1, 12, 0, 0)
    batches = [
        BatchInfo("a", "NotProcessed", created=t0, modstamp=t0 + timedelta(seconds=1)),
        BatchInfo("b", "Completed", created=t0 + timedelta(seconds=1), modstamp=t0 + timedelta(seconds=7.5)),
        BatchInfo("c", "Completed", created=t0 + timedelta(seconds=1), modstamp=t0 + timedelta(seconds=4)),
    ]
    assert job_time_ms(batches) == 7500  # not the sum of the chunks' times: they run side by side
    assert job_time_ms([BatchInfo("a", "Completed", created=t0, modstamp=t0)]) is None  # a frozen clock
    assert job_time_ms([BatchInfo("a", "Completed")]) is None


def test_a_paced_bulk1_job_is_polled_about_when_it_should_be_done() -> None:
    """Issue 16: Bulk 1.0 polls used the plain backoff (four times the status calls once status
    answers came at once); with the worker's Bulk 1.0 pace, a job like one already completed is
    polled once or twice, and the pace learns from the job's batch list."""
    clock = FrozenClock()
    pace = new_job_paces()["bulk1"]
    first = ChunkingOrg(clock, 20.0)
    assert _wait(clock, first, pace).state == "JobComplete"
    assert first.polls >= 10  # the scout: the backoff, nothing known yet
    assert pace.expected(40_000) == 20.0
    second = ChunkingOrg(clock, 20.0)
    _wait(clock, second, pace)
    assert second.polls <= 2
    assert 0 <= clock.monotonic() - second.done_at <= TASK_POLICY.first
