"""The operator's whole path over HTTP against a real ``sfvault serve``.

Real processes only: the emulator (scale 3,000), ``sfvault token create`` and ``sfvault serve``
(uvicorn) started from an ``sfvault.toml`` with a SQLite catalog, a local repository folder, a key
file, export and scratch folders and the scheduler off. ``scheduler_address`` is left empty, so
the service embeds its own Dask LocalCluster (worker processes) for the jobs.

Steps, each over HTTP with httpx: connect the org (credentials checked against the emulator),
change its settings, back up now and poll the job to the end, read the job's details, download
the XLSX report and check one row per object with openpyxl, churn 1% of the org, back up again
(incremental), compare the two jobs and poll the compare to the end, then queue a records export,
poll it, download the ZIP and open it with the password the API shows to admins (pyzipper).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.reports import OBJECT_COLUMNS, OBJECTS_SHEET
from devkit.api_server import ApiServer, create_token, running_api_server, write_config
from tests.helpers.emulator_proc import EmulatorProcess, poll_for, start_emulator

pytestmark = [pytest.mark.emulator, pytest.mark.cluster, pytest.mark.slow]

ORG = "e2e-acme"
JOB_TIMEOUT_S = 300
TERMINAL = {"succeeded", "partial", "failed", "cancelled", "skipped"}


@dataclass
class Service:
    server: ApiServer
    em: EmulatorProcess
    admin: httpx.Client
    operator: httpx.Client
    viewer: httpx.Client
    root: Path


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("api-e2e")
    config = write_config(
        root / "sfvault.toml",
        {
            "catalog_url": f"sqlite:///{root / 'catalog.db'}",
            "repository_url": str(root / "repo"),
            "key_file": str(root / "keys" / "repo.key"),
            "export_dir": str(root / "exports"),
            "scratch_dir": str(root / "scratch"),
            "scheduler_enabled": False,
            "scheduler_address": "",
            "retry_wait_max": 0,
            "retry_max_seconds": 60,
            "chunk_target_bytes": 2 * 1024 * 1024,
        },
    )
    tokens = {role: create_token(config, f"e2e-{role}", role) for role in ("admin", "operator", "viewer")}
    em = start_emulator(scale=3_000, seed=5, tls=False, timeout=300)
    try:
        with running_api_server(config, timeout=180) as server:
            yield Service(
                server=server,
                em=em,
                admin=server.client(tokens["admin"], timeout=120),
                operator=server.client(tokens["operator"], timeout=120),
                viewer=server.client(tokens["viewer"], timeout=120),
                root=root,
            )
    finally:
        em.stop()


def _ok(resp: httpx.Response, *statuses: int, server: ApiServer | None = None) -> Any:
    expected = statuses or (200,)
    log = f"\n--- sfvault serve log ---\n{server.log_tail()}" if server else ""
    assert resp.status_code in expected, (
        f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}{log}"
    )
    return (
        resp.json() if resp.headers.get("content-type", "").startswith("application/json") else resp.content
    )


def _wait(svc: Service, url: str, what: str) -> dict[str, Any]:
    """Poll ``url`` (viewer) until its ``state`` is terminal; returns the last body."""

    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = _ok(svc.viewer.get(url), server=svc.server)
        return body if body["state"] in TERMINAL else None

    try:
        result: dict[str, Any] = poll_for(done, timeout=JOB_TIMEOUT_S, interval=0.5)
    except TimeoutError:
        pytest.fail(
            f"{what} not finished in {JOB_TIMEOUT_S}s: {svc.viewer.get(url).text}\n{svc.server.log_tail()}"
        )
    return result


def _back_up(svc: Service, body: dict[str, Any]) -> dict[str, Any]:
    job = _ok(svc.operator.post(f"/v1/orgs/{ORG}/backups", json=body), 202, server=svc.server)
    finished = _wait(svc, f"/v1/jobs/{job['id']}", f"job {job['id']}")
    assert finished["state"] == "succeeded", finished
    return finished


def test_operator_path_over_http(service: Service) -> None:
    svc, em = service, service.em
    i = em.info

    # connect: the credentials are checked against the (emulated) org before anything is saved
    connect = {
        "name": ORG,
        "instance_url": i["instance_url"],
        "login_url": i["login_url"],
        "username": i["username"],
        "password": i["password"],
        "security_token": i["security_token"],
        "client_id": i["client_id"],
        "client_secret": i["client_secret"],
        "time_zone": "Europe/Paris",
    }
    connected = _ok(svc.admin.post("/v1/orgs", json=connect), 201, server=svc.server)
    assert connected["name"] == ORG
    tiles = _ok(svc.viewer.get("/v1/orgs"))
    assert [t["name"] for t in tiles] == [ORG]

    # settings: partial change, answered with the computed schedule
    settings = _ok(
        svc.admin.patch(f"/v1/orgs/{ORG}/settings", json={"jobs_per_day": 4, "first_start_time": "01:30"})
    )
    assert settings["jobs_per_day"] == 4
    assert settings["daily_schedule"] == ["01:30", "07:30", "13:30", "19:30"]
    assert _ok(svc.viewer.get(f"/v1/orgs/{ORG}/settings"))["jobs_per_day"] == 4

    # back up now (the first job is a full), follow it, read its details
    full = _back_up(svc, {})
    assert full["kind"] == "full"
    details = _ok(svc.viewer.get(f"/v1/jobs/{full['id']}"))
    objects = {o["name"]: o for o in details["objects"]}
    assert objects and all(o["state"] == "succeeded" for o in objects.values()), details
    assert details["records"] == sum(o["records"] for o in objects.values()) > 0
    assert details["started_at"] and details["finished_at"]
    jobs = _ok(svc.viewer.get(f"/v1/orgs/{ORG}/jobs"))
    assert [j["id"] for j in jobs["items"]] == [full["id"]]

    # the XLSX report: one row per object, with the job's figures
    import openpyxl

    xlsx = svc.viewer.get(f"/v1/jobs/{full['id']}/report.xlsx")
    assert xlsx.status_code == 200, xlsx.text
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    rows = list(book[OBJECTS_SHEET].iter_rows(values_only=True))
    assert list(rows[0]) == list(OBJECT_COLUMNS)
    col = {name: n for n, name in enumerate(OBJECT_COLUMNS)}
    by_name = {r[0]: r for r in rows[1:]}
    assert sorted(by_name) == sorted(objects), "one row per object"
    for name, o in objects.items():
        row = by_name[name]
        assert (row[col["State"]], row[col["Records"]]) == (o["state"], o["records"]), (name, row, o)

    # churn 1% of the org, back up again: an incremental of the same cycle
    em.admin("POST", "/churn", json={"percent": 1, "seed": 3})
    inc = _back_up(svc, {})
    assert inc["kind"] == "incremental"

    # compare the two jobs
    cmp = _ok(
        svc.operator.post(f"/v1/orgs/{ORG}/compares", json={"job": inc["id"], "against": full["id"]}),
        202,
        server=svc.server,
    )
    done = _wait(svc, f"/v1/compares/{cmp['id']}", f"compare {cmp['id']}")
    assert done["state"] == "succeeded", done
    changes = done["summary"]["objects"]
    assert sum(c["added"] + c["changed"] + c["removed"] for c in changes.values()) > 0, changes
    assert [c["id"] for c in _ok(svc.viewer.get(f"/v1/orgs/{ORG}/compares"))] == [cmp["id"]]

    # export the changed records, download the ZIP, open it with the password admins may see
    exp = _ok(
        svc.operator.post(
            f"/v1/orgs/{ORG}/exports", json={"kind": "records", "format": "csv", "scope": "changed"}
        ),
        202,
        server=svc.server,
    )
    exported = _wait(svc, f"/v1/exports/{exp['id']}", f"export {exp['id']}")
    assert exported["state"] == "succeeded", exported
    assert _ok(svc.viewer.get(f"/v1/orgs/{ORG}/exports"))[0]["id"] == exp["id"]
    assert svc.viewer.get(f"/v1/exports/{exp['id']}/download").status_code == 403
    assert svc.operator.get(f"/v1/exports/{exp['id']}/password").status_code == 403
    download = svc.operator.get(f"/v1/exports/{exp['id']}/download")
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/zip"
    password = _ok(svc.admin.get(f"/v1/exports/{exp['id']}/password"))["password"]

    import pyzipper

    with pyzipper.AESZipFile(io.BytesIO(download.content)) as zf:
        zf.setpassword(password.encode())
        names = zf.namelist()
        assert names, "the export ZIP is empty"
        csvs = [n for n in names if n.endswith(".csv")]
        assert csvs, names
        assert sum(len(zf.read(n).splitlines()) for n in csvs) > len(csvs), "no exported records"
        with pytest.raises(RuntimeError):
            zf.setpassword(b"wrong-password")
            zf.read(csvs[0])
