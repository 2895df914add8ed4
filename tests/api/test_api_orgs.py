"""The orgs endpoints on the real app: connect against the emulator, tiles, details, settings.

Connecting logs in to the emulator process (a real OAuth password grant over HTTP); the other
tests put orgs and jobs into the real SQLite catalog with the catalog functions, and run the
app on a frozen clock so the computed schedules are exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from api.app import create_app
from engine.catalog import jobs as cjobs
from engine.catalog import orgs as corgs
from engine.catalog.db import make_engine, session_factory, transaction
from engine.catalog.models import Job, JobKind, JobState, Org, Role
from engine.clock import FrozenClock
from engine.config import Settings
from tests.api.conftest import connect_payload
from tests.helpers.emulator_proc import EmulatorProcess

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # 13:00 in Paris (winter time, UTC+1)
Headers = Callable[[Role], dict[str, str]]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def client(settings: Settings, tokens: dict[Role, str], clock: FrozenClock) -> Iterator[TestClient]:
    """The app on a frozen clock (``tokens`` first: it creates and migrates the catalog)."""
    with TestClient(create_app(settings, clock=clock, scheduler=False), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def catalog(settings: Settings, tokens: dict[Role, str]) -> Iterator[Callable[[], Any]]:
    """``with catalog() as s:`` one transaction on the service's catalog."""
    engine = make_engine(settings.catalog_url)
    factory = session_factory(engine)
    try:
        yield lambda: transaction(factory)
    finally:
        engine.dispose()


def add_org(s: Session, name: str, *, at: datetime = NOW - timedelta(days=30), **kw: Any) -> Org:
    kw.setdefault("storage_location", "file:///backups")
    return corgs.create_org(
        s, name=name, instance_url="https://x.my.salesforce.com", clock=FrozenClock(at), **kw
    )


def add_job(
    s: Session, org: Org, state: JobState, *, at: datetime, kind: JobKind = JobKind.INCREMENTAL
) -> Job:
    clk = FrozenClock(at)
    job = cjobs.create_job(s, org, kind=kind, clock=clk)
    if state is JobState.QUEUED:
        return job
    cjobs.start_job(s, job, clock=clk)
    if state is not JobState.RUNNING:
        clk.advance(timedelta(minutes=5))
        cjobs.finish_job(s, job, state, clock=clk)
    return job


def fields_of(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body["details"]["errors"]]


# --- connect (the emulator process) -----------------------------------------------------------


@pytest.mark.emulator
def test_connect_checks_the_credentials_then_stores_them_sealed(
    client: TestClient, as_role: Headers, api_emulator: EmulatorProcess, settings: Settings,
    catalog: Callable[[], Any],
) -> None:  # fmt: skip
    body = connect_payload(
        api_emulator, "acme", time_zone="Europe/Paris", plan="standard", purchased_seats=50
    )
    r = client.post("/v1/orgs", json=body, headers=as_role(Role.ADMIN))
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["name"] == "acme"
    assert got["time_zone"] == "Europe/Paris"
    assert got["storage_location"] == settings.repository_url  # the default
    assert got["auth_kind"] == "password"
    assert got["sf_org_id"]
    assert isinstance(got["api_remaining"], int) and isinstance(got["api_max"], int)
    assert datetime.fromisoformat(got["connected_at"]) == NOW
    password = str(api_emulator.info["password"])
    assert password not in r.text

    with catalog() as s:
        org = corgs.get_org_by_name(s, "acme")
        assert org.credentials_sealed is not None
        assert password.encode() not in org.credentials_sealed
        assert (org.plan, org.purchased_seats) == ("standard", 50)

    # the first job runs at the next 00:00 in the org's time zone
    tile = client.get("/v1/orgs", headers=as_role(Role.VIEWER)).json()
    assert [t["name"] for t in tile] == ["acme"]
    assert tile[0]["last_job"] is None
    assert datetime.fromisoformat(tile[0]["next_job_at"]) == datetime(2026, 1, 15, 23, 0, tzinfo=UTC)
    assert tile[0]["next_job_at"].endswith("+01:00")

    again = client.post("/v1/orgs", json=body, headers=as_role(Role.ADMIN))
    assert again.status_code == 409
    assert again.json()["code"] == "SFV-503"


@pytest.mark.emulator
def test_wrong_password_is_salesforces_auth_error_and_saves_nothing(
    client: TestClient, as_role: Headers, api_emulator: EmulatorProcess, catalog: Callable[[], Any]
) -> None:
    body = connect_payload(api_emulator, "acme", password="not-the-password")
    r = client.post("/v1/orgs", json=body, headers=as_role(Role.ADMIN))
    assert r.status_code == 502, r.text
    assert r.json()["code"] == "SFV-402"
    assert "not-the-password" not in r.text
    assert client.get("/v1/orgs/acme", headers=as_role(Role.VIEWER)).status_code == 404
    with catalog() as s:
        assert s.scalar(select(func.count()).select_from(Org)) == 0


def test_connect_refuses_bad_input_before_calling_salesforce(client: TestClient, as_role: Headers) -> None:
    good = {"name": "acme", "instance_url": "https://127.0.0.1:9", "username": "u", "password": "p",
            "client_id": "c", "client_secret": "s"}  # fmt: skip
    cases: list[tuple[dict[str, Any], str]] = [
        ({"time_zone": "Mars/Olympus"}, "body.time_zone"),
        ({"name": "no spaces"}, "body.name"),
        ({"plan": "platinum"}, "body.plan"),
        ({"purchased_seats": -1}, "body.purchased_seats"),
        ({"subscription_expires_at": "2027-01-01T00:00:00"}, "body.subscription_expires_at"),
        ({"colour": "blue"}, "body.colour"),
        ({"client_secret": None}, "body"),  # the username-password flow needs the connected app
    ]
    for change, field in cases:
        r = client.post("/v1/orgs", json={**good, **change}, headers=as_role(Role.ADMIN))
        assert r.status_code == 422, (change, r.text)
        assert r.json()["code"] == "SFV-903"
        assert field in fields_of(r.json())
    for role in (Role.OPERATOR, Role.VIEWER):
        r = client.post("/v1/orgs", json=good, headers=as_role(role))
        assert r.status_code == 403
        assert r.json()["code"] == "SFV-902"
    assert client.post("/v1/orgs", json=good).status_code == 401


# --- tiles, hide and show -------------------------------------------------------------------------


def test_tiles_show_the_last_job_the_next_start_and_the_hidden_filter(
    client: TestClient, as_role: Headers, catalog: Callable[[], Any]
) -> None:
    with catalog() as s:
        a = add_org(s, "a")
        add_job(s, a, JobState.SUCCEEDED, at=NOW - timedelta(days=2), kind=JobKind.FULL)
        running = add_job(s, a, JobState.RUNNING, at=NOW - timedelta(minutes=10))
        add_org(s, "b")
        c = add_org(s, "c")
        failed = add_job(s, c, JobState.FAILED, at=NOW - timedelta(hours=3))
        corgs.set_hidden(s, c, True)
        d = add_org(s, "d")
        corgs.update_settings(s, d, backup_enabled=False)
        add_org(s, "e", storage_location=None)
        running_id, failed_id = running.id, failed.id

    r = client.get("/v1/orgs", headers=as_role(Role.VIEWER))
    assert r.status_code == 200
    tiles = {t["name"]: t for t in r.json()}
    assert list(tiles) == ["a", "b", "d", "e"]  # hidden=false by default, by name
    last = tiles["a"]["last_job"]
    assert (last["id"], last["state"], last["kind"]) == (running_id, "running", "incremental")
    assert datetime.fromisoformat(last["started_at"]) == NOW - timedelta(minutes=10)
    assert last["finished_at"] is None
    assert tiles["b"]["last_job"] is None
    midnight = datetime(2026, 1, 16, tzinfo=UTC)
    for name in ("a", "b"):
        assert datetime.fromisoformat(tiles[name]["next_job_at"]) == midnight
        assert tiles[name]["schedule_stopped"] is None
    assert tiles["d"]["next_job_at"] is None
    assert tiles["d"]["schedule_stopped"] == "backup_disabled"
    assert tiles["e"]["next_job_at"] is None
    assert (tiles["e"]["schedule_stopped"], tiles["e"]["schedule_stopped_code"]) == (
        "no_storage_location",
        "SFV-605",
    )

    hidden = client.get("/v1/orgs?hidden=true", headers=as_role(Role.VIEWER)).json()
    assert [t["name"] for t in hidden] == ["c"]
    assert hidden[0]["hidden"] is True
    assert (hidden[0]["last_job"]["id"], hidden[0]["last_job"]["state"]) == (failed_id, "failed")
    every = client.get("/v1/orgs?hidden=all", headers=as_role(Role.VIEWER)).json()
    assert [t["name"] for t in every] == ["a", "b", "c", "d", "e"]
    bad = client.get("/v1/orgs?hidden=maybe", headers=as_role(Role.VIEWER))
    assert bad.status_code == 422
    assert fields_of(bad.json()) == ["query.hidden"]


def test_the_tile_list_costs_the_same_queries_for_3_and_40_orgs(
    client: TestClient, as_role: Headers, catalog: Callable[[], Any]
) -> None:
    engine = client.app.state.ctx.engine  # type: ignore[attr-defined]
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    def queries_for_tiles(expected: int) -> int:
        client.get("/v1/me", headers=as_role(Role.VIEWER))  # the token's last-use stamp is written now
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            tiles = client.get("/v1/orgs", headers=as_role(Role.VIEWER)).json()
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert len(tiles) == expected
        assert all(t["last_job"] is not None for t in tiles)
        return len(statements)

    def add(first: int, last: int) -> None:
        with catalog() as s:
            for i in range(first, last):
                org = add_org(s, f"org{i:02d}", time_zone=("UTC", "Europe/Paris", "America/New_York")[i % 3])
                for k in range(3):
                    add_job(s, org, JobState.SUCCEEDED, at=NOW - timedelta(hours=3 * k + 1))

    add(0, 3)
    few = queries_for_tiles(3)
    add(3, 40)
    assert queries_for_tiles(40) == few
    assert few <= 4, statements  # the token, the orgs, their newest jobs


def test_the_tiles_come_in_pages_by_name(
    client: TestClient, as_role: Headers, catalog: Callable[[], Any]
) -> None:
    """Issue 15 ("paging cursors on every list"): the overview used to answer every org at once."""
    with catalog() as s:
        for i in range(7):
            org = add_org(s, f"org{i:02d}")
            add_job(s, org, JobState.SUCCEEDED, at=NOW - timedelta(hours=i + 1))
    seen: list[str] = []
    url: str | None = "/v1/orgs?hidden=all&limit=3"
    while url is not None:
        r = client.get(url, headers=as_role(Role.VIEWER))
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page) <= 3 and all(t["last_job"] is not None for t in page)
        seen += [t["name"] for t in page]
        nxt = r.headers.get("X-Next-Offset")
        assert (nxt is None) == ("Link" not in r.headers)
        url = f"/v1/orgs?hidden=all&limit=3&offset={nxt}" if nxt is not None else None
    assert seen == [f"org{i:02d}" for i in range(7)]
    assert client.get("/v1/orgs?limit=0", headers=as_role(Role.VIEWER)).status_code == 422


def test_hide_and_show_move_the_tile(
    client: TestClient, as_role: Headers, catalog: Callable[[], Any]
) -> None:
    with catalog() as s:
        add_org(s, "acme")
    assert client.post("/v1/orgs/acme/hide", headers=as_role(Role.VIEWER)).status_code == 403
    r = client.post("/v1/orgs/acme/hide", headers=as_role(Role.OPERATOR))
    assert r.status_code == 200
    assert r.json()["hidden"] is True
    assert client.get("/v1/orgs", headers=as_role(Role.VIEWER)).json() == []
    assert [t["name"] for t in client.get("/v1/orgs?hidden=true", headers=as_role(Role.VIEWER)).json()] == [
        "acme"
    ]
    r = client.post("/v1/orgs/acme/show", headers=as_role(Role.OPERATOR))
    assert r.json()["hidden"] is False
    assert [t["name"] for t in client.get("/v1/orgs", headers=as_role(Role.VIEWER)).json()] == ["acme"]


# --- details ------------------------------------------------------------------------------------


def test_details_show_the_next_incremental_and_full(
    client: TestClient, as_role: Headers, catalog: Callable[[], Any]
) -> None:
    with catalog() as s:
        new = add_org(s, "new", time_zone="Europe/Paris", plan="standard", purchased_seats=10)
        corgs.update_settings(s, new, jobs_per_day=2)
        old = add_org(s, "old")
        add_job(s, old, JobState.SUCCEEDED, at=NOW - timedelta(days=10), kind=JobKind.FULL)

    r = client.get("/v1/orgs/new", headers=as_role(Role.VIEWER))
    assert r.status_code == 200
    d = r.json()
    assert (d["time_zone"], d["plan"], d["purchased_seats"], d["hidden"]) == (
        "Europe/Paris",
        "standard",
        10,
        False,
    )
    assert d["storage_location"] is None  # hidden from a viewer (issue 15, finding 9)
    assert (
        client.get("/v1/orgs/new", headers=as_role(Role.OPERATOR)).json()["storage_location"]
        == "file:///backups"
    )
    assert d["last_job"] is None
    # no full backup yet: the next job (12:00 Paris slots 00:00 and 12:00 -> 00:00 tomorrow) is the full
    assert datetime.fromisoformat(d["next_job_at"]) == datetime(2026, 1, 15, 23, 0, tzinfo=UTC)
    assert d["next_full_at"] == d["next_job_at"]
    assert datetime.fromisoformat(d["next_incremental_at"]) == datetime(2026, 1, 16, 11, 0, tzinfo=UTC)

    d = client.get("/v1/orgs/old", headers=as_role(Role.VIEWER)).json()
    assert d["last_job"]["kind"] == "full"
    assert d["next_incremental_at"] == d["next_job_at"]
    # the cycle opened by the full ends a year after it started; the next full is the first slot then
    cycle_end = NOW - timedelta(days=10) + timedelta(days=365)
    assert datetime.fromisoformat(d["next_full_at"]) == datetime(
        cycle_end.year, cycle_end.month, cycle_end.day, tzinfo=UTC
    ) + timedelta(days=1)


def test_unknown_org_is_404_with_the_catalog_code(client: TestClient, as_role: Headers) -> None:
    admin = as_role(Role.ADMIN)
    for method, path in (
        ("GET", "/v1/orgs/nope"),
        ("GET", "/v1/orgs/nope/settings"),
        ("PATCH", "/v1/orgs/nope/settings"),
        ("POST", "/v1/orgs/nope/hide"),
        ("POST", "/v1/orgs/nope/show"),
        ("DELETE", "/v1/orgs/nope"),
    ):
        r = client.request(method, path, headers=admin, json={} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["code"] == "SFV-101"
        assert "nope" in r.json()["message"]
    r = client.get("/v1/orgs/bad%20name", headers=admin)
    assert r.status_code == 422
    assert fields_of(r.json()) == ["path.org"]


# --- settings -------------------------------------------------------------------------------------


def test_settings_round_trip_with_the_schedule_in_the_org_time_zone(
    client: TestClient, as_role: Headers, catalog: Callable[[], Any]
) -> None:
    with catalog() as s:
        add_org(s, "acme")
    r = client.get("/v1/orgs/acme/settings", headers=as_role(Role.VIEWER))
    assert r.status_code == 200
    got = r.json()
    assert (got["jobs_per_day"], got["first_start_time"], got["event_logs"]) == (1, "00:00", "off")
    assert (got["time_zone"], got["daily_schedule"]) == ("UTC", ["00:00"])

    change = {
        "time_zone": "Europe/Paris", "jobs_per_day": 4, "first_start_time": "01:30", "event_logs": "hourly",
        "include_feed": True, "excluded_objects": ["Task", "AccountHistory"],
        "excluded_metadata_types": ["Report"], "permission_check_interval_days": 7,
        "storage_location": "azure://backups/acme",
    }  # fmt: skip
    assert (
        client.patch("/v1/orgs/acme/settings", json=change, headers=as_role(Role.OPERATOR)).status_code == 403
    )
    r = client.patch("/v1/orgs/acme/settings", json=change, headers=as_role(Role.ADMIN))
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["daily_schedule"] == ["01:30", "07:30", "13:30", "19:30"]
    assert got["schedule_date"] == "2026-01-15"
    assert [datetime.fromisoformat(t) for t in got["daily_schedule_at"]] == [
        datetime(2026, 1, 15, h, 30, tzinfo=UTC) for h in (0, 6, 12, 18)
    ]
    assert all(t.endswith("+01:00") for t in got["daily_schedule_at"])
    assert got["excluded_objects"] == ["AccountHistory", "Task"]
    assert (got["include_feed"], got["include_share"], got["backup_enabled"]) == (True, False, True)
    assert (got["storage_location"], got["permission_check_interval_days"]) == ("azure://backups/acme", 7)
    assert client.get("/v1/orgs/acme/settings", headers=as_role(Role.VIEWER)).json() == {
        **got,
        "storage_location": None,  # hidden from a viewer (issue 15, finding 9)
    }

    # a partial change keeps the rest; the tile follows the new schedule (13:00 Paris -> 13:30)
    r = client.patch("/v1/orgs/acme/settings", json={"backup_enabled": False}, headers=as_role(Role.ADMIN))
    assert {**got, "backup_enabled": False} == r.json()
    tile = client.get("/v1/orgs/acme", headers=as_role(Role.VIEWER)).json()
    assert tile["next_job_at"] is None and tile["schedule_stopped"] == "backup_disabled"
    client.patch("/v1/orgs/acme/settings", json={"backup_enabled": True}, headers=as_role(Role.ADMIN))
    tile = client.get("/v1/orgs/acme", headers=as_role(Role.VIEWER)).json()
    assert datetime.fromisoformat(tile["next_job_at"]) == datetime(2026, 1, 15, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"jobs_per_day": 0}, "body.jobs_per_day"),
        ({"jobs_per_day": 25}, "body.jobs_per_day"),
        ({"jobs_per_day": None}, "body.jobs_per_day"),
        ({"jobs_per_day": "four"}, "body.jobs_per_day"),
        ({"first_start_time": "25:00"}, "body.first_start_time"),
        ({"first_start_time": "1:30"}, "body.first_start_time"),
        ({"event_logs": "weekly"}, "body.event_logs"),
        ({"time_zone": "Mars/Olympus"}, "body.time_zone"),
        ({"time_zone": "Europe/Paris "}, "body.time_zone"),
        ({"permission_check_interval_days": 0}, "body.permission_check_interval_days"),
        ({"permission_check_start": "2026-02-01T00:00:00"}, "body.permission_check_start"),
        ({"excluded_objects": ["Account; DROP"]}, "body.excluded_objects.0"),
        ({"storage_location": ""}, "body.storage_location"),
        ({"backup_enabled": "sometimes"}, "body.backup_enabled"),
        ({"colour": "blue"}, "body.colour"),
    ],
)
def test_bad_settings_are_422_naming_the_field_and_save_nothing(
    client: TestClient, as_role: Headers, catalog: Callable[[], Any], change: dict[str, Any], field: str
) -> None:
    with catalog() as s:
        add_org(s, "acme")
    before = client.get("/v1/orgs/acme/settings", headers=as_role(Role.VIEWER)).json()
    # valid changes next to the bad one must not be saved either
    body = {"jobs_per_day": 4, "include_share": True, "time_zone": "Asia/Tokyo", **change}
    r = client.patch("/v1/orgs/acme/settings", json=body, headers=as_role(Role.ADMIN))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "SFV-903"
    assert field in fields_of(r.json())
    assert field.removeprefix("body.").split(".")[0] in r.json()["message"]
    assert client.get("/v1/orgs/acme/settings", headers=as_role(Role.VIEWER)).json() == before


# --- disconnect -------------------------------------------------------------------------------------


def test_disconnect_removes_the_org_and_its_jobs(
    client: TestClient, as_role: Headers, catalog: Callable[[], Any]
) -> None:
    with catalog() as s:
        acme = add_org(s, "acme")
        add_job(s, acme, JobState.SUCCEEDED, at=NOW - timedelta(days=1), kind=JobKind.FULL)
        busy = add_org(s, "busy")
        running = add_job(s, busy, JobState.RUNNING, at=NOW - timedelta(minutes=1))
        running_id = running.id

    assert client.delete("/v1/orgs/acme", headers=as_role(Role.OPERATOR)).status_code == 403
    r = client.delete("/v1/orgs/acme", headers=as_role(Role.ADMIN))
    assert r.status_code == 204
    assert r.content == b""
    assert client.get("/v1/orgs/acme", headers=as_role(Role.VIEWER)).status_code == 404
    with catalog() as s:
        assert corgs.find_org_by_name(s, "acme") is None
        assert s.scalar(select(func.count()).select_from(Job).where(Job.org_id == acme.id)) == 0

    # a running job must be cancelled first
    r = client.delete("/v1/orgs/busy", headers=as_role(Role.ADMIN))
    assert r.status_code == 409
    assert r.json()["code"] == "SFV-601"
    assert running_id in r.json()["message"]
    assert [t["name"] for t in client.get("/v1/orgs", headers=as_role(Role.VIEWER)).json()] == ["busy"]


def test_openapi_documents_the_orgs_models(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for name in ("ConnectOrg", "Connected", "OrgTile", "OrgDetails", "OrgSettingsOut", "OrgSettingsPatch"):
        assert name in schemas
    patch = schemas["OrgSettingsPatch"]["properties"]
    assert patch["jobs_per_day"]["anyOf"][0]["maximum"] == 24
    assert patch["first_start_time"]["description"]
    assert doc["paths"]["/v1/orgs"]["post"]["responses"]["201"]
    assert "204" in doc["paths"]["/v1/orgs/{org}"]["delete"]["responses"]


# --- the CLI uses the same connect ------------------------------------------------------------------


@pytest.mark.emulator
def test_cli_org_add_checks_then_stores_like_the_api(
    tmp_path: Path, settings: Settings, api_emulator: EmulatorProcess, catalog: Callable[[], Any]
) -> None:
    from typer.testing import CliRunner

    from engine.cli import app

    config = tmp_path / "sfvault.toml"
    keys = ("repository_url", "key_file", "catalog_url", "scratch_dir", "export_dir")
    config.write_text("[sfvault]\n" + "".join(f'{k} = "{getattr(settings, k)}"\n' for k in keys))
    i = api_emulator.info
    args = [
        "org", "add", "acme", "--instance-url", i["instance_url"], "--login-url", i["login_url"],
        "--username", i["username"], "--security-token", i["security_token"], "--client-id", i["client_id"],
        "--client-secret", i["client_secret"], "--config", str(config),
    ]  # fmt: skip
    runner = CliRunner()

    bad_zone = runner.invoke(app, [*args, "--password", i["password"], "--time-zone", "Mars/Olympus"])
    assert bad_zone.exit_code == 2, bad_zone.output
    wrong = runner.invoke(app, [*args, "--password", "not-the-password"])
    assert wrong.exit_code == 77, wrong.output
    with catalog() as s:
        assert corgs.find_org_by_name(s, "acme") is None

    ok = runner.invoke(app, [*args, "--password", i["password"], "--time-zone", "Europe/Paris"])
    assert ok.exit_code == 0, ok.output
    assert "connected org acme" in ok.output
    with catalog() as s:
        org = corgs.get_org_by_name(s, "acme")
        assert (org.time_zone, org.storage_location) == ("Europe/Paris", settings.repository_url)
        assert org.credentials_sealed is not None
