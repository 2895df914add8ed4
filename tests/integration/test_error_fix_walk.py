"""Each main-path error's documented fix, run (issue 15: "every error's fix names a command that
exists and works in that situation").

For SFV-503, SFV-402, SFV-506, SFV-603, SFV-604, SFV-605, SFV-702, SFV-714 and SFV-803 the test
provokes the error with the ``sfvault`` command line against a private emulated org, checks that
the command it is about to run is one the fix names (the printed message or the code's Fix
paragraph in docs/TROUBLESHOOTING.md, via tests/helpers/fix_texts.py), runs it, and shows the
condition is gone: the refused command now succeeds. Real emulator over HTTP, local encrypted
repository, SQLite catalog, process-based Dask LocalCluster. The tests share the org and run in
file order (each leaves it backing up again).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from devkit.backup_env import BackupEnv, backup_env
from engine.catalog import orgs as corgs
from engine.catalog.db import catalog_transaction
from engine.cli import app
from engine.clock import SystemClock
from engine.jobs.credentials import secrets_key_path
from tests.helpers.cli_config import cli_config
from tests.helpers.fix_texts import named_by_fix

pytestmark = [pytest.mark.emulator, pytest.mark.cluster]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("fix-walk"), scale=1_000, seed=31, n_workers=1) as e:
        yield e


@pytest.fixture(scope="module")
def cfg(env: BackupEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cli_config(env.settings, tmp_path_factory.mktemp("fix-walk-cfg"))


class Walk:
    """The command line over one config; secrets only from ``SFVAULT_*`` variables."""

    def __init__(self, env: BackupEnv, cfg: Path) -> None:
        self.env, self.cfg = env, cfg
        i: dict[str, Any] = env.em.info
        self.ident = ["--instance-url", i["instance_url"], "--login-url", i["login_url"],
                      "--username", i["username"], "--client-id", i["client_id"]]  # fmt: skip
        self.secrets = {"SFVAULT_PASSWORD": i["password"], "SFVAULT_SECURITY_TOKEN": i["security_token"],
                        "SFVAULT_CLIENT_SECRET": i["client_secret"]}  # fmt: skip

    def run(self, *args: str, secrets: bool = False) -> tuple[int, str]:
        env = {"COLUMNS": "250", **(self.secrets if secrets else {})}
        res = CliRunner(env=env).invoke(app, [*args, "--config", str(self.cfg)])
        assert "Traceback" not in res.output, res.output
        return res.exit_code, " ".join(res.output.split())

    def fix(self, code: str, message: str, *argv: str, secrets: bool = False) -> None:
        """Run ``argv``, a command the fix of ``code`` names, and require it to succeed."""
        assert named_by_fix(list(argv), code, message), f"the fix of {code} does not name `{' '.join(argv)}`"
        rc, out = self.run(*argv, secrets=secrets)
        assert rc == 0, out

    def backup(self, *extra: str) -> tuple[int, str]:
        return self.run("backup", "acme", "--scheduler", self.env.dask.scheduler.address, *extra)

    def jobs(self) -> list[dict[str, Any]]:
        """The org's jobs, newest first, as `sfvault jobs acme --json` lists them."""
        res = CliRunner().invoke(app, ["jobs", "acme", "--json", "--limit", "100", "--config", str(self.cfg)])
        assert res.exit_code == 0, res.output
        return list(json.loads(res.stdout))


@pytest.fixture(scope="module")
def walk(env: BackupEnv, cfg: Path) -> Walk:
    w = Walk(env, cfg)
    rc, out = w.run("org", "add", "acme", *w.ident, secrets=True)
    assert rc == 0, out
    rc, out = w.backup()
    assert rc == 0, out
    return w


def test_sfv_503_an_org_of_that_name_is_updated_not_added_again(walk: Walk) -> None:
    rc, out = walk.run("org", "add", "acme", *walk.ident, secrets=True)
    assert (rc, "SFV-503" in out) == (2, True), out
    walk.fix("SFV-503", out, "org", "update", "acme", secrets=True)
    rc, out = walk.backup()
    assert rc == 0, out


def test_sfv_402_a_changed_password_is_stored_with_org_update(walk: Walk) -> None:
    new_password = "Fix-walk-2027"
    token = walk.env.em.admin("POST", "/password", json={"password": new_password})["security_token"]
    rc, out = walk.backup()
    assert (rc, "SFV-402" in out) == (77, True), out
    walk.secrets |= {"SFVAULT_PASSWORD": new_password, "SFVAULT_SECURITY_TOKEN": token}
    walk.fix("SFV-402", out, "org", "update", "acme", secrets=True)
    rc, out = walk.backup()
    assert rc == 0, out


def test_sfv_506_credentials_sealed_under_another_key_are_stored_again(walk: Walk) -> None:
    key = secrets_key_path(walk.env.settings)
    key.write_bytes(os.urandom(32))  # another catalog key: the sealed credentials no longer open
    rc, out = walk.backup()
    assert "SFV-506" in out and rc == 77, out
    walk.fix("SFV-506", out, "org", "update", "acme", *walk.ident[4:], secrets=True)
    rc, out = walk.backup()
    assert rc == 0, out


def test_sfv_603_an_expired_subscription_is_renewed_with_settings_set(walk: Walk) -> None:
    rc, out = walk.run("settings", "set", "acme", "--subscription-expires-at", "2020-01-01T00:00:00Z")
    assert rc == 0, out
    rc, out = walk.backup()
    assert (rc, "SFV-603" in out) == (3, True), out
    walk.fix("SFV-603", out, "settings", "set", "acme", "--subscription-expires-at", "2099-01-01T00:00:00Z")
    rc, out = walk.backup()
    assert rc == 0, out


def test_sfv_604_seats_are_added_with_settings_set(walk: Walk) -> None:
    rc, out = walk.run("settings", "set", "acme", "--purchased-seats", "0")
    assert rc == 0, out
    rc, out = walk.backup()
    assert (rc, "SFV-604" in out) == (3, True), out
    walk.fix("SFV-604", out, "settings", "set", "acme", "--purchased-seats", "100000")
    rc, out = walk.backup()
    assert rc == 0, out


def test_sfv_605_a_storage_location_is_set_with_settings_set(walk: Walk) -> None:
    # what `PATCH /v1/orgs/acme/settings {"storage_location": null}` does (the CLI refuses to clear it)
    with catalog_transaction(walk.env.settings.catalog_url) as s:
        corgs.update_org(s, corgs.get_org_by_name(s, "acme"), clock=SystemClock(), storage_location=None)
    rc, out = walk.backup()
    assert (rc, "SFV-605" in out) == (3, True), out
    repo = walk.env.settings.repository_url
    walk.fix("SFV-605", out, "settings", "set", "acme", "--storage-location", repo)
    rc, out = walk.backup()
    assert rc == 0, out


def test_sfv_702_a_job_without_a_snapshot_is_replaced_by_one_jobs_lists(walk: Walk) -> None:
    jobs = walk.jobs()
    failed = next(j for j in jobs if j["state"] == "failed")  # the SFV-402 backup
    rc, out = walk.run("compare", "acme", "--job", failed["id"])
    assert (rc, "SFV-702" in out) == (4, True), out
    # the fix: a job `sfvault jobs NAME` lists as succeeded or partial, seen with `sfvault data NAME --job ID`
    assert named_by_fix(["jobs", "acme"], "SFV-702", out)
    usable = [j for j in jobs if j["state"] in ("succeeded", "partial") and j["kind"] != "full"]
    walk.fix("SFV-702", out, "data", "acme", "--job", usable[-1]["id"])
    rc, out = walk.run("compare", "acme", "--job", usable[-1]["id"])
    assert rc == 0, out


def test_sfv_714_a_pruned_job_is_replaced_by_one_data_accepts(walk: Walk) -> None:
    first = walk.jobs()[-1]
    assert first["kind"] == "full" and first["state"] == "succeeded"
    rc, out = walk.backup("--full")  # a new cycle
    assert rc == 0, out
    rc, out = walk.backup()
    assert rc == 0, out
    rc, out = walk.run("prune", "--keep-cycles", "1")
    assert rc == 0, out
    rc, out = walk.run("compare", "acme", "--job", first["id"])
    assert (rc, "SFV-714" in out) == (4, True), out
    newest = walk.jobs()[0]
    walk.fix("SFV-714", out, "data", "acme", "--job", newest["id"])
    rc, out = walk.run("compare", "acme", "--job", newest["id"])
    assert rc == 0, out


def test_sfv_803_a_rebuilt_catalog_gets_the_credentials_with_org_update(walk: Walk) -> None:
    Path(walk.env.settings.catalog_url.removeprefix("sqlite:///")).unlink()
    rc, out = walk.run("catalog", "rebuild")
    assert rc == 0, out
    rc, out = walk.backup()
    assert (rc, "SFV-803" in out) == (2, True), out
    walk.fix("SFV-803", out, "org", "update", "acme", *walk.ident[2:], secrets=True)
    rc, out = walk.backup()
    assert rc == 0, out
