"""Ground truth: full → churn → incremental → churn → incremental with the real backup runner.

compare(N, N-1) returns exactly the Ids the emulator's change log reports as added, changed and
removed, with the churned fields as the changed fields; the state at N-1, rebuilt out of core after
job N was committed, still equals what the emulator held right after job N-1.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devkit.groundtruth import CONTENT_FIELDS, emulator_digest, snapshot_digest
from engine.catalog import orgs as corgs
from engine.catalog.db import make_engine, migrate, session_factory, transaction
from engine.config import Settings
from engine.diff.archive import open_archive
from engine.diff.compare import compare
from engine.diff.recovery import RecoveryPoints
from engine.jobs.credentials import catalog_sealer, credentials_record
from engine.jobs.exports import ExportRequest, run_export
from engine.jobs.planning import BackupRequest, JobOptions
from engine.jobs.runner import run_backup
from engine.sink.backends import open_backend
from engine.sink.keys import LocalKeyFile
from engine.sink.repository import Repository, open_repository
from tests.helpers.emulator_proc import EmulatorProcess, running_emulator

ORG = "acme"
# what churn edits (emulator/churn.py UPDATE_FIELDS, else Name) plus the audit fields an edit moves
AUDIT_FIELDS = {"LastModifiedDate", "LastModifiedById"}
EDIT_FIELDS = {"Description", "Notes__c", "Subject", "Title", "Name", *AUDIT_FIELDS}

pytestmark = [pytest.mark.emulator]


@pytest.fixture(scope="module")
def small_emulator() -> Iterator[EmulatorProcess]:
    with running_emulator(scale=3000, seed=3, tls=True, timeout=300) as em:
        yield em


@pytest.fixture
def backup_env(tmp_path: Path, small_emulator: EmulatorProcess) -> Iterator[tuple[Settings, Any]]:
    from distributed import Client, LocalCluster

    em = small_emulator
    settings = Settings(
        repository_url=f"file://{tmp_path / 'repo'}",
        key_file=tmp_path / "keys" / "repo.key",
        catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}",
        scratch_dir=tmp_path / "scratch",
        chunk_target_bytes=256 * 1024,
        salesforce_api_reserve=0,
        salesforce_bulk_jobs_reserve=0,
    )
    Repository.init(
        open_backend(settings.repository_url, settings),
        LocalKeyFile.load_or_create(settings.key_file),
        settings=settings,
    ).close()
    engine = make_engine(settings.catalog_url)
    migrate(engine)
    i = em.info
    rec = credentials_record(
        instance_url=em.url,
        username=i["username"],
        password=i["password"],
        security_token=i["security_token"],
        client_id=i["client_id"],
        client_secret=i["client_secret"],
        login_url=em.url,
        ca_file=i.get("ca_file"),
    )
    with transaction(session_factory(engine)) as s:
        corgs.create_org(
            s, name=ORG, instance_url=em.url, credentials=rec, sealer=catalog_sealer(settings, create=True)
        )
    engine.dispose()
    with (
        LocalCluster(processes=False, n_workers=1, threads_per_worker=4, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        yield settings, client


def _backup(settings: Settings, client: Any) -> str:
    opts = JobOptions(
        cursor_lag=timedelta(seconds=1),
        id_sweep_every=1,
        poll_first=0.01,
        poll_max=0.05,
        chunk_target_bytes=256 * 1024,
    )
    res = run_backup(settings, client, ORG, BackupRequest(org=ORG), options=opts)
    assert res.state == "succeeded", (res.error_code, res.error_message)
    return res.job_id


def test_compare_equals_the_change_log_and_old_states_stay_exact(
    backup_env: tuple[Settings, Any], small_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    settings, client = backup_env
    em = small_emulator
    em.admin("POST", "/clock", json={"advance": 3600})
    jobs = [_backup(settings, client)]
    truth_then: list[dict[str, tuple[int, str]]] = [_emulator_digests(em, settings, tmp_path, jobs[0])]
    logs: list[dict[str, dict[str, list[str]]]] = []
    for round_ in range(2):
        em.admin("POST", "/clock", json={"advance": 600})
        since = datetime.fromisoformat(em.admin("GET", "/clock")["now"])
        em.admin("POST", "/churn", json={"percent": 3, "seed": 40 + round_})
        logs.append(em.admin("GET", "/changes", params={"since": since.isoformat()}))
        em.admin("POST", "/clock", json={"advance": 600})
        jobs.append(_backup(settings, client))
        truth_then.append(_emulator_digests(em, settings, tmp_path, jobs[-1]))
    repo = open_repository(settings)
    checked: set[str] = set()
    try:
        with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s", memory_limit="512MB") as rp:
            for n in (1, 2):
                c = compare(rp, jobs[n], jobs[n - 1])
                log = logs[n - 1]
                assert log, "churn changed nothing"
                for obj, truth in sorted(log.items()):
                    if obj not in c.objects:  # not in the backup's scope (feeds are off by default)
                        continue
                    checked.add(obj)
                    d = c.objects[obj]
                    for kind in ("added", "changed", "removed"):
                        assert d.ids(kind) == truth[kind], (n, obj, kind)
                    for rid, fields in d.changed_fields().items():
                        assert fields <= EDIT_FIELDS, (obj, rid, fields)
                        assert fields - AUDIT_FIELDS, (obj, rid, fields)
                for obj, d in c.objects.items():  # objects the log does not name did not change
                    if obj not in log:
                        assert d.added == d.changed == d.removed == 0, (obj, d)
            # every older recovery point, rebuilt after later jobs were committed, equals the org then
            for n, then in enumerate(truth_then):
                for obj, digest in then.items():
                    table = rp.table(obj, jobs[n])
                    ts = "SystemModstamp" if "SystemModstamp" in table.column_names else None
                    cols = [f for f in CONTENT_FIELDS if f in table.column_names]
                    assert snapshot_digest(table, ts, cols) == digest, (n, obj)
    finally:
        repo.close()
    assert {"Account", "Contact", "Case", "Attachment"} <= checked, checked
    _exports_of_the_real_backup(em, settings, jobs, logs[-1], tmp_path)


def _exports_of_the_real_backup(
    em: EmulatorProcess, settings: Settings, jobs: list[str], log: dict[str, Any], tmp_path: Path
) -> None:
    """`changed` CSV export = the change log's added + changed Ids; file export = the stored bodies."""
    import csv
    import io

    out = run_export(
        settings,
        ExportRequest(
            ORG, tmp_path / "rec.zip", format="csv", scope="changed", objects=("Account", "Contact")
        ),
    )
    assert out.job == jobs[-1]
    with open_archive(tmp_path / "rec.zip", out.password) as zf:
        for obj in ("Account", "Contact"):
            rows = list(csv.DictReader(io.StringIO(zf.read(f"{obj}.csv").decode())))
            assert sorted(r["Id"] for r in rows) == sorted(log[obj]["added"] + log[obj]["changed"])
        removed = list(csv.DictReader(io.StringIO(zf.read("removed.csv").decode())))
        assert sorted(r["Id"] for r in removed if r["object"] == "Account") == log["Account"]["removed"]
    files = run_export(
        settings,
        ExportRequest(ORG, tmp_path / "files.zip", kind="files", scope="cycle", objects=("Attachment",)),
    )
    repo = open_repository(settings)
    try:
        with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "f") as rp:
            att = rp.table("Attachment")
        with open_archive(tmp_path / "files.zip", files.password) as zf:
            index = list(csv.DictReader(io.StringIO(zf.read("index.csv").decode())))
            token = em.token()
            first_ids = {r["Id"] for r in index if r["status"] == "ok"}
            first_ids = set(sorted(first_ids)[:5])
            assert len(index) == att.num_rows and files.files == sum(r["status"] == "ok" for r in index) > 0
            blobs = dict(zip(att["Id"].to_pylist(), att["Body__sfvault_blob"].to_pylist(), strict=True))
            names = dict(zip(att["Id"].to_pylist(), att["Name"].to_pylist(), strict=True))
            for row in index:
                if row["status"] != "ok":
                    continue
                assert row["blob"] == blobs[row["Id"]] and row["file_name"] == names[row["Id"]]
                body = zf.read(row["path"])
                assert len(body) == int(row["bytes"])
                if row["Id"] in first_ids:  # byte-for-byte against the org's own body download
                    resp = em.http().get(
                        f"/services/data/v62.0/sobjects/Attachment/{row['Id']}/Body",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    assert resp.status_code == 200 and resp.content == body
    finally:
        repo.close()


def _emulator_digests(
    em: EmulatorProcess, settings: Settings, tmp_path: Path, job: str
) -> dict[str, tuple[int, str]]:
    """The emulator's live rows of the churned objects, digested right after ``job`` committed."""
    repo = open_repository(settings)
    try:
        with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "d") as rp:
            out = {}
            for obj in ("Account", "Contact", "Lead", "Opportunity", "Case", "Attachment"):
                if obj not in rp.snapshots.objects(job):
                    continue
                names = rp.schema(obj, job).names
                ts = "SystemModstamp" if "SystemModstamp" in names else None
                out[obj] = emulator_digest(em, obj, ts, [f for f in CONTENT_FIELDS if f in names])
            return out
    finally:
        repo.close()
