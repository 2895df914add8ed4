"""A full where most objects failed does not start a cycle, and prune keeps the old copies
(issue 15, finding 3), on a real backup: a private emulated org, a local repository, a SQLite
catalog and a process-based LocalCluster. The emulator fails every Bulk query job of a forced
full but the last one (fault ``fail_job``, armed for exactly that many, checked to have fired)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.backup_env import BackupEnv, backup_env, bulk_only
from devkit.groundtruth import compare_org
from engine.catalog import jobs as cjobs
from engine.catalog.db import make_engine, session_factory, transaction
from engine.sink.prune import prune

pytestmark = [pytest.mark.emulator, pytest.mark.cluster]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("cycle-rule"), scale=3_000, seed=21) as e:
        e.add_org("acme")
        yield e


def test_a_full_missing_objects_joins_the_current_cycle_and_prune_keeps_the_old_copies(
    env: BackupEnv,
) -> None:
    bulk = bulk_only(env.options)  # where the fault is
    first = env.backup("acme", options=bulk)
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
        second = env.backup("acme", full=True, options=bulk)
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


def test_pruned_jobs_are_marked_and_refused_with_a_fix_that_works(env: BackupEnv, tmp_path: Path) -> None:
    """Issue 15, finding 15: pruned jobs still showed as ``succeeded`` in ``sfvault jobs``,
    comparing one gave SFV-702 with a fix naming a command that lists no jobs, and
    ``prune --dry-run`` logged "removing ..."."""
    from typer.testing import CliRunner

    from engine.cli import app

    old_jobs = [s.job_id for s in _snapshots(env)]
    new_cycle = env.backup("acme", full=True)
    assert new_cycle.state == "succeeded" and new_cycle.kind == "full", new_cycle.error_message
    s = env.settings
    config = tmp_path / "sfvault.toml"
    config.write_text(
        f'[sfvault]\nrepository_url = "{s.repository_url}"\nkey_file = "{s.key_file}"\n'
        f'catalog_url = "{s.catalog_url}"\n'
    )
    runner = CliRunner(env={"COLUMNS": "250"})
    dry = runner.invoke(app, ["prune", "--keep-cycles", "1", "--dry-run", "--config", str(config)])
    assert dry.exit_code == 0, dry.output
    assert "removing" not in dry.output
    assert "would remove acme/Account: data of " in dry.output
    assert [x.job_id for x in _snapshots(env)] == sorted([*old_jobs, new_cycle.job_id])
    done = runner.invoke(app, ["prune", "--keep-cycles", "1", "--config", str(config)])
    assert done.exit_code == 0, done.output
    assert f"marked {len(old_jobs)} job(s) as pruned in the catalog" in done.output
    listing = runner.invoke(app, ["jobs", "acme", "--config", str(config)])
    assert listing.exit_code == 0, listing.output
    assert listing.output.count("(pruned)") == len(old_jobs)
    refused = runner.invoke(app, ["compare", "acme", "--job", old_jobs[-1], "--config", str(config)])
    assert refused.exit_code == 4, refused.output
    text = " ".join(refused.output.split())
    assert "SFV-714" in text and "removed by prune" in text and f"the newest is {new_cycle.job_id}" in text
    works = runner.invoke(app, ["data", "acme", "--job", new_cycle.job_id, "--config", str(config)])
    assert works.exit_code == 0, works.output


def _snapshots(env: BackupEnv) -> list[Any]:
    with env.repo() as repo:
        return list(repo.snapshots("acme"))
