"""The operator's path through orgs and settings (issue 15, findings 7, 11, 19, 20, 21).

On the real app over a real SQLite catalog; logins go to the shared emulator process over HTTP
(it is only read: no password or Organization change here, the integration walk in
tests/integration/test_org_credentials_walk.py does that on a private emulator). The CLI runs
through Typer's runner against the same catalog.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine.catalog import orgs as corgs
from engine.catalog.models import Role
from engine.cli import app
from engine.clock import FrozenClock
from engine.config import Settings
from engine.jobs.connect import backup_settings_of
from engine.jobs.credentials import catalog_sealer, credentials_record
from engine.policy import next_slot
from tests.api.conftest import NOW, Headers, connect_payload
from tests.helpers.emulator_proc import EmulatorProcess


@pytest.fixture
def config(tmp_path: Path, settings: Settings, tokens: dict[Role, str]) -> Path:
    path = tmp_path / "sfvault.toml"
    keys = ("repository_url", "key_file", "catalog_url", "scratch_dir", "export_dir")
    path.write_text("[sfvault]\n" + "".join(f'{k} = "{getattr(settings, k)}"\n' for k in keys))
    return path


def _text(result: Any) -> str:
    """A command's output with the terminal's line wrapping undone."""
    return " ".join(str(result.output).split())


def _record(em: EmulatorProcess, **override: str) -> dict[str, str]:
    i = em.info
    values: dict[str, Any] = {
        "instance_url": i["instance_url"], "login_url": i["login_url"], "username": i["username"],
        "password": i["password"], "security_token": i["security_token"], "client_id": i["client_id"],
        "client_secret": i["client_secret"], "ca_file": i.get("ca_file"),
    }  # fmt: skip
    values.update(override)
    return credentials_record(**values)


def _stale_org(
    settings: Settings, catalog: Callable[[], Any], em: EmulatorProcess, name: str, **kw: Any
) -> bytes:
    """An org whose stored password is out of date (as after a password change); its sealed blob."""
    with catalog() as s:
        org = corgs.create_org(
            s, name=name, instance_url=em.info["instance_url"], credentials=_record(em, password="old-one"),
            sealer=catalog_sealer(settings, create=True), storage_location=settings.repository_url,
            clock=FrozenClock(NOW - timedelta(days=3)), **kw,
        )  # fmt: skip
        corgs.update_settings(s, org, jobs_per_day=4)
        assert org.credentials_sealed is not None
        return bytes(org.credentials_sealed)


# --- finding 11: change credentials ----------------------------------------------------------------


@pytest.mark.emulator
def test_patch_org_changes_the_credentials_only_after_they_log_in(
    client: TestClient, as_role: Headers, api_emulator: EmulatorProcess, settings: Settings,
    catalog: Callable[[], Any],
) -> None:  # fmt: skip
    sealed = _stale_org(settings, catalog, api_emulator, "acme")
    password = str(api_emulator.info["password"])

    wrong = client.patch("/v1/orgs/acme", json={"password": "still-wrong"}, headers=as_role(Role.ADMIN))
    assert wrong.status_code == 502, wrong.text
    assert wrong.json()["code"] == "SFV-402"
    assert "sfvault org update" in wrong.json()["message"]
    assert "still-wrong" not in wrong.text
    with catalog() as s:
        assert corgs.get_org_by_name(s, "acme").credentials_sealed == sealed  # nothing saved

    assert (
        client.patch("/v1/orgs/acme", json={"password": password}, headers=as_role(Role.OPERATOR)).status_code
        == 403
    )
    assert client.patch("/v1/orgs/acme", json={}, headers=as_role(Role.ADMIN)).status_code == 422
    # a CA file that does not exist is the caller's mistake: a coded 400, not a 500 (issue 15, finding 4)
    admin = as_role(Role.ADMIN)
    missing_ca = client.patch("/v1/orgs/acme", json={"ca_file": "/no/such/ca.pem"}, headers=admin)
    assert (missing_ca.status_code, missing_ca.json()["code"]) == (400, "SFV-102"), missing_ca.text
    with catalog() as s:
        assert corgs.get_org_by_name(s, "acme").credentials_sealed == sealed
    ok = client.patch("/v1/orgs/acme", json={"password": password}, headers=as_role(Role.ADMIN))
    assert ok.status_code == 200, ok.text
    assert ok.json()["sf_org_id"] and password not in ok.text
    with catalog() as s:
        org = corgs.get_org_by_name(s, "acme")
        assert corgs.read_credentials(org, catalog_sealer(settings))["password"] == password
        assert org.settings.jobs_per_day == 4  # settings and schedule untouched
        assert org.connected_at == NOW - timedelta(days=3)
        assert org.sf_org_id == ok.json()["sf_org_id"]


@pytest.mark.emulator
def test_credentials_of_another_salesforce_org_are_refused(
    client: TestClient, as_role: Headers, api_emulator: EmulatorProcess, settings: Settings,
    catalog: Callable[[], Any],
) -> None:  # fmt: skip
    sealed = _stale_org(settings, catalog, api_emulator, "acme", sf_org_id="00D000000000999AAA")
    r = client.patch(
        "/v1/orgs/acme", json={"password": api_emulator.info["password"]}, headers=as_role(Role.ADMIN)
    )
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "SFV-511"
    with catalog() as s:
        assert corgs.get_org_by_name(s, "acme").credentials_sealed == sealed


@pytest.mark.emulator
def test_an_org_without_credentials_gets_them_by_update(
    client: TestClient, as_role: Headers, api_emulator: EmulatorProcess, settings: Settings,
    catalog: Callable[[], Any],
) -> None:  # fmt: skip
    """As `sfvault catalog rebuild` leaves it: the row and the instance URL, no credentials."""
    with catalog() as s:
        corgs.create_org(s, name="acme", instance_url=api_emulator.info["instance_url"],
                         storage_location=settings.repository_url)  # fmt: skip
    body = {k: v for k, v in connect_payload(api_emulator, "x").items() if k not in ("name", "instance_url")}
    r = client.patch("/v1/orgs/acme", json=body, headers=as_role(Role.ADMIN))
    assert r.status_code == 200, r.text
    with catalog() as s:
        assert corgs.read_credentials(corgs.get_org_by_name(s, "acme"), catalog_sealer(settings))


def test_the_fixes_name_the_update_command() -> None:
    from engine.errors import OrgExists, SalesforceAuthError
    from engine.jobs.errors import CredentialsMissing

    assert "sfvault org update acme" in OrgExists(name="acme").message
    assert "sfvault org update acme" in CredentialsMissing(org="acme").message
    assert "sfvault org update" in SalesforceAuthError(what="INVALID_LOGIN").message
    guide = (Path(__file__).parents[2] / "docs" / "TROUBLESHOOTING.md").read_text()
    for code in ("SFV-402", "SFV-503", "SFV-803"):
        section = guide.split(f"## {code} ")[1].split("\n## ")[0]
        assert "sfvault org update" in section, code


# --- finding 20: the org's own time zone -----------------------------------------------------------


@pytest.mark.emulator
def test_connect_reads_the_time_zone_from_salesforce_and_midnight_is_local(
    client: TestClient, as_role: Headers, api_emulator: EmulatorProcess, catalog: Callable[[], Any]
) -> None:
    zone = api_emulator.sql("SELECT TimeZoneSidKey FROM sf_organization")[0][0]
    assert zone == "America/Los_Angeles"
    r = client.post("/v1/orgs", json=connect_payload(api_emulator, "la"), headers=as_role(Role.ADMIN))
    assert r.status_code == 201, r.text
    assert r.json()["time_zone"] == "America/Los_Angeles"
    given = client.post(
        "/v1/orgs", json=connect_payload(api_emulator, "paris", time_zone="Europe/Paris"),
        headers=as_role(Role.ADMIN),
    )  # fmt: skip
    assert given.json()["time_zone"] == "Europe/Paris"  # the operator's choice wins
    with catalog() as s:
        bs = backup_settings_of(corgs.get_org_by_name(s, "la"))
    winter = next_slot(bs, datetime(2026, 1, 15, 12, tzinfo=UTC))
    summer = next_slot(bs, datetime(2026, 7, 15, 12, tzinfo=UTC))
    assert winter.astimezone(UTC) == datetime(2026, 1, 16, 8, tzinfo=UTC)  # midnight PST
    assert summer.astimezone(UTC) == datetime(2026, 7, 16, 7, tzinfo=UTC)  # midnight PDT
    assert (winter.hour, summer.hour) == (0, 0)


# --- finding 21: plan, seats, expiry; ranges; the tile ------------------------------------------------


def _add(catalog: Callable[[], Any], name: str = "acme", **kw: Any) -> None:
    with catalog() as s:
        kw.setdefault("storage_location", "file:///backups")
        corgs.create_org(s, name=name, instance_url="https://x.my.salesforce.com",
                         clock=FrozenClock(NOW - timedelta(days=30)), **kw)  # fmt: skip


def test_an_admin_changes_plan_seats_and_expiry(
    client: TestClient, as_role: Headers, catalog: Callable[[], Any]
) -> None:
    _add(catalog, plan="standard", purchased_seats=10, subscription_expires_at=NOW - timedelta(days=1))
    before = client.get("/v1/orgs/acme", headers=as_role(Role.VIEWER)).json()
    assert before["schedule_stopped_code"] == "SFV-603"
    renew = {"subscription_expires_at": "2027-01-15T00:00:00Z", "purchased_seats": 250, "plan": "standard"}
    assert (
        client.patch("/v1/orgs/acme/settings", json=renew, headers=as_role(Role.OPERATOR)).status_code == 403
    )
    r = client.patch("/v1/orgs/acme/settings", json=renew, headers=as_role(Role.ADMIN))
    assert r.status_code == 200, r.text
    assert (r.json()["purchased_seats"], r.json()["plan"]) == (250, "standard")
    assert datetime.fromisoformat(r.json()["subscription_expires_at"]) == datetime(2027, 1, 15, tzinfo=UTC)
    after = client.get("/v1/orgs/acme", headers=as_role(Role.VIEWER)).json()
    assert after["schedule_stopped"] is None and after["stops"] == [] and after["next_job_at"]
    cleared = client.patch(
        "/v1/orgs/acme/settings", json={"purchased_seats": None, "subscription_expires_at": None},
        headers=as_role(Role.ADMIN),
    ).json()  # fmt: skip
    assert (cleared["purchased_seats"], cleared["subscription_expires_at"]) == (None, None)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"permission_check_start": 0}, "body.permission_check_start"),
        ({"permission_check_start": 1767225600}, "body.permission_check_start"),
        ({"permission_check_start": "1970-01-01T00:00:00Z"}, "body.permission_check_start"),
        ({"permission_check_start": "9999-12-31T00:00:00Z"}, "body.permission_check_start"),
        ({"permission_check_interval_days": 3661}, "body.permission_check_interval_days"),
        ({"purchased_seats": -1}, "body.purchased_seats"),
        ({"purchased_seats": 10_000_001}, "body.purchased_seats"),
        ({"plan": "gold"}, "body.plan"),
        ({"subscription_expires_at": 0}, "body.subscription_expires_at"),
        ({"subscription_expires_at": "2027-01-01T00:00:00"}, "body.subscription_expires_at"),
    ],
)
def test_every_setting_has_a_range(
    client: TestClient, as_role: Headers, catalog: Callable[[], Any], change: dict[str, Any], field: str
) -> None:
    _add(catalog)
    before = client.get("/v1/orgs/acme/settings", headers=as_role(Role.VIEWER)).json()
    r = client.patch(
        "/v1/orgs/acme/settings", json={"jobs_per_day": 4, **change}, headers=as_role(Role.ADMIN)
    )
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["details"]["errors"]]
    assert client.get("/v1/orgs/acme/settings", headers=as_role(Role.VIEWER)).json() == before


def test_expired_shows_only_from_the_expiry_instant(
    client: TestClient, as_role: Headers, catalog: Callable[[], Any], clock: FrozenClock
) -> None:
    """The next slot (00:00 UTC tomorrow) falls after the expiry (18:00 today): no next job, but
    the subscription has not expired yet, so the tile says when protection ends, not "expired"."""
    expires = NOW + timedelta(hours=6)
    _add(catalog, subscription_expires_at=expires)
    tile = client.get("/v1/orgs/acme", headers=as_role(Role.VIEWER)).json()
    assert tile["next_job_at"] is None
    assert tile["schedule_stopped"] is None and tile["stops"] == []
    assert datetime.fromisoformat(tile["protection_ends_at"]) == expires
    clock.advance(timedelta(hours=6))  # the expiry instant itself is expired
    tile = client.get("/v1/orgs/acme", headers=as_role(Role.VIEWER)).json()
    assert tile["schedule_stopped"] == "subscription_expired"
    assert [s["code"] for s in tile["stops"]] == ["SFV-603"]
    assert tile["protection_ends_at"] is None


def test_the_tile_lists_every_reason_protection_is_stopped(
    client: TestClient, as_role: Headers, catalog: Callable[[], Any]
) -> None:
    _add(catalog, subscription_expires_at=NOW - timedelta(days=1))
    client.patch("/v1/orgs/acme/settings", json={"backup_enabled": False}, headers=as_role(Role.ADMIN))
    with catalog() as s:
        corgs.update_org(s, corgs.get_org_by_name(s, "acme"), storage_location=None)
    tile = client.get("/v1/orgs/acme", headers=as_role(Role.VIEWER)).json()
    assert [(r["reason"], r["code"]) for r in tile["stops"]] == [
        ("backup_disabled", None), ("no_storage_location", "SFV-605"), ("subscription_expired", "SFV-603"),
    ]  # fmt: skip
    assert "sfvault settings set acme --subscription-expires-at" in tile["stops"][2]["message"]
    assert tile["schedule_stopped"] == "backup_disabled"


# --- finding 19: settings and orgs from the CLI -------------------------------------------------------


def test_cli_settings_show_and_set_share_the_api_models(
    config: Path, client: TestClient, as_role: Headers, catalog: Callable[[], Any]
) -> None:
    _add(catalog)
    runner = CliRunner()
    shown = runner.invoke(app, ["settings", "show", "acme", "--json", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    api_fields = set(client.get("/v1/orgs/acme/settings", headers=as_role(Role.VIEWER)).json())
    assert set(json.loads(shown.output)) == api_fields

    ok = runner.invoke(app, [
        "settings", "set", "acme", "--jobs-per-day", "4", "--first-start-time", "01:30",
        "--time-zone", "Europe/Paris", "--excluded-objects", "Task,AccountHistory", "--plan", "standard",
        "--purchased-seats", "25", "--subscription-expires-at", "2027-01-01T00:00:00Z", "--backup-disabled",
        "--config", str(config),
    ])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    got = client.get("/v1/orgs/acme/settings", headers=as_role(Role.VIEWER)).json()
    assert (got["jobs_per_day"], got["first_start_time"], got["time_zone"]) == (4, "01:30", "Europe/Paris")
    assert (got["plan"], got["purchased_seats"], got["backup_enabled"]) == ("standard", 25, False)
    assert got["excluded_objects"] == ["AccountHistory", "Task"]

    for bad, field in (
        (["--permission-check-start", "0"], "permission_check_start"),
        (["--jobs-per-day", "25"], "jobs_per_day"),
        (["--purchased-seats", "-3"], "purchased_seats"),
        (["--first-start-time", "24:00"], "first_start_time"),
    ):
        r = runner.invoke(
            app, ["settings", "set", "acme", "--jobs-per-day", "2", *bad, "--config", str(config)]
        )
        assert r.exit_code == 2, r.output
        assert "SFV-608" in r.output and field in _text(r)
        assert "Traceback" not in r.output
    assert client.get("/v1/orgs/acme/settings", headers=as_role(Role.VIEWER)).json() == got  # nothing written
    cleared = runner.invoke(
        app, ["settings", "set", "acme", "--purchased-seats", "none", "--config", str(config)]
    )
    assert cleared.exit_code == 0 and "purchased_seats: -" in cleared.output


def test_cli_org_list_and_remove(config: Path, catalog: Callable[[], Any]) -> None:
    _add(catalog, "acme")
    _add(catalog, "beta", subscription_expires_at=NOW - timedelta(days=1))
    runner = CliRunner()
    listed = runner.invoke(app, ["org", "list", "--json", "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    tiles = json.loads(listed.output)
    assert [t["name"] for t in tiles] == ["acme", "beta"]
    assert [s["code"] for s in tiles[1]["stops"]] == ["SFV-603"]
    table = runner.invoke(app, ["org", "list", "--config", str(config)])
    assert table.exit_code == 0 and "SFV-603 subscription_expired" in _text(table)

    refused = runner.invoke(app, ["org", "remove", "beta", "--config", str(config)])  # no terminal, no --yes
    assert refused.exit_code == 2 and "--yes" in _text(refused)
    gone = runner.invoke(app, ["org", "remove", "beta", "--yes", "--config", str(config)])
    assert gone.exit_code == 0, gone.output
    unknown = runner.invoke(app, ["org", "remove", "beta", "--yes", "--config", str(config)])
    assert unknown.exit_code != 0 and "SFV-" in unknown.output
    with catalog() as s:
        assert [o.name for o in corgs.list_orgs(s)] == ["acme"]


# --- finding 7: secrets without argv ------------------------------------------------------------------


@pytest.mark.emulator
def test_cli_org_add_reads_secrets_from_files_and_the_environment(
    tmp_path: Path,
    config: Path,
    settings: Settings,
    api_emulator: EmulatorProcess,
    catalog: Callable[[], Any],
) -> None:
    i = api_emulator.info
    (tmp_path / "pw").write_text(i["password"] + "\n")
    args = [
        "org", "add", "acme", "--instance-url", i["instance_url"], "--login-url", i["login_url"],
        "--username", i["username"], "--client-id", i["client_id"], "--password-file", str(tmp_path / "pw"),
        "--config", str(config),
    ]  # fmt: skip
    env = {"SFVAULT_SECURITY_TOKEN": i["security_token"], "SFVAULT_CLIENT_SECRET": i["client_secret"]}
    if i.get("ca_file"):
        args += ["--ca-file", i["ca_file"]]
    ok = CliRunner(env=env).invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "warning" not in ok.output
    for secret in (i["password"], i["security_token"], i["client_secret"]):
        assert secret not in ok.output
    assert "America/Los_Angeles" in ok.output  # the org's own zone
    with catalog() as s:
        rec = corgs.read_credentials(corgs.get_org_by_name(s, "acme"), catalog_sealer(settings))
    assert (rec["password"], rec["security_token"]) == (i["password"], i["security_token"])

    # the deprecated argv option still works, with a warning; two sources of one secret are refused
    argv = CliRunner(env={**env, "SFVAULT_PASSWORD": "unused"}).invoke(
        app, [*[a for a in args if a != str(tmp_path / "pw") and a != "--password-file"], "--password",
              i["password"]],
    )  # fmt: skip
    assert argv.exit_code == 2 and "SFV-503" in argv.output  # read, then refused as a taken name
    assert "--password is deprecated" in _text(argv)
    both = CliRunner(env=env).invoke(app, [*args, "--password", i["password"]])
    assert both.exit_code == 2 and "not both" in _text(both)
    no_password = CliRunner(env=env).invoke(
        app, [*[a for a in args if a not in ("--password-file", str(tmp_path / "pw"))]]
    )
    assert no_password.exit_code == 2 and "needs its password" in _text(no_password)  # no terminal to ask
    missing = CliRunner(env=env).invoke(app, [*args[:-4], "--password-file", str(tmp_path / "nope"),
                                              "--config", str(config)])  # fmt: skip
    assert missing.exit_code == 2 and "SFV-100" in missing.output and "Traceback" not in missing.output


def test_the_tile_shows_seats_exceeded_from_the_last_count(
    client: TestClient, as_role: Headers, catalog: Callable[[], Any]
) -> None:
    _add(catalog, purchased_seats=2)
    with catalog() as s:
        corgs.get_org_by_name(s, "acme").billable_users = 5
    tile = client.get("/v1/orgs/acme", headers=as_role(Role.VIEWER)).json()
    assert [r["code"] for r in tile["stops"]] == ["SFV-604"] and tile["next_job_at"] is None
    assert "sfvault settings set acme --purchased-seats" in tile["stops"][0]["message"]
    r = client.patch("/v1/orgs/acme/settings", json={"purchased_seats": 5}, headers=as_role(Role.ADMIN))
    assert r.status_code == 200, r.text
    tile = client.get("/v1/orgs/acme", headers=as_role(Role.VIEWER)).json()
    assert tile["stops"] == [] and tile["next_job_at"]  # equal is fine


@pytest.mark.emulator
def test_a_refused_backup_leaves_the_seat_count_for_the_tile(
    client: TestClient, as_role: Headers, api_emulator: EmulatorProcess
) -> None:
    body = connect_payload(api_emulator, "acme", purchased_seats=1, time_zone="UTC")
    assert client.post("/v1/orgs", json=body, headers=as_role(Role.ADMIN)).status_code == 201
    assert client.get("/v1/orgs/acme", headers=as_role(Role.VIEWER)).json()["stops"] == []  # not counted yet
    r = client.post("/v1/orgs/acme/backups", json={}, headers=as_role(Role.OPERATOR))
    assert r.status_code == 403 and r.json()["code"] == "SFV-604", r.text
    tile = client.get("/v1/orgs/acme", headers=as_role(Role.VIEWER)).json()
    assert [x["code"] for x in tile["stops"]] == ["SFV-604"]
    assert tile["schedule_stopped"] == "seats_exceeded"


def _read_until(fd: int, needle: bytes, seen: bytearray) -> None:
    """Read the terminal's output until ``needle`` shows (or the process closes it)."""
    import os

    while needle not in seen:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return
        if not chunk:
            return
        seen.extend(chunk)


@pytest.mark.emulator
def test_org_update_on_a_terminal_asks_for_the_secrets_without_echo(
    config: Path, settings: Settings, api_emulator: EmulatorProcess, catalog: Callable[[], Any]
) -> None:
    """A real pseudo-terminal: `sfvault org update` with nothing given prompts, hides the input."""
    import os
    import pty
    import sys

    _stale_org(settings, catalog, api_emulator, "acme")
    password, token = str(api_emulator.info["password"]), str(api_emulator.info["security_token"])
    argv = [sys.executable, "-m", "engine.cli", "org", "update", "acme", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "COLUMNS": "200"}
    for var in ("SFVAULT_PASSWORD", "SFVAULT_SECURITY_TOKEN", "SFVAULT_CLIENT_SECRET"):
        env.pop(var, None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on the terminal
        os.execve(sys.executable, argv, env)
    seen = bytearray()
    try:
        # the space after the prompt is written once echo is off (getpass); typing before it
        # would be echoed and then flushed, as for a person typing ahead
        _read_until(fd, b"Password: ", seen)
        os.write(fd, password.encode() + b"\n")
        _read_until(fd, b"trusted): ", seen)
        os.write(fd, token.encode() + b"\n")
        _read_until(fd, b"\x00never", seen)  # to the end of the output
    finally:
        status = os.waitpid(pid, 0)[1]
        os.close(fd)
    text = seen.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "updated the credentials of org acme" in text
    assert password not in text and token not in text  # never echoed, never printed
    with catalog() as s:
        rec = corgs.read_credentials(corgs.get_org_by_name(s, "acme"), catalog_sealer(settings))
    assert (rec["password"], rec["security_token"]) == (password, token)
