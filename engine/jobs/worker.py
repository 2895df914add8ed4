"""Worker-side context of a backup job: the Salesforce session and the opened repository.

Secrets never travel in task arguments (STYLE rule 23; decision 0002): the driver registers a
:class:`BackupWorkerPlugin` once per job. The plugin carries the org's credentials (pydantic
``SecretStr``; the scheduler hands the pickled plugin to each worker, it is never part of a task,
a task key or the dashboard) and the *settings* that name the repository and its key-encryption key
(a key file path or a Key Vault key id, never key bytes). Each worker opens the repository itself,
reading the key through that reference. It starts with the driver's access token and the org
allowance the driver read from ``/limits`` (so the first task of a job does not wait for a login
and a ``/limits`` call); a 401 mid-job logs the worker in with the credentials. Tasks receive
only the plugin's name and look it up in ``get_worker().plugins``.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from engine.config import Settings
from engine.extract.auth import Credentials, Session, Token
from engine.extract.bulk2 import ReadGate, new_job_paces
from engine.extract.client import ClientOptions, SalesforceClient
from engine.extract.job_board import JobBoard
from engine.extract.usage import ApiUsage

if TYPE_CHECKING:
    from engine.sink.repository import Repository

ALLOWANCE_MAX_AGE_S = 60.0
"""How long a worker trusts the org allowance it read from ``/limits`` before reading it again."""


class BackupWorkerPlugin(WorkerPlugin):
    """Holds what the partition tasks of one job need on a worker (lazily opened, thread-safe)."""

    def __init__(
        self,
        name: str,
        credentials: Credentials,
        options: ClientOptions,
        settings: Settings,
        *,
        token: Token | None = None,
        allowance: ApiUsage | None = None,
    ) -> None:
        self.name = name
        self._credentials = credentials
        self.options = options
        self.settings = settings
        self._token = token
        # plain data: ApiUsage holds a lock and does not pickle
        self._seed = (
            None if allowance is None else (allowance.org_used, allowance.org_max, dict(allowance.limits))
        )
        self._lock = threading.Lock()
        self._base: SalesforceClient | None = None
        self._repo: Repository | None = None
        self._allowance_lock = threading.Lock()
        self._allowance: ApiUsage | None = None
        self._allowance_at = 0.0
        self.row_widths: dict[str, float] = {}
        """CSV bytes per row of the worker's Bulk reads, by query (sizes later result pages)."""
        self.job_paces = new_job_paces()
        """How long the org takes per Bulk job, by API (``bulk2``, ``bulk1``), learnt from the
        worker's completed jobs (paces polls)."""
        self._read_gate: ReadGate | None = None
        self.job_board = self._new_job_board()
        self._seed_allowance()

    def _new_job_board(self) -> JobBoard:
        """The worker's :class:`JobBoard`: its list calls wake the jobs waiting on the Bulk 2.0 pace."""
        return JobBoard(on_change=self.job_paces["bulk2"].wake)

    def _seed_allowance(self) -> None:
        """Start from the driver's ``/limits`` reading (when it had one), trusted as if just read."""
        if self._seed is None:
            return
        used, most, limits = self._seed
        if used is not None and most is not None and limits:
            self._allowance = ApiUsage(org_used=used, org_max=most, limits=dict(limits))
            self._allowance_at = time.monotonic()

    def __repr__(self) -> str:
        return f"BackupWorkerPlugin(name={self.name!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_lock"] = None
        state["_base"] = None
        state["_repo"] = None
        state["_allowance_lock"] = None
        state["_allowance"] = None
        state["_allowance_at"] = 0.0
        state["row_widths"] = {}
        state["job_paces"] = None
        state["_read_gate"] = None
        state["job_board"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._allowance_lock = threading.Lock()
        self.job_paces = new_job_paces()
        self.job_board = self._new_job_board()
        self._seed_allowance()

    def read_gate(self) -> ReadGate:
        """The worker's :class:`~engine.extract.bulk2.ReadGate`, as wide as its thread pool."""
        with self._lock:
            if self._read_gate is None:
                from distributed import get_worker

                try:
                    threads = int(get_worker().state.nthreads)
                except ValueError:  # not in a Dask worker (a test calling the task directly)
                    threads = 1
                self._read_gate = ReadGate(threads)
            return self._read_gate

    def setup(self, worker: Any) -> None:
        """Nothing is opened until the first task needs it (a worker may never get a task)."""

    def teardown(self, worker: Any) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._base is not None:
                self._base.close()
                self._base = None
            if self._repo is not None:
                self._repo.close()
                self._repo = None

    def _base_client(self) -> SalesforceClient:
        with self._lock:
            if self._base is None:
                # one pool per worker, shared by its tasks: room for every task's blob threads
                opts = self.options.model_copy(
                    update={"max_connections": max(self.options.max_connections, 64)}
                )
                self._base = SalesforceClient(self._credentials, opts, token=self._token)
            return self._base

    def session(self) -> Session:
        """The worker's Salesforce session (one login per worker, shared by its threads)."""
        return self._base_client().session

    def client(self, *, timeout_seconds: float | None = None) -> SalesforceClient:
        """A client for one task: its own usage counters; the worker's connection pool and session.

        Its counters start with the org allowance this worker knows (``/limits`` is read once per
        worker and job, again after :data:`ALLOWANCE_MAX_AGE_S`; every answer's
        ``Sforce-Limit-Info`` keeps ``DailyApiRequests`` fresh), so a task's reserve check does
        not cost a ``/limits`` call of its own. That one call is charged to the task that made it.
        """
        c = self._base_client().derive(usage=ApiUsage(), timeout_seconds=timeout_seconds)
        with self._allowance_lock:
            known = self._allowance
            if known is None or time.monotonic() - self._allowance_at > ALLOWANCE_MAX_AGE_S:
                c.limits()
                self._allowance = ApiUsage(
                    org_used=c.usage.org_used, org_max=c.usage.org_max, limits=dict(c.usage.limits)
                )
                self._allowance_at = time.monotonic()
            else:
                c.usage.org_used, c.usage.org_max = known.org_used, known.org_max
                c.usage.limits = dict(known.limits)
        return c

    def spent(self, usage: ApiUsage, *, bulk_jobs: int = 0) -> None:
        """Fold a finished task's view into the worker's allowance: the newest ``Sforce-Limit-Info``
        (the highest usage seen) and the Bulk query jobs it created (``/limits`` only counts those)."""
        with self._allowance_lock:
            known = self._allowance
            if known is None:
                return
            if usage.org_used is not None and (known.org_used is None or usage.org_used > known.org_used):
                known.org_used, known.org_max = usage.org_used, usage.org_max
            jobs = known.limits.get("DailyBulkV2QueryJobs")
            if bulk_jobs and jobs is not None:
                known.limits["DailyBulkV2QueryJobs"] = (jobs[0], max(0, jobs[1] - bulk_jobs))

    def repository(self) -> Repository:
        from engine.sink.repository import open_repository

        with self._lock:
            if self._repo is None:
                self._repo = open_repository(self.settings)
            return self._repo


def plugin_of(name: str) -> BackupWorkerPlugin:
    """The job's plugin on the current worker (``KeyError`` when it was never registered)."""
    plugin = get_worker().plugins[name]
    assert isinstance(plugin, BackupWorkerPlugin)
    return plugin


def _open_on_worker(plugin: str, dask_worker: Any = None) -> str | None:
    """Run on each worker by :func:`preflight_workers`: open the job's repository (and so its key)
    through the plugin, as the first task would; the opened repository stays for the tasks."""
    p = dask_worker.plugins[plugin] if dask_worker is not None else None
    assert isinstance(p, BackupWorkerPlugin)
    p.repository()
    return None


def preflight_workers(dask: Any, plugin: str) -> None:
    """Every worker opens the repository and its key before any extraction (one config read and
    one key unwrap per worker, which its first task would do anyway).

    Raises:
        WorkerPreflightFailed: a worker cannot; it names the first such worker and its error.
    """
    from engine.errors import SfvaultError
    from engine.jobs.errors import WorkerPreflightFailed

    answers = dask.run(_open_on_worker, plugin, on_error="return")
    for worker, answer in sorted(answers.items()):
        if isinstance(answer, BaseException):
            what = str(answer) if isinstance(answer, SfvaultError) else f"{type(answer).__name__}: {answer}"
            raise WorkerPreflightFailed(worker=worker, what=what)


def prepare_workers(
    dask: Any, name: str, grant: Any, copts: ClientOptions, settings: Settings, base: SalesforceClient,
    allowance: Future[None],
) -> str:  # fmt: skip
    """Register the job's worker plugin ``name`` and open the repository on every worker (run in a
    thread of its own while the driver discovers the org: decision 0046); ``name``.

    Waits for ``allowance``, the driver's ``/limits`` reading into ``base.usage``, which the
    workers start from.

    Raises:
        WorkerPreflightFailed: a worker cannot open the repository (the plugin is unregistered).
    """
    allowance.result()
    plugin = BackupWorkerPlugin(name, grant, copts, settings, token=base.session.token, allowance=base.usage)
    dask.register_plugin(plugin, name=name)
    try:
        preflight_workers(dask, name)
    except BaseException:
        unregister_plugin(dask, name)
        raise
    return name


def release_workers(dask: Any, workers: Future[str]) -> None:
    """Unregister the plugin :func:`prepare_workers` registered, if it did (waits for ``workers`` to
    end), once the job has ended however it ended. A plugin that failed its preflight was
    unregistered there (twice, the scheduler logs an error)."""
    if not workers.cancelled() and workers.exception() is None:
        unregister_plugin(dask, workers.result())


def unregister_plugin(dask: Any, name: str) -> None:
    """Unregister the worker plugin ``name``; one that is not registered (any more) is no error."""
    try:
        dask.unregister_worker_plugin(name)
    except (KeyError, ValueError):
        pass
