"""Queued exports and compares after a restart: close what a dead process left ``running``,
find what was never started, and clean up files nobody reads any more.

The process that runs an export or compare refreshes the row's ``heartbeat_at``
(:class:`engine.catalog.queued.Heartbeat`, every ``settings.queued_heartbeat_seconds``). If that
process dies, the row stays ``running`` and, for exports, blocks the org's next export (one
export per org at a time). :func:`recover_queued`, called when ``sfvault serve`` starts and on
each scheduler tick, then

1. closes every ``running`` export and compare whose heartbeat is older than
   ``settings.queued_stale_after_seconds`` as ``failed`` with :class:`QueuedJobAbandoned`
   (SFV-713), and removes its partial output: the export's ZIP (``Export.location``, recorded
   when it started) or the compare's detail folder;
2. deletes compare detail folders that are orphaned, failed, past retention or superseded
   (:func:`engine.jobs.compares.sweep_compare_details`);
3. returns the ``queued`` rows, so the service can hand them to its job runner again (a row that
   another process runs meanwhile is refused there with SFV-712: claiming a row is atomic).

Like backup jobs (SFV-804), nothing is resumed: an abandoned export or compare is submitted again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from engine.catalog.models import Compare, Export
from engine.config import Settings
from engine.jobs.compares import remove_details, sweep_compare_details
from engine.jobs.exports import queued_archive_path

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("sfvault.jobs.queued")

QueuedKind = Literal["export", "compare"]


@dataclass(frozen=True)
class QueuedWork:
    """A ``queued`` export or compare to hand to a runner; ``storage_location`` is its org's."""

    kind: QueuedKind
    id: str
    org: str
    storage_location: str | None


@dataclass
class QueuedRecovery:
    """What one :func:`recover_queued` did.

    Attributes:
        abandoned: ``(kind, id)`` of the rows closed ``failed`` with SFV-713.
        removed: partial ZIPs and compare detail folders deleted.
        queued: the ``queued`` rows to (re)submit, oldest first.
    """

    abandoned: list[tuple[QueuedKind, str]] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    queued: list[QueuedWork] = field(default_factory=list)


MODELS: dict[QueuedKind, type[Export] | type[Compare]] = {"export": Export, "compare": Compare}


def close_abandoned_rows(
    settings: Settings,
    sessions: sessionmaker[Session],
    kind: QueuedKind,
    *,
    now: datetime,
    org_id: int | None = None,
) -> tuple[list[str], list[Path]]:
    """Close the ``running`` rows of ``kind`` (of ``org_id``, or of every org) whose heartbeat is
    older than ``settings.queued_stale_after_seconds`` as ``failed`` with SFV-713 and remove their
    partial output. Returns the closed ids and the removed files.

    Called by :func:`recover_queued` (service start, scheduler tick) and by the submission of the
    next export or compare of the org, so a process that died never blocks the next one even
    where no service runs (``sfvault export``)."""
    from engine.catalog.db import transaction
    from engine.catalog.queued import abandoned_error, abandoned_rows, close_abandoned

    model = MODELS[kind]
    stale = timedelta(seconds=settings.queued_stale_after_seconds)
    with transaction(sessions) as s:
        found = [
            (r.id, abandoned_error(kind, r), getattr(r, "location", None))
            for r in abandoned_rows(s, model, now=now, stale_after=stale)
            if org_id is None or r.org_id == org_id
        ]
    closed: list[str] = []
    removed: list[Path] = []
    for row_id, err, location in found:
        with transaction(sessions) as s:
            if not close_abandoned(s, model, row_id, now=now, stale_after=stale,
                                   error_code=err.code, error_message=err.message):  # fmt: skip
                continue  # it beat or finished meanwhile
        log.warning("%s closed as abandoned", err)
        closed.append(row_id)
        if kind == "export":
            partial = Path(location) if location else queued_archive_path(settings, row_id)
            if partial.is_file():
                partial.unlink(missing_ok=True)
                removed.append(partial)
        else:
            folder = remove_details(settings, row_id)
            if folder is not None:
                removed.append(folder)
    return closed, removed


def recover_queued(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    queued_before: datetime | None = None,
) -> QueuedRecovery:
    """Close abandoned exports and compares, sweep compare details, list the queued rows (see the
    module docstring). ``queued_before`` lists only rows queued before it (None: all of them)."""
    from engine.catalog.db import transaction
    from engine.catalog.models import Org
    from engine.catalog.queued import queued_rows

    out = QueuedRecovery()
    for kind in MODELS:
        closed, removed = close_abandoned_rows(settings, sessions, kind, now=now)
        out.abandoned.extend((kind, row_id) for row_id in closed)
        out.removed.extend(removed)
    with transaction(sessions) as s:
        out.removed.extend(sweep_compare_details(settings, s, now=now))
        for kind, model in MODELS.items():
            for r in queued_rows(s, model, created_before=queued_before):
                org = s.get(Org, r.org_id)
                if org is not None:
                    out.queued.append(QueuedWork(kind, r.id, org.name, org.storage_location))
    return out
