"""The lifecycle shared by queued jobs of the catalog (exports, compares): ``queued`` → ``running``
→ ``succeeded`` | ``failed`` | ``cancelled``, with a 0..1 progress and an error code.

A row is *claimed* (``queued`` → ``running``) by one conditional UPDATE, so of two processes that
dispatch the same row only one runs it. While it runs, its process refreshes ``heartbeat_at``
(:class:`Heartbeat`, a daemon thread); a ``running`` row whose heartbeat is older than a stale
limit belongs to a process that died, and :func:`close_abandoned` ends it ``failed`` (again
conditionally, so a row that just got a fresh heartbeat is left alone). Rows written before
migration 0003 have no heartbeat: their ``started_at`` (else ``created_at``) stands in for it.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.catalog.db import transaction
from engine.catalog.models import Compare, Export, ExportState
from engine.clock import Clock
from engine.errors import QueuedJobAbandoned

QueuedRow = Export | Compare
QueuedModel = type[Export] | type[Compare]

log = logging.getLogger("sfvault.catalog.queued")


def clamp_progress(progress: float) -> float:
    return min(max(progress, 0.0), 1.0)


def move_queued(
    row: QueuedRow,
    state: ExportState | str,
    *,
    now: datetime,
    progress: float | None,
    error_code: str | None,
    error_message: str | None,
) -> None:
    """Set ``row``'s state, stamping ``started_at`` (and the first heartbeat) on running and
    ``finished_at`` on an end state; a success without an explicit progress is complete (1.0)."""
    target = ExportState(state)
    row.state = target.value
    if target is ExportState.RUNNING:
        row.started_at = now
        row.heartbeat_at = now
    elif target is not ExportState.QUEUED:
        row.finished_at = now
    if target in (ExportState.FAILED, ExportState.CANCELLED) and isinstance(row, Export):
        row.password_sealed = None  # sealed at submission; without an archive it opens nothing
    if progress is not None:
        row.progress = clamp_progress(progress)
    elif target is ExportState.SUCCEEDED:
        row.progress = 1.0
    row.error_code, row.error_message = error_code, error_message


def last_heartbeat(row: QueuedRow) -> datetime:
    """The last sign of life of a row: its heartbeat, else its start, else its creation."""
    return row.heartbeat_at or row.started_at or row.created_at


def abandoned_error(kind: str, row: QueuedRow) -> QueuedJobAbandoned:
    """The SFV-713 error of ``row`` (``kind``: ``export`` or ``compare``)."""
    return QueuedJobAbandoned(kind=kind, id=row.id, heartbeat=last_heartbeat(row).isoformat())


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def claim_queued(session: Session, model: QueuedModel, row_id: str, *, now: datetime) -> bool:
    """``queued`` → ``running`` (started now, first heartbeat now, progress 0) if the row is still
    queued; False when another process claimed it first (or it is not queued at all)."""
    result = session.execute(
        update(model)
        .where(model.id == row_id, model.state == ExportState.QUEUED.value)
        .values(
            state=ExportState.RUNNING.value,
            started_at=now,
            heartbeat_at=now,
            progress=0.0,
            error_code=None,
            error_message=None,
        )
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    return _rowcount(result) == 1


def record_heartbeat(session: Session, model: QueuedModel, row_id: str, *, now: datetime) -> bool:
    """Stamp the heartbeat of a running row; False if it is no longer running (finished, or
    closed as abandoned by another process)."""
    result = session.execute(
        update(model)
        .where(model.id == row_id, model.state == ExportState.RUNNING.value)
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def _last_sign_of_life(model: QueuedModel) -> Any:
    return func.coalesce(model.heartbeat_at, model.started_at, model.created_at)


def abandoned_rows(
    session: Session, model: QueuedModel, *, now: datetime, stale_after: timedelta
) -> list[Any]:
    """The ``running`` rows of ``model`` whose heartbeat is older than ``now - stale_after``."""
    cutoff = now - stale_after
    rows = session.scalars(
        select(model)
        .where(model.state == ExportState.RUNNING.value, _last_sign_of_life(model) < cutoff)
        .order_by(model.created_at)
    )
    return list(rows)


def close_abandoned(
    session: Session,
    model: QueuedModel,
    row_id: str,
    *,
    now: datetime,
    stale_after: timedelta,
    error_code: str,
    error_message: str,
) -> bool:
    """End a ``running`` row ``failed`` with ``error_code`` if its heartbeat is still older than
    ``now - stale_after``; False if it finished or beat meanwhile (then it is left alone)."""
    result = session.execute(
        update(model)
        .where(
            model.id == row_id,
            model.state == ExportState.RUNNING.value,
            _last_sign_of_life(model) < now - stale_after,
        )
        .values(
            state=ExportState.FAILED.value,
            finished_at=now,
            error_code=error_code,
            error_message=error_message[:2000],
            **({"password_sealed": None} if model is Export else {}),
        )
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    return _rowcount(result) == 1


def queued_rows(session: Session, model: QueuedModel, *, created_before: datetime | None = None) -> list[Any]:
    """The ``queued`` rows of ``model``, oldest first (only those created before ``created_before``)."""
    query = select(model).where(model.state == ExportState.QUEUED.value)
    if created_before is not None:
        query = query.where(model.created_at < created_before)
    return list(session.scalars(query.order_by(model.created_at)))


class Heartbeat:
    """Refreshes a running row's ``heartbeat_at`` every ``every`` seconds while the ``with``
    block runs, from a daemon thread of the process doing the work.

    The thread waits on an Event between beats (``__exit__`` stops it at once) and stamps the
    time of ``clock``. A failed write is logged and retried at the next beat; a row that is no
    longer ``running`` stops the beats and sets :attr:`lost`.
    """

    def __init__(
        self, sessions: sessionmaker[Session], model: QueuedModel, row_id: str, *, clock: Clock, every: float
    ) -> None:
        self.sessions = sessions
        self.model = model
        self.row_id = row_id
        self.clock = clock
        self.every = every
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> bool:
        """Stamp the heartbeat now; False (and :attr:`lost`) if the row is no longer running."""
        with transaction(self.sessions) as s:
            alive = record_heartbeat(s, self.model, self.row_id, now=self.clock.now())
        if not alive:
            self.lost = True
        return alive

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if not self.beat():
                    log.warning(
                        "%s %s is no longer running: heartbeat stopped", self.model.__tablename__, self.row_id
                    )
                    return
            except SQLAlchemyError as exc:  # the catalog is briefly unreachable: try at the next beat
                log.warning("heartbeat of %s %s failed: %s", self.model.__tablename__, self.row_id, exc)

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(
            target=self._run, name=f"sfvault-heartbeat-{self.row_id[:12]}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
