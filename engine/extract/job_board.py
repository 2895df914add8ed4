"""One status call for all the Bulk API 2.0 query jobs a worker waits for (decision 0045).

``GET /jobs/query`` lists the org's query jobs with their state, up to 1,000 a page, in no set
order (SALESFORCE_API.md §3.2). A worker waits for several jobs at once, so when one of them is
due to be asked about, one list call answers it and every other job the worker waits for, and a
job the list shows ended is woken at once instead of at its own next poll. Measured on a
2M-record full: 60-98 status calls for 23 jobs, one per job and poll.

The board lists only while it saves calls:

* one job waiting is asked about on its own (one call either way, and the job's own status has
  its record count and processing time, which the list leaves out);
* a job the list does not show (a busy org lists more than the pages the board reads), or shows
  ``Failed`` or ``Aborted`` (the list has no error message), is asked about on its own;
* a list call that answers no more waiting jobs than it read pages is unhelpful; after
  ``unhelpful_limit`` of them the board stops listing for the rest of the backup.

A list at most ``fresh`` seconds old answers without a call, so the jobs of a worker share one
call per ``fresh`` seconds at most; while jobs wait, they look at the list at least every
``every`` seconds (:meth:`JobBoard.next_list`). A young job takes a list only if it is at most
``share`` of the job's age old: a job 0.4 s old (an incremental's, on a quick org) is not told
"in progress" by a list of 0.9 s ago; measured on a 2M-record ``fast`` incremental, some jobs were
read 1.3-1.6 s after their end that way in most runs, and the job took 3.0-3.5 s instead of 2.2 s.
Thread-safe; one board per worker and backup job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection

from engine.extract.bulk2 import JobInfo

JobLister = Callable[[Collection[str]], tuple[dict[str, JobInfo], int]]
"""Lists the jobs among the given ids: ``(found, pages read)`` (:meth:`Bulk2Api.list_jobs`)."""
LISTED_STATES = frozenset({"UploadComplete", "InProgress", "JobComplete"})
"""States a list record says all there is to say about (a failed job's error is not listed)."""


class JobBoard:
    """The listed states of a worker's waiting Bulk API 2.0 query jobs (see the module docstring)."""

    def __init__(
        self,
        *,
        fresh: float = 1.0,
        share: float = 0.25,
        every: float = 1.5,
        unhelpful_limit: int = 3,
        on_change: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fresh = fresh
        self.share = share
        """A list answers a job when it is at most this share of the job's age old (and ``fresh``):
        the pace's own polls already come at 1.6x the age before (up to 60% of it late)."""
        self.every = max(every, fresh)
        """While jobs wait, a list call is made at least this often (see :meth:`next_list`)."""
        self.unhelpful_limit = unhelpful_limit
        self.on_change = on_change
        """Called after each list call (the worker's pace wakes its sleeping jobs)."""
        self._clock = clock
        self._cond = threading.Condition()
        self._waiting: set[str] = set()
        self._listed: dict[str, JobInfo] = {}
        self._entered: dict[str, float] = {}
        self._queued_until: dict[str, float] = {}
        """When a list call last showed the job queued (``UploadComplete``)."""
        self._listed_at: float | None = None
        self._covered: frozenset[str] = frozenset()
        """The jobs the last list call looked for (a job that came later is not in it)."""
        self._listing = False
        self._unhelpful = 0
        self.calls = 0
        """List calls made (pages read)."""

    @property
    def active(self) -> bool:
        return self._unhelpful < self.unhelpful_limit

    def enter(self, job_id: str) -> None:
        """``job_id`` waits for its end: each list call looks for it."""
        with self._cond:
            self._waiting.add(job_id)
            self._entered[job_id] = self._clock()

    def leave(self, job_id: str) -> None:
        with self._cond:
            self._waiting.discard(job_id)
            self._listed.pop(job_id, None)
            self._entered.pop(job_id, None)
            self._queued_until.pop(job_id, None)

    def queued_for(self, job_id: str) -> float:
        """Seconds ``job_id`` waited in the org's queue at least, by the list calls (0 when no list
        call saw it queued): a listed job has no processing time, and its time from creation to
        its end is queue and processing together."""
        with self._cond:
            since = self._entered.get(job_id)
            until = self._queued_until.get(job_id)
        return 0.0 if since is None or until is None else max(0.0, until - since)

    def next_list(self) -> float | None:
        """When the waiting jobs next look at the list (monotonic), whatever their own polls say;
        None while the board does not list. The jobs' own polls, paced by the same pace, fall in
        step once one list answers them all: measured on a 2M-record full, lists 4-6 s apart and
        jobs seen ended up to 20 s late. A list every ``every`` seconds bounds that, for one call."""
        with self._cond:
            if not self.active or len(self._waiting) < 2 or self._listed_at is None:
                return None
            return self._listed_at + self.every

    def _max_age(self, job_id: str, now: float) -> float:
        """How old a list may be to answer ``job_id`` at ``now`` (``fresh``, less for a young job)."""
        entered = self._entered.get(job_id)
        if entered is None:
            return self.fresh
        return min(self.fresh, self.share * (now - entered))

    def ended(self, job_id: str) -> bool:
        """Whether the last list call showed ``job_id`` ended (its next status costs no call)."""
        with self._cond:
            info = self._listed.get(job_id)
        return info is not None and info.terminal

    def status(self, job_id: str, list_jobs: JobLister) -> JobInfo | None:
        """``job_id`` as listed at most ``fresh`` seconds ago, listing the jobs now if the last
        list is older (or waiting for the list call another job is making); None when the job must
        be asked about on its own (see the module docstring)."""
        with self._cond:
            while True:
                info = self._listed.get(job_id)
                if info is not None and info.terminal:
                    return info if info.state in LISTED_STATES else None
                if not self.active or len(self._waiting) < 2:
                    return None
                now = self._clock()
                recent = (self._listed_at or 0.0) >= now - self._max_age(job_id, now)
                if job_id in self._covered and recent:
                    return info if info is None or info.state in LISTED_STATES else None
                if not self._listing:
                    break
                self._cond.wait()
            self._listing = True
            wanted = frozenset(self._waiting)
        started = self._clock()
        try:
            found, pages = list_jobs(wanted)
        except BaseException:
            with self._cond:
                self._listing = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._listing = False
            self._listed_at = started
            self._covered = wanted
            self.calls += pages
            for i in wanted & self._waiting:
                if i not in found:  # not on the pages read: no older state stands for it
                    self._listed.pop(i, None)
                    continue
                self._listed[i] = found[i]
                if found[i].state == "UploadComplete":
                    self._queued_until[i] = started
            if len(wanted & found.keys()) <= pages:
                self._unhelpful += 1
            self._cond.notify_all()
            info = self._listed.get(job_id)
        if self.on_change is not None:
            self.on_change()
        return info if info is not None and info.state in LISTED_STATES else None
