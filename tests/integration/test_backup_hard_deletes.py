"""Hard deletes leave the backup at every job, with default settings (issue 14, defect 1).

Records purged from the recycle bin or hard-deleted never come back from ``queryAll ... IsDeleted
= true``; before decision 0010 they stayed in the backup until the next Id sweep (every 7th job).
Each incremental now asks the delete log (``/sobjects/{O}/deleted``, up to 25 objects a composite
call: decision 0041) for its window and sweeps the objects whose window the log no longer covers,
so the newest job equals the org every time: its Id set as simple-salesforce's ``query_all``
reads it (``queryAll ... IsDeleted = false``, so archived activities count), and every record's
version and content (:mod:`devkit.groundtruth`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from math import ceil
from typing import Any

import pytest
from simple_salesforce import Salesforce

from devkit.backup_env import TEST_OPTIONS, BackupEnv, backup_env
from devkit.groundtruth import compare_org
from engine.jobs.deletes import GROUP_MIN, group_size
from engine.jobs.jobrun import Progress
from engine.jobs.planning import BackupRequest, JobOptions
from engine.jobs.runner import run_backup
from engine.jobs.state import object_state
from tests.helpers.emulator_proc import poll_for, simple_salesforce

pytestmark = pytest.mark.emulator

DEFAULTS = replace(TEST_OPTIONS, id_sweep_every=JobOptions().id_sweep_every)
"""Default job settings (the production sweep cadence); only the polling and sizes of the tests."""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("backup-hard-deletes"), scale=8_000, seed=13, tls=True) as e:
        e.options = DEFAULTS
        e.add_org("acme")
        yield e


def _sf(env: BackupEnv) -> Salesforce:
    return simple_salesforce(env.em)


def _org_ids(sf: Salesforce, obj: str) -> set[str]:
    """The live Ids as simple-salesforce reads them: ``queryAll`` minus the recycle bin."""
    fields = {f["name"] for f in getattr(sf, obj).describe()["fields"]}
    where = " WHERE IsDeleted = false" if "IsDeleted" in fields else ""
    return {r["Id"] for r in sf.query_all(f"SELECT Id FROM {obj}{where}", include_deleted=True)["records"]}


def _backup_ids(env: BackupEnv, obj: str) -> set[str]:
    with env.repo() as repo:
        table = object_state(repo, "acme", obj)
    assert table is not None, obj
    return set(table.column("Id").to_pylist())


def _newest(env: BackupEnv) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The newest job's delete sources per object (``{"source": "delete_log", "deleted": n}`` or
    ``{"source": "sweep", "code": ...}``, only the objects that asked the log) and its swept objects."""
    with env.repo() as repo:
        m = next(iter(repo.manifests("acme", newest_first=True)))
    sources: dict[str, dict[str, Any]] = {}
    for name, e in m.objects.items():
        if e.sweep_reason is not None:
            sources[name] = {"source": "sweep", "code": e.sweep_reason.code}
        elif e.log_deletions is not None:
            sources[name] = {"source": "delete_log", "deleted": e.log_deletions}
    return sources, {name for name, e in m.objects.items() if e.swept}


def _backed_up(env: BackupEnv) -> set[str]:
    """The objects in scope (the newest job's)."""
    with env.repo() as repo:
        return set(next(iter(repo.manifests("acme", newest_first=True))).objects)


def _changed(summary: dict[str, Any]) -> list[str]:
    keys = ("inserted", "updated", "deleted", "undeleted", "purged")
    return sorted({o for k in keys for o, n in summary.get(k, {}).items() if n})


def _delete_log_calls(env: BackupEnv, since: int) -> tuple[list[list[str]], list[str]]:
    """The delete-log calls after ``since`` in the emulator's request log: the objects each
    composite call asked for (its ``/sobjects/{O}/deleted`` subrequests), and the objects asked
    for alone (``GET /sobjects/{O}/deleted``)."""
    groups: list[list[str]] = []
    alone: list[str] = []
    for r in env.em.admin("GET", "/requests", params={"since": since})["requests"]:
        hits = [re.search(r"/sobjects/(\w+)/deleted/?$", p) for p in r.get("subrequests", ())]
        if any(hits):
            groups.append([m.group(1) for m in hits if m])
        elif m := re.search(r"/sobjects/(\w+)/deleted/?$", r["path"]):
            alone.append(m.group(1))
    return groups, alone


def _asked(env: BackupEnv, since: int) -> list[str]:
    """The objects whose delete-log call (alone, or its group's composite call) came back."""
    groups, alone = _delete_log_calls(env, since)
    return [o for g in groups for o in g] + alone


def _assert_equal_to_org(env: BackupEnv, objects: list[str]) -> None:
    sf = _sf(env)
    for obj in objects:
        org, ours = _org_ids(sf, obj), _backup_ids(env, obj)
        assert ours == org, (
            f"{obj}: {len(ours - org)} extra {sorted(ours - org)[:5]}, missing {sorted(org - ours)[:5]}"
        )
    with env.repo() as repo:
        diffs = compare_org(env.em, repo, "acme", objects)
    assert not any(diffs.values()), {k: v for k, v in diffs.items() if v}


def test_purged_records_leave_the_backup_at_the_next_incremental(env: BackupEnv) -> None:
    """Regression for defect 1: full → churn with purges → incremental, default settings."""
    assert env.backup("acme").state == "succeeded"
    summary = env.churn(2.0, seed=41)
    assert sum(summary["purged"].values()) > 0, summary
    seq = env.em.admin("GET", "/requests", params={"since": 10**12})["last_seq"]
    inc = env.backup("acme")
    assert (inc.kind, inc.state) == ("incremental", "succeeded")
    # the delete log of n objects in ceil(n / size) composite calls (decision 0041), not n calls
    groups, alone = _delete_log_calls(env, seq)
    asked = _asked(env, seq)
    n, size = len(asked), group_size(len(asked))
    assert len(set(asked)) == n > 2 * GROUP_MIN, (groups, alone)
    assert len(groups) + len(alone) == ceil(n / size) > 1, (size, groups, alone)
    assert all(len(g) <= size for g in groups) and len(alone) <= 1, (size, groups, alone)
    changed = [o for o in _changed(summary) if o in _backed_up(env)]
    assert len(changed) > 5, changed
    _assert_equal_to_org(env, changed)
    log, swept = _newest(env)
    sources = {o: d["source"] for o, d in log.items()}
    # objects whose records were physically deleted since the full are swept in this job; the
    # others are served by the delete log alone (no sweep cadence in between: default settings)
    assert "sweep" in sources.values() and "delete_log" in sources.values(), sources
    assert swept == {o for o, s in sources.items() if s == "sweep"}
    assert {o for o, s in sources.items() if s == "delete_log"} <= set(asked) <= set(sources)


def test_two_churn_rounds_with_default_settings_equal_the_org_at_every_job(env: BackupEnv) -> None:
    """The issue's scenario, continued: churn → incremental, twice; each newest job equals the org."""
    for seed in (42, 43):
        summary = env.churn(2.0, seed=seed)
        inc = env.backup("acme")
        assert (inc.kind, inc.state) == ("incremental", "succeeded")
        _assert_equal_to_org(env, sorted(_backed_up(env)))
        assert _changed(summary)


def test_a_window_the_delete_log_no_longer_covers_is_swept_in_the_same_job(env: BackupEnv) -> None:
    sf = _sf(env)
    assert env.backup("acme").kind == "incremental"  # every object has a recorded delete window now
    gone = sf.Lead.create({"LastName": "Purged", "Company": "Gone Co", "Status": "Open - Not Contacted"})[
        "id"
    ]
    soft = sf.Opportunity.create({"Name": "Soft", "StageName": "Prospecting", "CloseDate": "2026-01-01"})[
        "id"
    ]
    assert env.backup("acme").kind == "incremental"
    assert gone in _backup_ids(env, "Lead") and soft in _backup_ids(env, "Opportunity")
    sf.Lead.delete(gone)
    assert env.em.admin("POST", "/recycle-bin/empty", json={})["purged"] >= 1
    sf.Opportunity.delete(soft)
    # more than 600,000 Ids in Contact's window (Salesforce's limit, armed as a fault here)
    fault = {
        "path_regex": r"/sobjects/Contact/deleted",
        "status": 400,
        "error_code": "EXCEEDED_ID_LIMIT",
        "subrequests": True,
    }  # alone or as a composite subrequest (decision 0041)
    env.em.admin("POST", "/faults", json=fault)
    inc = env.backup("acme")
    assert inc.state == "succeeded"
    log, swept = _newest(env)
    assert log["Lead"]["source"] == "sweep"
    assert log["Lead"]["code"] == "SFV-421"  # INVALID_REPLICATION_DATE
    assert log["Contact"] == {
        **log["Contact"],
        "source": "sweep",
        "code": "SFV-422",
    }
    # emptying the recycle bin purged other objects' rows too (churn's soft deletes, within the
    # minute the last job's window ended: swept as well); objects without purges use the log
    assert "delete_log" in {d["source"] for d in log.values()}
    assert {"Lead", "Contact"} <= swept
    assert swept == {o for o, d in log.items() if d["source"] == "sweep"}
    assert gone not in _backup_ids(env, "Lead") and soft not in _backup_ids(env, "Opportunity")
    _assert_equal_to_org(env, ["Lead", "Contact", "Opportunity"])


def test_a_sweep_reads_ids_only_in_parallel_ranges_after_the_objects_data(env: BackupEnv) -> None:
    """Decision 0031: a swept object's Ids are read by tasks of their own, Ids only, REST for a
    small object and Bulk jobs over Id ranges for a large one (here every sweep through Bulk, in
    ranges of 400 Ids), run after the object's data: the backup still equals the org. Before,
    one task read an object's window and then all of its Ids in one query."""
    opts = replace(DEFAULTS, id_sweep_every=1, sweep_rest_rows=0, sweep_partition_rows=400)
    env.churn(2.0, seed=44)
    inc = env.backup("acme", options=opts)
    assert (inc.kind, inc.state) == ("incremental", "succeeded")
    with env.repo() as repo:
        m = next(iter(repo.manifests("acme", newest_first=True)))
    ranges: dict[str, int] = {}
    for name, entry in m.objects.items():
        if entry.mode == "incremental":
            assert entry.swept, name  # the periodic sweep (every job here)
            ranges[name] = sum(1 for c in entry.deleted_ids_chunks if c.object == name + "#ids")
    live = {n: len(_backup_ids(env, n)) for n in ranges}
    large = {n: k for n, k in live.items() if k > 2 * 400 and inc.objects[n].bulk_jobs > 0}
    assert large, live
    for name, n in large.items():
        # one sweep task (and chunk) per Id range of at most ~400 Ids, each a Bulk job of its own
        assert ranges[name] >= 2, (name, ranges[name], n)
        assert inc.objects[name].bulk_jobs >= ranges[name], (name, inc.objects[name].bulk_jobs)
    _assert_equal_to_org(env, sorted(_backed_up(env)))


def test_an_object_is_cut_once_its_own_delete_log_answer_is_in(env: BackupEnv) -> None:
    """An object that asks the delete log waits for its own answer, not for every object's: with
    Account's call held, objects whose answer came back are read and finish. Before, planning
    waited for all the log's calls, so one slow call held back every object's Bulk jobs. With
    the log asked in groups (decision 0039, 0041), Account's composite call holds its group only:
    the objects of the other groups go on."""
    assert env.backup("acme").state == "succeeded"  # a job that recorded every delete window
    env.churn(2.0, seed=45)
    seq = env.em.admin("GET", "/requests", params={"since": 10**12})["last_seq"]
    # Account's call held, alone or as a subrequest: its whole composite call (its group) waits
    park = {"path_regex": r"/sobjects/Account/deleted/?$", "method": "GET", "kind": "hold", "count": 1,
            "delay_s": 1800, "subrequests": True}  # fmt: skip
    hold = int(env.em.admin("POST", "/faults", json=park)["id"])
    finished: list[str] = []

    def progress(p: Progress) -> None:
        if p.kind == "object" and p.object is not None and p.objects[p.object].state == "succeeded":
            finished.append(p.object)

    def answered() -> set[str]:
        """The objects whose delete-log call (alone, or its group's composite call) has come back."""
        return set(_asked(env, seq))

    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            running = pool.submit(
                run_backup, env.settings, env.dask, "acme", BackupRequest(org="acme"),
                options=env.options, on_progress=progress, client_overrides={"timeout_seconds": 3600.0},
            )  # fmt: skip
            poll_for(lambda: running.done() or set(finished) & (answered() - {"Account"}), timeout=120)
            assert not running.done()
            assert "Account" not in answered(), "Account's call is still held"
        finally:
            env.em.admin("POST", f"/faults/{hold}/release")
        inc = running.result()
    assert (inc.kind, inc.state) == ("incremental", "succeeded"), inc.error_message
    assert "Account" in answered() and "Account" in finished
    _assert_equal_to_org(env, sorted(_backed_up(env)))
