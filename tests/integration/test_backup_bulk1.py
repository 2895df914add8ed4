"""The ``bulk1`` extraction strategy (Bulk API 1.0, PK chunking) gives the ground truth ``bulk2`` gives.

Two orgs in the catalog point at one emulated org: ``via2`` is backed up with the default
strategy (Bulk API 2.0 query jobs), ``via1`` with ``extraction_strategy = "bulk1"``. After the
full, and again after churn and an incremental, both snapshots equal the org (the emulator's
rows) and each other, object by object; the ``bulk1`` jobs really ran through
``/services/async`` (the emulator's counters) and made no Bulk 2.0 job.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from devkit.backup_env import TEST_OPTIONS, BackupEnv, backup_env, bulk_only
from devkit.groundtruth import compare_org
from engine.jobs.state import object_state

pytestmark = pytest.mark.emulator

# every read through Bulk: the incremental's small windows (and Id sweeps) would otherwise go
# through REST, and the second half would test no Bulk API 1.0 at all
BULK1 = bulk_only(replace(TEST_OPTIONS, extraction_strategy="bulk1"))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    root: Path = tmp_path_factory.mktemp("backup-bulk1")
    with backup_env(root, scale=5_000) as e:
        e.add_org("via2")
        e.add_org("via1")
        yield e


def _calls(env: BackupEnv) -> dict[str, int]:
    return dict(env.em.admin("GET", "/limits")["by_category"])


def _same_snapshots(env: BackupEnv, objects: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    with env.repo() as repo:
        for obj in objects:
            a, b = object_state(repo, "via2", obj), object_state(repo, "via1", obj)
            if a is None or b is None:
                out[obj] = "missing"
                continue
            a, b = a.sort_by("Id"), b.sort_by("Id")
            if a.select(sorted(a.column_names)) != b.select(sorted(b.column_names)):
                out[obj] = f"{a.num_rows} rows via bulk2, {b.num_rows} via bulk1"
    return out


def _backup_both(env: BackupEnv) -> list[str]:
    via2 = env.backup("via2")
    assert via2.state == "succeeded", via2.error_message
    before = _calls(env)
    via1 = env.backup("via1", options=BULK1)
    assert via1.state == "succeeded", via1.error_message
    after = _calls(env)
    grew = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert grew.get("bulk1_batch_create", 0) > 0 and grew.get("bulk1_results", 0) > 0
    assert grew.get("bulk2_create", 0) == 0, "the bulk1 job made Bulk 2.0 jobs"
    assert via1.usage["calls"].get("bulk1_job", 0) > 0
    assert sorted(via1.objects) == sorted(via2.objects)
    return sorted(o for o, r in via1.objects.items() if r.state == "succeeded")


def test_ground_truth_through_bulk1_equals_bulk2_after_a_full_and_after_churn(env: BackupEnv) -> None:
    objects = _backup_both(env)
    assert {"Account", "Contact", "Task"} <= set(objects)
    with env.repo() as repo:
        for org in ("via2", "via1"):
            assert {k: v for k, v in compare_org(env.em, repo, org, objects).items() if v} == {}
    assert _same_snapshots(env, objects) == {}

    env.churn(3, 11)
    objects = _backup_both(env)
    with env.repo() as repo:
        for org in ("via2", "via1"):
            assert {k: v for k, v in compare_org(env.em, repo, org, objects).items() if v} == {}
    assert _same_snapshots(env, objects) == {}
