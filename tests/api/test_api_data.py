"""The data, compare and export endpoints over real backups.

One module-scoped environment: a private emulated org (scale 3,000), a local encrypted
repository, a SQLite catalog and a process-based Dask LocalCluster run full → churn →
incremental once; the cluster and the emulator stop after that, since these endpoints read only
the repository and the catalog. The org's ``storage_location`` names the repository while the
service's ``repository_url`` points at an empty folder, so every endpoint must use the org's.
The engine (``job_stats``, ``compare``) over the same repository is the reference.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pytest
import pyzipper
from fastapi.testclient import TestClient

from api.app import create_app
from api.context import AppContext
from devkit.backup_env import backup_env
from engine.catalog import orgs as corgs
from engine.catalog.db import make_engine, session_factory, transaction
from engine.catalog.models import Role
from engine.config import Settings
from engine.diff.compare import StatsFilter, compare, job_calls, job_stats
from engine.diff.recovery import RecoveryPoints
from engine.sink.repository import open_repository
from tests.api.conftest import bearer, make_tokens
from tests.helpers.emulator_proc import poll_for

pytestmark = [pytest.mark.emulator, pytest.mark.cluster]

ORG = "acme"


@dataclass
class DataEnv:
    client: TestClient
    tokens: dict[Role, str]
    repo_settings: Settings  # pointing at the real repository
    full_job: str
    inc_job: str

    def h(self, role: Role) -> dict[str, str]:
        return bearer(self.tokens[role])

    @property
    def ctx(self) -> AppContext:
        ctx: AppContext = self.client.app.state.ctx  # type: ignore[attr-defined]
        return ctx


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataEnv]:
    root = tmp_path_factory.mktemp("api-data")
    with backup_env(root, scale=3_000, seed=21) as be:
        be.add_org(ORG)
        full = be.backup(ORG)
        assert full.state == "succeeded", full.error_message
        be.churn(5, seed=22)
        inc = be.backup(ORG)
        assert inc.state == "succeeded", inc.error_message
        assert inc.kind == "incremental"
        repo_settings = be.settings
    engine = make_engine(repo_settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            corgs.update_org(s, corgs.get_org_by_name(s, ORG), storage_location=repo_settings.repository_url)
    finally:
        engine.dispose()
    service = repo_settings.model_copy(
        update={
            "repository_url": str(root / "not-the-repository"),
            "scratch_dir": root / "scratch",
            "export_dir": root / "exports",
            "scheduler_enabled": False,
            "max_concurrent_jobs": 1,
        }
    )
    tokens = make_tokens(service.catalog_url)
    with TestClient(create_app(service, scheduler=False), raise_server_exceptions=False) as client:
        yield DataEnv(client, tokens, repo_settings, full.job_id, inc.job_id)


@pytest.fixture
def rp(env: DataEnv, tmp_path: Path) -> Iterator[RecoveryPoints]:
    """The engine's view of the same repository (the reference)."""
    repo = open_repository(env.repo_settings)
    try:
        with RecoveryPoints(repo, ORG, scratch_root=tmp_path) as points:
            yield points
    finally:
        repo.close()


def _stats(rows: list[Any]) -> list[dict[str, Any]]:
    keep = ("object", "type", "records", "backup_bytes", "added", "changed", "removed", "api_calls",
            "rest_calls", "bulk2_calls", "bulk1_calls", "bulk_jobs", "bulk1_batches", "captured", "as_of",
            "as_of_job")  # fmt: skip
    return [{k: (r[k] if isinstance(r, dict) else getattr(r, k)) for k in keep} for r in rows]


def _wait(env: DataEnv, path: str, timeout: float = 120.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = env.client.get(path, headers=env.h(Role.VIEWER)).json()
        return body if body["state"] in ("succeeded", "failed") else None

    result: dict[str, Any] = poll_for(done, timeout=timeout, interval=0.1)
    return result


# --- statistics --------------------------------------------------------------------------------


def test_statistics_of_the_newest_job_equal_the_engine(env: DataEnv, rp: RecoveryPoints) -> None:
    r = env.client.get(f"/v1/orgs/{ORG}/data", headers=env.h(Role.VIEWER))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["job"], body["previous_job"], body["kind"]) == (env.inc_job, env.full_job, "incremental")
    reference = job_stats(rp, env.inc_job)
    assert body["objects"] == _stats(reference)
    assert sum(o["changed"] for o in body["objects"]) > 0  # the churn shows
    assert sum(o["bulk_jobs"] for o in body["objects"]) + sum(o["rest_calls"] for o in body["objects"]) > 0
    assert body["totals"]["records"] == sum(s.records for s in reference)
    assert body["totals"]["changed"] == sum(s.changed for s in reference)
    # an object's API calls are its calls by API; the job's are its manifest's (decision 0027)
    for o in body["objects"]:
        assert o["api_calls"] == o["rest_calls"] + o["bulk2_calls"] + o["bulk1_calls"], o
    calls = job_calls(rp, env.inc_job)
    assert body["usage"] == {"api_calls": calls.total, "rest_calls": calls.rest, "bulk2_calls": calls.bulk2,
                             "bulk1_calls": calls.bulk1, "bulk1_batches": calls.bulk1_batches}  # fmt: skip
    assert calls.total >= body["totals"]["api_calls"] > 0  # discovery calls are no object's


def test_statistics_of_the_full_job_count_everything_as_added(env: DataEnv) -> None:
    r = env.client.get(f"/v1/orgs/{ORG}/data", params={"job": env.full_job}, headers=env.h(Role.VIEWER))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["previous_job"] is None and body["kind"] == "full"
    assert body["objects"] and all(o["added"] == o["records"] for o in body["objects"])
    assert all(o["changed"] == o["removed"] == 0 for o in body["objects"])


def test_statistics_filters(env: DataEnv, rp: RecoveryPoints) -> None:
    cases: list[tuple[dict[str, Any], StatsFilter]] = [
        ({"type": "custom"}, StatsFilter(frozenset({"custom"}))),
        ({"type": ["standard", "files"]}, StatsFilter(frozenset({"standard", "files"}))),
        ({"min_changed": 1}, StatsFilter(min_changed=1)),
        ({"min_added": 1, "max_removed": 0}, StatsFilter(min_added=1, max_removed=0)),
        ({"max_changed": 0, "max_added": 0}, StatsFilter(max_changed=0, max_added=0)),
    ]
    everything = env.client.get(f"/v1/orgs/{ORG}/data", headers=env.h(Role.VIEWER)).json()["objects"]
    cached = len(env.client.app.state.data_stats_cache)  # type: ignore[attr-defined]
    for params, f in cases:
        r = env.client.get(f"/v1/orgs/{ORG}/data", params=params, headers=env.h(Role.VIEWER))
        assert r.status_code == 200, (params, r.text)
        got = r.json()["objects"]
        assert got == [o for o in everything if f.keep(_Row(o))], params
        assert r.json()["totals"]["records"] == sum(o["records"] for o in got)
    # filters are applied to the cached statistics of the job: no new entry
    assert len(env.client.app.state.data_stats_cache) == cached  # type: ignore[attr-defined]
    min_changed = StatsFilter(min_changed=1)
    changed = env.client.get(f"/v1/orgs/{ORG}/data", params={"min_changed": 1}, headers=env.h(Role.VIEWER))
    assert changed.json()["objects"] == _stats(job_stats(rp, env.inc_job, filter=min_changed))
    assert changed.json()["objects"] and all(o["changed"] >= 1 for o in changed.json()["objects"])
    assert len(changed.json()["objects"]) < len(everything)
    custom = env.client.get(f"/v1/orgs/{ORG}/data", params={"type": "custom"}, headers=env.h(Role.VIEWER))
    assert custom.json()["objects"] and {o["type"] for o in custom.json()["objects"]} == {"custom"}


class _Row:
    def __init__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"min_added": 5, "max_added": 2}, "query.min_added"),
        ({"min_changed": 3, "max_changed": 1}, "query.min_changed"),
        ({"min_removed": 9, "max_removed": 0}, "query.min_removed"),
        ({"min_added": -1}, "query.min_added"),
        ({"max_removed": "many"}, "query.max_removed"),
        ({"type": "tables"}, "query.type.0"),
    ],
)
def test_statistics_bad_filters_are_422_naming_the_field(
    env: DataEnv, params: dict[str, Any], field: str
) -> None:
    r = env.client.get(f"/v1/orgs/{ORG}/data", params=params, headers=env.h(Role.VIEWER))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "SFV-903"
    assert field in [e["field"] for e in r.json()["details"]["errors"]]


def test_statistics_unknown_org_job_and_no_token(env: DataEnv) -> None:
    r = env.client.get("/v1/orgs/nobody/data", headers=env.h(Role.VIEWER))
    assert (r.status_code, r.json()["code"]) == (404, "SFV-101")
    r = env.client.get(
        f"/v1/orgs/{ORG}/data", params={"job": "19990101T000000Z-0"}, headers=env.h(Role.VIEWER)
    )
    assert (r.status_code, r.json()["code"]) == (404, "SFV-702")
    assert env.client.get(f"/v1/orgs/{ORG}/data").status_code == 401
    assert env.client.get("/v1/orgs/bad name!/data", headers=env.h(Role.VIEWER)).status_code == 422


# --- compares ----------------------------------------------------------------------------------


def test_compare_summary_equals_the_engine(env: DataEnv, rp: RecoveryPoints) -> None:
    r = env.client.post(f"/v1/orgs/{ORG}/compares", json={}, headers=env.h(Role.OPERATOR))
    assert r.status_code == 202, r.text
    queued = r.json()
    assert queued["state"] in ("queued", "running", "succeeded")
    assert (queued["job"], queued["against"]) == (env.inc_job, env.full_job)
    assert queued["created_by"] == "token:test-operator"

    done = _wait(env, f"/v1/compares/{queued['id']}")
    assert done["state"] == "succeeded", done["error"]
    assert done["progress"] == 1.0 and done["error"] is None and done["finished_at"]

    reference = compare(rp, env.inc_job, env.full_job)
    expected = {
        name: {
            "added": d.added,
            "changed": d.changed,
            "removed": d.removed,
            "changed_fields": d.field_counts(),
        }
        for name, d in reference.objects.items()
    }
    assert done["summary"] == {"job": env.inc_job, "against": env.full_job, "objects": expected}
    assert sum(o["changed"] for o in expected.values()) > 0

    listed = env.client.get(f"/v1/orgs/{ORG}/compares", headers=env.h(Role.VIEWER)).json()
    assert queued["id"] in [c["id"] for c in listed]

    # the changed records of one object, with old and new values, page by page
    obj = max(expected, key=lambda n: expected[n]["changed"])
    d = reference.objects[obj]
    want_ids = d.ids("changed", limit=7)
    by_id = d.changed_fields()
    page = env.client.get(
        f"/v1/compares/{queued['id']}/objects/{obj}",
        params={"change": "changed", "limit": 5, "offset": 2},
        headers=env.h(Role.VIEWER),
    )
    assert page.status_code == 200, page.text
    records = page.json()["records"]
    assert [x["id"] for x in records] == want_ids[2:7]
    for x in records:
        assert x["change"] == "changed"
        assert {f["field"] for f in x["fields"]} == by_id[x["id"]]
        assert all(f["old"] != f["new"] for f in x["fields"])
    everything = env.client.get(
        f"/v1/compares/{queued['id']}/objects/{obj}", params={"limit": 1000}, headers=env.h(Role.VIEWER)
    ).json()["records"]
    total = d.added + d.changed + d.removed
    assert len(everything) == min(total, 1000)
    # paging (issue 15, finding 19): next_offset chains the pages, null on the last one
    walked: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None and len(walked) < 1000:
        page_url = f"/v1/compares/{queued['id']}/objects/{obj}"
        got = env.client.get(
            page_url, params={"limit": 7, "offset": offset}, headers=env.h(Role.VIEWER)
        ).json()
        walked += got["records"]
        offset = got["next_offset"]
    assert walked[: len(everything)] == everything
    if total <= 1000:
        counts = {c: sum(1 for x in everything if x["change"] == c) for c in ("added", "changed", "removed")}
        assert counts == {"added": d.added, "changed": d.changed, "removed": d.removed}

    missing = env.client.get(
        f"/v1/compares/{queued['id']}/objects/NoSuchObject__c", headers=env.h(Role.VIEWER)
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "SFV-704")


def test_compare_refusals(env: DataEnv) -> None:
    h = env.h(Role.OPERATOR)
    r = env.client.post(f"/v1/orgs/{ORG}/compares", json={}, headers=env.h(Role.VIEWER))
    assert (r.status_code, r.json()["code"]) == (403, "SFV-902")
    r = env.client.post(f"/v1/orgs/{ORG}/compares", json={"job": env.full_job}, headers=h)
    assert (r.status_code, r.json()["code"]) == (409, "SFV-709")  # first job of its cycle
    r = env.client.post(f"/v1/orgs/{ORG}/compares", json={"job": "19990101T000000Z-0"}, headers=h)
    assert (r.status_code, r.json()["code"]) == (404, "SFV-702")
    r = env.client.post(f"/v1/orgs/{ORG}/compares", json={"objects": ["NoSuchObject__c"]}, headers=h)
    assert (r.status_code, r.json()["code"]) == (404, "SFV-704")
    r = env.client.post("/v1/orgs/nobody/compares", json={}, headers=h)
    assert (r.status_code, r.json()["code"]) == (404, "SFV-101")
    for bad, field in (({"objects": []}, "body.objects"), ({"objects": ["Bad Name"]}, "body.objects.0"),
                       ({"job": 5}, "body.job")):  # fmt: skip
        r = env.client.post(f"/v1/orgs/{ORG}/compares", json=bad, headers=h)
        assert r.status_code == 422, r.text
        assert field in [e["field"] for e in r.json()["details"]["errors"]]
    r = env.client.get("/v1/compares/0123456789abcdef", headers=env.h(Role.VIEWER))
    assert (r.status_code, r.json()["code"]) == (404, "SFV-101")
    r = env.client.get("/v1/compares/0123456789abcdef/objects/Account", headers=env.h(Role.VIEWER))
    assert (r.status_code, r.json()["code"]) == (404, "SFV-101")
    listed = env.client.get(f"/v1/orgs/{ORG}/compares", headers=env.h(Role.VIEWER)).json()
    some = listed[0]["id"]
    bad_pages: list[tuple[dict[str, Any], str]] = [
        ({"limit": 0}, "query.limit"),
        ({"limit": 1001}, "query.limit"),
        ({"offset": -1}, "query.offset"),
        ({"change": "moved"}, "query.change"),
    ]
    for params, field in bad_pages:
        r = env.client.get(f"/v1/compares/{some}/objects/Account", params=params, headers=env.h(Role.VIEWER))
        assert r.status_code == 422, r.text
        assert field in [e["field"] for e in r.json()["details"]["errors"]]


# --- exports -----------------------------------------------------------------------------------


def test_csv_export_download_and_password(
    env: DataEnv, rp: RecoveryPoints, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    diff = compare(rp, env.inc_job, env.full_job, objects=["Account"]).objects["Account"]
    assert diff.added + diff.changed > 0
    body = {"kind": "records", "format": "csv", "scope": "changed", "objects": ["Account"], "job": None}

    # hold the runner's only worker so the export stays queued while a second one is refused
    release = threading.Event()
    holder = env.ctx.runner.submit("test: hold the pool", release.wait)
    try:
        r = env.client.post(f"/v1/orgs/{ORG}/exports", json=body, headers=env.h(Role.OPERATOR))
        assert r.status_code == 202, r.text
        queued = r.json()
        assert queued["state"] == "queued" and queued["download"] is None
        assert (queued["kind"], queued["format"], queued["scope"]) == ("records", "csv", "changed")
        second = env.client.post(f"/v1/orgs/{ORG}/exports", json=body, headers=env.h(Role.OPERATOR))
        assert second.status_code == 409, second.text
        assert second.json()["code"] == "SFV-706"
        early = env.client.get(f"/v1/exports/{queued['id']}/download", headers=env.h(Role.OPERATOR))
        assert (early.status_code, early.json()["code"]) == (409, "SFV-710")
    finally:
        release.set()
    holder.result(timeout=30)

    done = _wait(env, f"/v1/exports/{queued['id']}")
    assert done["state"] == "succeeded", done["error"]
    assert done["progress"] == 1.0 and done["size_bytes"] > 0 and done["finished_at"]
    assert done["download"] == f"/v1/exports/{queued['id']}/download"
    assert (done["complete"], done["stale_objects"]) == (True, []), "every object is as of the job"
    monitor = env.client.get(f"/v1/orgs/{ORG}/exports", headers=env.h(Role.VIEWER)).json()
    assert [e["id"] for e in monitor if e["id"] == queued["id"]] == [queued["id"]]
    assert "password" not in str(monitor)

    assert (
        env.client.get(f"/v1/exports/{queued['id']}/download", headers=env.h(Role.VIEWER)).status_code == 403
    )
    for role in (Role.VIEWER, Role.OPERATOR):
        denied = env.client.get(f"/v1/exports/{queued['id']}/password", headers=env.h(role))
        assert (denied.status_code, denied.json()["code"]) == (403, "SFV-902")
        assert "password" not in denied.json()["details"]
    pw = env.client.get(f"/v1/exports/{queued['id']}/password", headers=env.h(Role.ADMIN))
    assert pw.status_code == 200 and pw.headers["cache-control"] == "no-store"
    password = pw.json()["password"]

    dl = env.client.get(f"/v1/exports/{queued['id']}/download", headers=env.h(Role.OPERATOR))
    assert dl.status_code == 200
    assert dl.headers["content-type"] == "application/zip"
    assert f"{queued['id']}.zip" in dl.headers["content-disposition"]
    with pyzipper.AESZipFile(io.BytesIO(dl.content)) as zf:
        with pytest.raises(RuntimeError):
            zf.read("Account.csv", pwd=b"not-the-password")
        zf.setpassword(password.encode())
        assert {"Account.csv", "manifest.csv", "removed.csv"} <= set(zf.namelist())
        table = pacsv.read_csv(
            io.BytesIO(zf.read("Account.csv")),
            convert_options=pacsv.ConvertOptions(column_types={"Id": "string", "Name": "string"}),
        )
        removed = pacsv.read_csv(io.BytesIO(zf.read("removed.csv")))
    expected_ids = sorted([*diff.ids("added"), *diff.ids("changed")])
    assert table.column("Id").to_pylist() == expected_ids
    state = dict(rp.con.sql(f"SELECT Id, Name FROM {rp.relation('Account', env.inc_job)}").fetchall())
    assert {i: state[i] for i in expected_ids} == dict(
        zip(table.column("Id").to_pylist(), table.column("Name").to_pylist(), strict=True)
    )
    assert sorted(removed.column("Id").to_pylist()) == diff.ids("removed")
    assert caplog.records and password not in caplog.text  # the password is never logged


def test_export_refusals(env: DataEnv) -> None:
    h = env.h(Role.OPERATOR)
    url = f"/v1/orgs/{ORG}/exports"
    r = env.client.post(url, json={"objects": ["Account"]}, headers=env.h(Role.VIEWER))
    assert (r.status_code, r.json()["code"]) == (403, "SFV-902")
    for bad, field in (
        ({"kind": "records", "format": "files"}, "body.format"),
        ({"kind": "files", "format": "csv"}, "body.format"),
        ({"kind": "files", "objects": ["Account"]}, "body.objects"),
        ({"kind": "tables"}, "body.kind"),
        ({"scope": "everything"}, "body.scope"),
        ({"objects": []}, "body.objects"),
        ({"objects": ["Account", "Account"]}, "body.objects"),
        ({"objects": ["Drop Table"]}, "body.objects.0"),
    ):
        r = env.client.post(url, json=bad, headers=h)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["code"] == "SFV-903"
        assert field in [e["field"] for e in r.json()["details"]["errors"]], (bad, r.json())
    r = env.client.post(url, json={"objects": ["NoSuchObject__c"]}, headers=h)
    assert (r.status_code, r.json()["code"]) == (404, "SFV-704")
    r = env.client.post(url, json={"job": "19990101T000000Z-0"}, headers=h)
    assert (r.status_code, r.json()["code"]) == (404, "SFV-702")
    r = env.client.post("/v1/orgs/nobody/exports", json={}, headers=h)
    assert (r.status_code, r.json()["code"]) == (404, "SFV-101")
    assert env.client.get("/v1/orgs/nobody/exports", headers=env.h(Role.VIEWER)).status_code == 404
    for path in ("/v1/exports/0123456789abcdef", "/v1/exports/0123456789abcdef/download"):
        r = env.client.get(path, headers=h)
        assert (r.status_code, r.json()["code"]) == (404, "SFV-101"), path
    r = env.client.get("/v1/exports/0123456789abcdef/password", headers=env.h(Role.ADMIN))
    assert (r.status_code, r.json()["code"]) == (404, "SFV-101")


def test_files_export_defaults_its_format_and_holds_the_bodies(env: DataEnv, rp: RecoveryPoints) -> None:
    body = {"kind": "files", "scope": "cycle", "objects": ["Attachment"]}
    r = env.client.post(f"/v1/orgs/{ORG}/exports", json=body, headers=env.h(Role.OPERATOR))
    assert r.status_code == 202, r.text
    assert (r.json()["kind"], r.json()["format"], r.json()["scope"]) == ("files", "files", "cycle")
    done = _wait(env, f"/v1/exports/{r.json()['id']}")
    assert done["state"] == "succeeded", done["error"]
    password = env.client.get(f"/v1/exports/{done['id']}/password", headers=env.h(Role.ADMIN)).json()[
        "password"
    ]
    dl = env.client.get(done["download"], headers=env.h(Role.OPERATOR))
    assert dl.status_code == 200
    with pyzipper.AESZipFile(io.BytesIO(dl.content)) as zf:
        zf.setpassword(password.encode())
        index = pacsv.read_csv(
            io.BytesIO(zf.read("index.csv")),
            convert_options=pacsv.ConvertOptions(column_types={"Id": "string", "path": "string"}),
        ).to_pylist()
        ok = [row for row in index if row["status"] == "ok"]
        assert ok and {row["object"] for row in index} == {"Attachment"}
        for row in ok[:20]:
            assert len(zf.read(row["path"])) == row["bytes"]
    live = rp.count("Attachment", env.inc_job)
    assert len({row["Id"] for row in index}) == live


def test_the_password_is_handed_once_to_an_admin_who_queues_the_export(env: DataEnv) -> None:
    """Issue 15, finding 18: API.md promised the password "again" but never gave it the first time."""
    body = {"kind": "records", "format": "csv", "scope": "cycle", "objects": ["Account"]}
    r = env.client.post(f"/v1/orgs/{ORG}/exports", json=body, headers=env.h(Role.ADMIN))
    assert r.status_code == 202, r.text
    assert r.headers["cache-control"] == "no-store"
    created = r.json()
    password = created["password"]
    assert isinstance(password, str) and len(password) >= 20
    done = _wait(env, f"/v1/exports/{created['id']}")
    assert done["state"] == "succeeded", done["error"]
    assert "password" not in done  # only the 202 answer carries it
    again = env.client.get(f"/v1/exports/{created['id']}/password", headers=env.h(Role.ADMIN)).json()
    assert again["password"] == password
    dl = env.client.get(f"/v1/exports/{created['id']}/download", headers=env.h(Role.OPERATOR))
    with pyzipper.AESZipFile(io.BytesIO(dl.content)) as zf:
        zf.setpassword(password.encode())
        assert zf.read("Account.csv").startswith(b"Id")

    # an operator may queue exports but not see passwords: the 202 answer says null
    r = env.client.post(f"/v1/orgs/{ORG}/exports", json=body, headers=env.h(Role.OPERATOR))
    assert r.status_code == 202, r.text
    assert r.json()["password"] is None
    assert _wait(env, f"/v1/exports/{r.json()['id']}")["state"] == "succeeded"


def test_export_and_compare_lists_page_with_next_offset_and_link(env: DataEnv) -> None:
    body = {"kind": "records", "format": "csv", "scope": "cycle", "objects": ["Account"]}
    for _ in range(2):  # two more compares and exports, so each list has pages of one
        r = env.client.post(f"/v1/orgs/{ORG}/compares", json={}, headers=env.h(Role.OPERATOR))
        assert _wait(env, f"/v1/compares/{r.json()['id']}")["state"] == "succeeded"
        r = env.client.post(f"/v1/orgs/{ORG}/exports", json=body, headers=env.h(Role.OPERATOR))
        assert _wait(env, f"/v1/exports/{r.json()['id']}")["state"] == "succeeded"
    for url in (f"/v1/orgs/{ORG}/exports", f"/v1/orgs/{ORG}/compares"):
        whole = env.client.get(url, headers=env.h(Role.VIEWER))
        assert "X-Next-Offset" not in whole.headers and "Link" not in whole.headers
        ids = [x["id"] for x in whole.json()]
        assert len(ids) >= 2, url
        walked: list[str] = []
        params: dict[str, Any] = {"limit": 1}
        while True:
            r = env.client.get(url, params=params, headers=env.h(Role.VIEWER))
            walked += [x["id"] for x in r.json()]
            if "X-Next-Offset" not in r.headers:
                break
            assert (
                r.headers["Link"].endswith('rel="next"')
                and f"offset={r.headers['X-Next-Offset']}" in r.headers["Link"]
            )
            params = {"limit": 1, "offset": int(r.headers["X-Next-Offset"])}
        assert walked == ids
