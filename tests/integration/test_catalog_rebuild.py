"""``catalog rebuild`` from a real encrypted repository (local backend, local key file).

The catalog a backup run writes (jobs, per-object results) is thrown away and recreated from
the repository's manifests alone; the jobs and per-object counts must come back the same, on
SQLite and on PostgreSQL, through the library and through ``sfvault catalog rebuild``. The
manifests here are written by hand; ``test_catalog_rebuild_real_jobs.py`` rebuilds what real
backup jobs write and compares every column.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from engine.catalog import jobs, orgs
from engine.catalog.db import check_schema, head_revision, make_engine, migrate, session_factory, transaction
from engine.catalog.jobs import ObjectResult
from engine.catalog.models import Job, JobObject
from engine.catalog.rebuild import rebuild_catalog
from engine.cli import app
from engine.clock import FrozenClock
from engine.config import Settings
from engine.model import Manifest, ObjectEntry, ObjectError
from engine.sink.backends import open_backend
from engine.sink.keys import LocalKeyFile
from engine.sink.repository import Repository

T0 = datetime(2026, 2, 1, tzinfo=UTC)
JobCounts = dict[str, tuple[str, str, str, int, int, dict[str, tuple[int, int, str]]]]


@dataclass
class BackedUp:
    repo_dir: Path
    key_file: Path
    expected: JobCounts


def _table(prefix: str, n: int) -> pa.Table:
    return pa.table({"Id": [f"{prefix}{i:015d}" for i in range(n)], "Name": [f"row {i}" for i in range(n)]})


def _run_job(
    repo: Repository,
    s: Session,
    org_name: str,
    kind: str,
    rows: dict[str, int],
    clock: FrozenClock,
    failed: tuple[str, ...] = (),
) -> None:
    """What a backup job does: chunks, manifest (commit), then the catalog rows."""
    org = orgs.find_org_by_name(s, org_name) or orgs.create_org(
        s, name=org_name, instance_url=None, clock=clock
    )
    job = jobs.create_job(s, org, kind=kind, cycle_id="2026", clock=clock)
    jobs.start_job(s, job, clock=clock)
    entries: dict[str, ObjectEntry] = {}
    for obj, n in rows.items():
        if obj in failed:
            entries[obj] = ObjectEntry(errors=[ObjectError("SFV-405", f"query on {obj} timed out")])
            jobs.record_object_result(s, job, ObjectResult(obj, "failed", error_code="SFV-405"))
            continue
        refs = [repo.write_chunk(_table(obj[:3] + str(k), n // 2 + k), obj) for k in range(2)]
        records, size = sum(r.rows for r in refs), sum(r.plain_bytes for r in refs)
        calls = {"rest": 2, "bulk2_jobs": 1, "bulk2_pages": len(refs)}
        entries[obj] = ObjectEntry(chunks=refs, rows=records, bytes=size, api_calls=calls)
        jobs.record_object_result(
            s,
            job,
            ObjectResult(
                obj,
                records=records,
                bytes=size,
                chunks=len(refs),
                rest_calls=2,
                bulk2_jobs=1,
                bulk2_pages=len(refs),
            ),
        )
    info = repo.commit(
        Manifest(
            org=org_name,
            job_id=job.id,
            created_at=job.created_at,
            kind=kind,  # type: ignore[arg-type]
            cycle_id="2026",
            objects=entries,
        )
    )
    clock.advance(timedelta(minutes=10))
    jobs.finish_job(s, job, "partial" if failed else "succeeded", snapshot_ref=info.name, clock=clock)
    clock.advance(timedelta(hours=6))


def _catalog_view(s: Session) -> JobCounts:
    out: JobCounts = {}
    for job in s.scalars(select(Job).where(Job.snapshot_ref.is_not(None))):
        objs = {
            o.object_name: (o.records, o.bytes, o.state)
            for o in s.scalars(select(JobObject).where(JobObject.job_id == job.id))
        }
        out[job.id] = (job.kind, job.state, job.cycle_id or "", job.records, job.bytes, objs)
    return out


@pytest.fixture
def backed_up(tmp_path: Path) -> Iterator[BackedUp]:
    """A repository with 3 jobs of acme (one partial) and 1 of globex, and the catalog the jobs wrote."""
    key_file, repo_dir = tmp_path / "repo.key", tmp_path / "repo"
    settings = Settings(repository_url=str(repo_dir), key_file=key_file)
    repo = Repository.init(
        open_backend(str(repo_dir), settings), LocalKeyFile.create(key_file), settings=settings
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'original.db'}")
    migrate(engine)
    clock = FrozenClock(current=T0)
    try:
        with transaction(session_factory(engine)) as s:
            _run_job(repo, s, "acme", "full", {"Account": 40, "Contact": 60, "Case": 7}, clock)
            _run_job(
                repo,
                s,
                "acme",
                "incremental",
                {"Account": 4, "Contact": 6, "Case": 2},
                clock,
                failed=("Case",),
            )
            _run_job(repo, s, "globex", "full", {"Lead": 12}, clock)
            _run_job(repo, s, "acme", "incremental", {"Account": 2, "Case": 3}, clock)
        with session_factory(engine)() as s:
            expected = _catalog_view(s)
    finally:
        engine.dispose()
        repo.close()
    assert len(expected) == 4
    yield BackedUp(repo_dir, key_file, expected)


def test_rebuild_reproduces_jobs_and_object_counts(
    backed_up: BackedUp, catalog_sessions: sessionmaker[Session]
) -> None:
    settings = Settings(repository_url=str(backed_up.repo_dir), key_file=backed_up.key_file)
    repo = Repository.open(
        open_backend(str(backed_up.repo_dir), settings), LocalKeyFile.load(backed_up.key_file)
    )
    try:
        with transaction(catalog_sessions) as s:
            report = rebuild_catalog(s, repo)
        assert (report.snapshots, report.jobs_created, sorted(report.orgs_created)) == (
            4,
            4,
            ["acme", "globex"],
        )
        with catalog_sessions() as s:
            assert _catalog_view(s) == backed_up.expected
            acme = orgs.get_org_by_name(s, "acme")
            assert acme.connected_at == T0
            assert jobs.objects_to_retry(s, acme.id) == []  # the newest acme job backed Case up again
            latest = jobs.latest_jobs(s)[acme.id]
            assert latest.kind == "incremental" and latest.state == "succeeded"
        # running it again changes nothing
        with transaction(catalog_sessions) as s:
            again = rebuild_catalog(s, repo)
        assert (again.jobs_created, again.jobs_updated) == (0, 4)
        with catalog_sessions() as s:
            assert _catalog_view(s) == backed_up.expected
    finally:
        repo.close()


def test_sfvault_catalog_rebuild_command(backed_up: BackedUp, tmp_path: Path) -> None:
    catalog_url = f"sqlite:///{tmp_path / 'rebuilt' / 'catalog.db'}"
    config = tmp_path / "sfvault.toml"
    config.write_text(
        "[sfvault]\n"
        f'repository_url = "{backed_up.repo_dir}"\n'
        f'key_file = "{backed_up.key_file}"\n'
        f'catalog_url = "{catalog_url}"\n'
    )
    result = CliRunner().invoke(app, ["catalog", "rebuild", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "4 snapshots: 4 jobs created" in result.output

    engine = make_engine(catalog_url)
    try:
        with session_factory(engine)() as s:
            assert _catalog_view(s) == backed_up.expected
    finally:
        engine.dispose()


def test_sfvault_catalog_rebuild_with_the_wrong_key_fails_cleanly(
    backed_up: BackedUp, tmp_path: Path
) -> None:
    other_key = tmp_path / "other.key"
    LocalKeyFile.create(other_key)
    config = tmp_path / "sfvault.toml"
    config.write_text(
        "[sfvault]\n"
        f'repository_url = "{backed_up.repo_dir}"\n'
        f'key_file = "{other_key}"\n'
        f'catalog_url = "sqlite:///{tmp_path / "c.db"}"\n'
    )
    result = CliRunner().invoke(app, ["catalog", "rebuild", "--config", str(config)])
    assert result.exit_code == 77, result.output  # WrongKey (SFV-302)
    assert "SFV-302" in result.output


def test_sfvault_catalog_upgrade_creates_the_schema(tmp_path: Path) -> None:
    catalog_url = f"sqlite:///{tmp_path / 'new' / 'catalog.db'}"
    config = tmp_path / "sfvault.toml"
    config.write_text(f'[sfvault]\ncatalog_url = "{catalog_url}"\n')
    result = CliRunner().invoke(app, ["catalog", "upgrade", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"is at schema {head_revision()}" in result.output
    engine = make_engine(catalog_url)
    try:
        check_schema(engine)
    finally:
        engine.dispose()
