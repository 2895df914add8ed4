"""The commit of a backup job: the manifest (the cursors move here and only here), then the catalog rows.

Step 6 of :mod:`engine.jobs.runner`, after every partition task ended (see :mod:`engine.jobs.driver`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

from engine.clock import Clock, FrozenClock
from engine.errors import SfvaultError
from engine.extract.model import ObjectPlan
from engine.jobs.file_access import files_not_visible
from engine.jobs.jobrun import BackupResult, JobRun, ObjectReport
from engine.jobs.planning import JobDecision, needed_manifests, partial_full
from engine.model import (
    ChunkRef,
    CyclePosition,
    JobRecord,
    JobUsage,
    Manifest,
    ObjectEntry,
    ObjectError,
    ObjectSkipped,
    ObjectWarning,
    OrgFacts,
    Trigger,
    api_calls_of,
)


def _file_warnings(run: JobRun) -> dict[str, tuple[str, str]]:
    """The SFV-805 warnings of :func:`file_warnings`; a failure to read the permission is one."""
    if run.warnings_read is None:
        return {}
    try:
        return run.warnings_read.result()
    except SfvaultError as err:
        why = f"the backup user's permission sets could not be read: {err.message}"
        return files_not_visible(run.reports, why)


def object_result(rep: ObjectReport, *, chunks: int) -> Any:
    from engine.catalog.jobs import ObjectResult
    from engine.catalog.usage import calls_columns

    return ObjectResult(
        object_name=rep.name,
        state="succeeded" if rep.state == "succeeded" else "failed",
        records=rep.records,
        bytes=rep.bytes,
        chunks=chunks,
        duration_s=rep.duration_s,
        **calls_columns(api_calls_of(rep.calls)),
        bulk2_jobs=rep.bulk_jobs,
        bulk2_pages=rep.calls.get("bulk2_results_page", 0),
        error_code=rep.error_code,
        error_message=rep.error_message,
        files_unavailable=rep.files_unavailable,
        warning_code=rep.warning_code,
        warning_message=rep.warning_message,
    )


def commit_job(
    run: JobRun,
    repo: Any,
    lock: Any,
    decision: JobDecision,
    cycle_id: str,
    plans: dict[str, ObjectPlan],
    sessions: Any,
    org_id: int,
    failed: dict[str, tuple[str, str]],
) -> BackupResult:
    """Commit the manifest (when any object succeeded), then the catalog rows, at one instant.

    The manifest carries the typed job record (:class:`engine.model.JobRecord`, per-object facts in
    each :class:`ObjectEntry`) with the same values the catalog gets, so ``catalog rebuild``
    recreates the job's rows exactly (docs/decisions/0011)."""
    from engine.catalog import jobs as cjobs
    from engine.catalog.db import transaction

    for name, (code, message) in _file_warnings(run).items():
        rep = run.reports.get(name)  # a warning, not a failure: only on objects that succeeded
        if rep is not None and rep.state == "succeeded":
            rep.warning_code, rep.warning_message = code, message
    objects = {name: _object_entry(run, name, decision) for name in run.reports}
    ok = [n for n, r in run.reports.items() if r.state == "succeeded"]
    state = "succeeded" if not failed else ("partial" if ok else "failed")
    first_err = next(iter(failed.values()), None)
    error = (
        None
        if first_err is None or state == "succeeded"
        else ObjectError(first_err[0], f"{len(failed)} object(s) failed; first: {first_err[1]}")
    )
    decision, cycle_id = _cycle_rule(run, repo, decision, cycle_id, failed)
    finished = run.clock.now()
    at = FrozenClock(current=finished)  # the manifest and the catalog rows share the commit instant
    usage = run.usage.snapshot()
    snapshot_name: str | None = None
    if ok:
        with transaction(sessions) as s:
            record = _job_record(s, run.job_id, org_id, decision, finished, error, usage, run.not_backed_up)
        manifest = Manifest(
            org=run.org_name,
            job_id=run.job_id,
            created_at=finished,
            kind=decision.kind,
            cycle_id=cycle_id,
            objects=objects,
            job=record,
        )
        snapshot_name = repo.commit(manifest, lock=lock).name
    with transaction(sessions) as s:
        job = cjobs.get_job(s, run.job_id)
        job.kind, job.cycle_id = decision.kind, cycle_id  # a partial full joins the current cycle
        _record_results(s, job, run, objects, usage, org_id, at)
        cjobs.finish_job(
            s, job, state, snapshot_ref=snapshot_name, error_code=error.code if error else None,
            error_message=error.message if error else None, clock=at,
        )  # fmt: skip
    run.emit("done")
    return BackupResult(
        job_id=run.job_id,
        org=run.org_name,
        kind=decision.kind,
        cycle_id=cycle_id,
        state=state,
        objects=run.reports,
        usage=usage,
        duration_s=time.monotonic() - run.started,
        snapshot=snapshot_name,
        error_code=first_err[0] if first_err else None,
        error_message=first_err[1] if first_err else None,
    )


def _object_calls(rep: ObjectReport) -> dict[str, int]:
    """The object's call counters, with the two the catalog keeps (``bulk2_jobs_created``,
    ``bulk2_pages``) under their own names."""
    calls = dict(rep.calls)
    calls["bulk2_jobs_created"] = rep.bulk_jobs
    calls["bulk2_pages"] = calls.get("bulk2_results_page", 0)
    return calls


def _object_entry(run: JobRun, name: str, decision: JobDecision) -> ObjectEntry:
    """The manifest entry of one object: its data, cursor and how it was captured, or its failure."""
    rep = run.reports[name]
    mode = decision.objects[name].mode
    if rep.state != "succeeded":
        return ObjectEntry(
            rows=rep.records, bytes=rep.bytes, api_calls=_object_calls(rep), duration_seconds=rep.duration_s,
            mode=mode, errors=[ObjectError(rep.error_code or "SFV-000", rep.error_message or "")],
            extraction=rep.extraction,
        )  # fmt: skip
    results = run.results[name]
    chunks: list[ChunkRef] = []
    dels: list[ChunkRef] = []
    blobs: dict[str, Any] = {}
    for r in results:
        chunks.extend(r.chunks)
        dels.extend(r.deleted_chunks)
        dels.extend(r.sweep_chunks)
        for b in r.blobs:
            blobs[b.name] = b
    dels.extend(run.delete_log.chunks.get(name, []))
    chunks.sort(key=lambda c: (c.min_id or "", c.name))
    closing = run.cursors.get(name)
    if closing is not None and name in run.delete_log.through:  # the next delete-log window's start
        closing = replace(closing, deletes_through=run.delete_log.through[name])
    because = run.delete_log.swept.get(name)
    return ObjectEntry(
        chunks=chunks,
        rows=rep.records,
        bytes=sum(c.sealed_bytes for c in chunks) + sum(c.sealed_bytes for c in dels),
        cursor=closing,
        api_calls=_object_calls(rep),
        blobs=sorted(blobs.values(), key=lambda b: b.name),
        deleted_ids_chunks=dels,
        duration_seconds=rep.duration_s,
        mode=mode,
        swept=decision.objects[name].sweep and any(r.swept for r in results),
        warning=ObjectWarning(rep.warning_code, rep.warning_message or "") if rep.warning_code else None,
        files_unavailable=rep.files_unavailable,
        sweep_reason=ObjectWarning(because["code"], because["message"]) if because else None,
        log_deletions=run.delete_log.deleted.get(name),
        extraction=rep.extraction,
    )


def _cycle_rule(
    run: JobRun, repo: Any, decision: JobDecision, cycle_id: str, failed: dict[str, tuple[str, str]]
) -> tuple[JobDecision, str]:
    """A full with failed objects that the current cycle holds commits as a partial job of that
    cycle (:func:`engine.jobs.planning.partial_full`); the manifests are read only then."""
    if decision.kind != "full" or not failed:
        return decision, cycle_id
    manifests = needed_manifests(repo.manifests(run.org_name, newest_first=True), list(failed))
    joined = partial_full(decision, manifests, list(failed))
    if joined is decision or joined.cycle_id is None:
        return decision, cycle_id
    return joined, joined.cycle_id


def _job_record(
    s: Any,
    job_id: str,
    org_id: int,
    decision: JobDecision,
    finished: datetime,
    error: ObjectError | None,
    usage: dict[str, Any],
    not_backed_up: tuple[ObjectSkipped, ...] = (),
) -> JobRecord:
    """The job as the catalog has it (trigger, times, requested objects, org) plus what the runner
    decided (cycle position), finished at ``finished``."""
    from engine.catalog import jobs as cjobs
    from engine.catalog.models import Org

    job = cjobs.get_job(s, job_id)
    org = s.get(Org, org_id)
    position = decision.position() if decision.kind == "incremental" else CyclePosition(finished, 0)
    return JobRecord(
        trigger=cast(Trigger, job.trigger),
        queued_at=job.created_at,
        started_at=job.started_at,
        finished_at=finished,
        scheduled_for=job.scheduled_for,
        cycle=position,
        requested_objects=tuple(job.requested_objects) if job.requested_objects is not None else None,
        error=error,
        usage=JobUsage.from_dict(usage),
        org=OrgFacts(org.instance_url, org.sf_org_id, org.time_zone) if org is not None else None,
        fulls_beside=decision.fulls_beside if decision.kind == "incremental" else (),
        not_backed_up=not_backed_up,
    )


def _record_results(
    s: Any,
    job: Any,
    run: JobRun,
    objects: dict[str, ObjectEntry],
    usage: dict[str, Any],
    org_id: int,
    at: Clock,
) -> None:
    """The per-object results, their errors and the job's API usage, in the catalog."""
    from engine.catalog import jobs as cjobs
    from engine.catalog.usage import calls_columns, record_api_usage

    for name, rep in run.reports.items():
        cjobs.record_object_result(s, job, object_result(rep, chunks=len(objects[name].chunks)))
        if rep.error_code:
            cjobs.add_job_error(s, job, code=rep.error_code, message=rep.error_message or "",
                                object_name=name, clock=at)  # fmt: skip
    calls = usage.get("calls", {})
    record_api_usage(
        s, org_id=org_id, job_id=run.job_id, **calls_columns(api_calls_of(usage)),
        bulk2_jobs=sum(r.bulk_jobs for r in run.reports.values()),
        bulk2_pages=int(calls.get("bulk2_results_page", 0)),
        remaining=(usage["org_max"] - usage["org_used"]) if usage.get("org_max") is not None
        and usage.get("org_used") is not None else None,
        daily_limit=usage.get("org_max"), clock=at,
    )  # fmt: skip
