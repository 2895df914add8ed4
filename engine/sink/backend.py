"""The storage Backend protocol: five verbs over typed handles, with a written contract.

Every repository object is addressed by a :class:`Handle` ``(kind, name)``; the backend maps it
to a key under its root (``Handle.path``). Implementations live in ``engine.sink.backends`` and
must pass ``tests/contract``. Cross-cutting behaviour (retries, metrics, fault injection) is a
wrapper in ``engine.sink.wrappers``, never a flag inside an implementation.

Contract (every implementation, every wrapper):

* ``put(h, src, size)`` is **atomic and write-once**: readers see either no object or all of it.
  If ``h`` exists with the same size, ``put`` does nothing (content-addressed objects of the same
  size are the same object); with a different size it raises ``ObjectExists``. ``src`` is read
  from its current position to EOF, in bounded pieces; ``size`` is the number of bytes it holds.
  If ``src`` raises while being read, nothing is stored.
* ``get(h, offset=, length=)`` is a context manager yielding a binary file-like that streams the
  requested range; ``length=None`` reads to the end. A range past the end is an error
  (``InvalidObjectName`` for negative values, short reads are the caller's to detect).
* ``stat(h)`` returns an :class:`ObjectInfo` with the exact size.
* ``list(kind, prefix)`` yields each object of ``kind`` whose name starts with ``prefix`` once,
  in no particular order; temporary files of in-progress puts are never listed.
* ``delete(h)`` removes the object; a missing object raises ``ObjectNotFound``.
* "not found" is always ``ObjectNotFound``; errors worth retrying are ``BackendTransient``; the
  disk filling up is ``StorageFull``; refused credentials are ``BackendAuthError``.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import BinaryIO, Protocol, runtime_checkable

from engine.errors import (
    BackendAuthError,
    BackendError,
    BackendTransient,
    InvalidObjectName,
    ObjectNotFound,
    StorageFull,
)

#: Size of the pieces in which implementations copy streams (bounded memory).
COPY_BLOCK = 4 * 1024 * 1024

_CHUNK_NAME = re.compile(r"^[0-9a-f]{64}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


class Kind(StrEnum):
    """The object families of a repository; the value is the top-level folder."""

    CONFIG = "config"
    CHUNK = "chunks"
    SNAPSHOT = "snapshots"
    LOCK = "locks"
    INDEX = "index"
    """Keyless integrity index records (``engine.sink.index``)."""
    QUARANTINE = "quarantine"
    """Objects ``sfvault repair`` set aside (never deleted by sfvault)."""
    KEY = "keys"
    """Key slots: the data keys wrapped by further key-encryption keys (``engine.sink.keyslots``)."""
    SEGMENT = "segments"
    """Sealed manifests of change event segments (``engine.sink.segments``, decision 0026)."""


@dataclass(frozen=True)
class Handle:
    """A typed name of one repository object.

    * ``CONFIG``: the name is ``"config"`` (the object is stored at the root as ``config``).
    * ``CHUNK``: the name is 64 lowercase hex characters; stored at ``chunks/<aa>/<name>``.
    * ``SNAPSHOT``/``LOCK``/``INDEX``/``QUARANTINE``/``KEY``: the name is ``<segment>/<segment>...``
      with segments of ``[A-Za-z0-9._-]`` (no ``..``); stored at ``<kind folder>/<name>``.
    """

    kind: Kind
    name: str

    def __post_init__(self) -> None:
        validate_name(self.kind, self.name)

    @property
    def path(self) -> str:
        """The key of the object relative to the backend root."""
        if self.kind is Kind.CONFIG:
            return "config"
        if self.kind is Kind.CHUNK:
            return f"chunks/{self.name[:2]}/{self.name}"
        return f"{self.kind.value}/{self.name}"

    @classmethod
    def from_path(cls, path: str) -> Handle | None:
        """The handle of a key relative to the root, or None for keys that are not objects."""
        if path == "config":
            return cls(Kind.CONFIG, "config")
        head, _, rest = path.partition("/")
        try:
            kind = Kind(head)
        except ValueError:
            return None
        if kind is Kind.CONFIG:
            return None
        if kind is Kind.CHUNK:
            shard, _, name = rest.partition("/")
            if not _CHUNK_NAME.match(name) or shard != name[:2]:
                return None
            return cls(kind, name)
        try:
            return cls(kind, rest)
        except InvalidObjectName:
            return None

    def __str__(self) -> str:
        return self.path


def validate_name(kind: Kind, name: str) -> None:
    """Raise ``InvalidObjectName`` unless ``name`` is valid for ``kind`` (see :class:`Handle`)."""
    if kind is Kind.CONFIG:
        if name != "config":
            raise InvalidObjectName(name=name, what="the config object is named 'config'")
        return
    if kind is Kind.CHUNK:
        if not _CHUNK_NAME.match(name):
            raise InvalidObjectName(name=name, what="chunk names are 64 lowercase hex characters")
        return
    parts = name.split("/")
    for part in parts:
        if not _SEGMENT.match(part) or part in (".", "..") or part.startswith(".tmp-"):
            raise InvalidObjectName(name=name, what="segments must match [A-Za-z0-9._-]{1,200}")


@dataclass(frozen=True)
class ObjectInfo:
    """What ``stat`` and ``list`` return."""

    handle: Handle
    size: int


@dataclass(frozen=True)
class BackendProperties:
    """Capabilities engine code may branch on (never on concrete backend types).

    Attributes:
        name: implementation name ("memory", "local", "azure").
        location: the root, with secrets removed (safe to log).
        persistent: objects survive the process.
        atomic_put: put is atomic and write-once under concurrency (always True for conforming
            backends; wrappers keep it).
        transfer_checksums: the service verifies each transfer against a Content-MD5.
        local_path: a filesystem path of the root when the objects are plain local files
            (lets DuckDB or a scratch step read them directly), else None.
    """

    name: str
    location: str
    persistent: bool
    atomic_put: bool = True
    transfer_checksums: bool = False
    local_path: str | None = None


@runtime_checkable
class Backend(Protocol):
    """Storage for repository objects. See the module docstring for the contract."""

    def properties(self) -> BackendProperties: ...

    def put(self, h: Handle, src: BinaryIO, size: int) -> None: ...

    def get(
        self, h: Handle, *, offset: int = 0, length: int | None = None
    ) -> AbstractContextManager[BinaryIO]: ...

    def stat(self, h: Handle) -> ObjectInfo: ...

    def list(self, kind: Kind, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, h: Handle) -> None: ...

    def close(self) -> None: ...


def check_range(h: Handle, offset: int, length: int | None) -> None:
    if offset < 0 or (length is not None and length < 0):
        raise InvalidObjectName(name=h.path, what=f"invalid range offset={offset} length={length}")


def map_os_error(err: OSError, name: str) -> BackendError:
    """Classify an ``OSError`` of a local or fsspec call (STYLE rule 12)."""
    if isinstance(err, FileNotFoundError) or err.errno == errno.ENOENT:
        return ObjectNotFound(name=name)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(name=name)
    if isinstance(err, PermissionError) or err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return BackendAuthError(name=name)
    if err.errno in (errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.EBUSY, errno.EIO):
        return BackendTransient(name=name, what=f"{type(err).__name__}: {err.strerror}")
    return BackendError(name=name, what=f"{type(err).__name__}: {err.strerror or err}")


def read_exactly(src: BinaryIO, n: int) -> bytes:
    """Read up to ``n`` bytes, looping over short reads; fewer only at EOF."""
    parts: list[bytes] = []
    remaining = n
    while remaining > 0:
        piece = src.read(remaining)
        if not piece:
            break
        parts.append(piece)
        remaining -= len(piece)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def copy_stream(src: BinaryIO, write: object, size: int, name: str) -> int:
    """Copy exactly ``size`` bytes from ``src`` to the callable ``write``, in ``COPY_BLOCK`` pieces.

    Raises ``BackendError`` if ``src`` holds fewer or more bytes than ``size``.
    """
    assert callable(write)
    copied = 0
    while copied < size:
        piece = src.read(min(COPY_BLOCK, size - copied))
        if not piece:
            raise BackendError(name=name, what=f"source ended after {copied} of {size} bytes")
        write(piece)
        copied += len(piece)
    if src.read(1):
        raise BackendError(name=name, what=f"source holds more than the declared {size} bytes")
    return copied


class LimitedReader:
    """A read-only binary stream over another one, stopping after ``length`` bytes."""

    def __init__(self, inner: BinaryIO, length: int | None) -> None:
        self._inner = inner
        self._left = length

    def read(self, n: int = -1) -> bytes:
        if self._left is None:
            return self._inner.read(n)
        if self._left <= 0:
            return b""
        if n is None or n < 0 or n > self._left:
            n = self._left
        data = self._inner.read(n)
        self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._inner.close()
