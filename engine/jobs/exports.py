"""Export jobs: the rules around :mod:`engine.diff.export` (catalog + repository + diff wiring).

Rules (issue 6, PRODUCT "Exports"):

* one export per org at a time: a queued or running export refuses a second one
  (:class:`ExportAlreadyRunning`, SFV-706);
* a monthly limit on the exported volume (default 100 GB, ``monthly_limit_bytes``): the bytes of
  the org's succeeded exports (records and files) since the first day of the current UTC month,
  plus this export's estimate (the plain size of the chunks and file bodies it reads), must stay
  within the limit; checked *before* the export starts (:class:`ExportLimitExceeded`, SFV-707);
* the export is recorded in the catalog (``queued`` → ``running`` → ``succeeded``/``failed``) with
  its archive size and location; the generated ZIP password is returned once and stored only
  sealed (``set_export_password``), so an admin can show it again (:func:`show_password`);
* progress: ``on_progress`` receives an :class:`engine.diff.export.ExportProgress` per object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.diff.export import ExportResult, ProgressFn, estimate_bytes, export_files, export_records
from engine.diff.recovery import RecoveryPoints
from engine.errors import ExportAlreadyRunning, ExportLimitExceeded, SfvaultError, UnknownOrg

DEFAULT_MONTHLY_LIMIT = 100 * 10**9


@dataclass(frozen=True)
class ExportRequest:
    org: str
    out: Path
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


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def run_export(settings: Settings, request: ExportRequest, *, repo: Any = None,
               monthly_limit_bytes: int = DEFAULT_MONTHLY_LIMIT, clock: Clock | None = None,
               on_progress: ProgressFn | None = None, memory_limit: str = "1GB", threads: int = 2,
               max_scratch_bytes: int = 64 << 30) -> ExportOutcome:  # fmt: skip
    """Run one export under the rules of the module docstring; returns the password once."""
    from engine.catalog import exports as cexp
    from engine.catalog import orgs as corgs
    from engine.catalog.db import make_engine, migrate, session_factory, transaction
    from engine.catalog.models import ExportState, Job
    from engine.jobs.credentials import catalog_sealer

    clock = clock or SystemClock()
    engine = make_engine(settings.catalog_url)
    migrate(engine)
    sessions = session_factory(engine)
    own_repo = repo is None
    if repo is None:
        from engine.sink.repository import open_repository

        repo = open_repository(settings, clock=clock)
    try:
        with transaction(sessions) as s:
            org = corgs.find_org_by_name(s, request.org)
            if org is None:
                raise UnknownOrg(org=request.org)
            org_id = org.id
        with RecoveryPoints(repo, request.org, scratch_root=settings.scratch_dir, memory_limit=memory_limit,
                            threads=threads, max_scratch_bytes=max_scratch_bytes) as rp:  # fmt: skip
            target = rp.snapshots.job(request.job).job_id
            objects = list(request.objects) if request.objects else None
            planned = (
                estimate_bytes(rp, target, objects)
                if objects is not None or request.kind == "records"
                else estimate_bytes(
                    rp, target, [o for o in rp.snapshots.objects(target) if o in _file_objects()]
                )
            )
            with transaction(sessions) as s:
                active = cexp.active_export(s, org_id)
                if active is not None:
                    raise ExportAlreadyRunning(org=request.org, export=active.id, state=active.state)
                since = month_start(clock.now())
                used = sum(cexp.exported_bytes_since(s, org_id, since, kind=k) for k in ("records", "files"))
                if used + planned > monthly_limit_bytes:
                    raise ExportLimitExceeded(org=request.org, used=used, since=since.isoformat(),
                                              planned=planned, limit=monthly_limit_bytes)  # fmt: skip
                row = cexp.create_export(
                    s, org_id=org_id, kind=request.kind,
                    format="files" if request.kind == "files" else request.format, scope=request.scope,
                    objects=objects or [], job_id=target if s.get(Job, target) is not None else None,
                    created_by=request.created_by, clock=clock,
                )  # fmt: skip
                cexp.set_export_state(s, row, ExportState.RUNNING, clock=clock)
                export_id = row.id
            try:
                result = _run(rp, request, target, objects, on_progress)
            except BaseException as exc:
                code, msg = (
                    (exc.code, exc.message) if isinstance(exc, SfvaultError) else ("SFV-000", repr(exc))
                )
                with transaction(sessions) as s:
                    cexp.set_export_state(s, cexp.get_export(s, export_id), ExportState.FAILED,
                                          error_code=code, error_message=msg[:2000], clock=clock)  # fmt: skip
                raise
        with transaction(sessions) as s:
            row = cexp.get_export(s, export_id)
            cexp.set_export_password(row, result.password, catalog_sealer(settings, create=True))
            cexp.set_export_state(s, row, ExportState.SUCCEEDED, size_bytes=result.size_bytes,
                                  location=str(result.path), clock=clock)  # fmt: skip
        return ExportOutcome(
            export_id, result.password, result.size_bytes, result.job, result.rows, result.files
        )
    finally:
        if own_repo:
            repo.close()
        engine.dispose()


def _file_objects() -> frozenset[str]:
    from engine.diff.compare import FILE_OBJECTS

    return FILE_OBJECTS


def _run(rp: RecoveryPoints, request: ExportRequest, target: str, objects: list[str] | None,
         on_progress: ProgressFn | None) -> ExportResult:  # fmt: skip
    if request.kind == "files":
        return export_files(
            rp, request.out, scope=request.scope, job=target, objects=objects, progress=on_progress
        )
    fmt: Literal["csv", "mysql"] = "mysql" if request.format == "mysql" else "csv"
    return export_records(rp, request.out, fmt=fmt, scope=request.scope, job=target, objects=objects,
                          progress=on_progress)  # fmt: skip


def show_password(settings: Settings, export_id: str) -> str:
    """The password of an export, unsealed from the catalog (admins only; the caller checks the role)."""
    from engine.catalog import exports as cexp
    from engine.catalog.db import make_engine, session_factory, transaction
    from engine.jobs.credentials import catalog_sealer

    engine = make_engine(settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            return cexp.read_export_password(cexp.get_export(s, export_id), catalog_sealer(settings))
    finally:
        engine.dispose()
