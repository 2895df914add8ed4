"""Queued exports and compares survive a restart of the service, and compare details are cleaned up.

Real components throughout: a catalog on SQLite and on PostgreSQL (``catalog_url``), an encrypted
repository on local disk written through the repository API (:class:`ChainWriter`), the real
FastAPI app with its lifespan (``create_app`` under Starlette's TestClient) and, for the process
that dies mid-export, the Salesforce emulator, a real backup and a child process killed with
SIGKILL. Time is an injected :class:`FrozenClock`; waiting is ``poll_for`` on a condition.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.scheduler import Scheduler
from engine.catalog import compares as ccmp
from engine.catalog import exports as cexp
from engine.catalog import jobs as cjobs
from engine.catalog import orgs as corgs
from engine.catalog.db import make_engine, migrate, session_factory, transaction
from engine.catalog.models import Compare, Export, Role
from engine.catalog.queued import Heartbeat, claim_queued, close_abandoned
from engine.clock import FrozenClock
from engine.config import Settings
from engine.diff.export import ExportProgress
from engine.errors import ExportAlreadyRunning, NotFound, NotQueued, QueuedJobAbandoned
from engine.jobs.compares import compare_details, details_dir, run_queued_compare, submit_compare
from engine.jobs.exports import (
    ExportRequest,
    queued_archive_path,
    run_export,
    run_queued_export,
    submit_export,
)
from engine.jobs.queued import recover_queued
from engine.sink.backends import open_backend
from engine.sink.keys import LocalKeyFile
from engine.sink.repository import Repository
from tests.api.conftest import bearer, make_tokens
from tests.helpers.diff_snapshots import ChainWriter, RandomOrg
from tests.helpers.emulator_proc import poll_for

ORG = "acme"
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
STALE = timedelta(minutes=10)  # Settings.queued_stale_after_seconds below
ABANDONED = QueuedJobAbandoned.code


@dataclass
class World:
    settings: Settings  # the service's: the repository on disk, its own catalog, exports, scratch
    repo: Repository
    jobs: list[str]  # one cycle: full, incremental, incremental
    sessions: sessionmaker[Session]


@pytest.fixture
def world(tmp_path: Path, catalog_url: str) -> Iterator[World]:
    settings = Settings(
        catalog_url=catalog_url,
        repository_url=str(tmp_path / "repo"),
        key_file=tmp_path / "keys" / "repo.key",
        scratch_dir=tmp_path / "scratch",
        export_dir=tmp_path / "exports",
        scheduler_enabled=False,
        max_concurrent_jobs=2,
        queued_heartbeat_seconds=30,
        queued_stale_after_seconds=STALE.total_seconds(),
        compare_details_keep_days=30,
        retry_wait_max=0,
    )
    repo = Repository.init(
        open_backend(settings.repository_url, settings),
        LocalKeyFile.load_or_create(settings.key_file),
        settings=settings.model_copy(update={"row_group_rows": 1000}),
        clock=FrozenClock(),
    )
    accounts, contacts = RandomOrg(41), RandomOrg(42, obj="Contact", prefix="003")
    accounts.seed_rows(30)
    contacts.seed_rows(20)
    w = ChainWriter(repo, ORG)
    jobs = [w.commit("full", {"Account": accounts.full(), "Contact": contacts.full()}).job_id]
    for _ in range(2):
        since = accounts.now - timedelta(minutes=5)
        accounts.churn(5)
        contacts.now = accounts.now
        contacts.churn(4)
        changes = {"Account": accounts.incremental(since, sweep=True), "Contact": contacts.incremental(since)}
        jobs.append(w.commit("incremental", changes).job_id)
    engine = make_engine(catalog_url)
    migrate(engine)
    sessions = session_factory(engine)
    clock = FrozenClock(T0)
    with transaction(sessions) as s:
        org = corgs.create_org(s, name=ORG, instance_url=None, clock=clock)
        corgs.create_org(s, name="other", instance_url=None, clock=clock)
        for j, kind in zip(jobs, ("full", "incremental", "incremental"), strict=True):
            job = cjobs.create_job(s, org, kind=kind, cycle_id=jobs[0], job_id=j, clock=clock)
            cjobs.start_job(s, job, clock=clock)  # committed in the repository: succeeded
            cjobs.finish_job(s, job, "succeeded", clock=clock)
    try:
        yield World(settings, repo, jobs, sessions)
    finally:
        repo.close()
        engine.dispose()


def _export(world: World | sessionmaker[Session], export_id: str) -> Export:
    sessions = world.sessions if isinstance(world, World) else world
    with transaction(sessions) as s:
        row = cexp.get_export(s, export_id)
        s.expunge(row)
        return row


def _compare(world: World, compare_id: str) -> Compare:
    with transaction(world.sessions) as s:
        row = ccmp.get_compare(s, compare_id)
        s.expunge(row)
        return row


def _leave_running(world: World, model: type[Export] | type[Compare], row_id: str, *, at: datetime) -> None:
    """What a process that died while running the row leaves: ``running``, last heartbeat ``at``."""
    with transaction(world.sessions) as s:
        assert claim_queued(s, model, row_id, now=at)


def _service(world: World, clock: FrozenClock) -> TestClient:
    return TestClient(create_app(world.settings, clock=clock, scheduler=False), raise_server_exceptions=False)


def _wait_state(
    client: TestClient, path: str, headers: dict[str, str], timeout: float = 120
) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(path, headers=headers).json()
        return body if body["state"] in ("succeeded", "failed") else None

    result: dict[str, Any] = poll_for(done, timeout=timeout, interval=0.05)
    return result


# --- the dead process, simulated in the catalog -------------------------------------------------


def test_service_start_closes_abandoned_rows_removes_partial_files_and_the_org_exports_again(
    world: World,
) -> None:
    st, repo = world.settings, world.repo
    export_id = submit_export(st, ExportRequest(ORG, scope="cycle"), repo=repo, clock=FrozenClock(T0))
    _leave_running(world, Export, export_id, at=T0)
    partial = queued_archive_path(st, export_id)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"PK\x03\x04 half an archive")
    with transaction(world.sessions) as s:
        cexp.get_export(s, export_id).location = str(partial)
    compare_id = submit_compare(st, ORG, job=world.jobs[2], repo=repo, clock=FrozenClock(T0))
    _leave_running(world, Compare, compare_id, at=T0)
    details_dir(st, compare_id).mkdir(parents=True)
    (details_dir(st, compare_id) / "Account.ids.parquet").write_bytes(b"partial")
    # another org's export, still beating (a live process elsewhere): it must be left alone
    with transaction(world.sessions) as s:
        other = corgs.get_org_by_name(s, "other")
        alive = cexp.create_export(s, org_id=other.id, kind="records", format="csv", scope="cycle",
                                   objects=[], clock=FrozenClock(T0)).id  # fmt: skip
    _leave_running(world, Export, alive, at=T0 + STALE)

    # within the stale limit the export may still be alive: it blocks the next one of the org
    with pytest.raises(ExportAlreadyRunning) as busy:
        submit_export(st, ExportRequest(ORG, scope="cycle"), repo=repo, clock=FrozenClock(T0 + STALE))
    assert busy.value.code == "SFV-706"

    tokens = make_tokens(st.catalog_url)
    # a start within the stale limit does not close anything: the process might be alive
    with _service(world, FrozenClock(T0 + STALE - timedelta(seconds=1))) as client:
        r = client.get(f"/v1/exports/{export_id}", headers=bearer(tokens[Role.VIEWER]))
        assert r.json()["state"] == "running" and partial.is_file()

    later = FrozenClock(T0 + STALE + timedelta(seconds=1))
    with _service(world, later) as client:
        viewer, operator = bearer(tokens[Role.VIEWER]), bearer(tokens[Role.OPERATOR])
        body = client.get(f"/v1/exports/{export_id}", headers=viewer).json()
        assert body["state"] == "failed" and body["error"]["code"] == ABANDONED == "SFV-713"
        assert export_id in body["error"]["message"] and body["finished_at"]
        assert not partial.exists()
        cmp = client.get(f"/v1/compares/{compare_id}", headers=viewer).json()
        assert (cmp["state"], cmp["error"]["code"]) == ("failed", ABANDONED)
        assert not details_dir(st, compare_id).exists()
        assert _export(world, alive).state == "running"

        r = client.post(f"/v1/orgs/{ORG}/exports", json={"scope": "cycle"}, headers=operator)
        assert r.status_code == 202, r.text
        done = _wait_state(client, f"/v1/exports/{r.json()['id']}", viewer)
        assert done["state"] == "succeeded", done["error"]
        download = client.get(f"/v1/exports/{r.json()['id']}/download", headers=operator)
        assert download.status_code == 200 and download.content[:2] == b"PK"


def test_a_dead_export_never_blocks_the_next_one_without_a_service(world: World, tmp_path: Path) -> None:
    """Issue 14 defect 9: `sfvault export` runs no service recovery, so an export whose process
    died stayed ``running`` and refused every later export of the org (SFV-706) for good. The next
    submission closes it (SFV-713, partial ZIP removed) once its heartbeat is stale; a compare
    left running the same way is closed by the org's next compare."""
    st, repo = world.settings, world.repo
    dead = submit_export(st, ExportRequest(ORG, scope="cycle"), repo=repo, clock=FrozenClock(T0))
    _leave_running(world, Export, dead, at=T0)
    partial = queued_archive_path(st, dead)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"PK\x03\x04 half an archive")
    dead_compare = submit_compare(st, ORG, job=world.jobs[2], repo=repo, clock=FrozenClock(T0))
    _leave_running(world, Compare, dead_compare, at=T0)

    later = FrozenClock(T0 + STALE + timedelta(seconds=1))
    out = run_export(st, ExportRequest(ORG, out=tmp_path / "next.zip", scope="cycle"), repo=repo, clock=later)
    assert out.path is not None and out.path.is_file() and out.size_bytes > 0
    gone = _export(world, dead)
    assert (gone.state, gone.error_code) == ("failed", ABANDONED) and not partial.exists()
    assert _export(world, out.export_id).state == "succeeded"

    submit_compare(st, ORG, job=world.jobs[2], repo=repo, clock=later)
    closed = _compare(world, dead_compare)
    assert (closed.state, closed.error_code) == ("failed", ABANDONED)


def test_queued_rows_that_never_started_run_after_the_service_starts(world: World) -> None:
    st, repo = world.settings, world.repo
    # recorded, then the process died before its job runner started them
    export_id = submit_export(st, ExportRequest(ORG, scope="cycle"), repo=repo, clock=FrozenClock(T0))
    compare_id = submit_compare(st, ORG, job=world.jobs[2], repo=repo, clock=FrozenClock(T0))
    tokens = make_tokens(st.catalog_url)
    viewer = bearer(tokens[Role.VIEWER])
    with _service(world, FrozenClock(T0 + timedelta(minutes=1))) as client:
        exp = _wait_state(client, f"/v1/exports/{export_id}", viewer)
        cmp = _wait_state(client, f"/v1/compares/{compare_id}", viewer)
        assert exp["state"] == cmp["state"] == "succeeded", (exp["error"], cmp["error"])
        assert queued_archive_path(st, export_id).is_file()
        page = client.get(f"/v1/compares/{compare_id}/objects/Account", headers=viewer)
        assert page.status_code == 200 and page.json()["records"]
        # a second recovery does not submit them again: they are no longer queued
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        assert ctx.runner.recover_queued(ctx.sessions, startup=True).queued == []


def test_a_scheduler_tick_closes_stale_rows_and_picks_up_long_queued_ones(world: World) -> None:
    st, repo = world.settings, world.repo
    tokens = make_tokens(st.catalog_url)
    viewer = bearer(tokens[Role.VIEWER])
    with _service(world, FrozenClock(T0)) as client:
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        # another process queued a compare and ran an export, then died
        compare_id = submit_compare(st, ORG, job=world.jobs[2], repo=repo, clock=FrozenClock(T0))
        export_id = submit_export(st, ExportRequest(ORG), repo=repo, clock=FrozenClock(T0))
        _leave_running(world, Export, export_id, at=T0)
        sched = Scheduler(ctx)

        early = sched.tick(T0 + STALE - timedelta(seconds=1))
        assert early.failures == []
        assert _compare(world, compare_id).state == "queued"  # may still be its process' to run
        assert _export(world, export_id).state == "running"

        late = sched.tick(T0 + STALE + timedelta(seconds=1))
        assert late.failures == []
        row = _export(world, export_id)
        assert (row.state, row.error_code) == ("failed", ABANDONED)
        cmp = _wait_state(client, f"/v1/compares/{compare_id}", viewer)
        assert cmp["state"] == "succeeded", cmp["error"]


# --- heartbeat and claims --------------------------------------------------------------------------


def test_the_heartbeat_is_refreshed_while_running_and_stops_when_the_row_is_closed(world: World) -> None:
    st, repo = world.settings, world.repo
    clock = FrozenClock(T0)
    export_id = submit_export(st, ExportRequest(ORG), repo=repo, clock=clock)
    _leave_running(world, Export, export_id, at=T0)
    with transaction(world.sessions) as s:  # a second dispatch of the same row loses
        assert not claim_queued(s, Export, export_id, now=T0)
    with pytest.raises(NotQueued):
        run_queued_export(st, export_id, repo=repo)

    with Heartbeat(world.sessions, Export, export_id, clock=clock, every=0.01) as beat:
        clock.advance(timedelta(minutes=7))
        poll_for(lambda: _export(world, export_id).heartbeat_at == T0 + timedelta(minutes=7))
        # fresh: not abandoned at T0 + 10 min, although it started at T0
        with transaction(world.sessions) as s:
            assert not close_abandoned(s, Export, export_id, now=T0 + STALE, stale_after=STALE,
                                       error_code=ABANDONED, error_message="x")  # fmt: skip
        assert recover_queued(st, world.sessions, now=T0 + STALE).abandoned == []
        with transaction(world.sessions) as s:
            s.execute(update(Export).where(Export.id == export_id).values(state="failed"))
        poll_for(lambda: beat.lost)
    assert _export(world, export_id).heartbeat_at == T0 + timedelta(minutes=7)


def test_a_runner_closed_as_abandoned_while_it_stalled_does_not_record_success(world: World) -> None:
    st, repo = world.settings, world.repo
    clock = FrozenClock(T0)
    export_id = submit_export(st, ExportRequest(ORG, scope="cycle"), repo=repo, clock=clock)
    closed: list[Any] = []

    def stall(p: ExportProgress) -> None:  # another service decides this process is dead
        if not closed:
            closed.append(recover_queued(st, world.sessions, now=T0 + STALE + timedelta(minutes=1)))

    with pytest.raises(QueuedJobAbandoned) as gone:
        run_queued_export(st, export_id, repo=repo, clock=clock, on_progress=stall)
    assert gone.value.code == ABANDONED
    assert closed[0].abandoned == [("export", export_id)]
    row = _export(world, export_id)
    assert (row.state, row.error_code, row.password_sealed) == ("failed", ABANDONED, None)
    assert not queued_archive_path(st, export_id).exists()


# --- compare detail files --------------------------------------------------------------------------


def test_compare_details_go_when_superseded_failed_expired_or_their_row_is_deleted(world: World) -> None:
    st, repo, jobs = world.settings, world.repo, world.jobs
    clock = FrozenClock(T0)

    def run(**kw: Any) -> str:
        compare_id = submit_compare(st, ORG, repo=repo, clock=clock, **kw)
        run_queued_compare(st, compare_id, repo=repo, clock=clock)
        assert details_dir(st, compare_id).is_dir()
        return compare_id

    first = run(job=jobs[2])
    clock.advance(timedelta(minutes=1))
    second = run(job=jobs[2])  # the same two jobs and objects: supersedes the first
    assert not details_dir(st, first).exists() and details_dir(st, second).is_dir()
    with pytest.raises(NotFound):
        compare_details(st, first, "Account")
    assert compare_details(st, second, "Account")
    assert _compare(world, first).summary == _compare(world, second).summary  # summaries stay
    only_accounts = run(job=jobs[2], objects=("Account",))  # other objects: not superseded
    older_pair = run(job=jobs[1])  # other jobs: not superseded
    assert details_dir(st, second).is_dir()

    # a crash left a superseded folder behind, a folder of a failed compare and one without a row
    leftover = details_dir(st, first)
    leftover.mkdir()
    failed = submit_compare(st, ORG, job=jobs[2], repo=repo, clock=clock)
    _leave_running(world, Compare, failed, at=clock.now())
    with transaction(world.sessions) as s:
        ccmp.set_compare_state(s, ccmp.get_compare(s, failed), "failed", error_code="SFV-705",
                               error_message="scratch full", clock=clock)  # fmt: skip
    details_dir(st, failed).mkdir()
    orphan = details_dir(st, "0123456789abcdef0123456789abcdef")
    orphan.mkdir()
    queued = submit_compare(st, ORG, job=jobs[1], repo=repo, clock=clock)
    details_dir(st, queued).mkdir()  # queued or running: kept
    swept = recover_queued(st, world.sessions, now=clock.now())
    assert sorted(swept.removed) == sorted([leftover, details_dir(st, failed), orphan])
    assert all(details_dir(st, c).is_dir() for c in (second, only_accounts, older_pair, queued))

    # retention: compare_details_keep_days after the compare finished
    finished = _compare(world, older_pair).finished_at
    assert finished is not None
    keep = timedelta(days=st.compare_details_keep_days)
    assert recover_queued(st, world.sessions, now=finished + keep - timedelta(seconds=1)).removed == []
    expired = recover_queued(st, world.sessions, now=clock.now() + keep + timedelta(seconds=1)).removed
    assert sorted(expired) == sorted(details_dir(st, c) for c in (second, only_accounts, older_pair))
    assert details_dir(st, queued).is_dir()

    # the compare row goes with its org: the next sweep removes its details
    fresh = run(job=jobs[2])
    with transaction(world.sessions) as s:
        corgs.delete_org(s, corgs.get_org_by_name(s, ORG))
    assert recover_queued(st, world.sessions, now=clock.now()).removed == sorted(
        [details_dir(st, fresh), details_dir(st, queued)]
    )
    assert list((st.scratch_dir / "compares").iterdir()) == []


# --- a real export in a process that is killed -----------------------------------------------------

CHILD = r"""
import sys
import threading
from pathlib import Path

from engine.config import Settings
from engine.jobs.exports import run_queued_export

settings = Settings.model_validate_json(Path(sys.argv[1]).read_text())
marker = Path(sys.argv[3])


def hold(progress):
    marker.write_text(f"{progress.object} {progress.done}/{progress.total}")
    threading.Event().wait()  # mid-export until the parent kills this process


run_queued_export(settings, sys.argv[2], on_progress=hold)
"""


@pytest.mark.emulator
def test_an_export_whose_process_is_killed_is_closed_at_the_next_start(tmp_path: Path) -> None:
    from devkit.backup_env import backup_env

    with backup_env(tmp_path / "env", scale=2_000, seed=13, processes=False, n_workers=1) as be:
        be.add_org(ORG)
        full = be.backup(ORG)
        assert full.state == "succeeded", full.error_message
    st = be.settings.model_copy(
        update={
            "scratch_dir": tmp_path / "scratch",
            "export_dir": tmp_path / "exports",
            "scheduler_enabled": False,
            "queued_heartbeat_seconds": 0.2,
            "queued_stale_after_seconds": STALE.total_seconds(),
        }
    )
    objects = ("Account", "Contact")
    export_id = submit_export(st, ExportRequest(ORG, scope="cycle", objects=objects))
    (tmp_path / "settings.json").write_text(st.model_dump_json())
    marker = tmp_path / "mid-export"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "settings.json"), export_id, str(marker)],
        cwd=Path(__file__).parents[2],
    )
    engine = make_engine(st.catalog_url)
    world = session_factory(engine)
    try:
        poll_for(lambda: marker.exists() or child.poll() is not None, timeout=120)
        assert marker.exists(), f"the export process ended early ({child.returncode})"
        started = _export(world, export_id)
        began = started.started_at
        assert started.state == "running" and began is not None
        # the child's heartbeat thread beats while its export thread is held
        poll_for(lambda: (_export(world, export_id).heartbeat_at or T0) > began, timeout=30)
        # the ZIP grows in a temporary file beside its final path (renamed into place at the end)
        partial = Path(_export(world, export_id).location or "")
        final = queued_archive_path(st, export_id)
        assert partial.parent == final.parent and partial.name.startswith(f".{final.name}.")
        assert partial.is_file() and partial.stat().st_size > 0 and not final.exists()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    last = _export(world, export_id).heartbeat_at
    assert last is not None

    tokens = make_tokens(st.catalog_url)
    viewer, operator = bearer(tokens[Role.VIEWER]), bearer(tokens[Role.OPERATOR])
    body = {"scope": "cycle", "objects": list(objects)}
    app = create_app(st, clock=FrozenClock(last + STALE + timedelta(seconds=1)), scheduler=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        row = client.get(f"/v1/exports/{export_id}", headers=viewer).json()
        assert (row["state"], row["error"]["code"]) == ("failed", ABANDONED)
        assert not partial.exists()
        r = client.post(f"/v1/orgs/{ORG}/exports", json=body, headers=operator)
        assert r.status_code == 202, r.text
        done = _wait_state(client, f"/v1/exports/{r.json()['id']}", viewer)
        assert done["state"] == "succeeded", done["error"]
        assert queued_archive_path(st, r.json()["id"]).is_file()
    engine.dispose()
