"""Runs jobs in the background of the API process: backups on the Dask cluster, compares and exports.

A bounded thread pool (``settings.max_concurrent_jobs``) runs the blocking engine calls, so a
request handler only submits work and answers. Backups share one Dask client, made on first use
(``settings.scheduler_address``, or an embedded LocalCluster) and closed at shutdown.

Backups are admitted by the job service first (:class:`engine.jobs.service.JobService`: the
policy, then the ``queued`` row, whose id the caller answers at once); :meth:`JobRunner.start_backup`
then runs the admitted job in the pool with its heartbeat. Live per-object progress of running
backups is kept in memory (:meth:`JobRunner.progress`); the catalog has the final rows.

Exports and compares are submitted by their routes through :meth:`JobRunner.submit_queued`, under
the names ``export <id>`` / ``compare <id>`` (:func:`queued_job_name`).
:meth:`JobRunner.recover_queued` (at service start and on each scheduler tick) closes the ones a
dead process left ``running`` (SFV-713) and hands the ``queued`` ones that this process is not
already running back to the pool.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from engine.clock import Clock
from engine.config import Settings
from engine.errors import ServiceShuttingDown, SfvaultError
from engine.jobs.planning import JobOptions
from engine.jobs.runner import BackupResult, Progress
from engine.jobs.service import Admitted, JobHeartbeat, JobService, org_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from engine.jobs.queued import QueuedKind, QueuedRecovery

log = logging.getLogger("sfvault.api.jobs")
T = TypeVar("T")
DaskFactory = Callable[[], Any]


def queued_job_name(kind: str, row_id: str) -> str:
    """The runner's name of a queued export or compare (:meth:`JobRunner.submit_queued`)."""
    return f"{kind} {row_id}"


class JobRunner:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock,
        dask_factory: DaskFactory | None = None,
        client_overrides: dict[str, Any] | None = None,
        job_options: JobOptions | None = None,
    ) -> None:
        self.settings = settings
        self._job_options = job_options
        self.clock = clock
        self._dask_factory = dask_factory
        self._client_overrides = client_overrides
        self._pool = ThreadPoolExecutor(
            max_workers=settings.max_concurrent_jobs, thread_name_prefix="sfvault-job"
        )
        self._lock = threading.Lock()
        self._dask: Any = None
        self._owns_dask = False
        self._progress: dict[str, dict[str, dict[str, Any]]] = {}
        self._cancels: dict[str, threading.Event] = {}
        self._waiting: dict[str, tuple[JobHeartbeat, JobService]] = {}
        """Admitted backups whose thread has not started yet (closed at shutdown if it never does)."""
        self._in_flight: Counter[str] = Counter()
        self._closing = False

    # --- generic work ---------------------------------------------------------------------

    def submit(self, name: str, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` in the pool; its exception is logged (the job's own code records it)."""
        if self._closing:
            raise ServiceShuttingDown()
        with self._lock:
            self._in_flight[name] += 1

        def logged() -> T:
            try:
                return fn()
            except SfvaultError as err:  # a coded error is one line (its code says what to do)
                log.error("background job %s failed: %s", name, err)
                raise
            except BaseException:
                log.exception("background job %s failed", name)
                raise
            finally:
                with self._lock:
                    self._in_flight[name] -= 1
                    if self._in_flight[name] <= 0:
                        del self._in_flight[name]

        return self._pool.submit(logged)

    def in_flight(self, name: str) -> bool:
        """Whether work submitted under ``name`` is waiting in the pool or running."""
        with self._lock:
            return self._in_flight[name] > 0

    # --- queued exports and compares ------------------------------------------------------

    def recover_queued(
        self, sessions: sessionmaker[Session], *, now: datetime | None = None, startup: bool = False
    ) -> QueuedRecovery:
        """Close exports and compares that a dead process left ``running`` (SFV-713, partial
        files removed), sweep compare details, and submit the ``queued`` rows this process is not
        already running (:func:`engine.jobs.queued.recover_queued`).

        At ``startup`` every queued row is submitted; on a tick only rows queued longer than the
        stale limit (a route submits its own row right after recording it, and another live
        process may still be about to run its rows).
        """
        from engine.jobs.queued import recover_queued

        now = now or self.clock.now()
        before = None if startup else now - timedelta(seconds=self.settings.queued_stale_after_seconds)
        result = recover_queued(self.settings, sessions, now=now, queued_before=before)
        for work in result.queued:
            if self.in_flight(queued_job_name(work.kind, work.id)):
                continue
            log.info("submitting %s %s (queued, picked up by recovery)", work.kind, work.id)
            self.submit_queued(work.kind, work.id, org_settings(self.settings, work.storage_location))
        return result

    def submit_queued(self, kind: QueuedKind, row_id: str, settings: Settings) -> Future[str]:
        """Run the recorded ``queued`` export or compare ``row_id`` in the pool, under
        :func:`queued_job_name` (the routes right after recording it, and recovery)."""
        from engine.jobs.compares import run_queued_compare
        from engine.jobs.exports import run_queued_export

        def run() -> str:
            if kind == "export":  # the outcome carries the ZIP password: keep it out of the future
                return run_queued_export(settings, row_id, clock=self.clock).export_id
            run_queued_compare(settings, row_id, clock=self.clock)
            return row_id

        return self.submit(queued_job_name(kind, row_id), run)

    # --- backups --------------------------------------------------------------------------

    def dask(self) -> Any:
        with self._lock:
            if self._dask is None:
                if self._dask_factory is not None:
                    self._dask = self._dask_factory()
                else:
                    from cluster import get_client

                    self._dask = get_client(self.settings)
                    self._owns_dask = True
            return self._dask

    def start_backup(self, job: Admitted, service: JobService) -> None:
        """Run the admitted job ``job`` in the pool (its ``queued`` row exists; the caller already
        has its id). The job's heartbeat starts now, so a job waiting for a free thread is not
        taken for a dead one; its cancel event and live progress are registered under its id at
        once. A refusal of the pool (shutting down) closes the queued row and is raised."""
        cancel = threading.Event()
        with self._lock:
            self._cancels[job.job_id] = cancel
        beat = service.heartbeat(job.job_id).start()
        with self._lock:
            self._waiting[job.job_id] = (beat, service)

        def on_progress(p: Progress) -> None:
            snapshot = {name: _report(rep) for name, rep in p.objects.items()}
            with self._lock:
                self._progress[job.job_id] = snapshot

        def run() -> BackupResult:
            with self._lock:
                self._waiting.pop(job.job_id, None)
            log.info("job start job=%s org=%s kind=%s trigger=%s", job.job_id, job.org, job.kind, job.trigger)
            try:
                result = service.run(
                    job, self.dask(), options=self._job_options, client_overrides=self._client_overrides,
                    on_progress=on_progress, cancel=cancel, init_repository=True,
                )  # fmt: skip
                log.info("job end job=%s org=%s state=%s code=%s seconds=%.1f", job.job_id, job.org,
                         result.state, result.error_code or "-", result.duration_s)  # fmt: skip
                return result
            except BaseException as err:
                code = err.code if isinstance(err, SfvaultError) else "SFV-000"
                log.info("job end job=%s org=%s state=failed code=%s", job.job_id, job.org, code)
                raise
            finally:
                beat.stop()
                with self._lock:
                    self._progress.pop(job.job_id, None)
                    self._cancels.pop(job.job_id, None)

        try:
            self.submit(f"backup {job.job_id} of {job.org}", run)
        except BaseException as err:
            beat.stop()
            with self._lock:
                self._cancels.pop(job.job_id, None)
                self._waiting.pop(job.job_id, None)
            service.close_queued(job.job_id, err)
            raise

    def progress(self, job_id: str) -> dict[str, dict[str, Any]] | None:
        """Per-object progress of a running backup of this process, or None."""
        with self._lock:
            snap = self._progress.get(job_id)
            return {k: dict(v) for k, v in snap.items()} if snap is not None else None

    def cancel_local(self, job_id: str) -> bool:
        """Signal a backup running in this process to stop (the catalog flag reaches others)."""
        with self._lock:
            event = self._cancels.get(job_id)
        if event is None:
            return False
        event.set()
        return True

    def running_jobs(self) -> list[str]:
        with self._lock:
            return sorted(self._cancels)

    def shutdown(self, *, cancel_running: bool = True) -> None:
        self._closing = True
        if cancel_running:
            with self._lock:
                events = list(self._cancels.values())
            for event in events:
                event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            never_ran, self._waiting = dict(self._waiting), {}
        for job_id, (beat, service) in never_ran.items():  # still queued: closed, not left to go stale
            beat.stop()
            service.close_queued(job_id, ServiceShuttingDown())
        with self._lock:
            if self._dask is not None and self._owns_dask:
                from cluster import close_client

                close_client(self._dask)
            self._dask = None


def _report(rep: Any) -> dict[str, Any]:
    data = asdict(rep)
    keep = ("state", "mode", "partitions", "partitions_done", "records", "deleted", "bytes",
            "error_code", "error_message")  # fmt: skip
    return {k: data.get(k) for k in keep}
