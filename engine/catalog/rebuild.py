"""Recreate the catalog from the repository alone (``sfvault catalog rebuild``).

The repository is the source of truth for what was backed up: every committed snapshot
manifest names its org, job, kind, cycle and per-object results. Rebuilding reads every
manifest (through anything that lists snapshots and loads manifests, normally
``engine.sink`` 's ``Repository``; the catalog does not import the sink) and upserts:

- an org per manifest org name, with the instance URL, Salesforce org id and time zone that
  its newest manifest's job record names (created without credentials: an operator must
  connect it again before the next backup; an org the catalog has is left as it is);
- a job per manifest, from the manifest's typed job record (``engine.model.JobRecord``, written
  by the runner with the values it gave the catalog): kind, trigger, state (``succeeded``, or
  ``partial`` when some object failed), cycle, requested objects, created / started / finished
  times, schedule slot, error, and ``snapshot_ref`` set to the snapshot's name;
- the job's per-object results (records, bytes, chunks, duration, API calls, state, warning,
  files unavailable), its errors and its row of the API usage ledger, replacing what the catalog
  had for that job.

Manifests of format 1 (upgraded on read) did not record the trigger, times, requested objects or
org: those jobs come back as ``scheduled``, started and finished at their commit time.

Jobs that never committed a snapshot (failed, cancelled, skipped, running) exist only in the
catalog and are left alone. Everything happens in the caller's transaction, so a failed
rebuild changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import delete
from sqlalchemy.orm import Session

from engine.catalog.models import (
    ApiUsage,
    Job,
    JobError,
    JobKind,
    JobObject,
    JobState,
    JobTrigger,
    ObjectState,
    Org,
)
from engine.catalog.orgs import create_org, find_org_by_name
from engine.catalog.usage import calls_columns, record_api_usage
from engine.clock import Clock, FrozenClock, SystemClock
from engine.errors import CatalogRebuildFailed, SfvaultError
from engine.model import API_OF_KIND, Manifest, ObjectEntry, OrgFacts, SnapshotInfo, api_calls_of, lane_of

# How the API-call counters of a manifest entry map onto the catalog's columns: the runner
# writes ``rest``, ``bulk2_jobs_created`` and ``bulk2_pages`` (``bulk2_job`` counts HTTP calls
# about Bulk jobs, not jobs); the later names are read from manifests written by hand or earlier.
API_CALL_KEYS: dict[str, tuple[str, ...]] = {
    "rest_calls": ("rest", "rest_calls"),
    "bulk2_jobs": ("bulk2_jobs_created", "bulk2_jobs", "bulk_jobs"),
    "bulk2_pages": ("bulk2_pages", "bulk2_results_page", "bulk_pages"),
}


class SnapshotSource(Protocol):
    """What rebuilding needs from a repository."""

    def snapshots(self, org: str | None = None) -> list[SnapshotInfo]: ...

    def load_manifest(self, org: str, job_id: str) -> Manifest: ...


@dataclass
class RebuildReport:
    snapshots: int = 0
    orgs_created: list[str] = field(default_factory=list)
    jobs_created: int = 0
    jobs_updated: int = 0
    objects: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    """(snapshot name, error) of manifests skipped with ``skip_unreadable=True``."""


def _api_calls(entry: ObjectEntry) -> dict[str, int]:
    """The object's call columns: by API as :func:`engine.model.api_calls_of` counts them (the
    runner's kinds), else the catalog's own names (manifests written by hand or earlier)."""
    calls = entry.api_calls
    legacy = {col: next((int(calls[k]) for k in keys if k in calls), 0)
              for col, keys in API_CALL_KEYS.items()}  # fmt: skip
    if not any(k in API_OF_KIND for k in calls):
        return legacy
    return {**legacy, **calls_columns(api_calls_of(calls))}


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ensure_org(session: Session, manifest: Manifest, report: RebuildReport, clock: Clock) -> Org:
    org = find_org_by_name(session, manifest.org)
    if org is None:
        facts = manifest.job.org or OrgFacts()
        org = create_org(
            session,
            name=manifest.org,
            instance_url=facts.instance_url,
            time_zone=facts.time_zone,
            sf_org_id=facts.sf_org_id,
            clock=clock,
        )
        # Snapshots are applied oldest first: the org was protected since this one.
        org.connected_at = _as_utc(manifest.created_at) or org.connected_at
        report.orgs_created.append(org.name)
    elif manifest.job.org is not None and org.name in report.orgs_created:
        # an org this rebuild recreated takes the facts of its newest manifest that records them
        facts = manifest.job.org
        org.instance_url, org.sf_org_id, org.time_zone = facts.instance_url, facts.sf_org_id, facts.time_zone
    return org


def apply_manifest(
    session: Session, manifest: Manifest, snapshot_name: str, *, report: RebuildReport, clock: Clock
) -> Job:
    """Upsert the job, object results and errors that one manifest describes."""
    org = _ensure_org(session, manifest, report, clock)
    record = manifest.job
    committed = _as_utc(manifest.created_at) or clock.now()
    created_at = _as_utc(record.queued_at) or committed
    job = session.get(Job, manifest.job_id)
    if job is None:
        job = Job(id=manifest.job_id, org_id=org.id, created_at=created_at, cancel_requested=False)
        session.add(job)
        report.jobs_created += 1
    else:
        if job.org_id != org.id:
            raise CatalogRebuildFailed(
                name=snapshot_name, what=f"job {job.id} belongs to another org in the catalog"
            )
        session.execute(delete(JobObject).where(JobObject.job_id == job.id))
        session.execute(delete(JobError).where(JobError.job_id == job.id))
        session.execute(delete(ApiUsage).where(ApiUsage.job_id == job.id))
        report.jobs_updated += 1
    has_errors = any(entry.errors for entry in manifest.objects.values())
    job.kind = JobKind(manifest.kind).value
    job.trigger = JobTrigger(record.trigger or JobTrigger.SCHEDULED).value
    job.state = (JobState.PARTIAL if has_errors else JobState.SUCCEEDED).value
    job.cycle_id = manifest.cycle_id
    requested = record.requested_objects
    job.requested_objects = sorted(requested) if requested is not None else None
    job.lane = lane_of(job.kind, requested).value
    job.recovery_point = record.recovery_point
    job.created_at = created_at
    job.started_at = _as_utc(record.started_at) or committed
    job.finished_at = _as_utc(record.finished_at) or committed
    job.scheduled_for = _as_utc(record.scheduled_for)
    job.records = sum(e.rows for e in manifest.objects.values())
    job.bytes = sum(e.bytes for e in manifest.objects.values())
    job.metadata_items = 0
    job.snapshot_ref = snapshot_name
    # format 1 did not record the job's error: a partial job then shows its first failed object's
    failures = [e.errors[0] for _, e in sorted(manifest.objects.items()) if e.errors]
    error = record.error or (failures[0] if failures else None)
    job.error_code, job.error_message = (error.code[:16], error.message) if error else (None, None)
    session.flush()

    for name, entry in sorted(manifest.objects.items()):
        first_error = entry.errors[0] if entry.errors else None
        warning = entry.warning
        session.add(
            JobObject(
                job_id=job.id,
                object_name=name,
                state=(ObjectState.FAILED if entry.errors else ObjectState.SUCCEEDED).value,
                records=entry.rows,
                bytes=entry.bytes,
                chunks=len(entry.chunks),
                duration_s=float(entry.duration_seconds),
                error_code=first_error.code[:16] if first_error else None,
                error_message=first_error.message if first_error else None,
                files_unavailable=entry.files_unavailable,
                warning_code=warning.code if warning else None,
                warning_message=warning.message if warning else None,
                **_api_calls(entry),
            )
        )
        for err in entry.errors:
            session.add(
                JobError(
                    job_id=job.id,
                    object_name=name,
                    code=err.code[:16],
                    message=err.message,
                    details=None,
                    occurred_at=job.finished_at,
                )
            )
        report.objects += 1
    _record_usage(session, manifest, job, org)
    session.flush()
    return job


def _record_usage(session: Session, manifest: Manifest, job: Job, org: Org) -> None:
    """The job's row of the API usage ledger, as the runner appended it when the job finished."""
    usage = manifest.job.usage
    known = usage.org_max is not None and usage.org_used is not None
    record_api_usage(
        session,
        org_id=org.id,
        job_id=job.id,
        **calls_columns(usage.calls_by_api()),
        bulk2_jobs=sum(_api_calls(e)["bulk2_jobs"] for e in manifest.objects.values()),
        bulk2_pages=usage.calls.get("bulk2_results_page", 0),
        remaining=(usage.org_max or 0) - (usage.org_used or 0) if known else None,
        daily_limit=usage.org_max,
        clock=FrozenClock(current=job.finished_at or manifest.created_at),
    )


def rebuild_catalog(
    session: Session,
    source: SnapshotSource,
    *,
    org: str | None = None,
    skip_unreadable: bool = False,
    clock: Clock | None = None,
    storage_location: str | None = None,
) -> RebuildReport:
    """Upsert orgs, jobs and per-object results from every snapshot of ``source``.

    Snapshots are applied oldest first. A manifest that cannot be read raises
    :class:`CatalogRebuildFailed` (and the caller's transaction rolls back) unless
    ``skip_unreadable`` is set, in which case it is listed in ``report.unreadable``.
    ``storage_location`` (the URL of ``source``) becomes the storage location of the orgs the
    rebuild creates: their backups are where the rebuild found them, so the next backup goes
    there too instead of stopping with SFV-605.
    """
    clock = clock or SystemClock()
    report = RebuildReport()
    loaded: list[tuple[Manifest, str]] = []
    for info in source.snapshots(org):
        try:
            manifest = source.load_manifest(info.org, info.job_id)
        except SfvaultError as exc:
            if not skip_unreadable:
                raise CatalogRebuildFailed(name=info.name, what=str(exc)) from exc
            report.unreadable.append((info.name, str(exc)))
            continue
        loaded.append((manifest, info.name))
    loaded.sort(key=lambda item: (_as_utc(item[0].created_at) or clock.now(), item[0].job_id))
    for manifest, name in loaded:
        apply_manifest(session, manifest, name, report=report, clock=clock)
        report.snapshots += 1
    if storage_location is not None:
        for created in report.orgs_created:
            row = find_org_by_name(session, created)
            if row is not None and not row.storage_location:
                row.storage_location = storage_location
    return report
