"""A full where most objects failed does not start a cycle, and prune keeps the old copies
(issue 15, finding 3), on a real backup: a private emulated org, a local repository, a SQLite
catalog and a process-based LocalCluster. The emulator fails every Bulk query job of a forced
full but the last one (fault ``fail_job``, armed for exactly that many, checked to have fired)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.catalog import jobs as cjobs
from engine.catalog.db import make_engine, session_factory, transaction
from engine.sink.prune import prune
from tests.e2e.backup_env import BackupEnv, backup_env
from tests.e2e.groundtruth import compare_org

pytestmark = [pytest.mark.emulator, pytest.mark.cluster]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("cycle-rule"), scale=3_000, seed=21) as e:
        e.add_org("acme")
        yield e


def test_a_full_missing_objects_joins_the_current_cycle_and_prune_keeps_the_old_copies(
    env: BackupEnv,
) -> None:
    first = env.backup("acme")
    assert first.state == "succeeded", first.error_message
    bulk_jobs = sum(o.bulk_jobs for o in first.objects.values())
    assert bulk_jobs >= 3
    fired = env.em.admin("GET", "/faults")["fired_total"]
    fault = {
        "path_regex": r"/jobs/query$",
        "kind": "fail_job",
        "count": bulk_jobs - 1,
        "message": "UNKNOWN_EXCEPTION",
    }
    env.em.admin("POST", "/faults", json=fault)
    try:
        second = env.backup("acme", full=True)
    finally:
        env.em.admin("DELETE", "/faults")
    assert env.em.admin("GET", "/faults")["fired_total"] == fired + bulk_jobs - 1
    failed = sorted(o for o, r in second.objects.items() if r.state != "succeeded")
    ok = sorted(o for o, r in second.objects.items() if r.state == "succeeded")
    assert failed and ok, f"the fault should leave at least one object: {second.state}"
    assert second.state == "partial"
    # recorded as a partial job of the first cycle, not as the start of a new one
    assert (second.kind, second.cycle_id) == ("incremental", first.cycle_id)
    with env.repo() as repo:
        m = repo.load_manifest("acme", second.job_id)
        assert (m.kind, m.cycle_id) == ("incremental", first.cycle_id)
        assert {m.objects[o].mode for o in ok} == {"full"}
    engine = make_engine(env.settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            row = cjobs.get_job(s, second.job_id)
            assert (row.kind, row.cycle_id) == ("incremental", first.cycle_id)
    finally:
        engine.dispose()
    with env.repo() as repo:
        report = prune(repo, keep_cycles=1)
        assert report.snapshots_removed == []
        every = sorted(first.objects)
        assert {k: v for k, v in compare_org(env.em, repo, "acme", every).items() if v} == {}
    # the next job completes it: the failed objects are redone in full, still in the first cycle
    third = env.backup("acme")
    assert third.state == "succeeded", third.error_message
    assert third.cycle_id == first.cycle_id
    with env.repo() as repo:
        m = repo.load_manifest("acme", third.job_id)
        assert {m.objects[o].mode for o in failed} == {"full"}
