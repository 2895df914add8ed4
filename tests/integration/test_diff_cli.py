"""`sfvault data`, `compare`, `export records` and `export files` end to end through the Typer app."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.config import load_settings
from engine.diff.archive import open_archive
from engine.errors import ExportLimitExceeded, JobNotInCycle, ObjectNotInBackup, UnknownJob, UnknownOrg
from engine.sink.repository import open_repository
from tests.helpers.catalog_org import add_catalog_org
from tests.helpers.diff_snapshots import ChainWriter, ObjectChange, RandomOrg

ORG = "acme"
TS = pa.timestamp("ms", "UTC")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str], dict[str, bytes]]:
    runner = CliRunner()
    cfg = tmp_path / "sfvault.toml"
    res = runner.invoke(
        app,
        [
            "init",
            "--repo",
            f"file://{tmp_path / 'repo'}",
            "--key-file",
            str(tmp_path / "keys" / "repo.key"),
            "--config",
            str(cfg),
        ],
    )
    assert res.exit_code == 0, res.output
    monkeypatch.setenv("SFVAULT_CATALOG_URL", f"sqlite:///{tmp_path / 'catalog.db'}")
    monkeypatch.setenv("SFVAULT_SCRATCH_DIR", str(tmp_path / "scratch"))
    settings = load_settings(cfg)
    add_catalog_org(settings, ORG)
    repo = open_repository(settings)
    org = RandomOrg(21)
    org.seed_rows(40)
    bodies = {"00P000000000001AAA": b"%PDF first body", "00P000000000002AAA": "ünïcode body 🎉".encode()}
    refs = {i: repo.put_blob(b) for i, b in bodies.items()}
    att = pa.table(
        {
            "Id": list(bodies),
            "Name": ["report.pdf", "../../etc/notes ü.txt"],
            "Body__sfvault_blob": [refs[i].name for i in bodies],
            "SystemModstamp": pa.array([org.now, org.now], TS),
        }
    )
    w = ChainWriter(repo, ORG)
    jobs = [
        w.commit(
            "full",
            {
                "Account": org.full(),
                "Attachment": ObjectChange(rows=att, mode="full", blobs=list(refs.values())),
            },
        ).job_id
    ]
    for _ in range(2):
        since = org.now - timedelta(minutes=5)
        org.churn(5)
        jobs.append(w.commit("incremental", {"Account": org.incremental(since, sweep=True)}).job_id)
    jobs.append(w.commit("full", {"Account": org.full()}).job_id)  # a second cycle
    repo.close()
    return (
        cfg,
        jobs,
        {"report.pdf": bodies["00P000000000001AAA"], "etc/notes ü.txt": bodies["00P000000000002AAA"]},
    )


def test_data_and_compare(env: tuple, tmp_path: Path) -> None:
    cfg, jobs, _ = env
    r = CliRunner(env={"COLUMNS": "200"})
    res = r.invoke(app, ["data", ORG, "--job", jobs[2], "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "Account" in res.output and "Attachment" in res.output
    only = r.invoke(app, ["data", ORG, "--job", jobs[2], "--type", "files", "--config", str(cfg)])
    assert "Attachment" in only.output and "Account " not in only.output
    res = r.invoke(
        app, ["compare", ORG, "--job", jobs[2], "--details", str(tmp_path / "d"), "--config", str(cfg)]
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "d" / "Account.fields.csv").exists()
    bad = r.invoke(app, ["compare", ORG, "--job", jobs[3], "--against", jobs[1], "--config", str(cfg)])
    assert bad.exit_code == JobNotInCycle.exit_code and JobNotInCycle.code in bad.output
    bad = r.invoke(app, ["compare", ORG, "--job", "nope", "--config", str(cfg)])
    assert bad.exit_code == UnknownJob.exit_code and UnknownJob.code in bad.output
    bad = r.invoke(app, ["data", "nobody", "--config", str(cfg)])
    assert bad.exit_code == UnknownOrg.exit_code and UnknownOrg.code in bad.output


def test_export_records_and_files(env: tuple, tmp_path: Path) -> None:
    cfg, jobs, bodies = env
    r = CliRunner(env={"COLUMNS": "200"})
    out = tmp_path / "rec.zip"
    res = r.invoke(
        app,
        [
            "export",
            "records",
            ORG,
            "--objects",
            "Account",
            "--format",
            "mysql",
            "--scope",
            "changed",
            "--out",
            str(out),
            "--job",
            jobs[2],
            "--config",
            str(cfg),
        ],
    )
    assert res.exit_code == 0, res.output
    password = res.output.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    with open_archive(out, password) as zf:
        assert "Account.sql" in zf.namelist()
    files = tmp_path / "files.zip"
    res = r.invoke(
        app,
        [
            "export",
            "files",
            ORG,
            "--objects",
            "Attachment",
            "--scope",
            "cycle",
            "--out",
            str(files),
            "--job",
            jobs[2],
            "--config",
            str(cfg),
        ],
    )
    assert res.exit_code == 0, res.output
    password = res.output.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    with open_archive(files, password) as zf:
        index = list(csv.DictReader(io.StringIO(zf.read("index.csv").decode())))
        assert len(index) == 2 and all(row["status"] == "ok" for row in index)
        for row in index:
            assert zf.read(row["path"]) == bodies[row["file_name"].replace("../../", "")]
            assert ".." not in row["path"]
    bad = r.invoke(
        app,
        [
            "export",
            "records",
            ORG,
            "--objects",
            "Nope",
            "--out",
            str(tmp_path / "x.zip"),
            "--config",
            str(cfg),
        ],
    )
    assert bad.exit_code == ObjectNotInBackup.exit_code and ObjectNotInBackup.code in bad.output
    bad = r.invoke(
        app,
        [
            "export",
            "records",
            ORG,
            "--all",
            "--out",
            str(tmp_path / "y.zip"),
            "--monthly-limit-gb",
            "0.000000001",
            "--config",
            str(cfg),
        ],
    )
    assert bad.exit_code == ExportLimitExceeded.exit_code and ExportLimitExceeded.code in bad.output
