"""An incremental runs to success while a new cycle's full runs on the same org (issue 14,
PRODUCT.md "Incremental backup jobs will continue to run during a full backup"; decision 0016).

Real emulator over HTTP, real encrypted repository, real SQLite catalog, a process-based Dask
LocalCluster. The full is parked on the emulator's ``hold`` fault at its first Bulk query job
(released by the test, no sleep), so the incremental provably runs while the full is mid-extraction.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from devkit.backup_env import BackupEnv, backup_env, bulk_only
from devkit.groundtruth import compare_org
from engine.catalog import jobs as cjobs
from engine.catalog import orgs as corgs
from engine.catalog.db import make_engine, session_factory, transaction
from engine.jobs.planning import BackupRequest
from engine.jobs.runner import BackupResult, run_backup
from engine.sink.verify import verify
from tests.helpers.emulator_proc import poll_for

pytestmark = [pytest.mark.emulator, pytest.mark.cluster]

OBJECTS = ["Account", "Contact", "Opportunity", "Task", "Invoice__c"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("backup-concurrent"), scale=8_000) as e:
        e.add_org("acme")
        yield e


def _mismatches(env: BackupEnv, job_id: str) -> dict[str, str]:
    with env.repo() as repo:
        return {k: v for k, v in compare_org(env.em, repo, "acme", OBJECTS, job_id=job_id).items() if v}


def _fired(env: BackupEnv, fault_id: int) -> int:
    return int(next(f["fired"] for f in env.em.admin("GET", "/faults")["faults"] if f["id"] == fault_id))


def _new_cycle_full(env: BackupEnv) -> BackupResult:
    """A full of a new cycle whose client waits as long as the hold may last (no retry escapes it).
    Every object through Bulk (:func:`~devkit.backup_env.bulk_only`): the hold sits on a Bulk route."""
    return run_backup(env.settings, env.dask, "acme", BackupRequest(org="acme", full=True),
                      options=bulk_only(env.options),
                      client_overrides={"timeout_seconds": 3600.0})  # fmt: skip


def test_an_incremental_runs_to_success_while_a_new_cycles_full_runs(env: BackupEnv) -> None:
    first = env.backup("acme")
    assert (first.state, first.kind) == ("succeeded", "full"), first.error_message
    env.churn(3, 41)
    # park the new full's first Bulk query job (once: the incremental's own jobs are not held)
    park = {"path_regex": r"/jobs/query$", "method": "POST", "kind": "hold", "count": 1, "delay_s": 1800}
    hold = int(env.em.admin("POST", "/faults", json=park)["id"])
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            running = pool.submit(_new_cycle_full, env)
            poll_for(lambda: _fired(env, hold) == 1 or running.done(), timeout=600)
            assert not running.done(), "the full must be parked mid-extraction"
            inc = env.backup("acme")
            assert not running.done(), "the incremental ran while the full was held"
        finally:
            env.em.admin("POST", f"/faults/{hold}/release")
        full = running.result()
    # the incremental: the old cycle, every change since the first full, equal to the org at its time
    assert (inc.state, inc.kind, inc.cycle_id) == ("succeeded", "incremental", first.cycle_id), (
        inc.error_message
    )
    # the full: a new cycle, committed after the incremental, equal to the org (unchanged meanwhile)
    assert (full.state, full.kind, full.cycle_id) == ("succeeded", "full", full.job_id), full.error_message
    assert full.job_id < inc.job_id, "the full was created first and commits last"
    assert _mismatches(env, inc.job_id) == {}
    assert _mismatches(env, full.job_id) == {}
    with env.repo() as repo:
        report = verify(repo, read_data=True)
        assert report.ok, [p.message for p in report.errors]
        beside = repo.load_manifest("acme", inc.job_id)
        committed = repo.load_manifest("acme", full.job_id)
    assert beside.job.fulls_beside == (full.job_id,), "the incremental names the full in flight beside it"
    assert committed.created_at > beside.created_at

    # the next incremental belongs to the new cycle (although the newest job id is the old cycle's
    # incremental) and reads from the new full's cursors
    env.churn(3, 42)
    nxt = env.backup("acme")
    assert (nxt.state, nxt.kind, nxt.cycle_id) == ("succeeded", "incremental", full.job_id), nxt.error_message
    assert nxt.records < full.records / 5, "an incremental of the new cycle, not a second full"
    assert _mismatches(env, nxt.job_id) == {}
    with env.repo() as repo:
        assert verify(repo).ok
        position = repo.load_manifest("acme", nxt.job_id).cycle_position()
    assert position is not None and (position.started_at, position.index) == (committed.created_at, 1)

    engine = make_engine(env.settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            org = corgs.get_org_by_name(s, "acme")
            rows = {j.id: (j.kind, j.state, j.cycle_id) for j in cjobs.jobs_of_org(s, org.id)}
    finally:
        engine.dispose()
    assert rows == {
        first.job_id: ("full", "succeeded", first.job_id),
        full.job_id: ("full", "succeeded", full.job_id),
        inc.job_id: ("incremental", "succeeded", first.job_id),
        nxt.job_id: ("incremental", "succeeded", full.job_id),
    }


def test_changes_made_while_the_full_runs_are_in_the_incremental_beside_it_and_the_next_one(
    env: BackupEnv,
) -> None:
    """The org changes while the new full runs (after it read some objects, before others): the
    incremental beside it captures the change in the current cycle, and the first incremental of
    the new cycle, reading from the full's cursors, makes the new cycle exact too."""
    with env.repo() as repo:
        if not list(repo.manifests("acme")):
            assert env.backup("acme").state == "succeeded"
    park = {"path_regex": r"/jobs/query$", "method": "POST", "kind": "hold", "count": 1, "delay_s": 1800}
    hold = int(env.em.admin("POST", "/faults", json=park)["id"])
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            running = pool.submit(_new_cycle_full, env)
            poll_for(lambda: _fired(env, hold) == 1 or running.done(), timeout=600)
            assert not running.done(), "the full must be parked mid-extraction"
            changed = env.churn(3, 43)
            assert sum(changed["deleted"].values()) > 0
            inc = env.backup("acme")
            assert not running.done(), "the incremental ran while the full was held"
        finally:
            env.em.admin("POST", f"/faults/{hold}/release")
        full = running.result()
    assert (inc.state, inc.kind) == ("succeeded", "incremental"), inc.error_message
    assert inc.cycle_id != full.job_id and _mismatches(env, inc.job_id) == {}
    assert (full.state, full.kind, full.cycle_id) == ("succeeded", "full", full.job_id), full.error_message
    nxt = env.backup("acme")
    assert (nxt.state, nxt.kind, nxt.cycle_id) == ("succeeded", "incremental", full.job_id), nxt.error_message
    assert _mismatches(env, nxt.job_id) == {}
    with env.repo() as repo:
        report = verify(repo, read_data=True)
        assert report.ok, [p.message for p in report.errors]
