"""Exports that cannot wedge (issue 15, finding 1): a bad ``--out`` gives a coded error and a
``failed`` row, a failed export never deletes a file it did not create, and the ZIP is written to a
temporary file beside the target and renamed into place."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.config import Settings, load_settings
from engine.diff.archive import open_archive
from engine.diff.export import ExportProgress
from engine.errors import ExportTargetInvalid, PathUnusable
from engine.jobs.exports import ExportRequest, run_export
from engine.sink.repository import open_repository
from tests.helpers.catalog_org import add_catalog_org, exports_of, org_with_a_full
from tests.helpers.diff_snapshots import ChainWriter, RandomOrg

ORG = "acme"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Settings, Any]:
    settings, repo, _, _ = org_with_a_full(tmp_path, ORG, seed=5, rows=20)
    return settings, repo


def _export(settings: Settings, repo: Any, out: Path, **kw: Any) -> Any:
    return run_export(settings, ExportRequest(ORG, out, format="csv", scope="cycle"), repo=repo, **kw)


def _states(settings: Settings) -> list[tuple[str, str | None]]:
    return [(r.state, r.error_code) for r in exports_of(settings, ORG)]


def test_out_on_a_directory_fails_the_row_with_a_code_and_does_not_wedge(tmp_path: Path, setup: Any) -> None:
    settings, repo = setup
    folder = tmp_path / "existing"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(ExportTargetInvalid) as err:
        _export(settings, repo, folder)
    assert err.value.code == "SFV-715" and str(folder) in err.value.message
    assert _states(settings) == [("failed", "SFV-715")]
    assert folder.is_dir() and (folder / "keep.txt").read_text() == "mine"
    out = _export(settings, repo, folder / "a.zip")  # the org's next export is not refused (SFV-706)
    assert (folder / "a.zip").is_file() and out.size_bytes > 0


@pytest.mark.parametrize("special", ["fifo", "/proc/sfvault-export.zip", "/sys/sfvault-export.zip"])
def test_special_or_read_only_out_fails_with_a_code(tmp_path: Path, setup: Any, special: str) -> None:
    # a FIFO of our own, never a shared device: the old code unlinked the target on failure
    settings, repo = setup
    target = Path(special)
    if special == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)
    with pytest.raises(ExportTargetInvalid):
        _export(settings, repo, target)
    assert _states(settings) == [("failed", "SFV-715")]
    if special == "fifo":
        assert target.is_fifo()


def test_a_failed_export_keeps_the_file_it_would_have_replaced(tmp_path: Path, setup: tuple) -> None:
    settings, repo = setup
    target = tmp_path / "precious.zip"
    target.write_bytes(b"not mine to delete")

    def boom(_p: ExportProgress) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        _export(settings, repo, target, on_progress=boom)
    assert target.read_bytes() == b"not mine to delete"
    assert _states(settings) == [("failed", "SFV-000")]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".precious")) == []


def test_the_zip_is_written_beside_the_target_and_renamed_into_place(tmp_path: Path, setup: tuple) -> None:
    settings, repo = setup
    target = tmp_path / "out" / "a.zip"
    seen: list[tuple[bool, list[str]]] = []

    def watch(_p: ExportProgress) -> None:
        seen.append((target.exists(), [p.name for p in target.parent.iterdir()]))

    out = _export(settings, repo, target, on_progress=watch)
    assert seen and all(not exists for exists, _ in seen)  # never half a ZIP at the target
    partials = seen[0][1]
    assert len(partials) == 1 and partials[0].startswith(".a.zip.") and partials[0].endswith(".partial")
    assert os.listdir(target.parent) == ["a.zip"]
    with open_archive(target, out.password) as zf:
        assert "Account.csv" in zf.namelist()
    assert exports_of(settings, ORG)[0].location == str(target)


def test_cli_export_to_a_directory_prints_a_coded_error_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    cfg = tmp_path / "sfvault.toml"
    key = str(tmp_path / "k.key")
    init = ["init", "--repo", f"file://{tmp_path / 'repo'}", "--key-file", key, "--config", str(cfg)]
    assert runner.invoke(app, init).exit_code == 0
    monkeypatch.setenv("SFVAULT_CATALOG_URL", f"sqlite:///{tmp_path / 'catalog.db'}")
    monkeypatch.setenv("SFVAULT_SCRATCH_DIR", str(tmp_path / "scratch"))
    settings = load_settings(cfg)
    add_catalog_org(settings, ORG)
    repo = open_repository(settings)
    org = RandomOrg(7)
    org.seed_rows(10)
    ChainWriter(repo, ORG).commit("full", {"Account": org.full()})
    repo.close()
    folder = tmp_path / "dir"
    folder.mkdir()
    args = ["export", "records", ORG, "--all", "--out", str(folder), "--config", str(cfg)]
    res = runner.invoke(app, args)
    # the CLI checks --out before it queues anything (decision 0021): refused, no row to wedge
    assert res.exit_code == PathUnusable.exit_code, res.output
    assert "SFV-102" in res.output and "is a directory" in res.output and "Traceback" not in res.output
    assert _states(settings) == []
    res = runner.invoke(app, [*args[:5], str(folder / "a.zip"), "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert (folder / "a.zip").is_file()
