"""Worker-side context of a backup job: the Salesforce session and the opened repository.

Secrets never travel in task arguments (STYLE rule 23; decision 0002): the driver registers a
:class:`BackupWorkerPlugin` once per job. The plugin carries the org's credentials (pydantic
``SecretStr``; the scheduler hands the pickled plugin to each worker, it is never part of a task,
a task key or the dashboard) and the *settings* that name the repository and its key-encryption key
(a key file path or a Key Vault key id, never key bytes). Each worker opens the repository itself,
reading the key through that reference, and logs in to Salesforce itself; a 401 mid-job refreshes
its own session. Tasks receive only the plugin's name and look it up in ``get_worker().plugins``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from engine.config import Settings
from engine.extract.auth import Credentials, Session
from engine.extract.client import ClientOptions, SalesforceClient
from engine.extract.usage import ApiUsage

if TYPE_CHECKING:
    from engine.sink.repository import Repository


class BackupWorkerPlugin(WorkerPlugin):
    """Holds what the partition tasks of one job need on a worker (lazily opened, thread-safe)."""

    def __init__(
        self, name: str, credentials: Credentials, options: ClientOptions, settings: Settings
    ) -> None:
        self.name = name
        self._credentials = credentials
        self.options = options
        self.settings = settings
        self._lock = threading.Lock()
        self._base: SalesforceClient | None = None
        self._repo: Repository | None = None

    def __repr__(self) -> str:
        return f"BackupWorkerPlugin(name={self.name!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_lock"] = None
        state["_base"] = None
        state["_repo"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

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
                self._base = SalesforceClient(self._credentials, opts)
            return self._base

    def session(self) -> Session:
        """The worker's Salesforce session (one login per worker, shared by its threads)."""
        return self._base_client().session

    def client(self, *, timeout_seconds: float | None = None) -> SalesforceClient:
        """A client for one task: its own usage counters; the worker's connection pool and session."""
        return self._base_client().derive(usage=ApiUsage(), timeout_seconds=timeout_seconds)

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
