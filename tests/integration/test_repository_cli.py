"""`sfvault init`, `verify` and `prune` end to end through the Typer app (real files, real exit codes)."""

from __future__ import annotations

import stat
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.config import load_settings
from engine.errors import MissingObject, RepositoryExists, VerifyFailed
from engine.model import Manifest, ObjectEntry
from engine.sink.backend import Handle, Kind
from engine.sink.repository import open_repository
from tests.helpers import corrupt


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_init_verify_prune(tmp_path: Path, runner: CliRunner) -> None:
    cfg = tmp_path / "sfvault.toml"
    key = tmp_path / "keys" / "repo.key"
    repo_dir = tmp_path / "repo"
    res = runner.invoke(
        app, ["init", "--repo", f"file://{repo_dir}", "--key-file", str(key), "--config", str(cfg)]
    )
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    doc = tomllib.loads(cfg.read_text())["sfvault"]
    assert doc["repository_url"] == f"file://{repo_dir}" and doc["key_file"] == str(key)

    again = runner.invoke(
        app, ["init", "--repo", str(repo_dir), "--key-file", str(key), "--config", str(cfg)]
    )
    assert again.exit_code == RepositoryExists.exit_code and RepositoryExists.code in again.output

    repo = open_repository(load_settings(cfg))
    ref = repo.write_chunk(pa.table({"Id": ["001000000000000001"], "Name": ["a"]}), "Account")
    repo.write_chunk(pa.table({"Id": ["001000000000000002"], "Name": ["orphan"]}), "Account")
    repo.commit(
        Manifest(
            org="00D000000000001AAA",
            job_id="j1",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            kind="full",
            cycle_id="c1",
            objects={"Account": ObjectEntry(chunks=[ref], rows=1)},
        )
    )

    ok = runner.invoke(app, ["verify", "--read-data", "--config", str(cfg)])
    assert ok.exit_code == 0, ok.output
    assert "no errors found" in ok.output and "orphan" in ok.output

    dry = runner.invoke(app, ["prune", "--dry-run", "--config", str(cfg)])
    assert dry.exit_code == 0 and "would remove 0 snapshot(s), 1 object(s)" in dry.output
    done = runner.invoke(app, ["prune", "--keep-cycles", "1", "--config", str(cfg)])
    assert done.exit_code == 0 and "removed 0 snapshot(s), 1 object(s)" in done.output, done.output

    corrupt.delete(repo.backend, Handle(Kind.CHUNK, ref.name))
    bad = runner.invoke(app, ["verify", "--config", str(cfg)])
    assert bad.exit_code == VerifyFailed.exit_code
    assert MissingObject.code in bad.output and ref.name[:20] in bad.output


def test_verify_without_the_key_file_says_which_file(tmp_path: Path, runner: CliRunner) -> None:
    cfg = tmp_path / "sfvault.toml"
    key = tmp_path / "repo.key"
    assert (
        runner.invoke(
            app, ["init", "--repo", str(tmp_path / "r"), "--key-file", str(key), "--config", str(cfg)]
        ).exit_code
        == 0
    )
    key.unlink()
    res = runner.invoke(app, ["verify", "--config", str(cfg)])
    assert res.exit_code == 77 and "SFV-301" in res.output and "repo.key" in res.output
    keyless = runner.invoke(app, ["verify", "--no-key", "--config", str(cfg)])
    assert keyless.exit_code == 0 and "no errors found" in keyless.output, keyless.output


@pytest.mark.azurite
def test_init_and_verify_on_azurite(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, azurite: object
) -> None:
    from uuid import uuid4

    from devkit.azurite import Azurite

    assert isinstance(azurite, Azurite)
    monkeypatch.setenv("SFVAULT_AZURE_CONNECTION_STRING", azurite.connection_string)
    cfg = tmp_path / "sfvault.toml"
    url = f"az://cli/{uuid4().hex}"
    res = runner.invoke(
        app, ["init", "--repo", url, "--key-file", str(tmp_path / "k.key"), "--config", str(cfg)]
    )
    assert res.exit_code == 0, res.output
    assert "AccountKey" not in cfg.read_text()  # secrets stay out of the config file
    ok = runner.invoke(app, ["verify", "--read-data", "--config", str(cfg)])
    assert ok.exit_code == 0 and "no errors found" in ok.output, ok.output


def test_init_writes_absolute_paths_so_the_config_works_from_any_folder(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15, findings 8 and 12: ``init`` wrote ``kek.key`` and a relative SQLite URL, so the same
    config named another (empty) catalog from another folder."""
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(
        app, ["init", "--repo", "data/repo", "--key-file", "kek.key", "--config", "sfvault.toml"]
    )
    assert res.exit_code == 0, res.output
    doc = tomllib.loads((tmp_path / "sfvault.toml").read_text())["sfvault"]
    for key in ("repository_url", "key_file", "scratch_dir", "export_dir"):
        assert Path(doc[key]).is_absolute() and doc[key].startswith(str(tmp_path)), (key, doc[key])
    assert doc["catalog_url"] == f"sqlite:///{tmp_path / 'sfvault-data' / 'catalog.db'}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert runner.invoke(app, ["verify", "--config", str(tmp_path / "sfvault.toml")]).exit_code == 0
    missing = runner.invoke(app, ["verify", "--config", "sfvault.toml"])  # not in this folder: an error
    assert missing.exit_code == 74 and "SFV-102" in missing.output
