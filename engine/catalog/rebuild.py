"""Recreate the catalog from the repository alone (``sfvault catalog rebuild``).

The repository is the source of truth for what was backed up: every committed snapshot
manifest names its org, job, kind, cycle and per-object results. Rebuilding reads every
manifest (through anything that lists snapshots and loads manifests, normally
``engine.sink`` 's ``Repository``; the catalog does not import the sink) and upserts:

- an org per manifest org name (created without credentials or instance URL if unknown:
  an operator must connect it again before the next backup);
- a job per manifest (``succeeded``, or ``partial`` when some object recorded errors),
  with ``snapshot_ref`` set to the snapshot's name;
- the job's per-object results (records, bytes, chunks, duration, API calls, state) and its
  errors, replacing what the catalog had for that job.

Jobs that never committed a snapshot (failed, cancelled, skipped, running) exist only in the
catalog and are left alone. Everything happens in the caller's transaction, so a failed
rebuild changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import delete
from sqlalchemy.orm import Session

from engine.catalog.models import Job, JobError, JobKind, JobObject, JobState, JobTrigger, ObjectState, Org
from engine.catalog.orgs import create_org, find_org_by_name
from engine.clock import Clock, SystemClock
from engine.errors import CatalogRebuildFailed, SfvaultError
from engine.model import Manifest, ObjectEntry, SnapshotInfo

# How the API-call counters of a manifest entry map onto the catalog's columns.
API_CALL_KEYS: dict[str, tuple[str, ...]] = {
    "rest_calls": ("rest", "rest_calls"),
    "bulk2_jobs": ("bulk2_jobs", "bulk2_job", "bulk_jobs"),
    "bulk2_pages": ("bulk2_pages", "bulk2_result_pages", "bulk_pages"),
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
    calls = entry.api_calls
    return {col: next((int(calls[k]) for k in keys if k in calls), 0) for col, keys in API_CALL_KEYS.items()}


def _as_utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str) and value:
        dt = datetime.fromisoformat(value)
    else:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping (manifests written before a key existed lack it), else empty."""
    return value if isinstance(value, Mapping) else {}


def _error_fields(err: Mapping[str, Any]) -> tuple[str, str]:
    code = str(err.get("code") or err.get("error_code") or "SFV-000")[:16]
    message = str(err.get("message") or err.get("error_message") or err.get("what") or code)
    return code, message


def _ensure_org(session: Session, manifest: Manifest, report: RebuildReport, clock: Clock) -> Org:
    org = find_org_by_name(session, manifest.org)
    if org is None:
        extra = manifest.extra
        org = create_org(
            session,
            name=manifest.org,
            instance_url=extra.get("instance_url"),
            time_zone=str(extra.get("time_zone") or "UTC"),
            sf_org_id=extra.get("sf_org_id"),
            clock=clock,
        )
        # Snapshots are applied oldest first: the org was protected since this one.
        org.connected_at = _as_utc(manifest.created_at) or org.connected_at
        report.orgs_created.append(org.name)
    return org


def apply_manifest(
    session: Session, manifest: Manifest, snapshot_name: str, *, report: RebuildReport, clock: Clock
) -> Job:
    """Upsert the job, object results and errors that one manifest describes."""
    org = _ensure_org(session, manifest, report, clock)
    created_at = _as_utc(manifest.created_at) or clock.now()
    extra = manifest.extra
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
        report.jobs_updated += 1
    has_errors = any(entry.errors for entry in manifest.objects.values())
    job.kind = JobKind(manifest.kind).value
    trigger = extra.get("trigger")
    job.trigger = JobTrigger(trigger).value if trigger in set(JobTrigger) else JobTrigger.SCHEDULED.value
    job.state = (JobState.PARTIAL if has_errors else JobState.SUCCEEDED).value
    job.cycle_id = manifest.cycle_id
    requested = extra.get("requested_objects")
    job.requested_objects = sorted(requested) if isinstance(requested, list) else None
    job.started_at = _as_utc(extra.get("started_at")) or created_at
    job.finished_at = _as_utc(extra.get("finished_at")) or created_at
    job.records = sum(e.rows for e in manifest.objects.values())
    job.bytes = sum(e.bytes for e in manifest.objects.values())
    job.metadata_items = int(extra.get("metadata_items") or 0)
    job.snapshot_ref = snapshot_name
    job.error_code = job.error_message = None
    session.flush()

    warnings = _mapping(extra.get("warnings"))
    unavailable = _mapping(extra.get("files_unavailable"))
    for name, entry in sorted(manifest.objects.items()):
        first_error = _error_fields(entry.errors[0]) if entry.errors else (None, None)
        warning = _mapping(warnings.get(name))
        session.add(
            JobObject(
                job_id=job.id,
                object_name=name,
                state=(ObjectState.FAILED if entry.errors else ObjectState.SUCCEEDED).value,
                records=entry.rows,
                bytes=entry.bytes,
                chunks=len(entry.chunks),
                duration_s=float(entry.duration_seconds),
                error_code=first_error[0],
                error_message=first_error[1],
                files_unavailable=int(unavailable.get(name) or 0),
                warning_code=warning.get("code"),
                warning_message=warning.get("message"),
                **_api_calls(entry),
            )
        )
        for err in entry.errors:
            code, message = _error_fields(err)
            session.add(
                JobError(
                    job_id=job.id,
                    object_name=name,
                    code=code,
                    message=message,
                    details=dict(err),
                    occurred_at=job.finished_at,
                )
            )
        report.objects += 1
    session.flush()
    return job


def rebuild_catalog(
    session: Session,
    source: SnapshotSource,
    *,
    org: str | None = None,
    skip_unreadable: bool = False,
    clock: Clock | None = None,
) -> RebuildReport:
    """Upsert orgs, jobs and per-object results from every snapshot of ``source``.

    Snapshots are applied oldest first. A manifest that cannot be read raises
    :class:`CatalogRebuildFailed` (and the caller's transaction rolls back) unless
    ``skip_unreadable`` is set, in which case it is listed in ``report.unreadable``.
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
    return report
