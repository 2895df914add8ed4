"""``sfvault key list|add|remove|rotate|export`` (issue 15, finding 14) over a real local
repository through the CLI: more keys open the repository, the primary key rotates without a
chunk being rewritten, the old key stops working, a key backup file opens the repository, and a
rotation interrupted between deleting and putting ``config`` never leaves it unreadable."""

from __future__ import annotations

import io
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.config import load_settings
from engine.errors import WrongKey
from engine.model import Manifest, ObjectEntry
from engine.sink.backend import Kind
from engine.sink.backends import open_backend
from engine.sink.keys import LocalKeyFile
from engine.sink.keyslots import SLOT_FORMAT, SLOT_VERSION, config_doc_for, slot_handle
from engine.sink.repository import CONFIG_HANDLE, Repository, open_repository, read_config
from engine.sink.verify import verify

ORG = "00D000000000099AAA"


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    config = tmp_path / "sfvault.toml"
    res = CliRunner().invoke(app, ["init", "--repo", str(tmp_path / "repo"), "--key-file",
                                   str(tmp_path / "k1.key"), "--config", str(config)])  # fmt: skip
    assert res.exit_code == 0, res.output
    repo = open_repository(load_settings(config))
    ref = repo.write_chunk(pa.table({"Id": ["001000000000000001"], "V": [1]}), "Account")
    repo.commit(Manifest(org=ORG, job_id="j1", created_at=datetime(2026, 1, 1, tzinfo=UTC), kind="full",
                         cycle_id="j1", objects={"Account": ObjectEntry(chunks=[ref], rows=1)}))  # fmt: skip
    repo.close()
    return config


def _run(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def _opens(config: Path, key_file: Path) -> bool:
    settings = load_settings(config)
    try:
        repo = Repository.open(open_backend(settings.repository_url, settings), LocalKeyFile.load(key_file))
    except WrongKey:
        return False
    try:
        m = repo.load_manifest(ORG, "j1")
        return bool(repo.read_chunk(m.objects["Account"].chunks[0]).num_rows == 1)
    finally:
        repo.close()


def _chunks(config: Path) -> dict[str, bytes]:
    settings = load_settings(config)
    be = open_backend(settings.repository_url, settings)
    out = {}
    for o in be.list(Kind.CHUNK):
        with be.get(o.handle) as fh:
            out[o.handle.name] = fh.read()
    return out


def test_add_list_export_remove(cfg: Path, tmp_path: Path) -> None:
    k1, k2 = tmp_path / "k1.key", tmp_path / "k2.key"
    listed = _run("key", "list", "--config", str(cfg))
    assert LocalKeyFile.load(k1).fingerprint in listed and "yes" in listed
    _run("key", "add", "--new-key-file", str(k2), "--config", str(cfg))
    kid2 = LocalKeyFile.load(k2).fingerprint
    assert kid2 in _run("key", "list", "--config", str(cfg))
    assert _opens(cfg, k1) and _opens(cfg, k2)

    backup = tmp_path / "backup" / "key-backup.json"
    _run("key", "export", "--out", str(backup), "--config", str(cfg))
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    doc = json.loads(backup.read_text())
    restored = tmp_path / "restored.key"
    restored.write_text(json.dumps(doc["key_file"]))
    restored.chmod(0o600)
    assert _opens(cfg, restored)
    again = CliRunner().invoke(app, ["key", "export", "--out", str(backup), "--config", str(cfg)])
    assert again.exit_code != 0 and "refusing to overwrite" in again.output.replace("\n", " ")

    primary = CliRunner().invoke(
        app, ["key", "remove", LocalKeyFile.load(k1).fingerprint, "--config", str(cfg)]
    )
    assert primary.exit_code != 0 and "key rotate" in primary.output.replace("\n", " ")
    _run("key", "remove", kid2, "--config", str(cfg))
    assert not _opens(cfg, k2)
    assert _opens(cfg, k1)


def test_rotate_rewraps_the_data_keys_without_rewriting_a_chunk(cfg: Path, tmp_path: Path) -> None:
    k1 = tmp_path / "k1.key"
    old_copy = tmp_path / "old-copy.key"
    old_copy.write_bytes(k1.read_bytes())
    old_copy.chmod(0o600)
    before = _chunks(cfg)
    out = _run("key", "rotate", "--config", str(cfg))
    assert "no longer opens" in out
    assert _chunks(cfg) == before
    assert not _opens(cfg, old_copy)
    assert _opens(cfg, k1)  # the configured key file now holds the new key
    assert list(tmp_path.glob("k1.key.old-*")), "the old key file was not kept"
    repo = open_repository(load_settings(cfg))
    try:
        assert verify(repo, read_data=True).errors == []
    finally:
        repo.close()


def test_an_interrupted_rotation_restores_config_from_the_new_slot(cfg: Path, tmp_path: Path) -> None:
    settings = load_settings(cfg)
    be = open_backend(settings.repository_url, settings)
    repo = open_repository(settings)
    new = LocalKeyFile.create(tmp_path / "new.key")
    doc = {**config_doc_for(repo.config.doc, new, repo.keys), "key_added_at": "2026-01-02T00:00:00+00:00"}
    body = json.dumps({"format": SLOT_FORMAT, "version": SLOT_VERSION, "config": doc}).encode()
    be.put(slot_handle(new.fingerprint), io.BytesIO(body), len(body))
    be.delete(CONFIG_HANDLE)  # the crash: the old config is gone, the new one not yet put
    repo.close()
    assert read_config(be).repo_id == doc["repo_id"]  # put back from the slot
    assert _opens(cfg, tmp_path / "new.key")
