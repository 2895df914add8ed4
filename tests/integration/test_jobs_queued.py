"""Exports and compares as queued jobs (engine.jobs.exports / engine.jobs.compares) against a real
catalog (SQLite and PostgreSQL through ``catalog_url``) and a real encrypted repository."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.catalog import compares as ccmp
from engine.catalog import exports as cexp
from engine.catalog import jobs as cjobs
from engine.catalog import orgs as corgs
from engine.catalog.db import make_engine, migrate, session_factory, transaction
from engine.catalog.models import Export
from engine.clock import FrozenClock
from engine.config import Settings
from engine.diff.archive import open_archive
from engine.diff.export import ExportProgress
from engine.diff.export_csv import read_csv
from engine.errors import (
    CompareNotReady,
    ExportAlreadyRunning,
    ExportLimitExceeded,
    ExportNotReady,
    InvalidRequest,
    JobNotInCycle,
    NoPreviousJob,
    NotFound,
    NotQueued,
    ObjectNotInBackup,
    ScratchFull,
    UnknownJob,
    UnknownOrg,
)
from engine.jobs.compares import compare_details, details_dir, run_queued_compare, submit_compare
from engine.jobs.exports import (
    ExportRequest,
    export_archive_path,
    run_export,
    run_queued_export,
    show_password,
    submit_export,
)
from tests.helpers.diff_snapshots import ChainWriter, RandomOrg, new_repository
from tests.helpers.reference_state import reference_state

ORG = "acme"


@dataclass
class World:
    settings: Settings
    repo: Any
    jobs: list[str]  # cycle 1: full, inc, inc; cycle 2: full (not in the catalog)
    truth: list[dict[str, list[str]]]  # net changes of jobs[1] and jobs[2]


@pytest.fixture
def world(tmp_path: Path, catalog_url: str) -> World:
    settings = Settings(
        catalog_url=catalog_url,
        key_file=tmp_path / "keys" / "repo.key",
        scratch_dir=tmp_path / "scratch",
        export_dir=tmp_path / "exports",
    )
    repo = new_repository(tmp_path)
    org = RandomOrg(31)
    org.seed_rows(40)
    w = ChainWriter(repo, ORG)
    jobs = [w.commit("full", {"Account": org.full()}).job_id]
    truth = []
    for _ in range(2):
        since = org.now - timedelta(minutes=5)
        truth.append(org.churn(6))
        jobs.append(w.commit("incremental", {"Account": org.incremental(since, sweep=True)}).job_id)
    jobs.append(w.commit("full", {"Account": org.full()}).job_id)
    engine = make_engine(catalog_url)
    migrate(engine)
    with transaction(session_factory(engine)) as s:
        row = corgs.create_org(s, name=ORG, instance_url=None)
        corgs.create_org(s, name="empty", instance_url=None)  # in the catalog, no snapshot
        for j, kind in zip(jobs[:3], ("full", "incremental", "incremental"), strict=True):
            job = cjobs.create_job(s, row, kind=kind, cycle_id=jobs[0], job_id=j)
            cjobs.start_job(s, job)  # committed in the repository: succeeded
            cjobs.finish_job(s, job, "succeeded")
    engine.dispose()
    return World(settings, repo, jobs, truth)


def _export_rows(settings: Settings) -> list[Export]:
    engine = make_engine(settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            rows = list(s.scalars(select(Export).order_by(Export.created_at)))
            for r in rows:
                s.expunge(r)
            return rows
    finally:
        engine.dispose()


# --- exports ----------------------------------------------------------------------------------


def test_queued_export_runs_once_with_progress_location_and_sealed_password(world: World) -> None:
    st, repo, jobs = world.settings, world.repo, world.jobs
    req = ExportRequest(ORG, format="csv", scope="cycle", job=jobs[1], created_by="ada")
    export_id = submit_export(st, req, repo=repo, clock=FrozenClock())
    [row] = _export_rows(st)
    assert (row.id, row.state, row.job_id, row.progress, row.created_by) == (
        export_id,
        "queued",
        jobs[1],
        0.0,
        "ada",
    )
    with pytest.raises(ExportNotReady) as not_ready:
        export_archive_path(st, export_id)
    assert not_ready.value.code == "SFV-710"
    with pytest.raises(ExportAlreadyRunning) as busy:  # one export per org, queued counts
        submit_export(st, ExportRequest(ORG), repo=repo)
    assert busy.value.code == "SFV-706"

    seen: list[ExportProgress] = []
    out = run_queued_export(st, export_id, repo=repo, on_progress=seen.append, clock=FrozenClock())
    assert [p.object for p in seen] == ["Account"] and out.job == jobs[1]
    [row] = _export_rows(st)
    assert row.state == "succeeded" and row.progress == 1.0 and row.size_bytes == out.size_bytes > 0
    path = export_archive_path(st, export_id)
    assert path == st.export_dir / f"{export_id}.zip" == Path(row.location or "") == out.path
    assert row.password_sealed is not None and out.password.encode() not in row.password_sealed
    assert show_password(st, export_id) == out.password
    with open_archive(path, out.password) as zf:
        (st.scratch_dir / "Account.csv").write_bytes(zf.read("Account.csv"))
    expected = reference_state(repo, ORG, "Account", job_id=jobs[1])
    assert expected is not None
    assert read_csv(st.scratch_dir / "Account.csv", expected.schema).to_pylist() == expected.to_pylist()
    with pytest.raises(NotQueued) as again:
        run_queued_export(st, export_id, repo=repo)
    assert again.value.code == "SFV-712"
    # the org may export again once the first one finished
    assert submit_export(st, ExportRequest(ORG, kind="files"), repo=repo) != export_id


def test_export_submission_refuses_bad_input_and_records_nothing(world: World) -> None:
    st, repo = world.settings, world.repo
    cases: list[tuple[ExportRequest, type[Exception], str]] = [
        (ExportRequest("nobody"), UnknownOrg, "SFV-701"),
        (ExportRequest("empty"), UnknownOrg, "SFV-701"),
        (ExportRequest(ORG, job="job-9999"), UnknownJob, "SFV-702"),
        (ExportRequest(ORG, objects=("Nope__c",)), ObjectNotInBackup, "SFV-704"),
    ]
    for req, cls, code in cases:
        with pytest.raises(cls) as err:
            submit_export(st, req, repo=repo)
        assert err.value.code == code  # type: ignore[attr-defined]
    with pytest.raises(ExportLimitExceeded) as limit:
        submit_export(st.model_copy(update={"export_monthly_limit_bytes": 10}), ExportRequest(ORG), repo=repo)
    assert limit.value.code == "SFV-707"
    assert _export_rows(st) == []
    with pytest.raises(NotFound):
        run_queued_export(st, "no-such-export", repo=repo)
    with pytest.raises(NotFound):
        export_archive_path(st, "no-such-export")


def test_monthly_limit_defaults_to_the_setting_and_counts_earlier_exports(world: World) -> None:
    st, repo = world.settings, world.repo
    first = run_export(st, ExportRequest(ORG, st.export_dir / "first.zip"), repo=repo)
    assert first.path == st.export_dir / "first.zip" and first.path.is_file()
    tight = st.model_copy(update={"export_monthly_limit_bytes": first.size_bytes + 10})
    with pytest.raises(ExportLimitExceeded):
        submit_export(tight, ExportRequest(ORG), repo=repo)
    # an explicit limit (the CLI's --monthly-limit-gb) overrides the setting
    assert submit_export(tight, ExportRequest(ORG), repo=repo, monthly_limit_bytes=10**12)


def test_a_failing_export_is_recorded_failed_and_frees_the_org(world: World) -> None:
    st, repo = world.settings, world.repo
    export_id = submit_export(st, ExportRequest(ORG, format="mysql"), repo=repo)
    with pytest.raises(ScratchFull):
        run_queued_export(st, export_id, repo=repo, max_scratch_bytes=100)
    [row] = _export_rows(st)
    assert (row.state, row.error_code) == ("failed", "SFV-705") and row.error_message
    assert not (st.export_dir / f"{export_id}.zip").exists()
    with pytest.raises(ExportNotReady):
        export_archive_path(st, export_id)
    assert submit_export(st, ExportRequest(ORG), repo=repo)


def test_an_export_of_a_job_the_catalog_does_not_know_runs_at_that_job(world: World) -> None:
    st, repo, jobs = world.settings, world.repo, world.jobs
    out = run_export(st, ExportRequest(ORG, st.export_dir / "x.zip", job=jobs[3]), repo=repo)
    assert out.job == jobs[3] and _export_rows(st)[0].job_id is None


# --- compares ---------------------------------------------------------------------------------


def test_queued_compare_summary_progress_and_details(world: World) -> None:
    st, repo, jobs = world.settings, world.repo, world.jobs
    compare_id = submit_compare(st, ORG, job=jobs[2], created_by="ada", repo=repo, clock=FrozenClock())
    engine = make_engine(st.catalog_url)
    with transaction(session_factory(engine)) as s:
        row = ccmp.get_compare(s, compare_id)
        assert (row.state, row.job_id, row.against_job_id, row.progress) == ("queued", jobs[2], jobs[1], 0.0)
        assert [c.id for c in ccmp.list_compares(s, row.org_id)] == [compare_id]
    with pytest.raises(CompareNotReady) as not_ready:
        compare_details(st, compare_id, "Account")
    assert not_ready.value.code == "SFV-711"

    summary = run_queued_compare(st, compare_id, repo=repo, clock=FrozenClock())
    truth = world.truth[1]
    acc = summary["objects"]["Account"]
    assert (summary["job"], summary["against"]) == (jobs[2], jobs[1])
    assert (acc["added"], acc["changed"], acc["removed"]) == tuple(
        len(truth[k]) for k in ("added", "changed", "removed")
    )
    assert acc["changed_fields"] == {"Name": len(truth["changed"])}
    with transaction(session_factory(engine)) as s:
        row = ccmp.get_compare(s, compare_id)
        assert row.state == "succeeded" and row.progress == 1.0 and row.summary == summary
        assert row.started_at is not None and row.finished_at is not None
    engine.dispose()

    every = compare_details(st, compare_id, "Account", limit=1000)
    assert [r["id"] for r in every] == sorted(truth["added"] + truth["changed"] + truth["removed"])
    changed = compare_details(st, compare_id, "Account", change="changed")
    assert [r["id"] for r in changed] == truth["changed"]
    new_state = {
        r["Id"]: r for r in (reference_state(repo, ORG, "Account", job_id=jobs[2]) or []).to_pylist()
    }
    old_state = {
        r["Id"]: r for r in (reference_state(repo, ORG, "Account", job_id=jobs[1]) or []).to_pylist()
    }
    for r in changed:
        assert r["change"] == "changed"
        assert r["fields"] == [
            {"field": "Name", "old": old_state[r["id"]]["Name"], "new": new_state[r["id"]]["Name"]}
        ]
    added = compare_details(st, compare_id, "Account", change="added", limit=2, offset=1)
    assert [r["id"] for r in added] == truth["added"][1:3] and all(r["fields"] == [] for r in added)
    with pytest.raises(NotQueued):
        run_queued_compare(st, compare_id, repo=repo)


def test_compare_bad_input(world: World) -> None:
    st, repo, jobs = world.settings, world.repo, world.jobs
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"org": "nobody"}, UnknownOrg, "SFV-701"),
        ({"org": "empty"}, UnknownOrg, "SFV-701"),
        ({"org": ORG, "job": "job-9999"}, UnknownJob, "SFV-702"),
        ({"org": ORG, "job": jobs[2], "against": jobs[3]}, JobNotInCycle, "SFV-703"),
        ({"org": ORG}, NoPreviousJob, "SFV-709"),  # the newest job starts a new cycle
        ({"org": ORG, "job": jobs[2], "objects": ("Nope__c",)}, ObjectNotInBackup, "SFV-704"),
    ]
    for kw, cls, code in cases:
        org = kw.pop("org")
        with pytest.raises(cls) as err:
            submit_compare(st, org, repo=repo, **kw)
        assert err.value.code == code  # type: ignore[attr-defined]
    compare_id = submit_compare(st, ORG, job=jobs[1], repo=repo)
    run_queued_compare(st, compare_id, repo=repo)
    with pytest.raises(ObjectNotInBackup):
        compare_details(st, compare_id, "Contact")
    with pytest.raises(InvalidRequest):
        compare_details(st, compare_id, "Account", change="moved")
    with pytest.raises(InvalidRequest):
        compare_details(st, compare_id, "Account", limit=0)
    with pytest.raises(NotFound):
        compare_details(st, "no-such-compare", "Account")
    with pytest.raises(NotFound):
        run_queued_compare(st, "no-such-compare", repo=repo)


def test_a_failing_compare_is_recorded_failed(world: World) -> None:
    st, repo, jobs = world.settings, world.repo, world.jobs
    compare_id = submit_compare(st, ORG, job=jobs[2], against=jobs[0], repo=repo)
    with pytest.raises(ScratchFull):
        run_queued_compare(st, compare_id, repo=repo, max_scratch_bytes=100)
    engine = make_engine(st.catalog_url)
    with transaction(session_factory(engine)) as s:
        row = ccmp.get_compare(s, compare_id)
        assert (row.state, row.error_code) == ("failed", "SFV-705")
        assert cexp.active_export(s, row.org_id) is None
    engine.dispose()
    assert not details_dir(st, compare_id).exists()
    with pytest.raises(CompareNotReady):
        compare_details(st, compare_id, "Account")
