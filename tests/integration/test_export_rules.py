"""Export rules (engine.jobs.exports): catalog record, one export per org, monthly limit, password sealed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.catalog import exports as cexp
from engine.catalog import orgs as corgs
from engine.catalog.db import make_engine, session_factory, transaction
from engine.clock import FrozenClock
from engine.config import Settings
from engine.diff.archive import open_archive
from engine.diff.export import ExportProgress
from engine.errors import ExportAlreadyRunning, ExportLimitExceeded, ObjectNotInBackup, UnknownJob, UnknownOrg
from engine.jobs.exports import ExportRequest, run_export, show_password
from tests.helpers.catalog_org import exports_of, org_with_a_full

ORG = "acme"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Settings, Any]:
    settings, repo, org, w = org_with_a_full(tmp_path, ORG, seed=3, rows=30)
    since = org.now
    org.churn(4)
    w.commit("incremental", {"Account": org.incremental(since, sweep=True)})
    return settings, repo


def _exports(settings: Settings) -> list[Any]:
    return list(exports_of(settings, ORG))


def test_export_is_recorded_with_size_state_and_sealed_password(tmp_path: Path, setup: tuple) -> None:
    settings, repo = setup
    seen: list[ExportProgress] = []
    out = run_export(
        settings,
        ExportRequest(ORG, tmp_path / "a.zip", format="csv", scope="changed"),
        repo=repo,
        on_progress=seen.append,
        clock=FrozenClock(),
    )
    assert [p.object for p in seen] == ["Account"] and seen[-1].done == seen[-1].total == 1
    rows = _exports(settings)
    assert len(rows) == 1 and rows[0].state == "succeeded" and rows[0].size_bytes == out.size_bytes > 0
    assert rows[0].password_sealed is not None and out.password.encode() not in rows[0].password_sealed
    assert show_password(settings, out.export_id) == out.password
    with open_archive(tmp_path / "a.zip", out.password) as zf:
        assert "Account.csv" in zf.namelist()


def test_second_concurrent_export_is_refused(tmp_path: Path, setup: tuple) -> None:
    settings, repo = setup
    engine = make_engine(settings.catalog_url)
    with transaction(session_factory(engine)) as s:
        org = corgs.get_org_by_name(s, ORG)
        running = cexp.create_export(
            s, org_id=org.id, kind="records", format="csv", scope="cycle", objects=[]
        )
        cexp.set_export_state(s, running, "running")
    engine.dispose()
    with pytest.raises(ExportAlreadyRunning) as err:
        run_export(settings, ExportRequest(ORG, tmp_path / "b.zip"), repo=repo)
    assert err.value.code == "SFV-706" and not (tmp_path / "b.zip").exists()


def test_monthly_limit_is_checked_before_the_export_starts(tmp_path: Path, setup: tuple) -> None:
    settings, repo = setup
    first = run_export(settings, ExportRequest(ORG, tmp_path / "c.zip"), repo=repo)
    with pytest.raises(ExportLimitExceeded) as err:
        run_export(
            settings,
            ExportRequest(ORG, tmp_path / "d.zip"),
            repo=repo,
            monthly_limit_bytes=first.size_bytes + 10,
        )
    assert err.value.code == "SFV-707" and not (tmp_path / "d.zip").exists()
    assert [r.state for r in _exports(settings)] == ["succeeded"]


def test_bad_input(tmp_path: Path, setup: tuple) -> None:
    settings, repo = setup
    with pytest.raises(UnknownOrg):
        run_export(settings, ExportRequest("nobody", tmp_path / "e.zip"), repo=repo)
    with pytest.raises(UnknownJob):
        run_export(settings, ExportRequest(ORG, tmp_path / "e.zip", job="job-9999"), repo=repo)
    with pytest.raises(ObjectNotInBackup):
        run_export(settings, ExportRequest(ORG, tmp_path / "e.zip", objects=("Nope__c",)), repo=repo)
    assert _exports(settings) == []
