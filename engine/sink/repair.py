"""``sfvault repair``: set aside what is damaged, rebuild what can be rebuilt, so the org backs up again.

restic's ``repair snapshots`` / ``repair index`` in one pass (dry run unless ``apply``):

* a manifest that cannot be read (authentication fails, truncated, invalid) is *set aside*: moved to
  ``quarantine/snapshots/<org>/<job>.json.enc`` (copied, then removed from ``snapshots/``), never
  deleted; a tombstone in the index (reason ``quarantined``, redo ``*``) tells verify it left on
  purpose and tells the org's next job to extract every object in full;
* a readable manifest that references a missing, resized, misnamed or (``read_data``) damaged
  object is set aside the same way and replaced by a new manifest under the same name in which
  the affected objects are failed entries (``SFV-3xx: set aside by sfvault repair``), so the good
  data of its other objects stays (STYLE anti-pattern 11: a new object, the old one kept aside);
  the tombstone (reason ``rewritten``) names the affected objects' tags, redone in full next;
* a damaged ``chunks/`` object is moved to ``quarantine/chunks/<name>``, so that the next backup
  writes the same content again instead of finding a damaged object of the same name and size;
* index records that are unreadable, forged (bad mac) or missing are rebuilt from the manifests.

Holds the ``_exclusive`` lock when applying (no backup or prune runs meanwhile).
"""

from __future__ import annotations

import io
import socket
from dataclasses import dataclass, field, replace

import structlog

from engine.errors import IntegrityError, ObjectNotFound, PermanentError, SfvaultError
from engine.model import Manifest, ObjectError
from engine.sink import index
from engine.sink.backend import Handle, Kind
from engine.sink.lock import EXCLUSIVE, RepoLock
from engine.sink.manifest import encode, manifest_handle
from engine.sink.repository import Repository
from engine.sink.verify import VerifyReport, _check_header, _read_one, _Ref

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Action:
    """One thing repair does (or would do): ``what`` is a verb, ``name`` the object."""

    what: str
    name: str
    code: str
    detail: str


@dataclass
class RepairReport:
    applied: bool
    actions: list[Action] = field(default_factory=list)

    def by(self, what: str) -> list[Action]:
        return [a for a in self.actions if a.what == what]


def _quarantine_handle(h: Handle) -> Handle:
    return Handle(Kind.QUARANTINE, f"{h.kind.value}/{h.name}")


def set_aside(repo: Repository, h: Handle) -> None:
    """Move ``h`` under ``quarantine/`` (copy, check the copy's size, then remove the original)."""
    size = repo.backend.stat(h).size
    target = _quarantine_handle(h)
    try:
        repo.backend.stat(target)
    except ObjectNotFound:
        with repo.backend.get(h) as fh:
            repo.backend.put(target, fh, size)
    repo.backend.delete(h)


def _bad_objects(
    repo: Repository, manifest: Manifest, read_data: bool, checked: dict[str, SfvaultError | None]
) -> dict[str, SfvaultError]:
    """Object name → what is wrong with each referenced object that is damaged."""
    present_cache: dict[str, int | None] = {}
    bad: dict[str, SfvaultError] = {}
    by = manifest_handle(manifest.org, manifest.job_id).path
    for entry in manifest.objects.values():
        refs = [(r.name, r.sealed_bytes, r.sha256) for r in [*entry.chunks, *entry.deleted_ids_chunks]]
        refs += [(b.name, b.sealed_bytes, b.sha256) for b in entry.blobs]
        for name, sealed_bytes, sha in refs:
            if name not in checked:
                checked[name] = _check_one(repo, name, _Ref(sealed_bytes, sha, by), read_data, present_cache)
            err = checked[name]
            if err is not None:
                bad[name] = err
    return bad


def _check_one(
    repo: Repository, name: str, ref: _Ref, read_data: bool, cache: dict[str, int | None]
) -> SfvaultError | None:
    from engine.errors import MissingObject, ObjectTruncated
    from engine.errors import ObjectCorrupt as Corrupt

    h = Handle(Kind.CHUNK, name)
    try:
        size = repo.backend.stat(h).size
    except ObjectNotFound:
        return MissingObject(name=h.path, by=ref.by)
    if size != ref.sealed_bytes:
        if size < ref.sealed_bytes:
            return ObjectTruncated(name=h.path, size=size, expected=ref.sealed_bytes)
        return Corrupt(name=h.path)
    scratch = VerifyReport()
    problem = (
        _read_one(repo, name, ref, scratch) if read_data else _check_header(repo.backend, name, size, scratch)
    )
    if problem is None:
        return None
    return _error_of(problem.error, h.path, ref.by)


def _error_of(error: str, path: str, by: str) -> SfvaultError:
    from engine import errors as e

    cls = getattr(e, error, None)
    if cls is e.SealedChecksumMismatch:
        return e.SealedChecksumMismatch(name=path, by=by)
    if cls is e.ChunkIdMismatch:
        return e.ChunkIdMismatch(name=path)
    return e.ObjectCorrupt(name=path)


def _entry_objects(manifest: Manifest, names: set[str]) -> dict[str, str]:
    """Salesforce object → the first damaged referenced name among its refs."""
    out: dict[str, str] = {}
    for obj, entry in manifest.objects.items():
        refs = [r.name for r in [*entry.chunks, *entry.deleted_ids_chunks]] + [b.name for b in entry.blobs]
        hit = next((n for n in refs if n in names), None)
        if hit is not None:
            out[obj] = hit
    return out


def repair(
    repo: Repository, *, apply: bool = False, read_data: bool = False, holder: str | None = None
) -> RepairReport:
    """Find damage and (``apply``) set it aside and rebuild the index; see the module docstring."""
    report = RepairReport(applied=apply)
    lock = RepoLock(
        repo.backend, EXCLUSIVE, holder or f"sfvault repair@{socket.gethostname()}", clock=repo.clock
    )
    if apply:
        lock.acquire()
    try:
        checked: dict[str, SfvaultError | None] = {}
        for info in repo.snapshots():
            h = manifest_handle(info.org, info.job_id)
            try:
                manifest = repo.load_manifest(info.org, info.job_id)
            except (IntegrityError, PermanentError) as err:
                if isinstance(err, ObjectNotFound):
                    continue
                report.actions.append(Action("set aside snapshot", h.path, err.code, err.message))
                if apply:
                    _set_aside_snapshot(repo, info.org, info.job_id, reason="quarantined", redo=["*"])
                continue
            bad = _bad_objects(repo, manifest, read_data, checked)
            if bad:
                _rewrite(repo, manifest, bad, report, apply)
        for name, found in sorted(checked.items()):
            if found is None:
                continue
            h = Handle(Kind.CHUNK, name)
            if not _exists(repo, h):
                report.actions.append(Action("drop missing object", h.path, found.code, found.message))
                continue
            report.actions.append(Action("set aside object", h.path, found.code, found.message))
            if apply:
                set_aside(repo, h)
        _repair_index(repo, report, apply)
    finally:
        if apply:
            lock.release()
    return report


def _exists(repo: Repository, h: Handle) -> bool:
    try:
        repo.backend.stat(h)
    except ObjectNotFound:
        return False
    return True


def _set_aside_snapshot(repo: Repository, org: str, job_id: str, *, reason: str, redo: list[str]) -> None:
    index.write_tombstone(repo.backend, repo.keys, org, job_id, reason=reason, at=repo.clock.now(), redo=redo)
    set_aside(repo, manifest_handle(org, job_id))
    try:
        repo.backend.delete(index.record_handle(org, job_id))
    except ObjectNotFound:
        pass


def _rewrite(
    repo: Repository, manifest: Manifest, bad: dict[str, SfvaultError], report: RepairReport, apply: bool
) -> None:
    """Set aside ``manifest`` and commit a copy whose objects touching ``bad`` are failed entries."""
    affected = _entry_objects(manifest, set(bad))
    objects = dict(manifest.objects)
    for obj, name in affected.items():
        err = bad[name]
        objects[obj] = replace(
            objects[obj],
            chunks=[],
            deleted_ids_chunks=[],
            blobs=[],
            cursor=None,
            swept=False,
            errors=[ObjectError(err.code, f"set aside by sfvault repair: {err.message}")],
        )
    h = manifest_handle(manifest.org, manifest.job_id)
    detail = ", ".join(f"{o} ({bad[n].code})" for o, n in sorted(affected.items()))
    report.actions.append(
        Action("rewrite snapshot", h.path, bad[next(iter(sorted(bad)))].code, f"objects set aside: {detail}")
    )
    if not apply:
        return
    tags = [index.object_tag(repo.keys, manifest.org, o) for o in affected]
    _set_aside_snapshot(repo, manifest.org, manifest.job_id, reason="rewritten", redo=tags)
    repaired = replace(manifest, objects=objects)
    sealed = encode(repaired, repo.keys)
    repo.backend.put(h, io.BytesIO(sealed), len(sealed))


def _repair_index(repo: Repository, report: RepairReport, apply: bool) -> None:
    contents = index.read_index(repo.backend)
    forged = [(h, "SFV-311", err.message) for h, err in contents.damaged]
    for rec in contents.records.values():
        if not rec.authentic(repo.keys):
            h = index.record_handle(rec.org, rec.job_id)
            forged.append((h, "SFV-311", f"{h.path} failed authentication (altered or damaged)"))
    for h, code, message in forged:
        report.actions.append(Action("rebuild index record", h.path, code, message))
        if apply:
            set_aside(repo, h)
    _record_lost(repo, contents, report, apply)
    orgs = sorted({s.org for s in repo.snapshots()})
    for org in orgs:
        if apply:
            for job_id in repo.backfill_index(org):
                path = index.record_handle(org, job_id).path
                if not any(a.name == path for a in report.actions):
                    report.actions.append(Action("write index record", path, "", "snapshot was not indexed"))
        else:
            have = {k[1] for k in contents.records if k[0] == org}
            for info in repo.snapshots(org):
                if info.job_id not in have and not any(
                    a.name.endswith(f"/{org}/{info.job_id}.json.enc") for a in report.actions
                ):
                    path = index.record_handle(org, info.job_id).path
                    report.actions.append(Action("write index record", path, "", "snapshot is not indexed"))


def _record_lost(repo: Repository, contents: index.IndexContents, report: RepairReport, apply: bool) -> None:
    """Snapshots the index knows of whose manifest is gone (deleted by someone, not by prune): a
    tombstone (reason ``lost``, redo ``*``) so the org's next job redoes every object in full, and
    their record moves to quarantine. The manifest itself cannot be rebuilt (restore it from the
    storage's soft delete or a second copy first if you can)."""
    listed = {(s.org, s.job_id) for s in repo.snapshots()}
    lost: dict[tuple[str, str], str] = {}
    for key, rec in contents.records.items():
        if key not in listed and key not in contents.gone:
            lost[key] = index.record_handle(*key).path
        for job_id in rec.snapshots:
            other = (rec.org, job_id)
            if other not in listed and other not in contents.gone and other not in contents.records:
                lost.setdefault(other, index.record_handle(*key).path)
    for (org, job_id), by in sorted(lost.items()):
        path = manifest_handle(org, job_id).path
        report.actions.append(Action("record lost snapshot", path, "SFV-314", f"missing, known from {by}"))
        if not apply:
            continue
        index.write_tombstone(
            repo.backend, repo.keys, org, job_id, reason="lost", at=repo.clock.now(), redo=["*"]
        )
        h = index.record_handle(org, job_id)
        if _exists(repo, h):
            set_aside(repo, h)


def redo_after_repair(repo: Repository, org: str, manifests: list[Manifest], names: list[str]) -> list[str]:
    """The objects of ``names`` to extract in full because repair set aside their newest data:
    named by a tombstone of ``org`` (``*`` = all) and captured by no manifest committed since."""
    contents = index.read_index(repo.backend, org, tombstones_only=True)
    out: set[str] = set()
    for tomb in contents.gone.values():
        if tomb.reason == "pruned" or not tomb.authentic(repo.keys):
            continue
        from datetime import datetime

        at = datetime.fromisoformat(tomb.at)
        for name in names:
            if "*" not in tomb.redo and index.object_tag(repo.keys, org, name) not in tomb.redo:
                continue
            since = any(
                m.created_at > at and name in m.objects and m.objects[name].captured for m in manifests
            )
            if not since:
                out.add(name)
    return sorted(out)
