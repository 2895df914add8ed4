"""A backup on a separate ``dask scheduler`` + two ``dask worker`` processes on loopback, exactly
as ``sfvault backup --scheduler tcp://HOST:8786`` uses an existing cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.backup_env import BackupEnv, make_settings
from devkit.groundtruth import compare_org
from engine.config import Settings
from tests.helpers.emulator_proc import poll_for, start_emulator

pytestmark = [pytest.mark.emulator, pytest.mark.cluster]
REPO_ROOT = Path(__file__).resolve().parents[2]
DASK = str(Path(sys.executable).with_name("dask"))


@pytest.fixture(scope="module")
def scheduler_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("dask")
    sched = root / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}
    procs = [
        subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(sched)],
            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    try:
        poll_for(sched.exists, timeout=60)
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [DASK, "worker", "--scheduler-file", str(sched), "--nthreads", "2", "--no-dashboard",
                     "--host", "127.0.0.1"],
                    cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        yield sched
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_backup_on_a_separate_scheduler_and_two_workers(scheduler_file: Path, tmp_path: Path) -> None:
    from distributed import Client

    from cluster import close_client, get_client

    em = start_emulator(scale=8_000, seed=5, tls=False, timeout=300)
    try:
        settings: Settings = make_settings(tmp_path)
        address = str(__import__("json").loads(scheduler_file.read_text())["address"])
        settings = settings.model_copy(update={"scheduler_address": address})
        client: Client = get_client(settings)
        try:
            client.wait_for_workers(2, timeout=60)
            assert len(client.scheduler_info()["workers"]) == 2
            env = BackupEnv(em=em, settings=settings, dask=client)
            env.add_org("remote")
            res = env.backup("remote")
            assert res.state == "succeeded", res.error_message
            workers = {a for a in client.scheduler_info()["workers"]}
            assert len(workers) == 2
            env.churn(2, 7)
            inc = env.backup("remote")
            assert inc.state == "succeeded"
            with env.repo() as repo:
                diff = {k: v for k, v in compare_org(em, repo, "remote", sorted(inc.objects)).items() if v}
            assert diff == {}
        finally:
            close_client(client)
    finally:
        em.stop()
