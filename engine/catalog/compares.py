"""Compare jobs (issue 6): queued, run by a worker, summary and state kept in ``compares``.

The lifecycle is the exports' one (``ExportState``): ``queued`` → ``running`` →
``succeeded`` | ``failed``. ``job_id`` / ``against_job_id`` reference catalog jobs (NULL when the
catalog does not know a job of the repository, e.g. before ``sfvault catalog rebuild``); the
jobs the compare was resolved to are also kept in ``summary["job"]`` / ``summary["against"]``
from submission on, and ``summary["objects"]`` is added once it succeeds.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.catalog.models import Compare, ExportState
from engine.catalog.queued import clamp_progress, move_queued
from engine.clock import Clock, SystemClock
from engine.errors import NotFound


def create_compare(
    session: Session,
    *,
    org_id: int,
    job_id: str | None,
    against_job_id: str | None,
    objects: Sequence[str] | None = None,
    summary: dict[str, Any] | None = None,
    created_by: str | None = None,
    clock: Clock | None = None,
) -> Compare:
    row = Compare(
        id=uuid.uuid4().hex,
        org_id=org_id,
        job_id=job_id,
        against_job_id=against_job_id,
        objects=sorted(objects) if objects is not None else None,
        state=ExportState.QUEUED.value,
        progress=0.0,
        summary=summary,
        created_by=created_by,
        created_at=(clock or SystemClock()).now(),
    )
    session.add(row)
    session.flush()
    return row


def get_compare(session: Session, compare_id: str) -> Compare:
    row = session.get(Compare, compare_id)
    if row is None:
        raise NotFound(kind="compare", name=compare_id)
    return row


def list_compares(session: Session, org_id: int, *, limit: int = 100, offset: int = 0) -> list[Compare]:
    """The org's compares, newest first."""
    return list(
        session.scalars(
            select(Compare)
            .where(Compare.org_id == org_id)
            .order_by(Compare.created_at.desc(), Compare.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )


def set_compare_state(
    session: Session,
    compare: Compare,
    state: ExportState | str,
    *,
    summary: dict[str, Any] | None = None,
    progress: float | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    clock: Clock | None = None,
) -> Compare:
    move_queued(compare, state, now=(clock or SystemClock()).now(), progress=progress,
                error_code=error_code, error_message=error_message)  # fmt: skip
    if summary is not None:
        compare.summary = summary
    session.flush()
    return compare


def set_compare_progress(session: Session, compare: Compare, progress: float) -> Compare:
    """Record how far a running compare is (0..1, objects done / objects)."""
    compare.progress = clamp_progress(progress)
    session.flush()
    return compare
