"""Export jobs: the rules around :mod:`engine.diff.export` (catalog + repository + diff wiring).

An export is a queued job (issue 6, the REST API and the CLI share it):

* :func:`submit_export` checks the rules and records a ``queued`` row, returning its id;
* :func:`run_queued_export` (a worker, or the CLI right away) runs it ``queued`` → ``running`` →
  ``succeeded`` | ``failed``, updating ``Export.progress`` (0..1, objects done / objects) and
  writing the ZIP to ``settings.export_dir / f"{export_id}.zip"`` (``Export.location``);
* a process that dies while an export runs leaves it ``running`` with a stale heartbeat; the next
  service start closes it ``failed`` (SFV-713) and removes its partial ZIP (:mod:`engine.jobs.queued`);
* :func:`export_archive_path` is where the finished ZIP is; :func:`show_password` unseals its
  password for an admin;
* :func:`run_export` is the synchronous CLI path: submit, then run, writing to the CLI's ``--out``.

Rules:

* one export per org at a time: a queued or running export refuses a second one
  (:class:`ExportAlreadyRunning`, SFV-706); a ``running`` export of a process that died (its
  heartbeat older than ``settings.queued_stale_after_seconds``) is first closed as abandoned
  (SFV-713) by the org's next submission, so it never blocks the next export;
* a monthly limit on the exported volume (``Settings.export_monthly_limit_bytes``, default 100 GB;
  the CLI's ``--monthly-limit-gb`` overrides it): the bytes of the org's succeeded exports (records
  and files) since the first day of the current UTC month, plus this export's estimate (the plain
  size of the chunks and file bodies it reads), must stay within the limit; checked at submission,
  *before* anything is written (:class:`ExportLimitExceeded`, SFV-707);
* unknown org (:class:`UnknownOrg`), unknown job (:class:`UnknownJob`) and an object that is not in
  the backup (:class:`ObjectNotInBackup`) are refused at submission, and nothing is recorded;
* the ZIP is written to a temporary file in the target's folder and renamed onto the target once
  complete (atomic: nobody sees half a ZIP at the target); a failure removes only that temporary
  file, never a file the export did not create, and a target that cannot hold a file (a directory,
  a special file, a read-only folder) ends the export ``failed`` with SFV-715;
* the ZIP password is generated at submission and stored only sealed (``set_export_password``),
  so the caller who queued the export can be handed it once; a failed export forgets it;
* the objects whose data is not as of the exported job (the job is partial, or did not include
  them: as of an earlier job of the cycle, or absent) are recorded on the row at submission and
  again when the export succeeds (``Export.stale_objects``), so the API says so from the 202
  answer on; the ZIP's ``manifest.csv`` says the same per object (columns ``as_of``, ``as_of_job``).

The export pins the job it was submitted for through ``Export.job_id``, a foreign key to the
catalog's jobs. A job the repository has but the catalog does not (a catalog not rebuilt yet)
cannot be pinned: the queued export then runs at the newest job of the org when it starts
(the synchronous :func:`run_export` always uses the job it resolved).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.diff.archive import generate_password
from engine.diff.compare import FILE_OBJECTS
from engine.diff.export import (
    ExportProgress,
    ExportResult,
    Format,
    ProgressFn,
    estimate_bytes,
    export_as_of,
    export_files,
    export_records,
)
from engine.diff.recovery import RecoveryPoints
from engine.diff.selection import Scope
from engine.errors import (
    ExportAlreadyRunning,
    ExportLimitExceeded,
    ExportNotReady,
    ExportTargetInvalid,
    NotFound,
    NotQueued,
    QueuedJobAbandoned,
    SfvaultError,
    UnknownOrg,
)
from engine.model import ObjectAsOf

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("sfvault.exports")

DEFAULT_MONTHLY_LIMIT = 100 * 10**9
"""The default of ``Settings.export_monthly_limit_bytes`` (kept for callers of the old name)."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export. ``out`` is only for the synchronous CLI path (:func:`run_export`); queued
    exports write to ``settings.export_dir``."""

    org: str
    out: Path | None = None
    kind: Literal["records", "files"] = "records"
    format: Literal["csv", "mysql", "files"] = "csv"
    scope: Literal["changed", "cycle"] = "cycle"
    objects: tuple[str, ...] | None = None  # None = every object of the backup (files: the file objects)
    job: str | None = None
    created_by: str | None = None


@dataclass
class ExportOutcome:
    export_id: str
    password: str
    size_bytes: int
    job: str
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    path: Path | None = None
    as_of: list[ObjectAsOf] = field(default_factory=list)
    """Per object, which job its data is as of (:func:`engine.diff.export.export_as_of`)."""

    @property
    def stale(self) -> list[ObjectAsOf]:
        """The objects not as of the exported job: as of an earlier job of the cycle, or absent."""
        return [a for a in self.as_of if not a.current]


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@contextmanager
def catalog_sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on the settings' catalog (migrated to the newest schema), disposed afterwards
    (:func:`engine.catalog.db.open_catalog`)."""
    from engine.catalog.db import open_catalog

    with open_catalog(settings.catalog_url) as sessions:
        yield sessions


@contextmanager
def repository(settings: Settings, repo: Any, clock: Clock) -> Iterator[Any]:
    """``repo`` if given (the caller owns it), else the settings' repository, closed afterwards."""
    if repo is not None:
        yield repo
        return
    from engine.sink.repository import open_repository

    opened = open_repository(settings, clock=clock)
    try:
        yield opened
    finally:
        opened.close()


def recovery_points(settings: Settings, repo: Any, org: str, **kw: Any) -> RecoveryPoints:
    """Recovery points of ``org`` with a scratch folder under ``settings.scratch_dir``."""
    kw.setdefault("memory_limit", "1GB")
    kw.setdefault("threads", 2)
    kw.setdefault("max_scratch_bytes", 64 << 30)
    return RecoveryPoints(repo, org, scratch_root=settings.scratch_dir, **kw)


def _target_objects(rp: RecoveryPoints, request: ExportRequest,
                    target: str) -> tuple[list[str] | None, int, list[ObjectAsOf]]:  # fmt: skip
    """The objects to record (None = all), the export's volume estimate and which job each
    object is as of; validates the objects."""
    objects = list(request.objects) if request.objects else None
    if objects is None and request.kind == "files":
        estimate = estimate_bytes(rp, target, [o for o in rp.snapshots.objects(target) if o in FILE_OBJECTS])
    else:
        estimate = estimate_bytes(rp, target, objects)  # raises ObjectNotInBackup
    return objects, estimate, export_as_of(rp, target, objects, files=request.kind == "files")


def _submit(settings: Settings, request: ExportRequest, *, clock: Clock, repo: Any,
            monthly_limit_bytes: int | None) -> tuple[str, str]:  # fmt: skip
    """Check the rules and record the queued export; returns (export id, the job it resolved)."""
    from engine.catalog import exports as cexp
    from engine.catalog import orgs as corgs
    from engine.catalog.db import transaction
    from engine.catalog.models import Job
    from engine.jobs.credentials import catalog_sealer
    from engine.jobs.queued import close_abandoned_rows

    limit = settings.export_monthly_limit_bytes if monthly_limit_bytes is None else monthly_limit_bytes
    with catalog_sessions(settings) as sessions:
        with transaction(sessions) as s:
            org = corgs.find_org_by_name(s, request.org)
            if org is None:
                raise UnknownOrg(org=request.org)
            org_id = org.id
        with repository(settings, repo, clock) as r, recovery_points(settings, r, request.org) as rp:
            target = rp.snapshots.job(request.job).job_id
            objects, planned, as_of = _target_objects(rp, request, target)
        # an export whose process died (stale heartbeat) is closed here, so it never blocks this one
        # even where no service runs its recovery (`sfvault export`)
        close_abandoned_rows(settings, sessions, "export", now=clock.now(), org_id=org_id)
        with transaction(sessions) as s:
            active = cexp.active_export(s, org_id)
            if active is not None:
                raise ExportAlreadyRunning(org=request.org, export=active.id, state=active.state)
            since = month_start(clock.now())
            used = sum(cexp.exported_bytes_since(s, org_id, since, kind=k) for k in ("records", "files"))
            if used + planned > limit:
                raise ExportLimitExceeded(org=request.org, used=used, since=since.isoformat(),
                                          planned=planned, limit=limit)  # fmt: skip
            row = cexp.create_export(
                s, org_id=org_id, kind=request.kind,
                format="files" if request.kind == "files" else request.format, scope=request.scope,
                objects=objects or [], job_id=target if s.get(Job, target) is not None else None,
                created_by=request.created_by, clock=clock,
            )  # fmt: skip
            cexp.set_export_stale_objects(row, as_of)  # known at once: the 202 answer says so
            # the password exists from the start, so the 202 answer can hand it to its creator once
            cexp.set_export_password(row, generate_password(), catalog_sealer(settings, create=True))
            return row.id, target


def submit_export(settings: Settings, request: ExportRequest, *, clock: Clock | None = None,
                  repo: Any = None, monthly_limit_bytes: int | None = None) -> str:  # fmt: skip
    """Check the rules (unknown org/job, object not in backup, one export per org at a time,
    monthly limit using the estimate) and create a ``queued`` Export row; return its id.

    Raises :class:`UnknownOrg`, :class:`UnknownJob`, :class:`ObjectNotInBackup`,
    :class:`ExportAlreadyRunning` or :class:`ExportLimitExceeded`; nothing is recorded then.
    ``monthly_limit_bytes`` overrides ``settings.export_monthly_limit_bytes``.
    """
    export_id, _ = _submit(settings, request, clock=clock or SystemClock(), repo=repo,
                           monthly_limit_bytes=monthly_limit_bytes)  # fmt: skip
    return export_id


def queued_archive_path(settings: Settings, export_id: str) -> Path:
    """Where a queued export writes its ZIP (``settings.export_dir / f"{export_id}.zip"``)."""
    return Path(settings.export_dir) / f"{export_id}.zip"


def run_queued_export(settings: Settings, export_id: str, *, on_progress: ProgressFn | None = None,
                      clock: Clock | None = None, repo: Any = None, out: Path | None = None,
                      job: str | None = None, **rp_options: Any) -> ExportOutcome:  # fmt: skip
    """Run a queued export: ``queued`` → ``running`` → ``succeeded`` | ``failed``.

    Updates ``Export.progress`` (0..1) after each object, writes the ZIP to
    ``settings.export_dir / f"{export_id}.zip"`` (or ``out``) and records it as
    ``Export.location`` from the start (so a later recovery finds a partial ZIP), seals the
    generated password into the catalog, and returns the outcome (password included). While it
    runs, a :class:`~engine.catalog.queued.Heartbeat` refreshes ``Export.heartbeat_at`` every
    ``settings.queued_heartbeat_seconds``; a process that dies leaves a stale heartbeat, and the
    next service start closes the export with SFV-713 (:mod:`engine.jobs.queued`).

    On an error the export is ``failed`` with its code and message, the partial ZIP is removed,
    and the error is raised again. :class:`NotQueued` if it is not queued (or another process
    claimed it first); :class:`QueuedJobAbandoned` if it was closed as abandoned while it ran
    (its ZIP is removed then). ``job`` is the job :func:`submit_export` resolved, for exports
    whose job the catalog does not know.
    """
    from engine.catalog import exports as cexp
    from engine.catalog import orgs as corgs
    from engine.catalog.db import transaction
    from engine.catalog.models import Export, ExportState
    from engine.catalog.queued import Heartbeat, abandoned_error, claim_queued
    from engine.jobs.credentials import catalog_sealer

    clock = clock or SystemClock()
    path = Path(out) if out is not None else queued_archive_path(settings, export_id)
    with catalog_sessions(settings) as sessions:
        with transaction(sessions) as s:
            cexp.get_export(s, export_id)  # an unknown id is refused here
            if not claim_queued(s, Export, export_id, now=clock.now()):  # only a queued row is claimed
                raise NotQueued(kind="export", id=export_id, state=cexp.get_export(s, export_id).state)
            row = cexp.get_export(s, export_id)
            org_name = corgs.get_org(s, row.org_id).name
            kind, fmt, scope = row.kind, row.format, row.scope
            objects = list(row.objects) or None
            target_job = row.job_id or job
            sealed = row.password_sealed is not None
            password = cexp.read_export_password(row, catalog_sealer(settings)) if sealed else None

        def progress(p: ExportProgress) -> None:
            with transaction(sessions) as s:
                current = cexp.get_export(s, export_id)
                if current.state != ExportState.RUNNING.value:  # closed as abandoned: stop here
                    raise abandoned_error("export", current)
                cexp.set_export_progress(s, current, p.done / max(p.total, 1))
            if on_progress is not None:
                on_progress(p)

        beat = Heartbeat(sessions, Export, export_id, clock=clock, every=settings.queued_heartbeat_seconds)
        partial: Path | None = None
        try:
            partial = _partial_beside(path)
            _record_location(sessions, export_id, partial)  # a recovery removes this, never `path`
            with (
                beat,
                repository(settings, repo, clock) as r,
                recovery_points(settings, r, org_name, **rp_options) as rp,
            ):
                target = rp.snapshots.job(target_job).job_id
                scope_: Scope = "changed" if scope == "changed" else "cycle"
                if kind == "files":
                    result = export_files(rp, partial, scope=scope_, job=target, objects=objects,
                                          password=password, progress=progress)  # fmt: skip
                else:
                    fmt_: Format = "mysql" if fmt == "mysql" else "csv"
                    result = export_records(rp, partial, fmt=fmt_, scope=scope_, job=target, objects=objects,
                                            password=password, progress=progress)  # fmt: skip
            _close_succeeded(settings, sessions, export_id, result, partial, path, clock)
        except BaseException as exc:
            gone = _close_failed(sessions, export_id, exc, partial, clock)
            if gone is not None and isinstance(exc, Exception):  # closed as abandoned meanwhile
                raise gone from exc
            raise
    return _outcome(export_id, result, path)


def _close_succeeded(settings: Settings, sessions: Any, export_id: str, result: ExportResult, partial: Path,
                     path: Path, clock: Clock) -> None:  # fmt: skip
    """An export that finished: its ZIP renamed from ``partial`` to ``path`` (one atomic step: a
    reader never sees half a ZIP at ``path``), its password sealed, ``succeeded``; the abandoned
    error instead when it stalled past the stale limit and was closed (the caller removes ``partial``)."""
    from engine.catalog import exports as cexp
    from engine.catalog.db import transaction
    from engine.catalog.models import ExportState
    from engine.catalog.queued import abandoned_error
    from engine.jobs.credentials import catalog_sealer

    with transaction(sessions) as s:
        row = cexp.get_export(s, export_id)
        if row.state != ExportState.RUNNING.value:  # stalled past the stale limit and closed
            raise abandoned_error("export", row)
        _check_target(path)  # it may have become a directory meanwhile
        try:
            os.replace(partial, path)
        except OSError as exc:
            raise ExportTargetInvalid(path=str(path), why=exc.strerror or type(exc).__name__) from exc
        result.path = path
        if row.password_sealed is None:
            cexp.set_export_password(row, result.password, catalog_sealer(settings, create=True))
        cexp.set_export_stale_objects(row, result.as_of)
        cexp.set_export_state(s, row, ExportState.SUCCEEDED, size_bytes=result.size_bytes,
                              location=str(path), clock=clock)  # fmt: skip


def _close_failed(
    sessions: Any, export_id: str, exc: BaseException, partial: Path | None, clock: Clock
) -> QueuedJobAbandoned | None:
    """An export that raised: its partial ZIP removed (only the temporary file this export made,
    never the target it would have replaced), ``failed`` with the error's code; the abandoned
    error instead when it was closed as abandoned meanwhile (then its row stays)."""
    from engine.catalog import exports as cexp
    from engine.catalog.db import transaction
    from engine.catalog.models import ExportState
    from engine.catalog.queued import abandoned_error

    code, msg = (exc.code, exc.message) if isinstance(exc, SfvaultError) else ("SFV-000", repr(exc))
    if partial is not None:
        try:
            partial.unlink(missing_ok=True)
        except OSError:  # the row is closed whatever happens to the temporary file
            log.warning("could not remove the partial export %s", partial, exc_info=True)
    with transaction(sessions) as s:
        row = cexp.get_export(s, export_id)
        gone = abandoned_error("export", row) if row.state != ExportState.RUNNING.value else None
        if gone is None:
            row.location = None
            cexp.set_export_state(s, row, ExportState.FAILED, error_code=code,
                                  error_message=msg[:2000], clock=clock)  # fmt: skip
    return gone


def _check_target(path: Path) -> None:
    """Refuse a target that is not a regular file to be (a directory, a device, a FIFO)."""
    if path.is_dir():
        why = "it is a directory; give a file name such as DIR/export.zip"
        raise ExportTargetInvalid(path=str(path), why=why)
    if path.exists() and not path.is_file():
        raise ExportTargetInvalid(path=str(path), why="it is not a regular file")


def _partial_beside(path: Path) -> Path:
    """A new temporary file in the target's folder (same file system, so the final rename is
    atomic); raises :class:`ExportTargetInvalid` when the folder cannot hold it."""
    _check_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as exc:
        raise ExportTargetInvalid(path=str(path), why=exc.strerror or type(exc).__name__) from exc
    os.close(fd)
    return Path(name)


def _record_location(sessions: Any, export_id: str, partial: Path) -> None:
    """While it runs, ``Export.location`` is the temporary file: the recovery of a dead process
    removes that, never a file the export did not create."""
    from engine.catalog import exports as cexp
    from engine.catalog.db import transaction

    with transaction(sessions) as s:
        cexp.get_export(s, export_id).location = str(partial)


def _outcome(export_id: str, result: ExportResult, path: Path) -> ExportOutcome:
    return ExportOutcome(
        export_id, result.password, result.size_bytes, result.job, result.rows, result.files, path,
        list(result.as_of),
    )  # fmt: skip


def run_export(settings: Settings, request: ExportRequest, *, repo: Any = None,
               monthly_limit_bytes: int | None = None, clock: Clock | None = None,
               on_progress: ProgressFn | None = None, **rp_options: Any) -> ExportOutcome:  # fmt: skip
    """The synchronous path (the CLI): :func:`submit_export`, then :func:`run_queued_export` into
    ``request.out`` (default ``settings.export_dir``); returns the password once."""
    clock = clock or SystemClock()
    export_id, target = _submit(
        settings, request, clock=clock, repo=repo, monthly_limit_bytes=monthly_limit_bytes
    )
    try:
        return run_queued_export(settings, export_id, on_progress=on_progress, clock=clock, repo=repo,
                                 out=request.out, job=target, **rp_options)  # fmt: skip
    except BaseException as exc:
        _fail_if_queued(settings, export_id, exc, clock)  # it failed before it was claimed
        raise


def _fail_if_queued(settings: Settings, export_id: str, exc: BaseException, clock: Clock) -> None:
    """Close an export that is still ``queued`` as ``failed`` with ``exc``'s code: the synchronous
    path must never leave a row that blocks the org's next export (SFV-706)."""
    from engine.catalog import exports as cexp
    from engine.catalog.db import transaction
    from engine.catalog.models import ExportState

    code, msg = (exc.code, exc.message) if isinstance(exc, SfvaultError) else ("SFV-000", repr(exc))
    try:
        with catalog_sessions(settings) as sessions, transaction(sessions) as s:
            row = cexp.get_export(s, export_id)
            if row.state == ExportState.QUEUED.value:
                cexp.set_export_state(s, row, ExportState.FAILED, error_code=code,
                                      error_message=msg[:2000], clock=clock)  # fmt: skip
    except Exception:  # the original error is what the caller must see
        log.warning("could not close export %s", export_id, exc_info=True)


def export_archive_path(settings: Settings, export_id: str) -> Path:
    """Where the finished ZIP of an export is.

    Raises :class:`NotFound` for an unknown export (or an archive that was deleted since) and
    :class:`ExportNotReady` unless the export has succeeded.
    """
    from engine.catalog import exports as cexp
    from engine.catalog.db import transaction
    from engine.catalog.models import ExportState

    with catalog_sessions(settings) as sessions, transaction(sessions) as s:
        row = cexp.get_export(s, export_id)
        if row.state != ExportState.SUCCEEDED.value or not row.location:
            raise ExportNotReady(export=export_id, state=row.state)
        path = Path(row.location)
    if not path.is_file():
        raise NotFound(kind="export archive", name=str(path))
    return path


def show_password(settings: Settings, export_id: str) -> str:
    """The password of an export, unsealed from the catalog (admins only; the caller checks the role)."""
    from engine.catalog import exports as cexp
    from engine.catalog.db import transaction
    from engine.jobs.credentials import catalog_sealer

    with catalog_sessions(settings) as sessions, transaction(sessions) as s:
        return cexp.read_export_password(cexp.get_export(s, export_id), catalog_sealer(settings))
