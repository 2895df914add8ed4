"""How a Dask client is obtained: an embedded LocalCluster, or an existing scheduler.

:func:`get_client` is the one entry point. With ``settings.scheduler_address`` empty (the default)
it starts a process-based ``LocalCluster`` (one worker process per core, a few threads each: the
partition tasks spend most of their time waiting on Salesforce); otherwise it connects to the
scheduler at that address (``tcp://HOST:8786``, a Dask Gateway or Kubernetes cluster; see
``docs/OPERATIONS.md`` and ``cluster/deploy/``).

Worker processes re-import ``__main__`` when they start (multiprocessing "spawn"/"forkserver"):
scripts that call :func:`get_client` must do so under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.config import Settings

DEFAULT_THREADS_PER_WORKER = 4

# Python < 3.11.9 deadlocks on the GIL when Dask's statistical profiler calls
# sys._current_frames() while worker threads block in I/O (cpython#116969, distributed#8616):
# every thread of a worker ends up waiting for the GIL forever. The profiler only feeds the
# dashboard, so it is off for sfvault workers. External workers: see docs/OPERATIONS.md.
WORKER_CONFIG: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.worker.profile.interval": "1000s",
    "distributed.worker.profile.cycle": "1000s",
}


def configure_dask() -> None:
    """Apply :data:`WORKER_CONFIG` to this process (LocalCluster workers inherit it)."""
    import dask

    dask.config.set(WORKER_CONFIG)


def local_cluster(
    n_workers: int | None = None,
    threads_per_worker: int = DEFAULT_THREADS_PER_WORKER,
    *,
    processes: bool = True,
    memory_limit: str | int = "auto",
    quiet: bool = False,
    **kwargs: Any,
) -> Any:
    """An embedded LocalCluster: ``n_workers`` processes (default: one per core), no dashboard.

    ``quiet`` (the CLI): the workers log only critical records, so a task that fails (an object
    that fails, reported with its code in the job's result) prints no worker traceback.
    """
    import logging

    from distributed import LocalCluster

    kwargs.setdefault("silence_logs", logging.CRITICAL if quiet else logging.WARNING)

    configure_dask()
    return LocalCluster(
        n_workers=n_workers or os.cpu_count() or 1,
        threads_per_worker=threads_per_worker,
        processes=processes,
        dashboard_address=":0",  # an HTTP port is opened anyway; never a fixed one
        memory_limit=memory_limit,
        **kwargs,
    )


def get_client(
    settings: Settings,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int = DEFAULT_THREADS_PER_WORKER,
    processes: bool = True,
    quiet: bool = False,
) -> Any:
    """A ``distributed.Client``: to ``scheduler`` / ``settings.scheduler_address`` if set, else to a
    new embedded LocalCluster that closes with the client (``client.close()`` stops it); ``quiet``:
    see :func:`local_cluster`."""
    from distributed import Client

    address = scheduler or settings.scheduler_address
    if address:
        return Client(address)
    cluster = local_cluster(n_workers, threads_per_worker, processes=processes, quiet=quiet)
    client = Client(cluster)
    setattr(client, "_sfvault_cluster", cluster)  # noqa: B010 (closed by close_client)
    return client


def close_client(client: Any) -> None:
    """Close the client and, if :func:`get_client` started one, its LocalCluster."""
    cluster = getattr(client, "_sfvault_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


@contextmanager
def dask_client(settings: Settings, **kwargs: Any) -> Iterator[Any]:
    """``with dask_client(settings) as client: ...`` (see :func:`get_client`)."""
    client = get_client(settings, **kwargs)
    try:
        yield client
    finally:
        close_client(client)
