"""In-memory backend over fsspec's ``MemoryFileSystem`` (unit tests, benchmarks' baselines).

Each instance has its own store (fsspec's default store is process-global). Objects are held
once: ``put`` copies the source into one buffer and ``get`` streams from a view of it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO, cast
from uuid import uuid4

from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

from engine.errors import ObjectExists, ObjectNotFound
from engine.sink.backend import (
    COPY_BLOCK,
    BackendProperties,
    Handle,
    Kind,
    ObjectInfo,
    check_range,
    copy_stream,
)


class _ViewReader:
    """A read-only stream over a slice of a memoryview (no copy of the object)."""

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._view) if n is None or n < 0 else min(len(self._view), self._pos + n)
        data = bytes(self._view[self._pos : end])
        self._pos = end
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._view.release()


class MemoryBackend:
    """A Backend whose objects live in this process only."""

    def __init__(self) -> None:
        self._fs = MemoryFileSystem(skip_instance_cache=True)
        # own store: the class-level one is shared by every MemoryFileSystem in the process
        self._fs.store = {}
        self._fs.pseudo_dirs = [""]
        self._root = f"/sfvault-{uuid4().hex}"
        self._lock = threading.Lock()

    def _key(self, h: Handle) -> str:
        return f"{self._root}/{h.path}"

    def properties(self) -> BackendProperties:
        return BackendProperties(name="memory", location=f"memory://{self._root}", persistent=False)

    def put(self, h: Handle, src: BinaryIO, size: int) -> None:
        key = self._key(h)
        with self._lock:
            existing = self._fs.store.get(key)
        if existing is not None:
            self._check_existing(h, existing, size)
            return
        buf = MemoryFile(self._fs, key)
        copy_stream(src, buf.write, size, h.path)
        buf.seek(0)
        with self._lock:
            existing = self._fs.store.get(key)
            if existing is None:
                self._fs.store[key] = buf
                return
        self._check_existing(h, existing, size)

    @staticmethod
    def _check_existing(h: Handle, existing: MemoryFile, size: int) -> None:
        if existing.getbuffer().nbytes != size:
            raise ObjectExists(name=h.path)

    @contextmanager
    def get(self, h: Handle, *, offset: int = 0, length: int | None = None) -> Iterator[BinaryIO]:
        check_range(h, offset, length)
        with self._lock:
            obj = self._fs.store.get(self._key(h))
        if obj is None:
            raise ObjectNotFound(name=h.path)
        view = obj.getbuffer()
        end = len(view) if length is None else min(len(view), offset + length)
        reader = _ViewReader(view[min(offset, len(view)) : end])
        view.release()
        try:
            yield cast(BinaryIO, reader)
        finally:
            reader.close()

    def stat(self, h: Handle) -> ObjectInfo:
        with self._lock:
            obj = self._fs.store.get(self._key(h))
        if obj is None:
            raise ObjectNotFound(name=h.path)
        return ObjectInfo(h, obj.getbuffer().nbytes)

    def list(self, kind: Kind, prefix: str = "") -> Iterator[ObjectInfo]:
        base = f"{self._root}/"
        with self._lock:
            items = [(k, v.getbuffer().nbytes) for k, v in self._fs.store.items() if k.startswith(base)]
        for key, size in items:
            h = Handle.from_path(key[len(base) :])
            if h is not None and h.kind is kind and h.name.startswith(prefix):
                yield ObjectInfo(h, size)

    def delete(self, h: Handle) -> None:
        with self._lock:
            if self._fs.store.pop(self._key(h), None) is None:
                raise ObjectNotFound(name=h.path)

    def close(self) -> None:
        """Objects stay until the instance is garbage collected."""


__all__ = ["COPY_BLOCK", "MemoryBackend"]
