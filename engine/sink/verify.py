"""``sfvault verify``: find every kind of damage and name it with its error code (STYLE rule 19).

Keyless pass (:func:`verify_keyless`, ``sfvault verify --no-key``): without any key, ``config``
parses, and every sealed object has a valid header (magic, known version, the id in the header
equal to its name for chunks) and a size that is a whole number of sealed segments. It finds
renamed, swapped, truncated-at-random and foreign objects, not flipped bits in the ciphertext.

Structure pass (cheap): the config opens with the key; every manifest decrypts and parses; every
object a manifest references exists with the recorded size. With ``read_data`` every referenced
object is downloaded once, its SHA-256 compared with the manifest's, then decrypted, authenticated
and re-hashed against its id. Unreferenced objects are warnings (``prune`` removes them); missing
or damaged data are errors. The problem list is capped (``max_problems``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import BinaryIO, Literal, cast

from engine.errors import (
    ChunkIdMismatch,
    IntegrityError,
    MissingObject,
    ObjectCorrupt,
    ObjectNotFound,
    ObjectTruncated,
    PermanentError,
    SealedChecksumMismatch,
    SfvaultError,
)
from engine.sink.backend import Backend, Handle, Kind
from engine.sink.crypto import HEADER_SIZE, DataKeys, OpeningReader, parse_header, plain_size_of
from engine.sink.index import gone_handle, read_index, record_handle
from engine.sink.manifest import manifest_handle, snapshot_info
from engine.sink.repository import Repository, read_config

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding: the object, the error code and class, and a message that says what and where."""

    name: str
    code: str
    error: str
    message: str
    severity: Severity = "error"

    @classmethod
    def of(cls, err: SfvaultError, name: str, severity: Severity = "error") -> Problem:
        return cls(name=name, code=err.code, error=type(err).__name__, message=err.message, severity=severity)


@dataclass
class VerifyReport:
    snapshots: int = 0
    objects: int = 0
    referenced: int = 0
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)
    truncated: bool = False

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors


class _HashingReader:
    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self.sha = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self.sha.update(data)
        self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(4 * 1024 * 1024):
            pass


@dataclass
class _Ref:
    sealed_bytes: int
    sha256: str
    by: str


def verify(
    repo: Repository,
    *,
    read_data: bool = False,
    max_problems: int = 10_000,
    expected_jobs: Iterable[tuple[str, str]] = (),
) -> VerifyReport:
    """Check the repository; never raises for damage it finds, it reports it.

    ``expected_jobs``: ``(org, job_id)`` of every snapshot the catalog says exists (not pruned,
    not set aside): a missing one is ``MissingObject`` (the cross-check with the catalog)."""
    report = VerifyReport()

    def add(problem: Problem) -> None:
        if len(report.problems) >= max_problems:
            report.truncated = True
            return
        report.problems.append(problem)

    backend = repo.backend
    present = {obj.handle.name: obj.size for obj in backend.list(Kind.CHUNK)}
    report.objects = len(present)

    refs: dict[str, _Ref] = {}
    for obj in backend.list(Kind.SNAPSHOT):
        info = snapshot_info(obj.handle.name, obj.size)
        if info is None:
            add(
                Problem(obj.handle.path, "warning", "NotASnapshot", "not a snapshot manifest name", "warning")
            )
            continue
        report.snapshots += 1
        try:
            manifest = repo.load_manifest(info.org, info.job_id)
        except PermanentError as load_err:
            add(Problem.of(load_err, obj.handle.path))
            continue
        by = obj.handle.path
        for entry in manifest.objects.values():
            for chunk in [*entry.chunks, *entry.deleted_ids_chunks]:
                refs.setdefault(chunk.name, _Ref(chunk.sealed_bytes, chunk.sha256, by))
            for blob in entry.blobs:
                refs.setdefault(blob.name, _Ref(blob.sealed_bytes, blob.sha256, by))
    _segment_refs(repo, refs, add)
    report.referenced = len(refs)

    for name, ref in sorted(refs.items()):
        path = Handle(Kind.CHUNK, name).path
        size = present.get(name)
        if size is None:
            add(Problem.of(MissingObject(name=path, by=ref.by), path))
            continue
        if size != ref.sealed_bytes:
            err: SfvaultError = (
                ObjectTruncated(name=path, size=size, expected=ref.sealed_bytes)
                if size < ref.sealed_bytes
                else ObjectCorrupt(name=path)
            )
            add(Problem.of(err, path))
            continue
        if read_data:
            problem = _read_one(repo, name, ref, report)
        else:
            problem = _check_header(repo.backend, name, size, report)
        if problem is not None:
            add(problem)

    check_index(repo.backend, add, report, keys=repo.keys, hash_data=False)
    listed = {(s.org, s.job_id) for s in repo.snapshots()}
    gone = set(read_index(repo.backend, tombstones_only=True).gone)  # pruned or set aside on purpose
    already = {p.name for p in report.problems}
    for org, job_id in sorted(set(expected_jobs) - listed - gone):
        path = manifest_handle(org, job_id).path
        if path in already:
            continue
        add(Problem.of(MissingObject(name=path, by="the catalog's job list"), path))

    for name in sorted(set(present) - set(refs)):
        path = Handle(Kind.CHUNK, name).path
        add(
            Problem(
                path,
                "orphan",
                "Unreferenced",
                f"{path} is not referenced by any snapshot (prune removes it)",
                "warning",
            )
        )
    return report


def _segment_refs(repo: Repository, refs: dict[str, _Ref], add: Callable[[Problem], None]) -> None:
    """The chunks of committed change event segments (decision 0026) are referenced too; an
    unreadable segment manifest is a problem of its own."""
    from engine.sink.segments import SUFFIX, SegmentStore

    store = SegmentStore(repo)
    for obj in repo.backend.list(Kind.SEGMENT):
        if not obj.handle.name.endswith(SUFFIX):
            continue
        try:
            seg = store.load(obj.handle)
        except PermanentError as load_err:
            add(Problem.of(load_err, obj.handle.path))
            continue
        if seg.chunk is not None:
            refs.setdefault(seg.chunk.name, _Ref(seg.chunk.sealed_bytes, seg.chunk.sha256, obj.handle.path))


def _check_header(backend: Backend, name: str, size: int, report: VerifyReport) -> Problem | None:
    """The cheap per-object check of plain ``verify``: the sealed header names this object (a
    swapped or renamed object of the same size is caught here, without reading its data)."""
    h = Handle(Kind.CHUNK, name)
    try:
        with backend.get(h, length=HEADER_SIZE) as fh:
            raw = fh.read(HEADER_SIZE)
        report.bytes_read += len(raw)
        header = parse_header(raw, name=h.path, total_size=size)
        if header.obj_id.hex() != name:
            raise ChunkIdMismatch(name=h.path)
        plain_size_of(header, size, h.path)
    except PermanentError as err:
        return Problem.of(err, h.path)
    return None


def _hash_object(backend: Backend, h: Handle, report: VerifyReport) -> str:
    with backend.get(h) as fh:
        hashing = _HashingReader(fh)
        hashing.drain()
    report.bytes_read += hashing.count
    return hashing.sha.hexdigest()


def check_index(
    backend: Backend,
    report_problem: Callable[[Problem], None],
    report: VerifyReport,
    *,
    keys: DataKeys | None,
    hash_data: bool,
) -> None:
    """The index pass (``engine.sink.index``): every snapshot the index knows of is there with its
    recorded size and SHA-256 (a deleted or altered manifest is found without the key), and with
    ``hash_data`` every object it references too (bit rot in chunks). With ``keys``, every record
    must also carry a valid mac (a record rewritten by someone without the key). An object that
    an earlier pass already reported is not reported again."""
    already = {p.name for p in report.problems}

    def add(problem: Problem) -> None:
        if problem.name not in already:
            already.add(problem.name)
            report_problem(problem)

    contents = read_index(backend)
    for h, err in contents.damaged:
        add(Problem.of(err, h.path))
    if keys is not None:
        forged = [record_handle(*k) for k, r in contents.records.items() if not r.authentic(keys)]
        forged += [gone_handle(*k) for k, t in contents.gone.items() if not t.authentic(keys)]
        for h in forged:
            add(Problem.of(ObjectCorrupt(name=h.path), h.path))
    manifests: dict[tuple[str, str], int] = {}
    for obj in backend.list(Kind.SNAPSHOT):
        info = snapshot_info(obj.handle.name, obj.size)
        if info is not None:
            manifests[(info.org, info.job_id)] = obj.size
    hashed: set[str] = set()
    for key, rec in sorted(contents.records.items()):
        if key in contents.gone and contents.gone[key].reason != "rewritten":
            continue  # prune or repair was interrupted between the manifest and its record
        by = record_handle(*key).path
        _check_indexed(
            backend,
            manifest_handle(*key),
            manifests.get(key),
            rec.manifest,
            by,
            add,
            report,
            hash_data=keys is None,
        )
        for name, expected in sorted(rec.objects.items()):
            if keys is not None or name in hashed:  # with the key, the manifests' pass checks them
                continue
            hashed.add(name)
            h = Handle(Kind.CHUNK, name)
            size = _size_or_none(backend, h)
            _check_indexed(backend, h, size, expected, by, add, report, hash_data=hash_data)
    named: dict[tuple[str, str], str] = {}
    for key, rec in contents.records.items():
        for job_id in rec.snapshots:
            named.setdefault((rec.org, job_id), record_handle(*key).path)
    for key, by in sorted(named.items()):
        if key in contents.records or key in contents.gone or key in manifests:
            continue
        path = manifest_handle(*key).path
        add(Problem.of(MissingObject(name=path, by=by), path))
    for key in sorted(set(manifests) - set(contents.records) - set(contents.gone)):
        path = manifest_handle(*key).path
        add(
            Problem(
                path,
                "unindexed",
                "NotIndexed",
                f"{path} has no index record (`sfvault repair --apply` or the next backup writes it)",
                "warning",
            )
        )


def _size_or_none(backend: Backend, h: Handle) -> int | None:
    try:
        return backend.stat(h).size
    except ObjectNotFound:
        return None


def _check_indexed(
    backend: Backend,
    h: Handle,
    size: int | None,
    expected: tuple[int, str],
    by: str,
    add: Callable[[Problem], None],
    report: VerifyReport,
    *,
    hash_data: bool,
) -> None:
    want_size, want_sha = expected
    if size is None:
        add(Problem.of(MissingObject(name=h.path, by=by), h.path))
        return
    if size != want_size:
        err: SfvaultError = (
            ObjectTruncated(name=h.path, size=size, expected=want_size)
            if size < want_size
            else ObjectCorrupt(name=h.path)
        )
        add(Problem.of(err, h.path))
        return
    if hash_data and want_sha:
        try:
            digest = _hash_object(backend, h, report)
        except ObjectNotFound:
            add(Problem.of(MissingObject(name=h.path, by=by), h.path))
            return
        if digest != want_sha:
            add(Problem.of(SealedChecksumMismatch(name=h.path, by=by), h.path))


def _read_one(repo: Repository, name: str, ref: _Ref, report: VerifyReport) -> Problem | None:
    h = Handle(Kind.CHUNK, name)
    try:
        with repo.backend.get(h) as fh:
            hashing = _HashingReader(fh)
            failure: SfvaultError | None = None
            try:
                reader = OpeningReader(
                    repo.store._keys,
                    cast(BinaryIO, hashing),
                    ref.sealed_bytes,
                    name=h.path,
                    expected_id=bytes.fromhex(name),
                    check_content=True,
                )
                while reader.read(repo.config.segment_size):
                    pass
            except IntegrityError as err:
                failure = err
            except PermanentError as err:
                failure = err
            hashing.drain()
            report.bytes_read += hashing.count
    except ObjectNotFound:
        return Problem.of(MissingObject(name=h.path, by=ref.by), h.path)
    if failure is not None:
        return Problem.of(failure, h.path)
    if hashing.sha.hexdigest() != ref.sha256:
        return Problem.of(SealedChecksumMismatch(name=h.path, by=ref.by), h.path)
    return None


def verify_keyless(backend: Backend, *, max_problems: int = 10_000, hash_data: bool = True) -> VerifyReport:
    """Check what can be checked without a key: config, the header and size of every object, and
    the keyless index (:func:`check_index`): every indexed snapshot and object present with its
    recorded size and, with ``hash_data``, its SHA-256."""
    report = VerifyReport()

    def add(problem: Problem) -> None:
        if len(report.problems) >= max_problems:
            report.truncated = True
            return
        report.problems.append(problem)

    try:
        read_config(backend)
    except PermanentError as err:
        add(Problem.of(err, "config"))
    for kind in (Kind.CHUNK, Kind.SNAPSHOT):
        for obj in backend.list(kind):
            h = obj.handle
            if kind is Kind.SNAPSHOT:
                report.snapshots += 1
            else:
                report.objects += 1
            try:
                with backend.get(h, length=HEADER_SIZE) as fh:
                    raw = fh.read(HEADER_SIZE)
                report.bytes_read += len(raw)
                header = parse_header(raw, name=h.path, total_size=obj.size)
                if kind is Kind.CHUNK and header.obj_id.hex() != h.name:
                    raise ChunkIdMismatch(name=h.path)
                plain_size_of(header, obj.size, h.path)
            except PermanentError as err:
                add(Problem.of(err, h.path))
    check_index(backend, add, report, keys=None, hash_data=hash_data)
    return report
