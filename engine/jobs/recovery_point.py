"""A recovery point at an instant T, materialised as a job of kind ``recovery_point`` (decision 0026).

Per object: the newest backup snapshot committed at or before T whose job started after the
change event chain began (``SegmentManifest.since``), plus the committed change events from that
job's start up to T, replayed by DuckDB (:func:`engine.diff.replay.replay`). The result is written
like a backup job's data: chunks, then a manifest of kind ``recovery_point`` (its own cycle, every
object in ``full`` mode, so ``data``, ``export`` and the API read it like any job), then the
catalog row. Backup planning never reads it (:func:`engine.jobs.planning.needed_manifests`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.errors import RecoveryPointUnavailable
from engine.model import JobRecord, Manifest, ObjectEntry, OrgFacts
from engine.sink.segments import SegmentManifest, SegmentStore


@dataclass
class RecoveryPointResult:
    job_id: str
    org: str
    at: datetime
    snapshot: str
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)


def chain_since(segs: list[SegmentManifest], at: datetime) -> datetime | None:
    """Where the chain of segments that covers ``at`` starts being complete: the ``since`` of the
    newest segment committed at or before ``at`` that starts a chain or continues one (None: no
    segment at or before ``at``)."""
    before = [s for s in segs if s.created_at <= at]
    return before[-1].since if before else None


def check_durable(repo: Any, org: str, objects: list[str], at: datetime) -> None:
    """Refuse ``at`` later than the covered instant of an object's newest committed segment
    (:class:`RecoveryPointNotDurable`, SFV-458): events committed before ``at`` that the subscriber
    has not sealed yet would silently be missing. No segment at all is SFV-456, raised later."""
    from engine.errors import RecoveryPointNotDurable

    store = SegmentStore(repo)
    for obj in objects:
        cp = store.checkpoint(org, obj)
        if cp is not None and at > cp.covered:
            raise RecoveryPointNotDurable(org=org, object=obj, at=at.isoformat(),
                                          covered=cp.covered.isoformat())  # fmt: skip


def base_job(manifests: list[Manifest], obj: str, at: datetime, since: datetime) -> Manifest | None:
    """The newest backup manifest committed at or before ``at`` that captured ``obj`` and whose job
    started at or after ``since`` (so every change after its start is in the segments)."""
    from engine.diff.recovery import captured

    for m in reversed(manifests):
        if m.kind == "recovery_point" or m.created_at > at or not captured(m, obj):
            continue
        started = m.job.started_at or m.job.queued_at
        if started is not None and started >= since:
            return m
    return None


def replay_point(
    repo: Any, rp: Any, segs: list[SegmentManifest], org: str, obj: str, at: datetime, out: Path
) -> tuple[int, dict[str, Any]]:
    """Replay ``obj`` at ``at`` into the Parquet file ``out`` (the object's committed segments
    ``segs`` over its base job, in the open :class:`engine.diff.recovery.RecoveryPoints` ``rp``,
    whose scratch keeps the decrypted segment chunks: several instants replayed in one ``rp`` read
    each chunk once). Returns the rows and the facts (base job, window, events, segments)."""
    from engine.diff.replay import replay
    from engine.diff.replay_facts import window_facts

    since = chain_since(segs, at)
    if since is None:
        raise RecoveryPointUnavailable(org=org, object=obj, at=at.isoformat(),
                                       what="no change events were committed for it by then")  # fmt: skip
    base = base_job(rp.snapshots.manifests, obj, at, since)
    if base is None:
        raise RecoveryPointUnavailable(org=org, object=obj, at=at.isoformat(), what=(
            f"no backup job of it committed at or before then that started after change events were "
            f"collected ({since.isoformat()})"))  # fmt: skip
    start = base.job.started_at or base.job.queued_at
    assert start is not None
    used = [s for s in segs if s.chunk is not None and s.commit_ts_max >= start and s.commit_ts_min <= at]
    files = [rp.scratch.chunk(repo, s.chunk) for s in used]
    base_path = rp.state_file(obj, base.job_id)
    schema = rp.schema(obj, base.job_id)
    rows = replay(rp.con, base_path, schema, files, start=start, at=at, out=out)
    facts = {"base_job": base.job_id, "from": start.isoformat(), "events": sum(s.events for s in used),
             "segments": len(used), "rows": rows}  # fmt: skip
    facts.update(window_facts(rp.con, files, start=start, at=at))  # which events it holds (decision 0033)
    return rows, facts


def _object_point(
    repo: Any, rp: Any, store: SegmentStore, org: str, obj: str, at: datetime
) -> tuple[ObjectEntry, dict[str, Any]]:
    t0 = time.monotonic()
    out = rp.scratch.file(f"rp-{obj}.parquet")
    rows, facts = replay_point(repo, rp, store.segments(org, obj), org, obj, at, out)
    schema = rp.schema(obj, facts["base_job"])
    with repo.chunk_writer(obj) as w:
        pf = pq.ParquetFile(out)
        for batch in pf.iter_batches(batch_size=65_536):
            w.write_batch(pa.Table.from_batches([batch]).cast(schema))
    entry = ObjectEntry(chunks=w.refs, rows=rows, bytes=sum(c.sealed_bytes for c in w.refs), mode="full",
                        duration_seconds=time.monotonic() - t0)  # fmt: skip
    return entry, facts


def make_recovery_point(
    settings: Settings, org: str, at: datetime, objects: list[str], *, clock: Clock | None = None,
    trigger: str = "manual",
) -> RecoveryPointResult:  # fmt: skip
    """Materialise the recovery point of ``objects`` at ``at`` as a ``recovery_point`` job."""
    from sqlalchemy.exc import IntegrityError

    from engine.catalog import jobs as cjobs
    from engine.catalog import orgs as corgs
    from engine.catalog.db import make_engine, migrate, session_factory, transaction
    from engine.jobs.errors import JobAlreadyRunning
    from engine.sink.repository import open_repository

    clock = clock or SystemClock()
    repo = open_repository(settings, clock=clock)
    try:
        check_durable(repo, org, objects, at)
    finally:
        repo.close()
    engine = make_engine(settings.catalog_url)
    migrate(engine)
    sessions = session_factory(engine)
    try:
        with transaction(sessions) as s:
            row = corgs.get_org_by_name(s, org)
            facts = OrgFacts(row.instance_url, row.sf_org_id, row.time_zone)
            try:
                job = cjobs.create_job(s, row, kind="recovery_point", trigger=trigger,
                                       requested_objects=objects, clock=clock)  # fmt: skip
            except IntegrityError:
                raise JobAlreadyRunning(org=org, job="an incremental-lane job") from None
            job.cycle_id = job.id
            cjobs.start_job(s, job, clock=clock)
            job_id, queued, started = job.id, job.created_at, job.started_at
        try:
            return _materialise(settings, sessions, org, job_id, at, objects, clock,
                                JobRecord(trigger=trigger, queued_at=queued, started_at=started,  # type: ignore[arg-type]
                                          requested_objects=tuple(sorted(objects)), org=facts))  # fmt: skip
        except BaseException as err:
            from engine.jobs.jobrun import err_fields

            code, msg = err_fields(err)
            with transaction(sessions) as s:
                cjobs.finish_job(s, cjobs.get_job(s, job_id), "failed", error_code=code, error_message=msg,
                                 clock=clock)  # fmt: skip
            raise
    finally:
        engine.dispose()


def _materialise(settings: Settings, sessions: Any, org: str, job_id: str, at: datetime, objects: list[str],
                 clock: Clock, record: JobRecord) -> RecoveryPointResult:  # fmt: skip
    from dataclasses import replace

    from engine.catalog import jobs as cjobs
    from engine.catalog.db import transaction
    from engine.catalog.jobs import ObjectResult
    from engine.diff.recovery import RecoveryPoints, Snapshots
    from engine.sink.repository import open_repository

    repo = open_repository(settings, clock=clock)
    try:
        store = SegmentStore(repo)
        snaps = Snapshots.load(repo, org)
        entries: dict[str, ObjectEntry] = {}
        facts: dict[str, dict[str, Any]] = {}
        with RecoveryPoints(repo, org, scratch_root=settings.scratch_dir, snapshots=snaps) as rp:
            for obj in objects:
                entries[obj], facts[obj] = _object_point(repo, rp, store, org, obj, at)
        now = clock.now()
        record = replace(record, finished_at=now, recovery_point={"at": at.isoformat(), "objects": facts})
        manifest = Manifest(org=org, job_id=job_id, created_at=now, kind="recovery_point", cycle_id=job_id,
                            objects=entries, job=record)  # fmt: skip
        info = repo.commit(manifest)
    finally:
        repo.close()
    with transaction(sessions) as s:
        job = cjobs.get_job(s, job_id)
        for obj, e in entries.items():
            cjobs.record_object_result(
                s,
                job,
                ObjectResult(
                    object_name=obj,
                    records=e.rows,
                    bytes=e.bytes,
                    chunks=len(e.chunks),
                    duration_s=e.duration_seconds,
                ),
            )
        job.recovery_point = {"at": at.isoformat(), "objects": facts}  # migration 0012
        cjobs.finish_job(s, job, "succeeded", snapshot_ref=info.name, clock=clock)
    return RecoveryPointResult(job_id, org, at, info.name, facts)
