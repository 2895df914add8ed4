"""Export jobs (issue 6): queued, run one per org at a time, password kept sealed."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.catalog.models import Export, ExportFormat, ExportKind, ExportScope, ExportState
from engine.catalog.queued import clamp_progress, move_queued
from engine.catalog.secrets import Sealer
from engine.clock import Clock, SystemClock
from engine.errors import NotFound
from engine.model import ObjectAsOf


def _aad(export_id: str) -> bytes:
    return f"export-password:{export_id}".encode()


def create_export(
    session: Session,
    *,
    org_id: int,
    kind: ExportKind | str,
    format: ExportFormat | str,
    scope: ExportScope | str,
    objects: Sequence[str],
    job_id: str | None = None,
    created_by: str | None = None,
    clock: Clock | None = None,
) -> Export:
    now = (clock or SystemClock()).now()
    row = Export(
        id=uuid.uuid4().hex,
        org_id=org_id,
        job_id=job_id,
        kind=ExportKind(kind).value,
        format=ExportFormat(format).value,
        scope=ExportScope(scope).value,
        objects=sorted(objects),
        state=ExportState.QUEUED.value,
        size_bytes=0,
        created_by=created_by,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get_export(session: Session, export_id: str) -> Export:
    row = session.get(Export, export_id)
    if row is None:
        raise NotFound(kind="export", name=export_id)
    return row


def active_export(session: Session, org_id: int) -> Export | None:
    """The org's queued or running export (only one may run at a time)."""
    return session.scalar(
        select(Export)
        .where(
            Export.org_id == org_id, Export.state.in_([ExportState.QUEUED.value, ExportState.RUNNING.value])
        )
        .limit(1)
    )


def set_export_state(
    session: Session,
    export: Export,
    state: ExportState | str,
    *,
    size_bytes: int | None = None,
    location: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    progress: float | None = None,
    clock: Clock | None = None,
) -> Export:
    move_queued(export, state, now=(clock or SystemClock()).now(), progress=progress,
                error_code=error_code, error_message=error_message)  # fmt: skip
    if size_bytes is not None:
        export.size_bytes = size_bytes
    if location is not None:
        export.location = location
    session.flush()
    return export


def set_export_stale_objects(export: Export, as_of: Iterable[ObjectAsOf]) -> None:
    """Record which objects of the export are not as of its job (the others are not stored)."""
    export.stale_objects = [a.to_dict() for a in sorted(as_of, key=lambda a: a.object) if not a.current]


def export_stale_objects(export: Export) -> list[ObjectAsOf] | None:
    """The objects of the export not as of its job (None for an export recorded before migration 0005)."""
    if export.stale_objects is None:
        return None
    return [ObjectAsOf.from_dict(d) for d in export.stale_objects]


def set_export_progress(session: Session, export: Export, progress: float) -> Export:
    """Record how far a running export is (0..1, objects done / objects)."""
    export.progress = clamp_progress(progress)
    session.flush()
    return export


def list_exports(session: Session, org_id: int, *, limit: int = 100, offset: int = 0) -> list[Export]:
    """The org's exports, newest first."""
    return list(
        session.scalars(
            select(Export)
            .where(Export.org_id == org_id)
            .order_by(Export.created_at.desc(), Export.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )


def set_export_password(export: Export, password: str, sealer: Sealer) -> None:
    export.password_sealed = sealer.seal(password.encode(), aad=_aad(export.id))


def read_export_password(export: Export, sealer: Sealer) -> str:
    if export.password_sealed is None:
        raise NotFound(kind="password of export", name=export.id)
    return sealer.open(export.password_sealed, aad=_aad(export.id)).decode()


def exported_bytes_since(session: Session, org_id: int, since: datetime, *, kind: ExportKind | str) -> int:
    """Volume of succeeded exports of ``kind`` since ``since`` (the monthly file-export limit)."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(Export.size_bytes), 0)).where(
                Export.org_id == org_id,
                Export.kind == ExportKind(kind).value,
                Export.state == ExportState.SUCCEEDED.value,
                Export.created_at >= since,
            )
        )
        or 0
    )
