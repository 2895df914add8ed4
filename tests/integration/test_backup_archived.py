"""Archived activities are backed up, and stay in the snapshot when Salesforce archives more.

Salesforce archives Tasks and Events older than a year (``IsArchived``). ``query`` hides archived
rows and only ``queryAll`` returns them (SALESFORCE_API.md), so a backup that reads activities with
``query`` misses them in its full and, at the next Id sweep, drops every activity archived since
as if it had been hard-deleted. The engine reads their live rows with ``queryAll ... IsDeleted =
false``; the ground truth (:mod:`devkit.groundtruth`) counts archived rows as live.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from devkit.backup_env import TEST_OPTIONS, BackupEnv, backup_env
from devkit.groundtruth import compare_org
from engine.jobs.state import object_state

pytestmark = pytest.mark.emulator

ACTIVITIES = ["Task", "Event"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("backup-archived"), scale=8_000, seed=11) as e:
        e.add_org("acme")
        yield e


def _archived_ids(env: BackupEnv, obj: str) -> set[str]:
    return {
        r[0] for r in env.em.sql(f'SELECT "Id" FROM sf_{obj.lower()} WHERE "IsArchived" AND NOT "IsDeleted"')
    }


def _snapshot_ids(env: BackupEnv, obj: str) -> set[str]:
    with env.repo() as repo:
        table = object_state(repo, "acme", obj)
    assert table is not None
    return set(table.column("Id").to_pylist())


def _soql_ids(env: BackupEnv, resource: str, soql: str) -> set[str]:
    with httpx.Client(base_url=env.em.url, verify=env.em.verify, trust_env=False, timeout=60) as http:
        resp = http.get(
            f"/services/data/v62.0/{resource}",
            params={"q": soql},
            headers={"Authorization": f"Bearer {env.em.token()}"},
        )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["done"], "the test's queries fit in one page"
    return {r["Id"] for r in body["records"]}


def test_archiving_hides_rows_from_query_only_and_keeps_their_timestamps(env: BackupEnv) -> None:
    before = {r[0]: r[1] for r in env.em.sql('SELECT "Id", "SystemModstamp" FROM sf_event')}
    archived_before = _archived_ids(env, "Event")
    archived = env.em.admin("POST", "/archive-activities", json={"limit": 3})
    assert archived["Event"] == 3
    newly = _archived_ids(env, "Event") - archived_before
    assert len(newly) == 3
    in_list = ", ".join(f"'{i}'" for i in sorted(newly))
    soql = f"SELECT Id FROM Event WHERE Id IN ({in_list})"
    assert _soql_ids(env, "query", soql) == set()
    assert _soql_ids(env, "queryAll", soql) == newly
    after = {r[0]: r[1] for r in env.em.sql('SELECT "Id", "SystemModstamp" FROM sf_event')}
    assert after == before


def test_archived_activities_are_backed_up_and_survive_later_archiving(env: BackupEnv) -> None:
    generated = {obj: _archived_ids(env, obj) for obj in ACTIVITIES}
    assert generated["Task"] and generated["Event"], "the emulator generates archived activities"

    # the full also downloads each Bulk job's pages three at a time (resultPages), small pages
    full = env.backup("acme", options=replace(TEST_OPTIONS, result_streams=3, page_rows=500))
    assert full.state == "succeeded", full.error_message
    assert full.objects["Task"].records > 1500, "the Task partitions span several result pages"
    objects = sorted(full.objects)
    for obj in ACTIVITIES:
        assert generated[obj] <= _snapshot_ids(env, obj), f"archived {obj} rows missing from the full"

    # Salesforce's archiving runs between two jobs: timestamps do not move, the rows leave `query`
    newly = env.em.admin("POST", "/archive-activities", json={"limit": 40})
    assert newly["Task"] > 0 and newly["Event"] > 0
    env.churn(2, 31)
    inc = env.backup("acme")  # TEST_OPTIONS sweep Ids on every job
    assert inc.state == "succeeded", inc.error_message
    assert all(inc.objects[o].mode == "incremental" for o in ACTIVITIES)
    with env.repo() as repo:
        mismatches = {k: v for k, v in compare_org(env.em, repo, "acme", objects).items() if v}
    assert mismatches == {}
    for obj in ACTIVITIES:
        assert _archived_ids(env, obj) <= _snapshot_ids(env, obj), f"archived {obj} rows swept away"
