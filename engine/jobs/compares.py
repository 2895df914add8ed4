"""Compare jobs: :func:`engine.diff.compare.compare` as a queued job (issue 6, for the REST API).

* :func:`submit_compare` validates (unknown org or job, a job of another cycle, no previous job, an
  object not in the backup) from the manifests alone and records a ``queued`` compare; the jobs it
  resolved to are kept in ``summary["job"]`` / ``summary["against"]`` (and in ``job_id`` /
  ``against_job_id`` when the catalog knows those jobs), so a later backup does not move it;
* :func:`run_queued_compare` runs it ``queued`` → ``running`` → ``succeeded`` | ``failed``, with
  ``progress`` (objects done / objects), and stores the summary
  ``{"job": J, "against": K, "objects": {name: {"added": n, "changed": n, "removed": n,
  "changed_fields": {field: count}}}}``;
* :func:`compare_details` pages through the per-record changes of one object.

Details are **kept, not recomputed**: when the compare succeeds, the per-object Id and field-change
files (Parquet, sorted by Id) are copied to ``settings.scratch_dir / "compares" / <compare id>``
(``<Object>.ids.parquet``: Id, change; ``<Object>.fields.parquet``: Id, field, old, new, as text).
They are small next to the states (only changed records), a page is one DuckDB query over them,
and recomputing would decrypt the object's chunks again. Deleting that folder only loses the
details (:class:`NotFound` then); the summary stays in the catalog. Folders are deleted when the
compare fails, when a newer compare of the same two jobs and objects succeeds (it supersedes
them), and by :func:`sweep_compare_details` (service start and scheduler ticks) when their row is
gone or ``settings.compare_details_keep_days`` after the compare finished.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.diff.compare import DEFAULT_IGNORED, compare, resolve_jobs
from engine.diff.recovery import Snapshots, lit
from engine.errors import (
    CompareNotReady,
    InvalidRequest,
    NotFound,
    NotQueued,
    ObjectNotInBackup,
    SfvaultError,
    UnknownOrg,
)
from engine.jobs.exports import catalog_sessions, recovery_points, repository

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from engine.catalog.models import Compare

CHANGES = ("added", "changed", "removed")
MAX_PAGE = 1000


def details_dir(settings: Settings, compare_id: str) -> Path:
    """Where the detail files of a finished compare are kept."""
    return Path(settings.scratch_dir) / "compares" / compare_id


def submit_compare(settings: Settings, org: str, *, job: str | None = None, against: str | None = None,
                   objects: tuple[str, ...] | None = None, created_by: str | None = None,
                   clock: Clock | None = None, repo: Any = None) -> str:  # fmt: skip
    """Validate and create a ``queued`` compare of ``job`` (default: newest) against ``against``
    (default: the job before it in the same cycle); return its id.

    Raises :class:`UnknownOrg`, :class:`UnknownJob`, :class:`JobNotInCycle`,
    :class:`NoPreviousJob` or :class:`ObjectNotInBackup`; nothing is recorded then.
    """
    from engine.catalog import compares as ccmp
    from engine.catalog import orgs as corgs
    from engine.catalog.db import transaction
    from engine.catalog.models import Job
    from engine.jobs.queued import close_abandoned_rows

    clock = clock or SystemClock()
    with catalog_sessions(settings) as sessions:
        with transaction(sessions) as s:
            row = corgs.find_org_by_name(s, org)
            if row is None:
                raise UnknownOrg(org=org)
            org_id = row.id
        with repository(settings, repo, clock) as r:
            snaps = Snapshots.load(r, org)
            n, m = resolve_jobs(snaps, job, against)
            if objects is not None:
                have = set(snaps.objects(n)) | set(snaps.objects(m))
                for o in objects:
                    if o not in have:
                        raise ObjectNotInBackup(object=o, org=org, job=n)
        # the org's compares whose process died are closed (SFV-713), also without a service running
        close_abandoned_rows(settings, sessions, "compare", now=clock.now(), org_id=org_id)
        with transaction(sessions) as s:
            known = {j for j in (n, m) if s.get(Job, j) is not None}
            created = ccmp.create_compare(
                s, org_id=org_id, job_id=n if n in known else None, against_job_id=m if m in known else None,
                objects=list(objects) if objects is not None else None, summary={"job": n, "against": m},
                created_by=created_by, clock=clock,
            )  # fmt: skip
            return created.id


def run_queued_compare(settings: Settings, compare_id: str, *, clock: Clock | None = None,
                       repo: Any = None, **rp_options: Any) -> dict[str, Any]:  # fmt: skip
    """Run a queued compare; on success store and return the summary (see the module docstring).

    While it runs, a :class:`~engine.catalog.queued.Heartbeat` refreshes ``Compare.heartbeat_at``
    every ``settings.queued_heartbeat_seconds`` (a process that dies is found by
    :mod:`engine.jobs.queued`). On success the detail files of the compares it supersedes are
    deleted (:func:`superseded_compares`). On an error the compare is ``failed`` with the error's
    code and message, its detail files are removed and the error is raised again.
    :class:`NotQueued` if it is not queued (or another process claimed it first);
    :class:`QueuedJobAbandoned` if it was closed as abandoned while it ran.
    """
    from engine.catalog import compares as ccmp
    from engine.catalog import orgs as corgs
    from engine.catalog.db import transaction
    from engine.catalog.models import Compare, ExportState
    from engine.catalog.queued import Heartbeat, abandoned_error, claim_queued

    clock = clock or SystemClock()
    with catalog_sessions(settings) as sessions:
        with transaction(sessions) as s:
            ccmp.get_compare(s, compare_id)  # an unknown id is refused here
            if not claim_queued(s, Compare, compare_id, now=clock.now()):  # only a queued row is claimed
                raise NotQueued(kind="compare", id=compare_id, state=ccmp.get_compare(s, compare_id).state)
            row = ccmp.get_compare(s, compare_id)
            org = corgs.get_org(s, row.org_id).name
            pinned = dict(row.summary or {})
            job, against = pinned.get("job") or row.job_id, pinned.get("against") or row.against_job_id
            objects = list(row.objects) if row.objects is not None else None
        keep = details_dir(settings, compare_id)
        beat = Heartbeat(sessions, Compare, compare_id, clock=clock, every=settings.queued_heartbeat_seconds)
        try:
            with (
                beat,
                repository(settings, repo, clock) as r,
                recovery_points(settings, r, org, **rp_options) as rp,
            ):
                n, m = resolve_jobs(rp.snapshots, job, against)
                names = objects
                if names is None:
                    names = sorted(set(rp.snapshots.objects(n)) | set(rp.snapshots.objects(m)))
                summary: dict[str, Any] = {"job": n, "against": m, "objects": {}}
                keep.mkdir(parents=True, exist_ok=True)
                for i, obj in enumerate(names):
                    d = compare(rp, n, m, objects=[obj], ignore_fields=DEFAULT_IGNORED).objects[obj]
                    summary["objects"][obj] = {"added": d.added, "changed": d.changed, "removed": d.removed,
                                               "changed_fields": d.field_counts()}  # fmt: skip
                    for kind, src in (("ids", d.ids_file), ("fields", d.fields_file)):
                        if src is not None:
                            shutil.copyfile(src, keep / f"{obj}.{kind}.parquet")
                    with transaction(sessions) as s:
                        current = ccmp.get_compare(s, compare_id)
                        if current.state != ExportState.RUNNING.value:  # closed as abandoned: stop here
                            raise abandoned_error("compare", current)
                        ccmp.set_compare_progress(s, current, (i + 1) / len(names))
            older = _close_compare_succeeded(sessions, compare_id, summary, clock)
        except BaseException as exc:
            code, msg = (exc.code, exc.message) if isinstance(exc, SfvaultError) else ("SFV-000", repr(exc))
            shutil.rmtree(keep, ignore_errors=True)
            with transaction(sessions) as s:
                row = ccmp.get_compare(s, compare_id)
                gone = abandoned_error("compare", row) if row.state != ExportState.RUNNING.value else None
                if gone is None:
                    ccmp.set_compare_state(s, row, ExportState.FAILED, error_code=code,
                                           error_message=msg[:2000], clock=clock)  # fmt: skip
            if gone is not None and isinstance(exc, Exception):  # closed as abandoned meanwhile
                raise gone from exc
            raise
        for old in older:
            remove_details(settings, old)
    return summary


def _close_compare_succeeded(
    sessions: Any, compare_id: str, summary: dict[str, Any], clock: Clock
) -> list[str]:
    """A compare that finished: ``succeeded`` with its summary; returns the ids of the compares it
    supersedes. Raises the abandoned error when it stalled past the stale limit and was closed
    (the caller's failure path then removes its details)."""
    from engine.catalog import compares as ccmp
    from engine.catalog.db import transaction
    from engine.catalog.models import ExportState
    from engine.catalog.queued import abandoned_error

    with transaction(sessions) as s:
        row = ccmp.get_compare(s, compare_id)
        if row.state != ExportState.RUNNING.value:  # stalled past the stale limit and closed
            raise abandoned_error("compare", row)
        ccmp.set_compare_state(s, row, ExportState.SUCCEEDED, summary=summary, clock=clock)
        return superseded_compares(s, row)


def remove_details(settings: Settings, compare_id: str) -> Path | None:
    """Delete the detail files of a compare; the folder if there was one."""
    folder = details_dir(settings, compare_id)
    if not folder.exists():
        return None
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def _request_key(row: Compare) -> tuple[Any, ...]:
    """What a compare was asked for: org, the two jobs it resolved to and the objects."""
    summary = row.summary or {}
    objects = tuple(row.objects) if row.objects is not None else None
    return (row.org_id, summary.get("job"), summary.get("against"), objects)


def superseded_compares(session: Session, newer: Compare) -> list[str]:
    """The other succeeded compares of the same org, two jobs and objects as ``newer`` (which
    just succeeded): ``newer`` supersedes them. Their summaries stay; only their detail files go."""
    from sqlalchemy import select

    from engine.catalog.models import Compare, ExportState

    rows = session.scalars(
        select(Compare).where(
            Compare.org_id == newer.org_id,
            Compare.state == ExportState.SUCCEEDED.value,
            Compare.id != newer.id,
        )
    )
    key = _request_key(newer)
    return [r.id for r in rows if _request_key(r) == key]


def sweep_compare_details(settings: Settings, session: Session, *, now: datetime) -> list[Path]:
    """Delete the detail folders under ``settings.scratch_dir / "compares"`` that nobody reads any
    more, and return them:

    * the compare row is gone (deleted with its org, or by hand);
    * the compare did not succeed (``failed`` / ``cancelled``: partial files of a run that died);
    * it finished more than ``settings.compare_details_keep_days`` ago (retention: the summary
      stays in the catalog; the details endpoint answers 404 SFV-101 afterwards);
    * it is superseded: another succeeded compare of the same two jobs and objects that finished
      later still has its folder (:func:`run_queued_compare` deletes those at once; this catches
      what a crash left behind).

    Folders of ``queued`` and ``running`` compares are kept.
    """
    from sqlalchemy import select

    from engine.catalog.models import Compare, ExportState

    root = Path(settings.scratch_dir) / "compares"
    if not root.is_dir():
        return []
    folders = {p.name: p for p in root.iterdir() if p.is_dir()}
    names = sorted(folders)
    rows: dict[str, Compare] = {}
    for i in range(0, len(names), 500):
        rows.update(
            (r.id, r) for r in session.scalars(select(Compare).where(Compare.id.in_(names[i : i + 500])))
        )
    keep_until = now - timedelta(days=settings.compare_details_keep_days)
    keepers: dict[tuple[Any, ...], Compare] = {}
    doomed: list[str] = []
    for name in names:
        row = rows.get(name)
        if row is None:
            doomed.append(name)
        elif row.state in (ExportState.QUEUED.value, ExportState.RUNNING.value):
            continue
        elif row.state != ExportState.SUCCEEDED.value or (row.finished_at or row.created_at) < keep_until:
            doomed.append(name)
        else:
            key = _request_key(row)
            other = keepers.get(key)
            if other is None:
                keepers[key] = row
            elif _finished_order(row) > _finished_order(other):
                keepers[key] = row
                doomed.append(other.id)
            else:
                doomed.append(name)
    removed: list[Path] = []
    for name in sorted(doomed):
        shutil.rmtree(folders[name], ignore_errors=True)
        removed.append(folders[name])
    return removed


def _finished_order(row: Compare) -> tuple[datetime, datetime, str]:
    return (row.finished_at or row.created_at, row.created_at, row.id)


def compare_details(settings: Settings, compare_id: str, object_name: str, *, change: str | None = None,
                    limit: int = 100, offset: int = 0,
                    peek: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """One page of the records of ``object_name`` that a finished compare found, in Id order.

    Each row is ``{"id": Id, "change": "added" | "changed" | "removed", "fields": [{"field": f,
    "old": o, "new": n}, ...]}``; ``fields`` lists the changed fields (old and new as text) of a
    changed record and is empty for added and removed ones. ``change`` filters on one kind;
    ``limit`` is capped at 1000. Raises :class:`NotFound` (unknown compare, or detail files
    removed), :class:`CompareNotReady` (not succeeded), :class:`ObjectNotInBackup` (an object the
    compare did not cover) and :class:`InvalidRequest` (bad ``change`` / ``limit`` / ``offset``).
    ``peek`` reads one row more than ``limit``, so a caller knows whether a next page exists.
    """
    from engine.catalog import compares as ccmp
    from engine.catalog import orgs as corgs
    from engine.catalog.db import transaction
    from engine.catalog.models import ExportState

    if change is not None and change not in CHANGES:
        raise InvalidRequest(what=f"change must be one of {', '.join(CHANGES)}, not {change!r}")
    if not 0 < limit <= MAX_PAGE or offset < 0:
        raise InvalidRequest(what=f"limit must be 1..{MAX_PAGE} and offset >= 0")
    with catalog_sessions(settings) as sessions, transaction(sessions) as s:
        row = ccmp.get_compare(s, compare_id)
        if row.state != ExportState.SUCCEEDED.value:
            raise CompareNotReady(compare=compare_id, state=row.state)
        summary = dict(row.summary or {})
        org_name = corgs.get_org(s, row.org_id).name
    if object_name not in summary.get("objects", {}):
        raise ObjectNotInBackup(object=object_name, org=org_name, job=str(summary.get("job")))
    folder = details_dir(settings, compare_id)
    ids, fields = folder / f"{object_name}.ids.parquet", folder / f"{object_name}.fields.parquet"
    if not ids.is_file():
        raise NotFound(kind="compare details", name=str(ids))
    where = f"WHERE change = {lit(change)}" if change is not None else ""
    con = duckdb.connect(config={"threads": 1, "memory_limit": "256MB", "autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})  # fmt: skip
    try:
        page = con.execute(
            f"SELECT Id, change FROM read_parquet({lit(str(ids))}) {where} ORDER BY Id LIMIT ? OFFSET ?",
            [limit + 1 if peek else limit, offset],
        ).fetchall()
        out = [{"id": rid, "change": ch, "fields": []} for rid, ch in page]
        changed = [r["id"] for r in out if r["change"] == "changed"]
        if changed and fields.is_file():
            by_id = {r["id"]: r for r in out}
            rows = con.execute(
                f"SELECT Id, field, old, new FROM read_parquet({lit(str(fields))}) "
                "WHERE Id IN (SELECT unnest(?)) ORDER BY Id, field",
                [changed],
            ).fetchall()
            for rid, f, old, new in rows:
                by_id[rid]["fields"].append({"field": f, "old": old, "new": new})
    finally:
        con.close()
    return out
