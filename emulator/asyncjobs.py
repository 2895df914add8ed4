"""What the emulator's Bulk API query jobs share, 1.0 (:mod:`emulator.bulk1`) and 2.0
(:mod:`emulator.bulk2`): job ids, the table of jobs (found by their 18- or 15-character id), the
thread pool their work runs in, the cap on running work of the ``realistic`` profile and
shutdown. A status call of either API answers at once with the state so far. Each API keeps its
own job record, states and errors.
"""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from emulator import ids as idmod
from emulator.profiles import Randomness

if TYPE_CHECKING:
    from emulator.context import Org


def result_failure(
    forced_error: str | None, rows: int, timeout_rows: int, timeout_message: str
) -> str | None:
    """Why a materialised result fails instead of completing: an injected fault's message, or
    ``timeout_message`` above ``timeout_rows`` (the profile's ``query_timeout_rows``, 0 = none);
    None if it completes."""
    if forced_error is not None:
        return forced_error
    if timeout_rows and rows > timeout_rows:
        return timeout_message
    return None


class _AbortableJob(Protocol):
    abort: threading.Event


J = TypeVar("J", bound=_AbortableJob)


class AsyncJobManager(Generic[J]):
    """The jobs of one org and the machinery that runs them; ``id_offset`` keeps the ids of two
    managers apart (both number from the same clock base)."""

    def __init__(
        self, org: Org, directory: Path, *, workers: int, thread_prefix: str, id_offset: int = 0
    ) -> None:
        self.org = org
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, J] = {}
        self._lock = threading.Lock()
        self._run_cond = threading.Condition()
        self._running = 0
        self._counter = 0
        self._id_base = (int(time.time()) % 1_000_000) * 1_000_000 + id_offset
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_prefix)
        self._materialise = threading.Semaphore(4)
        self.random = Randomness(org.profile.seed)

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return idmod.make_id(prefix, self._id_base + self._counter)

    def _find(self, job_id: str) -> J | None:
        """The job of an 18-character id, or of its 15-character form; None if there is none."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None and len(job_id) == 15:
                job = next((j for k, j in self._jobs.items() if k[:15] == job_id), None)
        return job

    def _acquire_slot(self, job: J) -> None:
        """Wait for a place under the profile's ``max_running_jobs`` (none if 0, or once aborted)."""
        with self._run_cond:
            while True:
                cap = self.org.profile.max_running_jobs
                if job.abort.is_set() or cap <= 0 or self._running < cap:
                    self._running += 1
                    return
                self._run_cond.wait(0.5)

    def _release_slot(self) -> None:
        with self._run_cond:
            self._running -= 1
            self._run_cond.notify_all()

    @property
    def running(self) -> int:
        with self._run_cond:
            return self._running

    def all(self) -> list[J]:
        with self._lock:
            return list(self._jobs.values())

    def shutdown(self) -> None:
        for job in self.all():
            job.abort.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.directory, ignore_errors=True)
