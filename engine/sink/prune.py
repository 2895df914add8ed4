"""``sfvault prune``: drop snapshots of expired cycles, then every unreferenced object.

Retention: per org, the snapshots of the newest ``keep_cycles`` cycles are kept, and, whatever
``keep_cycles`` says, an older cycle that holds the newest complete copy of an object (a capture in
full mode) that no newer kept cycle holds (a cycle whose full failed for most objects must never
cost the older copies of those objects) (a cycle is a
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

from engine.errors import ObjectNotFound, PermanentError
from engine.model import Manifest, SnapshotInfo
from engine.sink.backend import Handle, Kind
from engine.sink.index import record_handle, write_tombstone
from engine.sink.lock import EXCLUSIVE, RepoLock
from engine.sink.manifest import decode, manifest_handle, snapshot_info
from engine.sink.repository import Repository
from engine.sink.segments import SegmentStore

log = structlog.get_logger(__name__)


@dataclass
class PruneReport:
    dry_run: bool
    snapshots_kept: list[SnapshotInfo] = field(default_factory=list)
    snapshots_removed: list[SnapshotInfo] = field(default_factory=list)
    objects_removed: int = 0
    bytes_removed: int = 0
    temp_files_removed: int = 0
    removed_by_object: dict[str, list[str]] = field(default_factory=dict)
    """``org/object`` → the job ids whose data of that object is removed (or would be)."""
    kept_for_last_copy: list[str] = field(default_factory=list)
    """Cycles (``org/cycle id``) kept beyond ``keep_cycles`` because they hold the newest good
    copy of some object."""


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
        if m.kind != "recovery_point":  # a recovery point is no cycle: kept until removed by hand
            by_org[m.org][m.cycle_id].append((info, m))
    expired: set[str] = set()
    for cycles in by_org.values():
        ordered = sorted(cycles.items(), key=lambda kv: (_cycle_start(m for _, m in kv[1]), kv[0]))
        cut = max(0, len(ordered) - keep_cycles)
        kept = [members for _cycle, members in ordered[cut:]]
        covered = set().union(*(_full_copies(members) for members in kept))
        for _cycle, members in reversed(ordered[:cut]):
            copies = _full_copies(members)
            if copies - covered:
                covered |= copies  # the newest full copy of some object lives only here: kept
                continue
            expired.update(info.name for info, _ in members)
    return expired


def _full_copies(members: list[tuple[SnapshotInfo, Manifest]]) -> set[str]:
    """The objects a cycle holds a complete copy of: captured in full mode by one of its jobs."""
    out = set()
    for _info, m in members:
        for obj, entry in m.objects.items():
            mode = entry.mode or ("full" if m.kind == "full" else "incremental")
            if entry.captured and mode == "full":
                out.add(obj)
    return out


def _quarantined_references(repo: Repository) -> set[str]:
    """What the readable manifests that ``repair`` set aside reference: kept, so that setting a
    snapshot aside never costs the good data it points at (unreadable ones reference nothing
    we can know)."""
    out: set[str] = set()
    for obj in repo.backend.list(Kind.QUARANTINE, f"{Kind.SNAPSHOT.value}/"):
        info = snapshot_info(obj.handle.name.partition("/")[2], obj.size)
        if info is None:
            continue
        try:
            with repo.backend.get(obj.handle) as fh:
                sealed = fh.read(obj.size + 1)
            out |= decode(sealed, repo.keys, manifest_handle(info.org, info.job_id)).referenced_names()
        except PermanentError:
            continue
    return out


def _remove_snapshot(repo: Repository, info: SnapshotInfo) -> None:
    """Tombstone in the index, then the manifest, then its index record (a crash in between
    leaves a tombstone that tells verify the snapshot left on purpose)."""
    write_tombstone(
        repo.backend, repo.keys, info.org, info.job_id, reason="pruned", at=repo.clock.now(), redo=()
    )
    repo.backend.delete(manifest_handle(info.org, info.job_id))
    try:
        repo.backend.delete(record_handle(info.org, info.job_id))
    except ObjectNotFound:
        pass


def _kept_cycles(
    loaded: list[tuple[SnapshotInfo, Manifest]], keep_cycles: int | None, expired: set[str]
) -> list[str]:
    if keep_cycles is None:
        return []
    plain = expired_snapshots_by_age(loaded, keep_cycles)
    return sorted({f"{m.org}/{m.cycle_id}" for info, m in loaded if info.name in plain - expired})


def expired_snapshots_by_age(manifests: list[tuple[SnapshotInfo, Manifest]], keep_cycles: int) -> set[str]:
    """What ``keep_cycles`` alone would expire (before the newest-copy rule)."""
    by_org: dict[str, dict[str, list[tuple[SnapshotInfo, Manifest]]]] = defaultdict(lambda: defaultdict(list))
    for info, m in manifests:
        if m.kind != "recovery_point":
            by_org[m.org][m.cycle_id].append((info, m))
    out: set[str] = set()
    for cycles in by_org.values():
        ordered = sorted(cycles.items(), key=lambda kv: (_cycle_start(m for _, m in kv[1]), kv[0]))
        for _cycle, members in ordered[: max(0, len(ordered) - keep_cycles)]:
            out.update(info.name for info, _ in members)
    return out


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
        referenced |= _quarantined_references(repo)
        referenced |= SegmentStore(repo).referenced_names()  # change event segments (decision 0026)
        by_name = {info.name: m for info, m in loaded}
        for info in report.snapshots_removed:
            for sf_object, entry in sorted(by_name[info.name].objects.items()):
                if entry.captured:
                    report.removed_by_object.setdefault(f"{info.org}/{sf_object}", []).append(info.job_id)
            if dry_run:
                continue
            log.info("removing expired snapshot", name=info.name)
            _remove_snapshot(repo, info)
        report.kept_for_last_copy = _kept_cycles(loaded, keep_cycles, expired)
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
