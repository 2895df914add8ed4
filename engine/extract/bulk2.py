"""Bulk API 2.0 query jobs: create, poll, abort/delete, stream result pages (SALESFORCE_API.md §3).

Polling is split in two (STYLE rule 13): :func:`next_poll` is a pure function of
``(state, attempt, now)`` that says when to look again (or that the job is terminal), and
:func:`wait_for_job` is the tiny loop that calls it, with the clock and ``sleep`` injected so
unit tests never sleep.

Polls are paced by what Salesforce reports about the jobs already finished (decision 0019): a
:class:`JobPace` (one per worker and backup job) learns from each completed job's
``totalProcessingTime`` and ``numberRecordsProcessed`` how long a job of ``n`` records takes, and
a job whose record count is estimated is first polled when it should be done, then a little
later each time (:func:`poll_delay`). Until the first job has finished, one job at a time
("the scout") polls with the backoff; the others wait for what it learns.

Result pages are read one locator at a time (``maxRecords`` bounds the memory of a page) and
gzip-compressed on the wire. With API 58.0+ the ``resultPages`` resource lists page URLs up
front so several can be downloaded at once (:meth:`Bulk2Api.iter_pages_parallel`).

A Failed job becomes a typed error: :class:`SalesforceQueryTimeout` for timeouts (the planner
bisects the Id range), :class:`SalesforceBulkUnsupported` when Bulk cannot run the query (the
object goes to REST), :class:`SalesforceJobFailed` otherwise.
"""

from __future__ import annotations

import functools
import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

import httpx

from engine.clock import Clock
from engine.errors import (
    SalesforceBulkUnsupported,
    SalesforceQueryTimeout,
    SalesforceRequestFailed,
    SfvaultError,
)
from engine.extract.classify import classify_failed_job
from engine.extract.client import SalesforceClient
from engine.extract.soql import Soql

if TYPE_CHECKING:
    from engine.extract.job_board import JobBoard

log = logging.getLogger(__name__)
Operation = Literal["query", "queryAll"]
TERMINAL_STATES = frozenset({"JobComplete", "Failed", "Aborted"})
RUNNING_STATES = frozenset({"UploadComplete", "InProgress", "Open"})
DEFAULT_MAX_RECORDS = 50_000


@dataclass(frozen=True)
class JobInfo:
    """The fields of a JobInfo that extraction uses (the rest stays in ``raw``)."""

    id: str
    state: str
    object: str
    operation: str
    api_version: str
    records_processed: int = 0
    error_message: str | None = None
    created_date: datetime | None = None
    """When Salesforce created the job, by its own clock (the job reads the org after it)."""
    processing_ms: int | None = None
    """``totalProcessingTime`` (milliseconds), as Salesforce reports it; None when absent (a
    listed job: ``GET /jobs/query`` has no counts or times)."""
    modstamp: datetime | None = None
    """``systemModstamp``: when the job last changed state (for an ended job: when it ended)."""

    @staticmethod
    def from_json(d: dict[str, Any]) -> JobInfo:
        v = d.get("apiVersion")
        created = d.get("createdDate")
        modstamp = d.get("systemModstamp")
        processing = d.get("totalProcessingTime")
        return JobInfo(
            id=str(d["id"]),
            state=str(d["state"]),
            object=str(d.get("object") or ""),
            operation=str(d.get("operation") or ""),
            api_version=f"{float(v):.1f}" if v is not None else "",
            records_processed=int(d.get("numberRecordsProcessed") or 0),
            error_message=d.get("errorMessage"),
            created_date=_job_time(created),
            processing_ms=int(processing) if isinstance(processing, int | float) else None,
            modstamp=_job_time(modstamp),
        )

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


def _job_time(value: Any) -> datetime | None:
    return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%f%z") if value else None


@dataclass(frozen=True)
class PollPolicy:
    """Backoff of status polls: ``first``, then times ``factor`` per attempt, capped at ``max``.

    ``timeout`` bounds the whole wait (a job that is still running then is aborted and reported
    as a query timeout, so the planner splits its range).
    """

    first: float = 0.5
    factor: float = 1.6
    max: float = 15.0
    timeout: float = 6 * 3600.0
    late: float = 0.25
    """Past its expected time, a running job is polled again after this share of its running
    time: a job that takes longer than expected is seen complete at most this share late."""
    queued_late: float = 0.5
    """A job still queued (``UploadComplete``) past its expected time is polled again after this
    share of its age: no status says when the org will start it, and a job that waits behind
    others waits for their whole processing."""
    max_expected: float = 120.0
    """The longest single wait for a job expected to take longer (the timeout still bounds it)."""

    def delay(self, attempt: int) -> float:
        return float(min(self.max, self.first * self.factor ** max(0, attempt)))


def poll_delay(
    attempt: int,
    elapsed: float,
    expected: float | None,
    policy: PollPolicy = PollPolicy(),
    *,
    running: float | None = None,
) -> float:
    """Seconds until the next poll of a job that is ``elapsed`` seconds old.

    Pure. ``expected`` is how long the job's processing should take, ``running`` how long ago it
    was first seen ``InProgress`` (None while it was only seen queued, ``UploadComplete``).
    Without an ``expected`` duration: the backoff ``policy.delay(attempt)``. With one: the time
    left until then, counted from when it was seen running (else from its creation: a queued job
    may start at once); once that has passed, the larger of the backoff (within ``[first, max]``)
    and a share of the job's age: ``policy.late`` of its running time, or ``policy.queued_late``
    of its age while it waits in the org's queue, whose end no status tells (a job in a long
    queue costs a few polls, not one per backoff step).
    """
    if expected is None:
        return policy.delay(attempt)
    age = elapsed if running is None else running
    left = expected - age
    if left >= policy.first:
        return min(left, policy.max_expected)
    share = policy.late * age if running is not None else policy.queued_late * elapsed
    return min(policy.max, max(policy.delay(attempt), share))


def next_poll(
    state: str,
    attempt: int,
    now: datetime,
    policy: PollPolicy = PollPolicy(),
    *,
    elapsed: float = 0.0,
    expected: float | None = None,
    running: float | None = None,
) -> datetime | None:
    """When to poll a job again: None if ``state`` is terminal, else ``now + poll_delay(...)``.

    Pure. ``attempt`` counts the polls already made (0 after the create call); ``elapsed`` is the
    job's age, ``expected`` its expected processing time, when known (:class:`JobPace`), and
    ``running`` how long ago it was first seen ``InProgress``.
    """
    if state in TERMINAL_STATES:
        return None
    return now + timedelta(seconds=poll_delay(attempt, elapsed, expected, policy, running=running))


PACE_WINDOW = 32
"""Completed jobs a :class:`JobPace` remembers (the newest)."""


class JobPace:
    """How long this org takes to process a query job of ``n`` records, learnt from the jobs already
    completed: ``fixed + n x per_record``, where ``fixed`` is the shortest reported processing time
    and ``per_record`` the median extra time per record of the others. Shared by the Bulk reads of
    one worker (thread-safe); see the module docstring for the scout.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seen: deque[tuple[int, float, str]] = deque(maxlen=PACE_WINDOW)
        self._scout: str | None = None

    def observe(self, info: JobInfo) -> None:
        """Learn from a JobComplete ``info`` (others, and infos without a processing time, are ignored)."""
        if info.state != "JobComplete" or info.processing_ms is None:
            return
        with self._cond:
            self._seen.append(
                (max(0, info.records_processed), max(0.0, info.processing_ms / 1000.0), info.object)
            )
            self._cond.notify_all()

    def expected(self, records: int | None, sobject: str = "") -> float | None:
        """Seconds a job of ``records`` records of ``sobject`` should take; None before any job
        completed. The time per record is the object's own once one of its jobs completed: the
        org processes bytes, and an object's rows are wider or narrower than another's (measured on
        a 2M-record ``realistic`` full: Task partitions ran 2-3x what Account's rate predicted, and
        cost 4 to 8 polls each)."""
        with self._cond:
            seen = list(self._seen)
        if not seen:
            return None
        quickest = min(range(len(seen)), key=lambda i: seen[i][1])
        fixed = seen[quickest][1]
        rates = [((t - fixed) / n, o) for i, (n, t, o) in enumerate(seen) if n > 0 and i != quickest]
        if not rates and records is not None and seen[quickest][0] > 0:
            # one job with rows is known: its time is taken as its rows' (fixed and per-record costs
            # cannot be told apart yet). Taking it as fixed made every job look as quick as the
            # first, often a small one, and polled each larger job again and again (measured: a
            # 2M-record realistic full, jobs of 60k-117k rows polled 0.3 s apart after a 17k-row one)
            n, t, _ = seen[quickest]
            return t * max(0, records) / n
        own = [r for r, o in rates if sobject and o == sobject]
        per_record = statistics.median(own or [r for r, _ in rates]) if rates else 0.0
        return fixed + per_record * max(0, records or 0)

    def scout(self, job_id: str) -> bool:
        """Whether ``job_id`` polls with the plain backoff while nothing is known: the first job to
        ask is the scout until it ends (:meth:`release`); the others wait for what it learns."""
        with self._cond:
            if self._scout is None:
                self._scout = job_id
            return self._scout == job_id

    def release(self, job_id: str) -> None:
        with self._cond:
            if self._scout == job_id:
                self._scout = None
                self._cond.notify_all()

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when a job completes or the scout ends (then look again)."""
        with self._cond:
            self._cond.wait(timeout=max(0.0, seconds))

    def wake(self) -> None:
        """Wake the sleeping jobs (a list call saw jobs end: :class:`~engine.extract.job_board.JobBoard`)."""
        with self._cond:
            self._cond.notify_all()


class ReadGate:
    """What a worker asks Salesforce about its jobs by what it can read: a job's status is asked
    only while fewer jobs are being read or asked about than the worker has threads.

    A worker whose threads all read results cannot read a job that completes now any sooner than
    when one of them ends, so a status call made meanwhile only costs an API call (measured on a
    1M-record full: jobs seen complete 10 s and more before a thread was free to read them, polled
    5 to 9 times each). A poll waits here for room (:meth:`polling`); the task layer counts its
    reads (:meth:`reading`), from the job's completion to its last page. Shared by a worker's
    tasks (thread-safe); waiters are woken one at a time, in the order they came.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._cond = threading.Condition()
        self._busy = 0
        self.waiting = 0
        """Status calls waiting for room now."""

    @contextmanager
    def polling(self) -> Iterator[None]:
        """Hold a place while one status call is made (blocks while the worker is full)."""
        with self._cond:
            self.waiting += 1
            self._cond.wait_for(lambda: self._busy < self.capacity)
            self.waiting -= 1
            self._busy += 1
        try:
            yield
        finally:
            self._leave()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold a place while a completed job's results are read (never blocks: the job is done)."""
        with self._cond:
            self._busy += 1
        try:
            yield
        finally:
            self._leave()

    def _leave(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify()


def new_job_paces() -> dict[str, JobPace]:
    """One :class:`JobPace` per Bulk API, ``bulk2`` and ``bulk1`` (a worker's): a PK-chunked
    Bulk 1.0 job, whose chunks run side by side, does not take a Bulk 2.0 job's time."""
    return {"bulk2": JobPace(), "bulk1": JobPace()}


class JobPoller(Protocol):
    def get_job(self, job_id: str) -> JobInfo: ...

    def abort_job(self, job_id: str) -> JobInfo: ...


@dataclass(frozen=True)
class Pacing:
    """What paces one job's polls: the worker's :class:`JobPace` and the job's estimated records."""

    pace: JobPace
    records: int | None = None
    sobject: str = ""
    """The job's object: its own completed jobs pace it best (:meth:`JobPace.expected`)."""
    gate: ReadGate | None = None
    """The worker's :class:`ReadGate`: a status call waits until the worker could read the job."""
    board: JobBoard | None = None
    """The worker's :class:`~engine.extract.job_board.JobBoard`: one list call answers the status of
    all the worker's waiting Bulk API 2.0 jobs (None: each job is asked about on its own)."""

    def ended(self, job_id: str) -> bool:
        """Whether a list call showed ``job_id`` ended (its sleep is cut short: nothing to wait for)."""
        return self.board is not None and self.board.ended(job_id)

    def next_list(self) -> float | None:
        """When the worker's jobs next look at the list (:meth:`JobBoard.next_list`), if they do."""
        return self.board.next_list() if self.board is not None else None

    def learn(self, info: JobInfo) -> None:
        """Let the pace learn from ``info``, a job seen ended. A job seen ended in a list has no
        processing time or record count: its time from creation to its end less the time the list
        calls saw it queued is taken for its processing time, and its expected records for its
        count (a queue taken for processing made every later job look slower, and polled late)."""
        if info.processing_ms is None and info.created_date is not None and info.modstamp is not None:
            wall = (info.modstamp - info.created_date).total_seconds()
            queued = self.board.queued_for(info.id) if self.board is not None else 0.0
            processing = max(0.0, wall - queued)
            info = replace(info, records_processed=self.records or 0, processing_ms=int(processing * 1000))
        self.pace.observe(info)

    def known(self) -> float | None:
        """The job's expected duration by the pace alone (None: nothing learnt yet)."""
        return self.pace.expected(self.records, self.sobject)

    def expected(self, job_id: str, policy: PollPolicy) -> float | None:
        """The job's expected duration; ``policy.max`` for a job that is not the scout while
        nothing is known (it is woken early when the scout learns something)."""
        exp = self.known()
        if exp is None and not self.pace.scout(job_id):
            return float("inf")
        return exp


def wait_for_job(
    api: JobPoller,
    job: JobInfo,
    *,
    clock: Clock,
    sleep: Callable[[float], None] = time.sleep,
    policy: PollPolicy = PollPolicy(),
    pacing: Pacing | None = None,
) -> JobInfo:
    """Poll until the job is terminal; the job as last seen (learnt by ``pacing``'s pace).

    Raises:
        SalesforceQueryTimeout: still running after ``policy.timeout`` (the job is aborted).
    """
    started = clock.monotonic()
    attempt = 1  # the first wait was the backoff's first step
    info = job
    wait = _Wait(clock, sleep, policy, pacing, job.id, started)
    running_since: float | None = None
    try:
        _first_wait(wait, policy, pacing, job.id, started)
        while True:
            informed = pacing is not None and pacing.known() is not None
            gate = pacing.gate if pacing is not None else None
            with gate.polling() if gate is not None else nullcontext():
                info, at = _poll_once(api, info, attempt, clock, policy, pacing, started, running_since)
            if running_since is None and info.state == "InProgress":
                running_since = clock.monotonic()
                if at is not None:  # seen running for the first time: paced from now on
                    at = _again(info, attempt, clock, policy, pacing, started, running_since)
            if at is None:
                if pacing is not None:
                    pacing.learn(info)
                return info
            due = functools.partial(_due, info, attempt, clock, policy, pacing, started, running_since)
            wait.until(_monotonic_at(clock, at), informed=informed, again=due)
            attempt += 1
    finally:
        if pacing is not None:
            pacing.pace.release(job.id)


def _first_wait(wait: _Wait, policy: PollPolicy, pacing: Pacing | None, job_id: str, started: float) -> None:
    """No status call right after the create (a job just created is never done): wait until the
    job should be done by the pace, else the backoff's first step (the scout, or no pacing), else
    (another job is the scout) until the scout learns something, at most ``policy.max``."""
    expected = pacing.expected(job_id, policy) if pacing is not None else None
    if expected is None:
        wait.until(started + policy.delay(0), informed=False)
    elif expected == float("inf"):
        wait.until(started + policy.max, informed=False)
    else:
        wait.until(started + min(max(expected, policy.first), policy.max_expected), informed=True)


@dataclass
class _Wait:
    """Sleeps until a poll is due. A sleep the pace cut short (another job completed, or the scout
    ended) goes on to the same deadline, or to the job's expected end when the wait was set before
    anything was known: a completion elsewhere never costs this job a status call by itself."""

    clock: Clock
    sleep: Callable[[float], None]
    policy: PollPolicy
    pacing: Pacing | None
    job_id: str
    started: float

    def until(self, due: float, *, informed: bool, again: Callable[[], float] | None = None) -> None:
        """Sleep until ``due`` (monotonic). A ``due`` set while nothing was known (``informed``
        False) is replaced once the pace learns something: by ``again()``, the next poll as the pace
        now schedules it from what the last poll saw (a job seen running is asked again when its
        processing should end, not at once); before any poll, by the job's expected end."""
        while True:
            wake = due
            listing = self.pacing.next_list() if self.pacing is not None else None
            if listing is not None:
                wake = min(due, listing)  # the worker's next list answers this job too
            left = wake - self.clock.monotonic()
            if left <= 0:
                return
            self.sleep(left)
            if self.pacing is None:
                return  # a plain sleep is not cut short
            if self.pacing.ended(self.job_id):
                return  # a list call saw the job end: its status costs no call
            if not informed:
                expected = self.pacing.known()
                if expected is not None:
                    informed = True
                    now = self.clock.monotonic()
                    due = max(now, self.started + expected) if again is None else again()


def _poll_once(
    api: JobPoller, info: JobInfo, attempt: int, clock: Clock, policy: PollPolicy,
    pacing: Pacing | None, started: float, running_since: float | None = None,
) -> tuple[JobInfo, datetime | None]:  # fmt: skip
    """One status call; the job and when to look again (None: terminal).

    Raises:
        SalesforceQueryTimeout: still running after ``policy.timeout`` (the job is aborted).
    """
    info = api.get_job(info.id)
    at = _again(info, attempt, clock, policy, pacing, started, running_since)
    if at is not None and clock.monotonic() - started > policy.timeout:
        api.abort_job(info.id)
        raise SalesforceQueryTimeout(
            object=info.object, what=f"job still {info.state} after {policy.timeout:.0f}s"
        )
    return info, at


def _again(
    info: JobInfo, attempt: int, clock: Clock, policy: PollPolicy, pacing: Pacing | None,
    started: float, running_since: float | None,
) -> datetime | None:  # fmt: skip
    """When to poll ``info``'s job again (None: it is terminal)."""
    now = clock.monotonic()
    elapsed = now - started
    expected = pacing.expected(info.id, policy) if pacing is not None else None
    running = None if running_since is None else now - running_since
    if expected == float("inf"):  # not the scout, and nothing learnt yet: look again in ``max``
        expected = (elapsed if running is None else running) + policy.max
    return next_poll(info.state, attempt, clock.now(), policy, elapsed=elapsed, expected=expected,
                     running=running)  # fmt: skip


def _monotonic_at(clock: Clock, at: datetime) -> float:
    """``at`` (the clock's time) as a deadline on its monotonic clock."""
    return clock.monotonic() + max(0.0, (at - clock.now()).total_seconds())


def _due(
    info: JobInfo, attempt: int, clock: Clock, policy: PollPolicy, pacing: Pacing | None,
    started: float, running_since: float | None,
) -> float:  # fmt: skip
    """When to poll ``info``'s job (as last seen) again, as a monotonic deadline; now for a
    terminal state (never asked for one: the loop returns first)."""
    at = _again(info, attempt, clock, policy, pacing, started, running_since)
    return clock.monotonic() if at is None else _monotonic_at(clock, at)


@dataclass(frozen=True)
class _ListedPoller:
    """A job's status from its worker's :class:`~engine.extract.job_board.JobBoard` (one list call
    for all the worker's waiting jobs), else from the job itself."""

    api: Bulk2Api
    board: JobBoard

    def get_job(self, job_id: str) -> JobInfo:
        return self.board.status(job_id, self.api.list_jobs) or self.api.get_job(job_id)

    def abort_job(self, job_id: str) -> JobInfo:
        return self.api.abort_job(job_id)


class PageSize:
    """Result pages bounded by bytes, not rows: ``maxRecords`` for the next request from the
    row width (CSV bytes per row) seen so far, so a page of wide rows holds fewer of them.

    ``widths`` is shared by the reads of one worker (keyed by ``key``, the query's object and
    SELECT list): the first page of a later read already knows the width. Before any page the
    width is taken as :data:`DEFAULT_ROW_BYTES`.
    """

    def __init__(self, max_bytes: int, key: str = "", widths: dict[str, float] | None = None) -> None:
        self.max_bytes = max_bytes
        self.key = key
        self.widths = widths if widths is not None else {}

    def rows(self, max_records: int | None) -> int:
        width = self.widths.get(self.key, DEFAULT_ROW_BYTES)
        fit = max(1, int(self.max_bytes // max(1.0, width)))
        return fit if not max_records else min(max_records, fit)

    def observe(self, page: ResultPage) -> None:
        if page.records > 0 and page.data:
            self.widths[self.key] = len(page.data) / page.records


DEFAULT_ROW_BYTES = 1024.0
"""The row width assumed before a page of the query was seen (a wide row; narrower objects
get larger pages from their second request on)."""


@dataclass(frozen=True)
class ResultPage:
    """One results page: the CSV bytes (gunzipped, with its header row) and the next locator."""

    data: bytes
    records: int
    next_locator: str | None


class Bulk2Api:
    """Bulk API 2.0 query jobs of one client; every call is counted as ``bulk2_job`` or
    ``bulk2_results_page``."""

    def __init__(self, client: SalesforceClient) -> None:
        self.client = client

    def _path(self, *parts: str) -> str:
        return "/".join(("jobs/query", *parts))

    def create_query_job(
        self, soql: Soql | str, *, operation: Operation = "query", sobject: str = ""
    ) -> JobInfo:
        """``POST /jobs/query``.

        Raises:
            SalesforceBulkUnsupported: Bulk cannot run this query (``INVALIDENTITY``, or the
                ``API_ERROR`` answer to compound fields and aggregates).
            SalesforceApiLimit: the daily Bulk job allowance is used up.
        """
        name = sobject or (soql.sobject if isinstance(soql, Soql) else "")
        body = {"operation": operation, "query": str(soql), "contentType": "CSV",
                "columnDelimiter": "COMMA", "lineEnding": "LF"}  # fmt: skip
        try:
            resp = self.client.request("POST", self._path(), "bulk2_job", json=body, sobject=name)
        except SalesforceRequestFailed as e:
            if e.details.get("sf_code") == "API_ERROR" and e.details.get("status") == 400:
                raise SalesforceBulkUnsupported(
                    object=name, sf_code="API_ERROR", what=e.details.get("what", "")
                ) from e
            raise
        return JobInfo.from_json(resp.json())

    def get_job(self, job_id: str) -> JobInfo:
        return JobInfo.from_json(self.client.get_json(self._path(job_id), "bulk2_job"))

    def abort_job(self, job_id: str) -> JobInfo:
        resp = self.client.request("PATCH", self._path(job_id), "bulk2_job", json={"state": "Aborted"})
        return JobInfo.from_json(resp.json())

    def delete_job(self, job_id: str) -> None:
        self.client.request("DELETE", self._path(job_id), "bulk2_job")

    def list_jobs(self, wanted: Collection[str], max_pages: int = 3) -> tuple[dict[str, JobInfo], int]:
        """The org's Bulk API 2.0 query jobs among ``wanted``, as ``GET /jobs/query`` lists them
        (no counts or times), and the pages read: pages are read until every wanted job is found,
        the list ends, or ``max_pages``."""
        path = self._path()
        params: dict[str, str] | None = {"jobType": "V2Query"}
        found: dict[str, JobInfo] = {}
        pages = 0
        while True:
            body = self.client.get_json(path, "bulk2_job", params=params)
            pages += 1
            for record in body.get("records") or []:
                if record.get("id") in wanted:
                    found[str(record["id"])] = JobInfo.from_json(record)
            nxt = body.get("nextRecordsUrl")
            if body.get("done", True) or not nxt or len(found) == len(wanted) or pages >= max_pages:
                return found, pages
            path, params = str(nxt), None

    def wait(
        self, job: JobInfo, *, sleep: Callable[[float], None] = time.sleep, policy: PollPolicy = PollPolicy(),
        pacing: Pacing | None = None,
    ) -> JobInfo:  # fmt: skip
        """Poll until terminal and turn Failed/Aborted into typed errors."""
        board = pacing.board if pacing is not None else None
        poller: JobPoller = self if board is None else _ListedPoller(self, board)
        if board is not None:
            board.enter(job.id)
        try:
            clock = self.client.clock
            info = wait_for_job(poller, job, clock=clock, sleep=sleep, policy=policy, pacing=pacing)
        finally:
            if board is not None:
                board.leave(job.id)
        if info.state != "JobComplete":
            raise classify_failed_job(info.object or job.object, info.state, info.error_message)
        return info

    # --- results -------------------------------------------------------------------------

    def _page(self, url_or_path: str, params: dict[str, Any] | None) -> ResultPage:
        resp: httpx.Response = self.client.request(
            "GET", url_or_path, "bulk2_results_page", params=params, headers={"Accept": "text/csv"}
        )
        loc = resp.headers.get("Sforce-Locator")
        n = resp.headers.get("Sforce-NumberOfRecords")
        self.client.usage.add_result_bytes(len(resp.content))
        return ResultPage(
            data=resp.content,
            records=int(n) if n and n.isdigit() else -1,
            next_locator=None if loc in (None, "", "null") else loc,
        )

    def result_page(
        self, job_id: str, locator: str | None = None, max_records: int | None = DEFAULT_MAX_RECORDS
    ) -> ResultPage:
        """One page; retried as a whole on transient errors (locators are re-fetchable)."""
        params: dict[str, Any] = {}
        if locator:
            params["locator"] = locator
        if max_records:
            params["maxRecords"] = max_records
        return self._page(self._path(job_id, "results"), params or None)

    def iter_pages(
        self, job_id: str, max_records: int | None = DEFAULT_MAX_RECORDS, *, size: PageSize | None = None
    ) -> Iterator[ResultPage]:
        """Every page in order, one at a time (memory: one page).

        With ``size``, each request asks for the rows that fit its byte budget at the row width
        seen so far (:class:`PageSize`); the locator is a row offset, so page sizes may change
        from one request to the next. The previous page is released before the next is fetched.
        """
        locator: str | None = None
        while True:
            rows = size.rows(max_records) if size is not None else max_records
            page = self.result_page(job_id, locator, rows)
            if size is not None:
                size.observe(page)
            locator = page.next_locator
            yield page
            del page  # the consumer is done with it: not held while the next page downloads
            if locator is None:
                return

    def result_page_urls(self, job_id: str, max_records: int | None = DEFAULT_MAX_RECORDS) -> Iterator[str]:
        """Result page URLs from ``GET .../resultPages`` (API 58.0+), following its paging."""
        params: dict[str, Any] | None = {"maxRecords": max_records} if max_records else None
        path = self._path(job_id, "resultPages")
        while True:
            body = self.client.get_json(path, "bulk2_job", params=params)
            for p in body.get("resultPages", []):
                yield str(p["resultUrl"])
            nxt = body.get("nextRecordsUrl")
            if body.get("done", True) or not nxt:
                return
            path, params = nxt, None

    def fetch_result_url(self, url: str) -> ResultPage:
        return self._page(url, None)

    def iter_pages_parallel(
        self,
        job_id: str,
        *,
        max_records: int | None = DEFAULT_MAX_RECORDS,
        streams: int = 4,
        size: PageSize | None = None,
    ) -> Iterator[ResultPage]:
        """Pages in order, downloaded ``streams`` at a time through ``resultPages``.

        At most ``streams`` pages are in flight or buffered, so memory stays bounded by
        ``streams`` pages. Needs API 58.0 or later.
        """
        if streams < 1:
            raise ValueError("streams must be >= 1")
        urls = self.result_page_urls(job_id, size.rows(max_records) if size is not None else max_records)
        with ThreadPoolExecutor(max_workers=streams, thread_name_prefix="bulk2-page") as pool:
            inflight: deque[Future[ResultPage]] = deque()
            try:
                for url in urls:
                    inflight.append(pool.submit(self.fetch_result_url, url))
                    if len(inflight) >= streams:
                        yield inflight.popleft().result()
                while inflight:
                    yield inflight.popleft().result()
            finally:
                for f in inflight:
                    f.cancel()

    def run_query(
        self,
        soql: Soql | str,
        *,
        operation: Operation = "query",
        max_records: int | None = DEFAULT_MAX_RECORDS,
        streams: int = 1,
        delete_after: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        policy: PollPolicy = PollPolicy(),
        on_complete: Callable[[], None] | None = None,
        on_created: Callable[[JobInfo], None] | None = None,
        size: PageSize | None = None,
        pacing: Pacing | None = None,
    ) -> Iterator[ResultPage]:
        """Create a job, wait for it, yield its pages; delete the job afterwards when ``delete_after``
        (a job stopped before it ended is aborted either way).

        ``streams > 1`` uses ``resultPages`` and parallel downloads (API 58.0+).
        ``on_complete`` is called once the job is complete, before the first page is fetched (a Dask
        task that left its worker's thread pool while Salesforce processed the job rejoins there).
        ``on_created`` gets the new job's info (its ``created_date`` bounds when the job read the org).
        ``pacing`` paces the status polls by the jobs already completed (:class:`JobPace`).
        """
        job = self.create_query_job(soql, operation=operation)
        if on_created is not None:
            on_created(job)
        failed = True
        done: JobInfo | None = None
        try:
            done = self.wait(job, sleep=sleep, policy=policy, pacing=pacing)
            if on_complete is not None:
                on_complete()
            if streams > 1:
                yield from self.iter_pages_parallel(
                    job.id, max_records=max_records, streams=streams, size=size
                )
            else:
                yield from self.iter_pages(job.id, max_records, size=size)
            failed = False
        finally:
            if delete_after or done is None:
                try:
                    self._cleanup(job.id, known_terminal=done is not None, delete=delete_after)
                except SfvaultError:
                    if not failed:
                        raise
                    # the job's own failure is the error to report; a failed cleanup only
                    # leaves a job that Salesforce deletes after 7 days
                    log.warning("could not stop or delete Bulk job after a failure", extra={"job": job.id})

    def _cleanup(self, job_id: str, *, known_terminal: bool = False, delete: bool = True) -> None:
        """Abort the job unless it is known to have finished (one call less), and delete it when
        ``delete``: a job stopped early must not go on reading the org."""
        if not known_terminal and not self.get_job(job_id).terminal:
            self.abort_job(job_id)
        if delete:
            self.delete_job(job_id)
