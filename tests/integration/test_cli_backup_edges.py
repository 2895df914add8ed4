"""The CLI's edges on a real backup (issue 15): unknown objects refused by name (findings 5, 22),
tables whole on a pipe and ``--json`` on listings (finding 10), the worker preflight (finding 12),
and no Dask worker traceback when an object fails (finding 4). Real emulator, repository, catalog
and Dask LocalCluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from devkit.backup_env import BackupEnv, backup_env
from engine.catalog.db import make_engine, session_factory, transaction
from engine.catalog.models import Job
from engine.cli import app
from engine.jobs.errors import NoObjectsInScope, UnknownObjects, WorkerPreflightFailed
from tests.helpers.cli_config import cli_config

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("cli-edges"), scale=3_000, seed=11) as e:
        e.add_org("acme")
        assert e.backup("acme").state == "succeeded"
        yield e


@pytest.fixture(scope="module")
def cfg(env: BackupEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cli_config(env.settings, tmp_path_factory.mktemp("cli-edges-cfg"))


def _jobs(env: BackupEnv) -> list[Job]:
    engine = make_engine(env.settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            return list(s.scalars(select(Job).order_by(Job.created_at)))
    finally:
        engine.dispose()


def test_unknown_objects_are_refused_by_name_and_nothing_is_backed_up(env: BackupEnv, cfg: Path) -> None:
    with env.repo() as repo:
        before = len(list(repo.manifests("acme", newest_first=True)))
    jobs_before = len(_jobs(env))
    r = CliRunner(env={"COLUMNS": "200"})
    args = ["backup", "acme", "--scheduler", env.dask.scheduler.address, "--config", str(cfg)]
    res = r.invoke(app, [*args, "--objects", "Account,Nope,Contcat"])
    assert res.exit_code == UnknownObjects.exit_code, res.output
    assert UnknownObjects.code in res.output and "Nope, Contcat" in res.output
    assert len(_jobs(env)) == jobs_before, "refused when asked: no job row (decision 0029)"

    empty = r.invoke(app, [*args, "--objects", ""])
    assert empty.exit_code == NoObjectsInScope.exit_code and NoObjectsInScope.code in empty.output, (
        empty.output
    )
    with env.repo() as repo:
        assert len(list(repo.manifests("acme", newest_first=True))) == before, "no snapshot was written"


def test_tables_print_whole_on_a_pipe_and_listings_speak_json(env: BackupEnv, cfg: Path) -> None:
    env.churn(2, 5)
    assert env.backup("acme").state == "succeeded"
    done = [j for j in _jobs(env) if j.state == "succeeded"]
    newest = done[-1]
    r = CliRunner(env={"COLUMNS": "80"})  # not a terminal: the width does not cut cells
    table = r.invoke(app, ["jobs", "acme", "--config", str(cfg)])
    assert table.exit_code == 0, table.output
    assert newest.id in table.output and "succeeded" in table.output and "…" not in table.output

    listed = json.loads(r.invoke(app, ["jobs", "acme", "--json", "--config", str(cfg)]).stdout)
    assert {j["id"] for j in listed} >= {j.id for j in done}
    shown = json.loads(r.invoke(app, ["job", "show", newest.id, "--json", "--config", str(cfg)]).stdout)
    assert shown["id"] == newest.id and {o["object_name"] for o in shown["objects"]} >= {"Account"}
    data = json.loads(r.invoke(app, ["data", "acme", "--json", "--config", str(cfg)]).stdout)
    assert data["job"] == newest.id and any(o["object"] == "Account" for o in data["objects"])
    diff = json.loads(r.invoke(app, ["compare", "acme", "--json", "--config", str(cfg)]).stdout)
    assert diff["job"] == newest.id and diff["against"] == done[-2].id
    verify = r.invoke(app, ["verify", "--json", "--config", str(cfg)])
    assert verify.exit_code == 0 and json.loads(verify.stdout)["ok"] is True


def test_workers_that_cannot_open_the_key_fail_the_job_before_extraction(
    env: BackupEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative key path and workers started in another folder (finding 12): each object used to
    fail with SFV-301; now the job fails at once with SFV-807 naming a worker, before any Bulk job."""
    root = Path(env.settings.repository_url).parent
    monkeypatch.chdir(root)
    relative = env.settings.model_copy(update={"key_file": Path(env.settings.key_file).relative_to(root)})
    elsewhere = root / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    old = env.dask.run(os.getcwd)
    env.dask.run(os.chdir, str(elsewhere))
    jobs_before = _jobs_created(env)
    try:
        run_env = BackupEnv(em=env.em, settings=relative, dask=env.dask, options=env.options)
        with pytest.raises(WorkerPreflightFailed, match="key file not found"):
            run_env.backup("acme", full=True)
    finally:
        for worker, cwd in old.items():
            env.dask.run(os.chdir, cwd, workers=[worker])
    newest = _jobs(env)[-1]
    assert (newest.state, newest.error_code) == ("failed", WorkerPreflightFailed.code)
    assert _jobs_created(env) == jobs_before, "a Bulk query job was created after the preflight failed"


def _jobs_created(env: BackupEnv) -> int:
    reqs = env.em.admin("GET", "/requests", params={"limit": 100_000})["requests"]
    return sum(
        1 for q in reqs if q.get("method") == "POST" and str(q.get("path", "")).endswith("/jobs/query")
    )


def test_a_failed_object_prints_no_worker_traceback(env: BackupEnv, cfg: Path) -> None:
    """``sfvault backup`` on its embedded cluster, one object failing: the job is partial (exit 3)
    and the terminal shows the table with the code, not the workers' "Compute Failed" tracebacks."""
    env.em.admin("POST", "/faults", json={"path_regex": r"/jobs/query$", "kind": "fail_job", "count": 1,
                                          "message": "injected"})  # fmt: skip
    try:
        argv = ["backup", "acme", "--full", "--workers", "1", "--config", str(cfg)]
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SFVAULT_")}
        res = subprocess.run(
            [sys.executable, "-m", "engine.cli", *argv], cwd=ROOT, text=True, capture_output=True,
            stdin=subprocess.DEVNULL,  # every object through Bulk, where the fault is (decision 0019)
            env=environ | {"PYTHONPATH": str(ROOT), "SFVAULT_JOB__REST_MAX_ROWS": "0"},
        )  # fmt: skip
    finally:
        env.em.admin("DELETE", "/faults")
    out = res.stdout + res.stderr
    assert res.returncode == 3, out[-3000:]
    assert "Traceback" not in out and "Compute Failed" not in out, out[-3000:]
