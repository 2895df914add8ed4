"""The cursor boundary checked by Id (``engine.jobs.tasks._extract_boundary``), end to end.

Churn stamps all of its changes with one SystemModstamp, so after a churn the next job's cursor
boundary (the rows at the previous job's last timestamp) is the whole mass update. With
``boundary_check_min_rows=0`` every incremental splits each partition into a task for what is
newer than the cursor and a task that checks the boundary by Id and timestamp. Ground truth must
hold as with one task per window, and a row committed late, with a timestamp inside the boundary
the previous job had already read, must still be captured.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import httpx
import pytest

from devkit.backup_env import TEST_OPTIONS, BackupEnv, backup_env
from devkit.groundtruth import compare_org
from engine.extract.cursor import Cursor
from engine.jobs.state import object_state

pytestmark = pytest.mark.emulator

SPLIT = replace(TEST_OPTIONS, boundary_check_min_rows=0)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("backup-boundary"), scale=12_000, seed=5) as e:
        e.add_org("acme")
        yield e


def _mismatches(env: BackupEnv, objects: list[str]) -> dict[str, str]:
    with env.repo() as repo:
        return {k: v for k, v in compare_org(env.em, repo, "acme", objects).items() if v}


def _contact_cursor(env: BackupEnv) -> Cursor:
    with env.repo() as repo:
        newest = max(repo.manifests("acme"), key=lambda m: m.job_id)
    cursor = newest.objects["Contact"].cursor
    assert cursor is not None
    return cursor


def _insert_contact_at(env: BackupEnv, when: datetime, last_name: str) -> str:
    """A Contact whose CreatedDate and SystemModstamp are ``when``: a transaction that committed
    after a job had read past its timestamp (the emulator's clock is moved back for the insert)."""
    now = datetime.fromisoformat(env.em.admin("GET", "/clock")["now"])
    env.em.admin("POST", "/clock", json={"set": when.isoformat()})
    try:
        with httpx.Client(base_url=env.em.url, verify=env.em.verify, trust_env=False, timeout=60) as http:
            resp = http.post(
                "/services/data/v62.0/sobjects/Contact",
                json={"LastName": last_name},
                headers={"Authorization": f"Bearer {env.em.token()}"},
            )
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])
    finally:
        env.em.admin("POST", "/clock", json={"set": (now + timedelta(seconds=1)).isoformat()})
        env.em.admin("POST", "/clock", json={"unfreeze": True})


def test_boundary_checked_by_id_equals_ground_truth_and_catches_late_commits(env: BackupEnv) -> None:
    full = env.backup("acme", options=SPLIT)
    assert full.state == "succeeded", full.error_message
    objects = sorted(full.objects)

    env.churn(3, 21)  # a mass update at one timestamp: the next job's boundary
    first = env.backup("acme", options=SPLIT)
    assert first.state == "succeeded", first.error_message
    assert _mismatches(env, objects) == {}

    boundary = _contact_cursor(env)
    assert boundary.last is not None and len(boundary.seen) > 1
    late_id = _insert_contact_at(env, boundary.last - timedelta(seconds=30), "Committed Late")
    env.churn(3, 22)
    second = env.backup("acme", options=SPLIT)
    assert second.state == "succeeded", second.error_message
    contact = second.objects["Contact"]
    assert contact.partitions >= 2  # the window's task and the boundary's
    assert _mismatches(env, objects) == {}
    with env.repo() as repo:
        table = object_state(repo, "acme", "Contact")
    assert table is not None
    assert late_id in set(table.column("Id").to_pylist())
