"""A backup environment for tests: its own emulated org, a local encrypted repository, a SQLite
catalog, the org connected in it, and a process-based Dask LocalCluster.

Backup tests churn the org, so they never use the shared session ``emulator`` fixture (other
modules assert against its seed); :func:`backup_env` starts a private, smaller one per module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from emulator.launcher import EmulatorProcess, start_emulator
from engine.catalog import orgs as corgs
from engine.catalog.db import make_engine, migrate, session_factory, transaction
from engine.config import Settings
from engine.jobs.credentials import catalog_sealer, credentials_record
from engine.jobs.planning import BackupRequest, JobOptions
from engine.jobs.runner import BackupResult, ProgressFn, run_backup
from engine.sink.backends import open_backend
from engine.sink.keys import LocalKeyFile
from engine.sink.repository import Repository, open_repository

TEST_OPTIONS = JobOptions(id_sweep_every=1, poll_first=0.02, poll_max=0.2, target_rows=4000, page_rows=5000)


def bulk_only(options: JobOptions = TEST_OPTIONS) -> JobOptions:
    """``options`` with every read through Bulk (``rest_max_rows=0``), for tests whose injected
    faults or holds sit on Bulk routes: since decision 0019 the small objects of a full, small
    incremental windows and small Id sweeps go through REST and would never reach them."""
    return replace(options, rest_max_rows=0)


@dataclass
class BackupEnv:
    em: EmulatorProcess
    settings: Settings
    dask: Any
    options: JobOptions = TEST_OPTIONS

    def add_org(self, name: str) -> None:
        i = self.em.info
        rec = credentials_record(
            instance_url=i["instance_url"], username=i["username"], password=i["password"],
            security_token=i["security_token"], client_id=i["client_id"], client_secret=i["client_secret"],
            login_url=i["login_url"], ca_file=i.get("ca_file"),
        )  # fmt: skip
        engine = make_engine(self.settings.catalog_url)
        try:
            migrate(engine)
            with transaction(session_factory(engine)) as s:
                # the repository as the org's storage location, as `sfvault org add` records it
                corgs.create_org(s, name=name, instance_url=i["instance_url"], credentials=rec,
                                 sealer=catalog_sealer(self.settings, create=True),
                                 storage_location=self.settings.repository_url)  # fmt: skip
        finally:
            engine.dispose()

    def backup(
        self,
        org: str,
        *,
        full: bool = False,
        objects: tuple[str, ...] | None = None,
        on_progress: ProgressFn | None = None,
        options: JobOptions | None = None,
    ) -> BackupResult:
        return run_backup(self.settings, self.dask, org, BackupRequest(org=org, full=full, objects=objects),
                          options=options or self.options, on_progress=on_progress)  # fmt: skip

    @contextmanager
    def repo(self) -> Iterator[Repository]:
        r = open_repository(self.settings)
        try:
            yield r
        finally:
            r.close()

    def churn(self, percent: float, seed: int) -> dict[str, Any]:
        return dict(self.em.admin("POST", "/churn", json={"percent": percent, "seed": seed}))


def make_settings(root: Path) -> Settings:
    s = Settings(
        repository_url=str(root / "repo"),
        key_file=root / "keys" / "repo.key",
        catalog_url=f"sqlite:///{root / 'catalog.db'}",
        retry_wait_max=0,
        retry_max_seconds=60,
        chunk_target_bytes=2 * 1024 * 1024,
    )
    Repository.init(
        open_backend(s.repository_url, s), LocalKeyFile.load_or_create(s.key_file), settings=s
    ).close()
    return s


@contextmanager
def backup_env(root: Path, *, scale: int = 20_000, seed: int = 7, processes: bool = True,
               n_workers: int = 2, extra_args: list[str] | None = None,
               tls: bool = False) -> Iterator[BackupEnv]:  # fmt: skip
    from distributed import Client, LocalCluster

    from cluster import configure_dask

    configure_dask()
    em = start_emulator(scale=scale, seed=seed, tls=tls, extra_args=extra_args, timeout=300)
    try:
        settings = make_settings(root)
        with LocalCluster(n_workers=n_workers, threads_per_worker=2, processes=processes,
                          dashboard_address=":0") as cluster, Client(cluster) as client:  # fmt: skip
            yield BackupEnv(em=em, settings=settings, dask=client)
    finally:
        em.stop()
