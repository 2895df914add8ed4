"""Continuous data protection inside ``sfvault serve`` (decision 0033): the real API app with its
change event subscribers (:mod:`api.cdp_supervisor`), the emulator's Pub/Sub gRPC server (TLS, its
own process), a real local repository and SQLite catalog, a real Dask LocalCluster for the
catch-up job. No sleeps: waits are ``poll_for`` on the repository's committed segments, the
catalog and the API's answers.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cdp_supervisor import Backoff
from devkit.backup_env import BackupEnv, backup_env
from engine.catalog.models import Role
from engine.cli import app
from engine.jobs.cdp import set_protection
from engine.sink.lock import cdp_lane
from engine.sink.segments import SegmentStore
from tests.api.conftest import bearer, make_tokens
from tests.helpers.emulator_proc import poll_for

pytestmark = pytest.mark.emulator

V = "/services/data/v62.0"
_orgs = itertools.count(1)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    root = tmp_path_factory.mktemp("cdpserve")
    with backup_env(root, scale=3_000, seed=23, processes=False, n_workers=1, tls=True) as e:
        e.em.admin("POST", "/pubsub/cdc", json={"entities": ["Account", "Contact"]})
        e.em.admin("POST", "/pubsub/settings", json={"keepalive_s": 0.2})
        e.settings = e.settings.model_copy(update={"pubsub_endpoint": str(e.em.info["pubsub_url"]),
                                                   "scratch_dir": root / "scratch",
                                                   "export_dir": root / "exports"})  # fmt: skip
        yield e


@pytest.fixture(scope="module")
def tokens(env: BackupEnv) -> dict[Role, dict[str, str]]:
    return {role: bearer(tok) for role, tok in make_tokens(env.settings.catalog_url).items()}


@pytest.fixture
def org(env: BackupEnv) -> Iterator[str]:
    """A fresh org name over the module's emulator org (its own catalog row, chain and segments);
    its protection is turned off afterwards, so the next test's service does not subscribe for it."""
    name = f"serve{next(_orgs)}"
    env.add_org(name)
    yield name
    set_protection(env.settings, name, None)


@contextmanager
def served(env: BackupEnv) -> Iterator[TestClient]:
    """The real app with its change event subscribers on (its lifespan starts and stops them)."""
    app = create_app(env.settings, scheduler=False, cdp=True, dask_factory=lambda: env.dask,
                     job_options=env.options, cdp_backoff=Backoff(first=0.2, most=1.0))  # fmt: skip
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _rest(env: BackupEnv) -> httpx.Client:
    return httpx.Client(base_url=env.em.url, verify=env.em.verify, trust_env=False, timeout=60,
                        headers={"Authorization": f"Bearer {env.em.token()}"})  # fmt: skip


def _bus_events(env: BackupEnv, obj: str = "Account") -> int:
    return int(env.em.admin("GET", "/pubsub")["events_by_entity"].get(obj, 0))


def _committed(env: BackupEnv, org: str, obj: str = "Account") -> int:
    with env.repo() as repo:
        return sum(s.events for s in SegmentStore(repo).segments(org, obj))


def _checkpoint(env: BackupEnv, org: str, obj: str = "Account") -> Any:
    with env.repo() as repo:
        return SegmentStore(repo).checkpoint(org, obj)


def _touch(env: BackupEnv, n: int, offset: int = 0, text: str = "x") -> None:
    """``n`` REST updates of Accounts: one change event each."""
    q = "SELECT Id FROM sf_account WHERE NOT IsDeleted ORDER BY Id LIMIT ? OFFSET ?"
    ids = [str(r[0]) for r in env.em.sql(q, n, offset)]
    with _rest(env) as rest:
        for k, rid in enumerate(ids):
            r = rest.patch(f"{V}/sobjects/Account/{rid}", json={"Description": f"{text} {k}"})
            assert r.status_code == 204, r.text


def _cdp(api: TestClient, org: str, tokens: dict[Role, dict[str, str]]) -> dict[str, Any]:
    res = api.get(f"/v1/orgs/{org}/cdp", headers=tokens[Role.VIEWER])
    assert res.status_code == 200, res.text
    return dict(res.json())


def test_protection_through_the_api_starts_and_stops_the_org_subscriber(
    env: BackupEnv, org: str, tokens: dict[Role, dict[str, str]]
) -> None:
    with served(env) as api:
        url = f"/v1/orgs/{org}/cdp"
        assert _cdp(api, org, tokens) == {"enabled": False, "objects": [], "start_at": None,
                                          "interval_s": 3600, "subscriber": None}  # fmt: skip
        refusals = [
            ({"enabled": True, "objects": ["Account", "Attachment"]}, "SFV-621"),  # a file object
            ({"enabled": True, "objects": ["Account", "Lead"]}, "SFV-622"),  # CDC not on for Lead
            ({"enabled": True, "objects": []}, "SFV-620"),
        ]
        for body, code in refusals:
            res = api.put(url, json=body, headers=tokens[Role.ADMIN])
            assert (res.status_code, res.json()["code"]) == (422, code), res.text
            assert set(res.json()) == {"code", "message", "details"}
        res = api.put(url, json={"enabled": True, "objects": ["Account"]}, headers=tokens[Role.OPERATOR])
        assert res.status_code == 403, res.text
        assert _cdp(api, org, tokens)["enabled"] is False  # nothing refused was saved

        body = {
            "enabled": True,
            "objects": ["Account"],
            "interval_s": 120,
            "start_at": "2000-01-01T00:00:00Z",
        }
        res = api.put(url, json=body, headers=tokens[Role.ADMIN])
        assert res.status_code == 200, res.text
        out = res.json()
        assert (out["enabled"], out["objects"], out["interval_s"]) == (True, ["Account"], 120)
        assert out["subscriber"] is not None
        poll_for(lambda: _checkpoint(env, org) is not None, timeout=120)  # the chain started
        base = _bus_events(env)
        _touch(env, 25)
        poll_for(lambda: _committed(env, org) == _bus_events(env) - base, timeout=120)
        sub = _cdp(api, org, tokens)["subscriber"]
        assert sub["state"] == "running" and sub["runs"] == 1 and sub["failures"] == 0, sub

        res = api.put(url, json={"enabled": False}, headers=tokens[Role.ADMIN])
        assert res.status_code == 200, res.text
        assert res.json()["enabled"] is False and res.json()["subscriber"] is None
        assert res.json()["objects"] == ["Account"]  # kept for the next `enable`
        assert api.app.state.ctx.cdp.status(org) is None  # type: ignore[attr-defined]


def test_the_service_starts_subscribers_of_protected_orgs_and_seals_what_they_hold_at_shutdown(
    env: BackupEnv, org: str, tokens: dict[Role, dict[str, str]]
) -> None:
    """Protection enabled by the CLI's code path: the service starts the org's subscriber at start.
    At shutdown the received, not yet sealed events are sealed (the keep-alive that would seal
    them is 10 minutes away) and the stop does not wait for the stream's next response."""
    set_protection(env.settings, org, ["Account"], interval_s=3600)
    with served(env):
        poll_for(lambda: _checkpoint(env, org) is not None, timeout=120)
    base = _bus_events(env)
    env.em.admin("POST", "/pubsub/settings", json={"keepalive_s": 600})
    try:
        with served(env) as api:
            _touch(env, 7, offset=40)
            subs = api.app.state.ctx.cdp._orgs[org]  # type: ignore[attr-defined]
            poll_for(lambda: sum(len(s.buffer) for s in subs.subscribers) == 7, timeout=120)
            assert _committed(env, org) == 0  # held, not sealed yet
    finally:
        env.em.admin("POST", "/pubsub/settings", json={"keepalive_s": 0.2})
    assert _committed(env, org) == _bus_events(env) - base == 7


def test_a_failing_org_is_logged_shown_and_retried_and_the_service_goes_on(
    env: BackupEnv, org: str, tokens: dict[Role, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    """The org's daily delivery allocation is spent: its subscriber stops with SFV-453, which is
    logged on one line, shown by the API and retried with backoff while the API answers; once the
    allocation is back, the retry resumes after the last committed segment with nothing lost."""
    set_protection(env.settings, org, ["Account"])
    allocation = env.em.admin("GET", "/pubsub")["allocation"]
    caplog.set_level(logging.ERROR, logger="sfvault.api.cdp")
    with served(env) as api:
        poll_for(lambda: _checkpoint(env, org) is not None, timeout=120)
        base = _bus_events(env)
        env.em.admin("POST", "/pubsub/allocation", json={"max": 10, "used": 10})
        try:
            _touch(env, 5, offset=80)
            poll_for(
                lambda: (_cdp(api, org, tokens)["subscriber"] or {}).get("failures", 0) >= 2, timeout=120
            )
            sub = _cdp(api, org, tokens)["subscriber"]
            assert sub["last_error_code"] == "SFV-453" and sub["retry_at"] is not None, sub
            assert api.get("/healthz").status_code == 200  # the service goes on
            assert api.get(f"/v1/orgs/{org}", headers=tokens[Role.VIEWER]).status_code == 200
        finally:
            env.em.admin("POST", "/pubsub/allocation", json={"max": allocation.get("max"), "used": 0})
        poll_for(lambda: _committed(env, org) == _bus_events(env) - base, timeout=120)
        assert _cdp(api, org, tokens)["subscriber"]["state"] == "running"
    lines = [m for r in caplog.records if "code=SFV-453" in (m := r.getMessage()) and f"org={org} " in m]
    assert lines and all("\n" not in m and "retry_in=" in m for m in lines), lines


def test_an_object_streamed_elsewhere_is_retried_until_its_lane_is_free(
    env: BackupEnv, org: str, tokens: dict[Role, dict[str, str]]
) -> None:
    """Decision 0036: while another subscriber of the object (an operator's ``sfvault cdp run``)
    holds its ``cdp:Account`` lane, the service's subscriber of that org does not write a second
    chain: it is refused with SFV-330 naming the holder, shown and retried; once the lane is free
    it streams."""
    set_protection(env.settings, org, ["Account"])
    with env.repo() as repo:
        other = repo.lock(org, holder="sfvault cdp run by an operator", lane=cdp_lane("Account")).acquire()
        try:
            with served(env) as api:
                poll_for(lambda: (_cdp(api, org, tokens)["subscriber"] or {}).get("failures", 0) >= 1,
                         timeout=120)  # fmt: skip
                sub = _cdp(api, org, tokens)["subscriber"]
                assert sub["last_error_code"] == "SFV-330", sub
                assert "sfvault cdp run by an operator" in sub["last_error_message"], sub
                assert _checkpoint(env, org) is None  # no second chain was started
                other.release()
                poll_for(lambda: _checkpoint(env, org) is not None, timeout=120)
                assert _cdp(api, org, tokens)["subscriber"]["state"] == "running"
        finally:
            other.release()


def test_an_expired_replay_id_starts_the_catch_up_job_through_the_job_service(
    env: BackupEnv, org: str, tokens: dict[Role, dict[str, str]]
) -> None:
    """The service was down longer than the retention while the object changed: at start its
    subscriber finds the last committed replay id expired (SFV-452), writes a restart segment,
    starts the catch-up incremental job of the object through the job service, and streams again
    on a new chain."""
    full = env.backup(org)
    assert full.state == "succeeded", full.error_message
    set_protection(env.settings, org, ["Account"])
    with served(env):
        poll_for(lambda: _checkpoint(env, org) is not None, timeout=120)  # the chain started
    _touch(env, 2, offset=120)  # changed while the service is down
    env.em.admin("POST", "/pubsub/settings", json={"retention_hours": 1})
    env.em.admin("POST", "/clock", json={"advance": 7200})  # those events are past the retention
    try:
        with served(env) as api:
            poll_for(lambda: (_cdp(api, org, tokens)["subscriber"] or {}).get("catch_up_jobs"), timeout=120)
            job_id = _cdp(api, org, tokens)["subscriber"]["catch_up_jobs"][0]

            def ended() -> bool:
                res = api.get(f"/v1/jobs/{job_id}", headers=tokens[Role.VIEWER])
                return res.status_code == 200 and res.json()["state"] not in ("queued", "running")

            poll_for(ended, timeout=300)
            job = api.get(f"/v1/jobs/{job_id}", headers=tokens[Role.VIEWER]).json()
            assert (job["state"], job["kind"]) == ("succeeded", "incremental"), job
            sub = _cdp(api, org, tokens)["subscriber"]
            assert sub["last_error_code"] == "SFV-452", sub
            poll_for(lambda: _cdp(api, org, tokens)["subscriber"]["runs"] >= 2, timeout=120)
            with env.repo() as repo:
                chain = SegmentStore(repo).segments(org, "Account")
            assert any(seg.restart == "SFV-452" for seg in chain)
            before = _committed(env, org)
            _touch(env, 3, offset=130, text="after")
            poll_for(lambda: _committed(env, org) == before + 3, timeout=120)  # the new chain streams
    finally:
        env.em.admin("POST", "/clock", json={"advance": -7200})
        env.em.admin("POST", "/pubsub/settings", json={"retention_hours": 72})


def _covered(env: BackupEnv, org: str, obj: str = "Account") -> Any:
    cp = _checkpoint(env, org, obj)
    return cp.covered if cp is not None else None


def _now(env: BackupEnv) -> datetime:
    at = datetime.fromisoformat(env.em.admin("GET", "/clock")["now"])
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def test_job_record_data_view_and_permission_check_show_the_change_events(
    env: BackupEnv, org: str, tokens: dict[Role, dict[str, str]], tmp_path: Path
) -> None:
    """With the service streaming Account: the recovery point job says which events it holds (count,
    replay id and commit time range, per change type), the data view (API and CLI) counts the
    committed events per protected object, and the permission check lists what Change Data
    Capture needs: granted for Account, not granted for Contact once it is deselected in Setup."""
    set_protection(env.settings, org, ["Account", "Contact"])
    with served(env) as api:
        poll_for(lambda: _checkpoint(env, org) is not None and _checkpoint(env, org, "Contact"), timeout=120)
        full = env.backup(org)
        assert full.state == "succeeded", full.error_message
        base = _bus_events(env)
        _touch(env, 5, offset=200, text="rp")
        at = _now(env)
        poll_for(lambda: _committed(env, org) == _bus_events(env) - base == 5, timeout=120)
        poll_for(lambda: (c := _covered(env, org)) is not None and c >= at, timeout=120)
        res = api.post(f"/v1/orgs/{org}/recovery-points", json={"at": at.isoformat(), "objects": ["Account"]},
                       headers=tokens[Role.OPERATOR])  # fmt: skip
        assert res.status_code == 201, res.text
        job = api.get(f"/v1/jobs/{res.json()['job']}", headers=tokens[Role.VIEWER]).json()
        held = job["recovery_point"]["objects"]["Account"]
        assert held["base_job"] == full.job_id
        assert (held["events_applied"], held["change_rows"], held["change_types"]) == (5, 5, {"UPDATE": 5})
        assert (
            held["first_replay_id"]
            and held["last_replay_id"]
            and held["first_replay_id"] < held["last_replay_id"]
        )
        first, last = (
            datetime.fromisoformat(held["first_commit"]),
            datetime.fromisoformat(held["last_commit"]),
        )
        assert datetime.fromisoformat(held["from"]) <= first <= last <= at

        data = api.get(f"/v1/orgs/{org}/data", params={"job": full.job_id}, headers=tokens[Role.VIEWER])
        assert data.status_code == 200, data.text
        events = {e["object"]: e for e in data.json()["change_events"]}
        assert set(events) == {"Account", "Contact"}
        assert (events["Account"]["events"], events["Account"]["events_after_job"]) == (5, 5)
        assert events["Contact"]["events"] == 0 and events["Account"]["covered_to"] is not None
        cfg = tmp_path / "sfvault.toml"
        s = env.settings
        cfg.write_text(
            "[sfvault]\n"
            f'repository_url = "{s.repository_url}"\nkey_file = "{s.key_file}"\n'
            f'catalog_url = "{s.catalog_url}"\n'
            f'scratch_dir = "{s.scratch_dir}"\npubsub_endpoint = "{s.pubsub_endpoint}"\n'
        )
        shown = CliRunner().invoke(app, ["data", org, "--job", full.job_id, "--json", "--config", str(cfg)])
        assert shown.exit_code == 0, shown.output
        cli_events = {e["object"]: e["events"] for e in json.loads(shown.stdout)["change_events"]}
        assert cli_events == {"Account": 5, "Contact": 0}
        job_shown = CliRunner().invoke(app, ["job", "show", res.json()["job"], "--config", str(cfg)])
        assert job_shown.exit_code == 0, job_shown.output
        assert "Account: job" in job_shown.output and "+ 5 change events" in job_shown.output

        env.em.admin("POST", "/pubsub/cdc", json={"entities": ["Contact"], "enabled": False})
        try:
            res = api.post(f"/v1/orgs/{org}/permission-checks", headers=tokens[Role.ADMIN])
        finally:
            env.em.admin("POST", "/pubsub/cdc", json={"entities": ["Contact"], "enabled": True})
        assert res.status_code == 201, res.text
        cdc = {
            p["permission"]: p
            for p in res.json()["user_permissions"]
            if p["needed_for"] == "change data capture"
        }
        assert set(cdc) == {"PermissionsApiEnabled", "PermissionsViewAllRecords:Account",
                            "PermissionsViewAllRecords:Contact", "ChangeDataCapture:Account",
                            "ChangeDataCapture:Contact"}  # fmt: skip
        assert cdc["ChangeDataCapture:Account"]["granted"] and cdc["PermissionsApiEnabled"]["granted"]
        assert not cdc["ChangeDataCapture:Contact"]["granted"]
        assert "SFV-622" in cdc["ChangeDataCapture:Contact"]["why"]
        assert "Contact selected in Setup > Change Data Capture" in res.json()["missing_permissions"]


def test_cli_start_and_interval_and_a_subscriber_that_waits_for_its_start(
    env: BackupEnv, org: str, tokens: dict[Role, dict[str, str]], tmp_path: Path
) -> None:
    """`sfvault cdp enable --start --interval`: stored, shown by the API (a bad interval is
    SFV-624); the service's subscriber waits for a start time ahead, and streams once it is moved
    to now through the API."""
    s = env.settings
    cfg = tmp_path / "sfvault.toml"
    cfg.write_text(
        f'[sfvault]\nrepository_url = "{s.repository_url}"\nkey_file = "{s.key_file}"\n'
        f'catalog_url = "{s.catalog_url}"\npubsub_endpoint = "{s.pubsub_endpoint}"\n'
    )
    runner = CliRunner()
    bad = runner.invoke(
        app, ["cdp", "enable", org, "--objects", "Account", "--interval", "2d", "--config", str(cfg)]
    )
    assert bad.exit_code == 2 and "SFV-624" in bad.output, bad.output
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    ok = runner.invoke(app, ["cdp", "enable", org, "--objects", "Account", "--start", later.isoformat(),
                             "--interval", "15m", "--config", str(cfg)])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    with served(env) as api:
        out = _cdp(api, org, tokens)
        assert (out["enabled"], out["interval_s"]) == (True, 900)
        assert datetime.fromisoformat(out["start_at"]) == later
        poll_for(lambda: (_cdp(api, org, tokens)["subscriber"] or {}).get("state") == "waiting", timeout=60)
        assert _checkpoint(env, org) is None  # nothing subscribed before the start
        now = datetime.now(UTC).isoformat()
        res = api.put(f"/v1/orgs/{org}/cdp", json={"enabled": True, "objects": ["Account"], "start_at": now},
                      headers=tokens[Role.ADMIN])  # fmt: skip
        assert res.status_code == 200 and res.json()["interval_s"] == 900, res.text  # the interval is kept
        poll_for(lambda: _checkpoint(env, org) is not None, timeout=120)
        assert _cdp(api, org, tokens)["subscriber"]["state"] == "running"
