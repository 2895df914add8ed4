"""A partial job says so everywhere (issue 14, defect 5): job details, the XLSX report, the Data
view, and exports of the job (CLI output, the API's export detail and the ZIP's manifest.csv).

Real jobs make the partial state: a private emulated org (scale 3,000), a local encrypted
repository, a SQLite catalog and a process-based LocalCluster. ``acme`` runs a full, then churn,
then an incremental in which the emulator fails one Bulk query job (fault ``fail_job``, armed
once; every window goes through Bulk so the fault meets one): that object failed in the
incremental, so the incremental's recovery point holds it as of the full. ``beta`` runs only a
first full with the same fault: its failed object is absent from that job's recovery point. The
cluster and the emulator stop after that; everything below reads the repository and the catalog.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from typer.testing import CliRunner

from api.app import create_app
from api.reports import OBJECTS_SHEET, SUMMARY_SHEET
from devkit.backup_env import BackupEnv, backup_env, bulk_only
from engine.catalog.models import Role
from engine.cli import app
from engine.config import Settings
from engine.diff.archive import open_archive
from engine.diff.recovery import RecoveryPoints
from engine.sink.repository import open_repository
from tests.api.conftest import bearer, make_tokens
from tests.helpers.cli_config import write_config
from tests.helpers.emulator_proc import poll_for

pytestmark = [pytest.mark.emulator, pytest.mark.cluster]

CONFIG_KEYS = ("repository_url", "key_file", "catalog_url", "scratch_dir", "export_dir", "retry_wait_max",
               "retry_max_seconds", "chunk_target_bytes")  # fmt: skip
FAILURE = "UNKNOWN_EXCEPTION: the job could not be processed"  # not a timeout: no bisecting


@dataclass
class Partial:
    settings: Settings
    config: Path
    client: TestClient
    tokens: dict[Role, str]
    full: str  # acme's full (succeeded)
    inc: str  # acme's incremental (partial)
    failed: str  # the object that failed in acme's incremental
    code: str  # its error code
    beta_full: str  # beta's first full (partial)
    beta_failed: str  # the object that failed there (absent from that recovery point)
    beta_printed: str  # what `sfvault backup beta` printed

    def h(self, role: Role = Role.VIEWER) -> dict[str, str]:
        return bearer(self.tokens[role])


@contextmanager
def _one_bulk_job_fails(be: BackupEnv) -> Iterator[None]:
    """The next Bulk query job the emulator creates ends ``Failed`` (once; checked to have fired)."""
    fired = be.em.admin("GET", "/faults")["fired_total"]
    be.em.admin("POST", "/faults", json={"path_regex": r"/jobs/query$", "kind": "fail_job", "count": 1,
                                         "message": FAILURE})  # fmt: skip
    try:
        yield
        assert be.em.admin("GET", "/faults")["fired_total"] == fired + 1, "the fault never fired"
    finally:
        be.em.admin("DELETE", "/faults")


def _partial_incremental(be: BackupEnv, org: str) -> tuple[str, str, str]:
    """An incremental of ``org`` in which one object fails; (job id, failed object, its code)."""
    with _one_bulk_job_fails(be):
        res = be.backup(org, options=bulk_only(be.options))  # where the fault is
    assert res.state == "partial", (res.state, res.error_message)
    failed = [n for n, o in res.objects.items() if o.state == "failed"]
    assert len(failed) == 1, failed
    code = res.objects[failed[0]].error_code
    assert code
    return res.job_id, failed[0], code


def _partial_first_full_by_cli(be: BackupEnv, config: Path, org: str) -> tuple[str, str, str]:
    """``sfvault backup org`` (a first full, on the env's cluster) in which one object fails;
    (job id, failed object, what the command printed)."""
    be.add_org(org)
    with _one_bulk_job_fails(be):
        # every object through Bulk, where the fault is (a full reads small objects through REST)
        res = CliRunner(env={"COLUMNS": "250", "SFVAULT_JOB__REST_MAX_ROWS": "0"}).invoke(
            app, ["backup", org, "--scheduler", be.dask.scheduler.address, "--config", str(config)]
        )
    assert res.exit_code == 3, res.output  # partial
    printed = " ".join(res.output.split())
    found = re.search(r"partial: 1 object\(s\) failed \((\w+)\);.* sfvault job show (\S+)", printed)
    assert found, printed
    return found.group(2), found.group(1), printed


@pytest.fixture(scope="module")
def partial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Partial]:
    root = tmp_path_factory.mktemp("partial-job")
    with backup_env(root / "env", scale=3_000, seed=41) as be:
        settings = be.settings.model_copy(
            update={
                "scratch_dir": root / "scratch",
                "export_dir": root / "exports",
                "scheduler_enabled": False,
            }
        )
        config = write_config(root / "sfvault.toml", settings, CONFIG_KEYS)
        be.add_org("acme")
        full = be.backup("acme")
        assert full.state == "succeeded", full.error_message
        be.churn(5, seed=42)
        inc, failed, code = _partial_incremental(be, "acme")
        beta_full, beta_failed, beta_printed = _partial_first_full_by_cli(be, config, "beta")
    tokens = make_tokens(settings.catalog_url)
    with TestClient(create_app(settings, scheduler=False), raise_server_exceptions=False) as client:
        yield Partial(settings, config, client, tokens, full.job_id, inc, failed, code,
                      beta_full, beta_failed, beta_printed)  # fmt: skip


def _cli(p: Partial, *args: str) -> str:
    res = CliRunner(env={"COLUMNS": "250"}).invoke(app, [*args, "--config", str(p.config)])
    assert res.exit_code == 0, res.output
    return " ".join(res.output.split())  # rich and typer may wrap long lines


def _records_at(p: Partial, org: str, obj: str, job: str, tmp_path: Path) -> int:
    repo = open_repository(p.settings)
    try:
        with RecoveryPoints(repo, org, scratch_root=tmp_path / "rp") as rp:
            return rp.count(obj, job)
    finally:
        repo.close()


def _manifest_csv(zip_path: Path, password: str) -> dict[str, dict[str, str]]:
    with open_archive(zip_path, password) as zf:
        text = zf.read("manifest.csv").decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["object", "rows", "file", "bytes", "as_of", "as_of_job"]
    return {r["object"]: r for r in rows}


def _cli_export(p: Partial, org: str, job: str, out: Path) -> tuple[str, str]:
    printed = _cli(p, "export", "records", org, "--all", "--scope", "cycle", "--job", job, "--out", str(out))
    found = re.search(r"ZIP password \(shown once; admins can show it again\): (\S+)", printed)
    assert found, printed
    return printed, found.group(1)


def test_cli_export_of_a_partial_job_names_the_object_as_of_the_earlier_job(
    partial: Partial, tmp_path: Path
) -> None:
    p, obj = partial, partial.failed
    printed, password = _cli_export(p, "acme", p.inc, tmp_path / "inc.zip")
    as_before = _records_at(p, "acme", obj, p.full, tmp_path)
    assert f"warning: 1 object(s) of this export are not as of job {p.inc}" in printed
    assert f"{obj}: as of earlier job {p.full}: failed in job {p.inc} ({p.code})" in printed
    assert f"{obj}: {as_before} records (as of earlier job {p.full})" in printed

    manifest = _manifest_csv(tmp_path / "inc.zip", password)
    row = manifest[obj]
    assert (row["as_of"], row["as_of_job"], row["rows"]) == ("earlier_job", p.full, str(as_before))
    others = {n: (r["as_of"], r["as_of_job"]) for n, r in manifest.items() if n != obj}
    assert others and set(others.values()) == {("this_job", p.inc)}

    # the export of the full says nothing of the kind: every object is as of that job
    printed, password = _cli_export(p, "acme", p.full, tmp_path / "full.zip")
    assert "warning" not in printed and "as of earlier job" not in printed
    assert {
        (r["as_of"], r["as_of_job"]) for r in _manifest_csv(tmp_path / "full.zip", password).values()
    } == {("this_job", p.full)}


def test_cli_export_lists_an_object_no_job_of_the_cycle_captured_as_absent(
    partial: Partial, tmp_path: Path
) -> None:
    p, obj = partial, partial.beta_failed
    assert (
        "this job's recovery point and exports hold them as of an earlier job, or not at all"
        in p.beta_printed
    )
    printed, password = _cli_export(p, "beta", p.beta_full, tmp_path / "beta.zip")
    assert f"{obj}: absent: failed in job {p.beta_full}" in printed
    manifest = _manifest_csv(tmp_path / "beta.zip", password)
    assert manifest[obj] == {"object": obj, "rows": "", "file": "", "bytes": "", "as_of": "absent",
                             "as_of_job": ""}  # fmt: skip
    with open_archive(tmp_path / "beta.zip", password) as zf:
        assert f"{obj}.csv" not in zf.namelist()


def _wait(p: Partial, path: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = p.client.get(path, headers=p.h()).json()
        return body if body["state"] in ("succeeded", "failed") else None

    result: dict[str, Any] = poll_for(done, timeout=300, interval=0.1)
    return result


def test_api_export_detail_carries_the_objects_not_as_of_the_job(partial: Partial, tmp_path: Path) -> None:
    p = partial
    stale = [{"object": p.failed, "as_of": "earlier_job", "as_of_job": p.full, "error_code": p.code}]
    r = p.client.post(
        "/v1/orgs/acme/exports", json={"scope": "cycle", "job": p.inc}, headers=p.h(Role.OPERATOR)
    )
    assert r.status_code == 202, r.text
    assert (r.json()["complete"], r.json()["stale_objects"]) == (False, stale), "said at once, when queued"
    done = _wait(p, f"/v1/exports/{r.json()['id']}")
    assert done["state"] == "succeeded", done["error"]
    assert (done["complete"], done["stale_objects"]) == (False, stale)
    listed = p.client.get("/v1/orgs/acme/exports", headers=p.h()).json()
    assert [e["stale_objects"] for e in listed if e["id"] == done["id"]] == [stale]
    password = p.client.get(f"/v1/exports/{done['id']}/password", headers=p.h(Role.ADMIN)).json()["password"]
    zip_path = tmp_path / "api.zip"
    zip_path.write_bytes(
        p.client.get(f"/v1/exports/{done['id']}/download", headers=p.h(Role.OPERATOR)).content
    )
    assert _manifest_csv(zip_path, password)[p.failed]["as_of_job"] == p.full

    r = p.client.post(
        "/v1/orgs/acme/exports", json={"scope": "cycle", "job": p.full}, headers=p.h(Role.OPERATOR)
    )
    assert r.status_code == 202, r.text
    done = _wait(p, f"/v1/exports/{r.json()['id']}")
    assert (done["state"], done["complete"], done["stale_objects"]) == ("succeeded", True, [])


def test_job_details_and_report_show_the_partial_state_and_failed_objects(partial: Partial) -> None:
    p, obj = partial, partial.failed
    details = p.client.get(f"/v1/jobs/{p.inc}", headers=p.h()).json()
    assert details["state"] == "partial"
    assert details["stale_objects"] == [
        {"object": obj, "as_of": "earlier_job", "as_of_job": p.full, "error_code": p.code}
    ]
    rows = {o["name"]: o for o in details["objects"]}
    assert (rows[obj]["state"], rows[obj]["as_of"], rows[obj]["as_of_job"]) == (
        "failed",
        "earlier_job",
        p.full,
    )
    assert {(o["as_of"], o["as_of_job"]) for n, o in rows.items() if n != obj} == {("this_job", p.inc)}
    beta = p.client.get(f"/v1/jobs/{p.beta_full}", headers=p.h()).json()
    assert [(s["object"], s["as_of"]) for s in beta["stale_objects"]] == [(p.beta_failed, "absent")]

    resp = p.client.get(f"/v1/jobs/{p.inc}/report.xlsx", headers=p.h())
    assert resp.status_code == 200, resp.text
    wb = load_workbook(io.BytesIO(resp.content))
    summary = {r[0]: r[1] for r in wb[SUMMARY_SHEET].iter_rows(values_only=True)}
    assert (summary["State"], summary["Objects failed"], summary["Objects as of an earlier job"]) == (
        "partial", 1, 1,
    )  # fmt: skip
    assert "1 object(s) were not backed up by this job" in str(summary["Note"])
    sheet = list(wb[OBJECTS_SHEET].iter_rows(values_only=True))
    col = {name: i for i, name in enumerate(sheet[0])}
    by_name = {r[0]: r for r in sheet[1:]}
    failed_row = by_name[obj]
    assert (failed_row[col["State"]], failed_row[col["Error code"]]) == ("failed", p.code)
    assert (failed_row[col["Data as of"]], failed_row[col["As of job"]]) == ("earlier job", p.full)

    printed = _cli(p, "job", "show", p.inc)
    assert "partial: 1 object(s) not backed up by this job" in printed
    assert f"{obj}: as of earlier job {p.full}: failed in job {p.inc} ({p.code})" in printed


def test_data_view_shows_the_partial_state(partial: Partial, tmp_path: Path) -> None:
    p, obj = partial, partial.failed
    printed = _cli(p, "data", "acme", "--job", p.inc)
    assert f"partial job: 1 object(s) not backed up by job {p.inc}" in printed
    assert f"{obj}: as of earlier job {p.full}: failed in job {p.inc} ({p.code})" in printed
    assert f"job {p.full}" in printed  # the object's row says which job its records are as of

    body = p.client.get("/v1/orgs/acme/data", params={"job": p.inc}, headers=p.h()).json()
    rows = {o["object"]: o for o in body["objects"]}
    assert (rows[obj]["captured"], rows[obj]["as_of"], rows[obj]["as_of_job"]) == (
        False,
        "earlier_job",
        p.full,
    )
    assert rows[obj]["records"] == _records_at(p, "acme", obj, p.full, tmp_path)
    assert body["stale_objects"] == [{"object": obj, "as_of": "earlier_job", "as_of_job": p.full,
                                      "error_code": p.code}]  # fmt: skip
    beta = p.client.get("/v1/orgs/beta/data", headers=p.h()).json()
    assert p.beta_failed not in {o["object"] for o in beta["objects"]}
    assert [(s["object"], s["as_of"]) for s in beta["stale_objects"]] == [(p.beta_failed, "absent")]
