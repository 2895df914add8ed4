"""The operator's walk from a password change to a working backup (issue 15, findings 7, 11, 20).

A private emulated org (scale 2,000; its password is changed here, so it is not the shared one),
a local encrypted repository, a SQLite catalog and a process-based LocalCluster; every step is
the ``sfvault`` command line, secrets from files and ``SFVAULT_*`` variables, never argv.

1. ``org add`` with the org's Organization.TimeZoneSidKey set to Asia/Tokyo in the emulator: the
   schedule takes the org's own zone; a full backup succeeds.
2. The org admin changes the integration user's password (Salesforce resets the security token
   with it). The next backup fails with SFV-402, whose message names ``sfvault org update``.
3. ``org update`` with a wrong password saves nothing; ``org update`` with the new password and
   token is the one command that repairs it: the next backup succeeds, settings unchanged.
4. ``catalog rebuild`` of a lost catalog brings the org back without credentials: the backup's
   SFV-803 names ``sfvault org update ORG``, which stores them, and the backup after succeeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from devkit.backup_env import BackupEnv, backup_env
from engine.catalog import orgs as corgs
from engine.catalog.db import catalog_transaction
from engine.cli import app
from engine.config import Settings

pytestmark = [pytest.mark.emulator, pytest.mark.cluster]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("org-walk"), scale=2_000, seed=23, n_workers=1) as e:
        yield e


def _config(settings: Settings, path: Path) -> Path:
    keys = ("repository_url", "key_file", "catalog_url", "retry_wait_max", "retry_max_seconds")
    values = {k: getattr(settings, k) for k in keys}
    lines = [f"{k} = {v}" if isinstance(v, int | float) else f'{k} = "{v}"' for k, v in values.items()]
    path.write_text("[sfvault]\n" + "\n".join(lines) + "\n")
    return path


def _run(env: BackupEnv, config: Path, *args: str, vars: dict[str, str] | None = None) -> tuple[int, str]:
    res = CliRunner(env={"COLUMNS": "250", **(vars or {})}).invoke(app, [*args, "--config", str(config)])
    assert "Traceback" not in res.output
    return res.exit_code, " ".join(res.output.split())


def _backup(env: BackupEnv, config: Path) -> tuple[int, str]:
    return _run(env, config, "backup", "acme", "--scheduler", env.dask.scheduler.address)


def _secret_file(tmp: Path, name: str, value: str) -> str:
    path = tmp / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


def test_from_a_password_change_to_a_working_backup_in_one_command(env: BackupEnv, tmp_path: Path) -> None:
    i: dict[str, Any] = env.em.info
    config = _config(env.settings, tmp_path / "sfvault.toml")
    env.em.admin("PATCH", "/organization", json={"TimeZoneSidKey": "Asia/Tokyo"})
    ident = ["--instance-url", i["instance_url"], "--login-url", i["login_url"], "--username", i["username"],
             "--client-id", i["client_id"]]  # fmt: skip
    secrets = {"SFVAULT_PASSWORD": i["password"], "SFVAULT_SECURITY_TOKEN": i["security_token"],
               "SFVAULT_CLIENT_SECRET": i["client_secret"]}  # fmt: skip

    code, out = _run(env, config, "org", "add", "acme", *ident, vars=secrets)
    assert code == 0, out
    assert "time zone Asia/Tokyo" in out and i["password"] not in out
    code, out = _run(env, config, "settings", "set", "acme", "--jobs-per-day", "4")
    assert code == 0, out
    code, out = _backup(env, config)
    assert code == 0, out

    # the org admin changes the password; Salesforce resets the security token with it
    new_password = "Winter-2027-changed"
    new_token = env.em.admin("POST", "/password", json={"password": new_password})["security_token"]
    code, out = _backup(env, config)
    assert code == 77 and "SFV-402" in out, out
    assert "sfvault org update" in out

    with catalog_transaction(env.settings.catalog_url) as s:
        sealed = corgs.get_org_by_name(s, "acme").credentials_sealed
    wrong = _secret_file(tmp_path, "wrong", "not-it")
    code, out = _run(env, config, "org", "update", "acme", "--password-file", wrong,
                     "--security-token-file", _secret_file(tmp_path, "tok", new_token))  # fmt: skip
    assert code == 77 and "SFV-402" in out, out
    with catalog_transaction(env.settings.catalog_url) as s:
        assert corgs.get_org_by_name(s, "acme").credentials_sealed == sealed  # nothing saved

    # the one command
    changed = {"SFVAULT_PASSWORD": new_password, "SFVAULT_SECURITY_TOKEN": new_token}
    code, out = _run(env, config, "org", "update", "acme", vars=changed)
    assert code == 0, out
    assert new_password not in out and new_token not in out
    code, out = _backup(env, config)
    assert code == 0, out
    with catalog_transaction(env.settings.catalog_url) as s:
        org = corgs.get_org_by_name(s, "acme")
        assert (org.settings.jobs_per_day, org.time_zone) == (4, "Asia/Tokyo")

    # a lost catalog, rebuilt from the repository: the org comes back without credentials
    Path(env.settings.catalog_url.removeprefix("sqlite:///")).unlink()
    code, out = _run(env, config, "catalog", "rebuild")
    assert code == 0, out
    assert "store them with `sfvault org update acme" in out
    code, out = _backup(env, config)
    assert code == 2 and "SFV-803" in out and "sfvault org update acme" in out, out
    new_secrets = {**secrets, "SFVAULT_PASSWORD": new_password, "SFVAULT_SECURITY_TOKEN": new_token}
    code, out = _run(env, config, "org", "update", "acme", *ident[2:], "--login-url", i["login_url"],
                     vars=new_secrets)  # fmt: skip
    assert code == 0, out
    code, out = _backup(env, config)
    assert code == 0, out
