"""The lifecycle shared by queued jobs of the catalog (exports, compares): ``queued`` → ``running``
→ ``succeeded`` | ``failed`` | ``cancelled``, with a 0..1 progress and an error code."""

from __future__ import annotations

from datetime import datetime

from engine.catalog.models import Compare, Export, ExportState

QueuedRow = Export | Compare


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
    """Set ``row``'s state, stamping ``started_at`` on running and ``finished_at`` on an end state;
    a success without an explicit progress is complete (1.0)."""
    target = ExportState(state)
    row.state = target.value
    if target is ExportState.RUNNING:
        row.started_at = now
    elif target is not ExportState.QUEUED:
        row.finished_at = now
    if progress is not None:
        row.progress = clamp_progress(progress)
    elif target is ExportState.SUCCEEDED:
        row.progress = 1.0
    row.error_code, row.error_message = error_code, error_message
