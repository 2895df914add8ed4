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
from engine.sink.crypto import HEADER_SIZE, OpeningReader, parse_header, plain_size_of
from engine.sink.manifest import snapshot_info
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


def verify(repo: Repository, *, read_data: bool = False, max_problems: int = 10_000) -> VerifyReport:
    """Check the repository; never raises for damage it finds, it reports it."""
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
            if problem is not None:
                add(problem)

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


def verify_keyless(backend: Backend, *, max_problems: int = 10_000) -> VerifyReport:
    """Check what can be checked without a key: config, and the header and size of every object."""
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
    return report
