"""``sfvault prune``: drop snapshots of expired cycles, then every unreferenced object.

Retention: per org, the snapshots of the newest ``keep_cycles`` cycles are kept (a cycle is a
full job and its incrementals, ordered by when its full committed: an incremental of the old cycle
may commit after a new cycle's full that ran beside it, decision 0016); ``None`` keeps every
snapshot. Then every ``chunks/`` object no kept manifest references is deleted (mark and sweep),
and leftovers of interrupted local puts are removed.

Safety: prune holds the ``_exclusive`` lock (no writer can run meanwhile) and refuses to delete
anything if any manifest cannot be read (its references would be unknown). Deletion goes in the
reverse of the commit order: manifests first, then objects, so a crash during prune leaves only
unreferenced objects behind.
"""

from __future__ import annotations

import os
import socket
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import structlog

from engine.errors import ObjectNotFound
from engine.model import Manifest, SnapshotInfo
from engine.sink.backend import Handle, Kind
from engine.sink.lock import EXCLUSIVE, RepoLock
from engine.sink.manifest import manifest_handle
from engine.sink.repository import Repository

log = structlog.get_logger(__name__)


@dataclass
class PruneReport:
    dry_run: bool
    snapshots_kept: list[SnapshotInfo] = field(default_factory=list)
    snapshots_removed: list[SnapshotInfo] = field(default_factory=list)
    objects_removed: int = 0
    bytes_removed: int = 0
    temp_files_removed: int = 0


def _cycle_start(members: Iterable[Manifest]) -> datetime:
    """When a cycle started: its full's commit (the oldest commit of a cycle without one)."""
    ms = list(members)
    fulls = [m.created_at for m in ms if m.kind == "full"]
    return min(fulls) if fulls else min(m.created_at for m in ms)


def expired_snapshots(manifests: list[tuple[SnapshotInfo, Manifest]], keep_cycles: int | None) -> set[str]:
    """Names of snapshots whose cycle falls outside the newest ``keep_cycles`` cycles of their org."""
    if keep_cycles is None:
        return set()
    if keep_cycles < 1:
        raise ValueError("keep_cycles must be at least 1")
    by_org: dict[str, dict[str, list[tuple[SnapshotInfo, Manifest]]]] = defaultdict(lambda: defaultdict(list))
    for info, m in manifests:
        by_org[m.org][m.cycle_id].append((info, m))
    expired: set[str] = set()
    for cycles in by_org.values():
        ordered = sorted(cycles.items(), key=lambda kv: (_cycle_start(m for _, m in kv[1]), kv[0]))
        for _cycle, members in ordered[: max(0, len(ordered) - keep_cycles)]:
            expired.update(info.name for info, _ in members)
    return expired


def prune(
    repo: Repository, *, keep_cycles: int | None = None, dry_run: bool = False, holder: str | None = None
) -> PruneReport:
    """Apply retention and remove unreferenced objects; see the module docstring."""
    report = PruneReport(dry_run=dry_run)
    lock = RepoLock(
        repo.backend, EXCLUSIVE, holder or f"sfvault prune@{socket.gethostname()}", clock=repo.clock
    )
    if not dry_run:
        lock.acquire()
    try:
        loaded = [(info, repo.load_manifest(info.org, info.job_id)) for info in repo.snapshots()]
        expired = expired_snapshots(loaded, keep_cycles)
        referenced: set[str] = set()
        for info, m in loaded:
            if info.name in expired:
                report.snapshots_removed.append(info)
            else:
                report.snapshots_kept.append(info)
                referenced |= m.referenced_names()
        for info in report.snapshots_removed:
            log.info("removing expired snapshot", name=info.name, dry_run=dry_run)
            if not dry_run:
                repo.backend.delete(manifest_handle(info.org, info.job_id))
        for obj in repo.backend.list(Kind.CHUNK):
            if obj.handle.name in referenced:
                continue
            report.objects_removed += 1
            report.bytes_removed += obj.size
            if not dry_run:
                try:
                    repo.backend.delete(Handle(Kind.CHUNK, obj.handle.name))
                except ObjectNotFound:
                    pass
        local = repo.backend.properties().local_path
        if local:
            for tmp in Path(local).rglob(".tmp-*"):
                report.temp_files_removed += 1
                if not dry_run:
                    os.unlink(tmp)
    finally:
        lock.release()
    return report
