"""``catalog rebuild`` of a repository written by real backup jobs (issue 14, defect 3).

Real jobs (emulator over HTTP, Dask LocalCluster, local encrypted repository, SQLite catalog)
write the repository and the catalog: a full, a scheduled incremental, a partial job of a few
requested objects (one Bulk job fails through the emulator's fault injection), the incremental
that redoes the failed object, and the full of a new cycle. The catalog is then rebuilt from
the repository alone into a fresh database and compared with the original, row by row (jobs,
per-object results, errors, the API usage ledger, the org): what the rebuild reads is exactly
what the runner wrote.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from devkit.backup_env import BackupEnv, backup_env
from engine.catalog.db import make_engine, migrate, session_factory, transaction
from engine.catalog.models import ApiUsage, Job, JobError, JobObject, Org
from engine.catalog.rebuild import rebuild_catalog
from engine.jobs.planning import BackupRequest
from engine.jobs.runner import BackupResult, run_backup

pytestmark = [pytest.mark.emulator, pytest.mark.cluster]

JOB_COLUMNS = (
    "id", "kind", "trigger", "state", "cycle_id", "requested_objects", "created_at", "started_at",
    "finished_at", "records", "bytes", "metadata_items", "snapshot_ref", "error_code", "error_message",
    "scheduled_for",
)  # fmt: skip
OBJECT_COLUMNS = (
    "object_name", "state", "records", "bytes", "chunks", "duration_s", "rest_calls", "bulk2_calls",
    "bulk1_calls", "bulk2_jobs", "bulk2_pages", "bulk1_batches", "error_code", "error_message",
    "files_unavailable", "warning_code", "warning_message",
)  # fmt: skip
ORG_COLUMNS = ("name", "instance_url", "sf_org_id", "time_zone")
USAGE_COLUMNS = (
    "day", "rest_calls", "bulk2_calls", "bulk1_calls", "bulk2_jobs", "bulk2_pages", "bulk1_batches",
    "remaining", "daily_limit", "recorded_at",
)  # fmt: skip
FAILURE = "UNKNOWN_EXCEPTION: the job could not be processed"  # not a timeout: no bisecting


def _row(obj: Any, columns: tuple[str, ...]) -> dict[str, Any]:
    return {c: getattr(obj, c) for c in columns}


def _catalog(url: str) -> dict[str, Any]:
    """Every committed job of the catalog with its object results and errors, and the orgs."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            return _view(s)
    finally:
        engine.dispose()


def _view(s: Session) -> dict[str, Any]:
    jobs: dict[str, Any] = {}
    for job in s.scalars(select(Job).where(Job.snapshot_ref.is_not(None)).order_by(Job.id)):
        objects = s.scalars(
            select(JobObject).where(JobObject.job_id == job.id).order_by(JobObject.object_name)
        )
        errors = s.scalars(select(JobError).where(JobError.job_id == job.id).order_by(JobError.object_name))
        jobs[job.id] = {
            "job": _row(job, JOB_COLUMNS),
            "objects": [_row(o, OBJECT_COLUMNS) for o in objects],
            "errors": [(e.object_name, e.code, e.message, e.occurred_at) for e in errors],
            "usage": [
                _row(u, USAGE_COLUMNS) for u in s.scalars(select(ApiUsage).where(ApiUsage.job_id == job.id))
            ],
        }
    orgs = [_row(o, ORG_COLUMNS) for o in s.scalars(select(Org).order_by(Org.name))]
    return {"orgs": orgs, "jobs": jobs}


def _scheduled(env: BackupEnv, org: str) -> BackupResult:
    """An incremental the way the scheduler starts one (``trigger="scheduled"``)."""
    return run_backup(
        env.settings, env.dask, org, BackupRequest(org=org), options=env.options, trigger="scheduled"
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("rebuild-real"), scale=2_000, seed=11, processes=False) as e:
        e.add_org("acme")
        engine = make_engine(e.settings.catalog_url)
        try:
            with transaction(session_factory(engine)) as s:
                s.scalars(select(Org).where(Org.name == "acme")).one().time_zone = "Europe/Paris"
        finally:
            engine.dispose()
        yield e


def test_rebuild_of_a_repository_written_by_real_jobs_equals_the_original_catalog(
    env: BackupEnv, tmp_path: Path
) -> None:
    full = env.backup("acme")
    assert (full.state, full.kind) == ("succeeded", "full")
    env.churn(3, 5)
    scheduled = _scheduled(env, "acme")
    assert (scheduled.state, scheduled.kind) == ("succeeded", "incremental")
    env.churn(3, 6)
    env.em.admin("POST", "/faults", json={"path_regex": r"/jobs/query$", "kind": "fail_job", "count": 1,
                                          "message": FAILURE})  # fmt: skip
    try:
        # every object through Bulk, where the fault is (small objects would go through REST)
        partial = env.backup("acme", full=True, objects=("Opportunity", "Account", "Contact"),
                             options=replace(env.options, rest_max_rows=0))
    finally:
        env.em.admin("DELETE", "/faults")
    assert partial.state == "partial", partial.error_message
    assert sorted(n for n, o in partial.objects.items() if o.state == "failed") != []
    env.churn(3, 7)
    healed = env.backup("acme")
    assert healed.state == "succeeded" and any(o.mode == "full" for o in healed.objects.values())
    new_cycle = env.backup("acme", full=True)
    assert new_cycle.kind == "full" and new_cycle.cycle_id != full.cycle_id

    original = _catalog(env.settings.catalog_url)
    assert len(original["jobs"]) == 5
    assert {j["job"]["trigger"] for j in original["jobs"].values()} == {"manual", "scheduled"}
    assert [j["job"]["requested_objects"] for j in original["jobs"].values()].count(
        ["Account", "Contact", "Opportunity"]
    ) == 1

    rebuilt_url = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    engine = make_engine(rebuilt_url)
    try:
        migrate(engine)
        with env.repo() as repo, transaction(session_factory(engine)) as s:
            report = rebuild_catalog(s, repo)
    finally:
        engine.dispose()
    assert (report.snapshots, report.jobs_created, report.orgs_created) == (5, 5, ["acme"])

    rebuilt = _catalog(rebuilt_url)
    assert list(rebuilt["jobs"]) == list(original["jobs"])
    diffs = _differences(original, rebuilt)
    assert not diffs, "\n".join(diffs)


def _differences(want: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Every row (and column) where ``got`` differs from ``want``, readable in one failure."""
    out = [f"org {w} != {g}" for w, g in zip(want["orgs"], got["orgs"], strict=True) if w != g]
    for job_id, w in want["jobs"].items():
        g = got["jobs"][job_id]
        out += [
            f"{job_id} {c}: {w['job'][c]!r} != {g['job'][c]!r}"
            for c in JOB_COLUMNS
            if w["job"][c] != g["job"][c]
        ]
        if [o["object_name"] for o in w["objects"]] != [o["object_name"] for o in g["objects"]]:
            out.append(f"{job_id} objects differ")
            continue
        for wo, go in zip(w["objects"], g["objects"], strict=True):
            out += [
                f"{job_id} {wo['object_name']}.{c}: {wo[c]!r} != {go[c]!r}"
                for c in OBJECT_COLUMNS
                if wo[c] != go[c]
            ]
        for part in ("errors", "usage"):
            if w[part] != g[part]:
                out.append(f"{job_id} {part}: {w[part]} != {g[part]}")
    return out
