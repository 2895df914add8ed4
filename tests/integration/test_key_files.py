"""Key files at the edges (issue 15): ``serve`` refuses a key file it cannot use before it listens,
and ``org add`` writes the catalog's secrets key only once the org is checked and saved.

``serve`` runs as its own process (``python -m engine.cli``); its output is read line by line until
it exits or says it is listening, so a service that starts on a bad key is seen as such without a
timer. ``org add`` logs in to the shared emulated org over HTTP (nothing in it is changed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.config import Settings
from engine.jobs.credentials import SECRETS_KEY_NAME
from engine.sink.keys import LocalKeyFile
from tests.helpers.emulator_proc import EmulatorProcess

ROOT = Path(__file__).resolve().parents[2]
LISTENING = ("Uvicorn running on", "Application startup complete")


def _config(root: Path) -> Path:
    keys = root / "keys"
    keys.mkdir(mode=0o700)
    cfg = root / "sfvault.toml"
    cfg.write_text(
        f'[sfvault]\nrepository_url = "{root / "repo"}"\nkey_file = "{keys / "repo.key"}"\n'
        f'catalog_url = "sqlite:///{root / "catalog.db"}"\nscratch_dir = "{root / "scratch"}"\n'
        f'export_dir = "{root / "exports"}"\n'
    )
    return cfg


def _serve(cfg: Path) -> tuple[int, str]:
    """Run ``sfvault serve`` until it exits (its code and output) or listens (then stopped: -1)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFVAULT_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--port", "0", "--no-scheduler", "--config", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cfg.parent, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if any(mark in line for mark in LISTENING):
            proc.terminate()
            proc.wait()
            return -1, "".join(lines)
    return proc.wait(), "".join(lines)


def _garbage(path: Path) -> None:
    path.write_bytes(b"\xff\xfe not a key \x00")
    path.chmod(0o600)


def _a_directory(path: Path) -> None:
    path.mkdir(mode=0o700)


def _readable_by_others(path: Path) -> None:
    LocalKeyFile.create(path)
    path.chmod(0o644)


def _short_secrets_key(path: Path) -> None:
    (path.parent / SECRETS_KEY_NAME).write_bytes(b"short")
    (path.parent / SECRETS_KEY_NAME).chmod(0o600)
    LocalKeyFile.create(path)


@pytest.mark.parametrize(
    ("damage", "code"),
    [
        (_garbage, "SFV-305"),
        (_a_directory, "SFV-305"),
        (_readable_by_others, "SFV-303"),
        (_short_secrets_key, "SFV-305"),
    ],
    ids=["garbage", "directory", "readable-by-others", "secrets-key-short"],
)
def test_serve_refuses_a_key_file_it_cannot_use_before_listening(
    tmp_path: Path, damage: Callable[[Path], None], code: str
) -> None:
    cfg = _config(tmp_path)
    damage(tmp_path / "keys" / "repo.key")
    rc, out = _serve(cfg)
    assert rc == 77, f"serve started on a bad key file:\n{out[-2000:]}"
    assert f"error [{code}]" in out and "Traceback" not in out, out[-2000:]


def test_serve_still_starts_without_key_files_and_with_good_ones(tmp_path: Path) -> None:
    """A first start has no key file yet (the first backup creates it): not a refusal."""
    cfg = _config(tmp_path)
    rc, out = _serve(cfg)
    assert rc == -1, out[-2000:]
    LocalKeyFile.create(tmp_path / "keys" / "repo.key")
    rc, out = _serve(cfg)
    assert rc == -1, out[-2000:]


@pytest.mark.emulator
def test_org_add_writes_the_secrets_key_only_once_the_org_is_saved(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    i = emulator.info
    cfg = _config(tmp_path)
    secrets_key = tmp_path / "keys" / SECRETS_KEY_NAME
    ident = ["--instance-url", i["instance_url"], "--login-url", i["login_url"], "--username", i["username"],
             "--client-id", i["client_id"], "--config", str(cfg)]  # fmt: skip
    good = {"SFVAULT_PASSWORD": i["password"], "SFVAULT_SECURITY_TOKEN": i["security_token"],
            "SFVAULT_CLIENT_SECRET": i["client_secret"]}  # fmt: skip
    if i.get("ca_file"):
        ident += ["--ca-file", i["ca_file"]]

    refused = CliRunner(env={**good, "SFVAULT_PASSWORD": "not-the-password"}).invoke(
        app, ["org", "add", "acme", *ident]
    )
    assert refused.exit_code == 77 and "SFV-402" in refused.output, refused.output
    assert not secrets_key.exists(), "a refused org add left the secrets key behind"

    bad_zone = CliRunner(env=good).invoke(app, ["org", "add", "acme", *ident, "--time-zone", "Mars/Olympus"])
    assert bad_zone.exit_code != 0 and "SFV-609" in bad_zone.output, bad_zone.output
    assert not secrets_key.exists()

    added = CliRunner(env=good).invoke(app, ["org", "add", "acme", *ident])
    assert added.exit_code == 0, added.output
    assert secrets_key.stat().st_mode & 0o777 == 0o600 and len(secrets_key.read_bytes()) == 32
    settings = Settings(repository_url=str(tmp_path / "repo"), key_file=tmp_path / "keys" / "repo.key",
                        catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}")  # fmt: skip
    from engine.catalog import orgs as corgs
    from engine.catalog.db import catalog_transaction
    from engine.jobs.credentials import catalog_sealer

    with catalog_transaction(settings.catalog_url) as s:  # sealed under the key that was written
        assert corgs.read_credentials(corgs.get_org_by_name(s, "acme"), catalog_sealer(settings))
