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
    from engine.catalog.models import Compare, Export, Org
    from engine.catalog.queued import abandoned_error, abandoned_rows, close_abandoned, queued_rows

    stale = timedelta(seconds=settings.queued_stale_after_seconds)
    out = QueuedRecovery()
    models: tuple[tuple[QueuedKind, type[Export] | type[Compare]], ...] = (
        ("export", Export),
        ("compare", Compare),
    )
    for kind, model in models:
        with transaction(sessions) as s:
            found = [
                (r.id, abandoned_error(kind, r), getattr(r, "location", None))
                for r in abandoned_rows(s, model, now=now, stale_after=stale)
            ]
        for row_id, err, location in found:
            with transaction(sessions) as s:
                closed = close_abandoned(s, model, row_id, now=now, stale_after=stale,
                                         error_code=err.code, error_message=err.message)  # fmt: skip
            if not closed:  # it beat or finished meanwhile
                continue
            log.warning("%s closed as abandoned", err)
            out.abandoned.append((kind, row_id))
            if kind == "export":
                partial = Path(location) if location else queued_archive_path(settings, row_id)
                if partial.is_file():
                    partial.unlink(missing_ok=True)
                    out.removed.append(partial)
            else:
                folder = remove_details(settings, row_id)
                if folder is not None:
                    out.removed.append(folder)
    with transaction(sessions) as s:
        out.removed.extend(sweep_compare_details(settings, s, now=now))
        for kind, model in models:
            for r in queued_rows(s, model, created_before=queued_before):
                org = s.get(Org, r.org_id)
                if org is not None:
                    out.queued.append(QueuedWork(kind, r.id, org.name, org.storage_location))
    return out
