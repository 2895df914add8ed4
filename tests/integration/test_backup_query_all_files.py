"""A backup user without "Query All Files": the files it cannot see are reported (PRODUCT.md
"Backup cycles and jobs"; issue 5, Files).

Real emulator over HTTP (a private org: the tests take the permission away), real repository on
disk, real SQLite catalog, a real Dask LocalCluster, and the real API app for the job details and
the XLSX report. Ground truth for "the files the user can see" is the emulator's rule written out
in plain SQL over its store (tests/integration/test_emulator_files_visibility.py checks that
rule against REST and Bulk).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from typer.testing import CliRunner

from api.app import create_app
from api.reports import OBJECT_COLUMNS, OBJECTS_SHEET, SUMMARY_SHEET, troubleshooting_link
from devkit.backup_env import BackupEnv, backup_env
from engine.catalog import jobs as cjobs
from engine.catalog.db import make_engine, session_factory, transaction
from engine.catalog.models import Role
from engine.cli import app
from engine.jobs.errors import FilesNotVisible
from engine.jobs.runner import FILES_NOW_VISIBLE
from engine.jobs.state import object_state
from tests.api.conftest import bearer, make_tokens
from tests.helpers import files_visibility
from tests.helpers.files_visibility import QAF, live_ids, visible_ids

pytestmark = pytest.mark.emulator

FILES = ("ContentDocument", "ContentVersion")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("backup-qaf"), scale=5000, seed=5, processes=False) as e:
        yield e


@pytest.fixture
def without_query_all_files(env: BackupEnv) -> Iterator[str]:
    """The org's integration user loses Query All Files for the test; its Id."""
    with files_visibility.without_query_all_files(env.em) as user:
        yield user


def _backed_up_ids(env: BackupEnv, org: str, obj: str) -> set[str]:
    with env.repo() as repo:
        table = object_state(repo, org, obj)
    assert table is not None
    return {str(i) for i in table.column("Id").to_pylist()}


def _api(env: BackupEnv, root: Path) -> tuple[TestClient, dict[str, str]]:
    settings = env.settings.model_copy(
        update={"scratch_dir": root / "scratch", "export_dir": root / "exports", "scheduler_enabled": False}
    )
    tokens = make_tokens(settings.catalog_url)
    return TestClient(create_app(settings, scheduler=False)), bearer(tokens[Role.VIEWER])


def test_default_org_reports_no_warning_and_counts_unavailable_bodies(env: BackupEnv) -> None:
    env.add_org("acme")
    assert env.em.admin("GET", "/user-permissions")["permissions"][QAF] is True
    # one ContentVersion body answers 404 although its record is queried (deleted in between)
    gone = sorted(live_ids(env.em, "ContentVersion"))[0]
    fired = env.em.admin("GET", "/faults")["fired_total"]
    env.em.admin(
        "POST", "/faults",
        json={"path_regex": f"/sobjects/ContentVersion/{gone[:15]}[A-Za-z0-9]*/VersionData$", "status": 404,
              "error_code": "NOT_FOUND", "message": "The requested resource does not exist", "count": 1},
    )  # fmt: skip
    try:
        res = env.backup("acme")
        assert env.em.admin("GET", "/faults")["fired_total"] == fired + 1, "the 404 fault fired once"
    finally:
        env.em.admin("DELETE", "/faults")
    assert res.state == "succeeded", res.error_message
    for obj in FILES:
        assert res.objects[obj].warning_code is None
        assert _backed_up_ids(env, "acme", obj) == live_ids(env.em, obj)
    assert res.objects["ContentVersion"].files_unavailable == 1
    assert all(r.files_unavailable == 0 for n, r in res.objects.items() if n != "ContentVersion")
    assert not any(r.warning_code for r in res.objects.values())

    engine = make_engine(env.settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            job = cjobs.get_job(s, res.job_id, with_objects=True)
            rows = {o.object_name: o for o in job.objects}
            assert rows["ContentVersion"].files_unavailable == 1
            assert not any(o.warning_code for o in job.objects)
    finally:
        engine.dispose()
    with env.repo() as repo:
        manifest = next(m for m in repo.manifests("acme") if m.job_id == res.job_id)
    assert not any(e.warning for e in manifest.objects.values())
    assert {n: e.files_unavailable for n, e in manifest.objects.items() if e.files_unavailable} == {
        "ContentVersion": 1
    }


def test_without_query_all_files_only_visible_files_are_backed_up_with_a_warning(
    env: BackupEnv, without_query_all_files: str, tmp_path: Path
) -> None:
    env.add_org("limited")
    res = env.backup("limited")
    assert res.state == "succeeded", res.error_message
    assert res.error_code is None

    for obj in FILES:
        visible = visible_ids(env.em, obj, without_query_all_files)
        assert 0 < len(visible) < len(live_ids(env.em, obj)), "the seed hides some files, not all"
        rep = res.objects[obj]
        assert rep.state == "succeeded"
        assert rep.records == len(visible)
        assert _backed_up_ids(env, "limited", obj) == visible
        assert rep.warning_code == FilesNotVisible.code == "SFV-805"
        assert rep.warning_message is not None
        assert rep.warning_message.startswith(f"{obj}: only files shared with the backup user were backed up")
        assert "lacks Query All Files" in rep.warning_message
        assert "grant Query All Files (needs View All Data) to back up all files" in rep.warning_message
        assert rep.files_unavailable == 0, "hidden files are not queried, so no body answers 404"
    assert {n for n, r in res.objects.items() if r.warning_code} == set(FILES)
    # other objects are not limited by the permission
    assert _backed_up_ids(env, "limited", "Attachment") == live_ids(env.em, "Attachment")

    with env.repo() as repo:
        manifest = next(m for m in repo.manifests("limited") if m.job_id == res.job_id)
    assert sorted(n for n, e in manifest.objects.items() if e.warning) == list(FILES)
    warning = manifest.objects["ContentVersion"].warning
    assert warning is not None and warning.code == "SFV-805"
    assert all(not manifest.objects[o].errors for o in FILES), "a warning, not an error"

    client, viewer = _api(env, tmp_path)
    with client:
        details = client.get(f"/v1/jobs/{res.job_id}", headers=viewer)
        assert details.status_code == 200, details.text
        body = details.json()
        assert body["state"] == "succeeded" and body["error_code"] is None
        assert sum(1 for o in body["objects"] if o["warning_code"]) == 2
        assert body["object_counts"]["failed"] == 0
        objs = {o["name"]: o for o in body["objects"]}
        for obj in FILES:
            assert objs[obj]["state"] == "succeeded"
            assert objs[obj]["warning_code"] == "SFV-805"
            assert objs[obj]["warning_message"] == res.objects[obj].warning_message
            assert objs[obj]["error_code"] is None
            assert objs[obj]["files_unavailable"] == 0
        assert objs["Account"]["warning_code"] is None

        report = client.get(f"/v1/jobs/{res.job_id}/report.xlsx", headers=viewer)
        assert report.status_code == 200, report.text
    wb = load_workbook(io.BytesIO(report.content))
    summary = {r[0].value: r[1].value for r in wb[SUMMARY_SHEET].iter_rows(min_col=1, max_col=2)}
    assert summary["State"] == "succeeded" and summary["Objects with warnings"] == 2
    rows = list(wb[OBJECTS_SHEET].iter_rows())
    col = {name: i for i, name in enumerate(OBJECT_COLUMNS)}
    by_name = {r[0].value: r for r in rows[1:]}
    for obj in FILES:
        row = by_name[obj]
        assert row[col["State"]].value == "succeeded"
        assert row[col["Records"]].value == len(visible_ids(env.em, obj, without_query_all_files))
        assert row[col["Error code"]].value is None
        assert row[col["Warning code"]].value == "SFV-805"
        assert row[col["Warning code"]].hyperlink.target == troubleshooting_link("SFV-805")
        assert "only files shared with the backup user" in row[col["Warning message"]].value
        assert row[col["Files unavailable"]].value == 0
    assert by_name["Account"][col["Warning code"]].value is None

    # a catalog rebuilt from the repository alone keeps the warnings, and `job show` prints them
    config = tmp_path / "rebuilt.toml"
    rebuilt_db = tmp_path / "rebuilt.db"
    config.write_text(
        "[sfvault]\n"
        f'repository_url = "{env.settings.repository_url}"\n'
        f'key_file = "{env.settings.key_file}"\n'
        f'catalog_url = "sqlite:///{rebuilt_db}"\n'
    )
    rebuilt = CliRunner().invoke(app, ["catalog", "rebuild", "--config", str(config)])
    assert rebuilt.exit_code == 0, rebuilt.output
    shown = CliRunner().invoke(app, ["job", "show", res.job_id, "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    printed = " ".join(shown.output.split())  # rich and typer may wrap long lines
    for obj in FILES:
        assert f"warning SFV-805 on {obj}: {res.objects[obj].warning_message}" in printed
    assert "on Account" not in shown.output


def test_after_granting_the_permission_the_next_job_extracts_the_files_in_full_by_itself(
    env: BackupEnv, without_query_all_files: str
) -> None:
    env.add_org("regranted")
    limited = env.backup("regranted")
    assert limited.state == "succeeded" and limited.objects["ContentVersion"].warning_code == "SFV-805"

    # still without the permission: an ordinary incremental, the warning again
    same = env.backup("regranted")
    assert same.state == "succeeded", same.error_message
    for obj in FILES:
        assert same.objects[obj].mode == "incremental" and same.objects[obj].warning_code == "SFV-805"
        assert _backed_up_ids(env, "regranted", obj) == visible_ids(env.em, obj, without_query_all_files)

    assert env.em.admin("POST", "/user-permissions", json={QAF: True})["permissions"][QAF] is True
    # nothing changed in the files: an incremental alone would never add the hidden ones
    healed = env.backup("regranted")
    assert healed.state == "succeeded", healed.error_message
    assert healed.kind == "incremental"
    for obj in FILES:
        rep = healed.objects[obj]
        assert rep.mode == "full" and rep.reason == FILES_NOW_VISIBLE and rep.warning_code is None
        assert _backed_up_ids(env, "regranted", obj) == live_ids(env.em, obj)
    assert all(r.mode == "incremental" for n, r in healed.objects.items() if n not in FILES)

    after = env.backup("regranted")  # healed: back to incrementals
    assert after.state == "succeeded", after.error_message
    assert all(after.objects[obj].mode == "incremental" for obj in FILES)
