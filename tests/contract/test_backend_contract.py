"""One conformance suite for every Backend and wrapper (STYLE rule 15).

What each verb must guarantee is written in ``engine/sink/backend.py``; this suite checks it.
"""

from __future__ import annotations

import gc
import hashlib
import io
import threading
import tracemalloc
from typing import BinaryIO

import pytest

from engine.errors import BackendError, InvalidObjectName, ObjectExists, ObjectNotFound
from engine.sink.backend import Backend, Handle, Kind

MiB = 1024 * 1024


def chunk_handle(n: int) -> Handle:
    return Handle(Kind.CHUNK, hashlib.sha256(str(n).encode()).hexdigest())


def put_bytes(be: Backend, h: Handle, data: bytes) -> None:
    be.put(h, io.BytesIO(data), len(data))


def get_bytes(be: Backend, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
    with be.get(h, offset=offset, length=length) as fh:
        return fh.read()


@pytest.mark.parametrize("size", [0, 1, 1000, 4 * MiB + 3])
def test_round_trip(backend: Backend, size: int) -> None:
    data = (
        bytes((i * 7 + size) % 251 for i in range(size))
        if size < MiB
        else (b"abcdefgh" * (size // 8 + 1))[:size]
    )
    h = chunk_handle(size)
    put_bytes(backend, h, data)
    assert get_bytes(backend, h) == data
    assert backend.stat(h).size == size
    assert backend.stat(h).handle == h


def test_ranged_reads(backend: Backend) -> None:
    data = bytes(range(256)) * 40
    h = Handle(Kind.SNAPSHOT, "org1/job1.json.enc")
    put_bytes(backend, h, data)
    assert get_bytes(backend, h, offset=10, length=20) == data[10:30]
    assert get_bytes(backend, h, offset=5000) == data[5000:]
    assert get_bytes(backend, h, length=7) == data[:7]
    assert get_bytes(backend, h, offset=len(data) - 3, length=100) == data[-3:]
    with backend.get(h, offset=100, length=1000) as fh:  # streamed in pieces
        pieces = [fh.read(300) for _ in range(5)]
    assert b"".join(pieces) == data[100:1100]
    with pytest.raises(InvalidObjectName):
        get_bytes(backend, h, offset=-1)


def test_write_once(backend: Backend) -> None:
    h = chunk_handle(1)
    put_bytes(backend, h, b"first version")
    put_bytes(backend, h, b"same size!!!!")  # same name, same size: a no-op
    assert get_bytes(backend, h) == b"first version"
    with pytest.raises(ObjectExists) as err:
        put_bytes(backend, h, b"a different size")
    assert err.value.code == "SFV-203" and h.path in err.value.message
    assert get_bytes(backend, h) == b"first version"


def test_concurrent_puts_of_one_name_store_one_whole_object(backend: Backend) -> None:
    h = chunk_handle(2)
    payloads = [b"a" * 100_000, b"b" * 100_001, b"c" * 100_002, b"d" * 100_003]
    barrier = threading.Barrier(len(payloads))
    outcomes: list[str] = []

    def writer(data: bytes) -> None:
        barrier.wait(10)
        try:
            put_bytes(backend, h, data)
            outcomes.append("ok")
        except ObjectExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["exists", "exists", "exists", "ok"]
    assert get_bytes(backend, h) in payloads


def test_list_yields_each_object_once_by_kind_and_prefix(backend: Backend) -> None:
    chunks = [chunk_handle(i) for i in range(12)]
    snaps = [Handle(Kind.SNAPSHOT, f"org{i % 2}/job{i}.json.enc") for i in range(5)]
    for i, h in enumerate(chunks + snaps):
        put_bytes(backend, h, b"x" * (i + 1))
    put_bytes(backend, Handle(Kind.CONFIG, "config"), b"{}")
    listed = [o.handle for o in backend.list(Kind.CHUNK)]
    assert sorted(listed, key=str) == sorted(chunks, key=str)
    assert len(listed) == len(set(listed))
    sizes = {o.handle: o.size for o in backend.list(Kind.SNAPSHOT)}
    assert sizes == {h: len(chunks) + i + 1 for i, h in enumerate(snaps)}
    assert {o.handle.name for o in backend.list(Kind.SNAPSHOT, "org1/")} == {
        "org1/job1.json.enc",
        "org1/job3.json.enc",
    }
    prefix = chunks[0].name[:3]
    assert {o.handle for o in backend.list(Kind.CHUNK, prefix)} == {
        h for h in chunks if h.name.startswith(prefix)
    }
    assert [o.handle for o in backend.list(Kind.CONFIG)] == [Handle(Kind.CONFIG, "config")]
    assert list(backend.list(Kind.LOCK)) == []


def test_delete(backend: Backend) -> None:
    h = chunk_handle(3)
    put_bytes(backend, h, b"bye")
    backend.delete(h)
    assert list(backend.list(Kind.CHUNK)) == []
    with pytest.raises(ObjectNotFound):
        backend.stat(h)
    with pytest.raises(ObjectNotFound):
        backend.delete(h)
    put_bytes(backend, h, b"a new, different object")  # a deleted name can be written again
    assert get_bytes(backend, h) == b"a new, different object"


def test_not_found(backend: Backend) -> None:
    h = chunk_handle(4)
    with pytest.raises(ObjectNotFound) as err:
        get_bytes(backend, h)
    assert err.value.code == "SFV-202" and h.path in str(err.value)
    with pytest.raises(ObjectNotFound):
        backend.stat(h)
    with pytest.raises(ObjectNotFound):
        backend.stat(Handle(Kind.CONFIG, "config"))


class _FailingSource:
    def __init__(self, good: int) -> None:
        self.good = good

    def read(self, n: int = -1) -> bytes:
        if self.good <= 0:
            raise BackendError(name="source", what="the source broke")
        n = min(n, self.good)
        self.good -= n
        return b"z" * n


def test_a_put_whose_source_fails_stores_nothing(backend: Backend) -> None:
    h = chunk_handle(5)
    with pytest.raises(BackendError):
        backend.put(h, _FailingSource(5 * MiB), 10 * MiB)  # type: ignore[arg-type]
    with pytest.raises(ObjectNotFound):
        backend.stat(h)
    with pytest.raises(BackendError):  # a source shorter than declared
        backend.put(h, io.BytesIO(b"short"), 10)
    assert list(backend.list(Kind.CHUNK)) == []


class _GeneratedSource:
    """``size`` bytes of deterministic data, generated on the fly (never held whole)."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = hashlib.sha256(b"seed").digest() * (MiB // 32)
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        out = bytearray()
        while len(out) < n:
            start = self.pos % len(self.block)
            piece = self.block[start : start + n - len(out)]
            out += piece
            self.pos += len(piece)
        self.left -= n
        return bytes(out)


def test_large_object_is_streamed_not_held(backend: Backend) -> None:
    """200 MiB + 5 through put and get: memory growth stays far below the object size
    (the memory backend holds the object once, so it may grow by one copy, never two)."""
    size = 200 * MiB + 5
    h = chunk_handle(6)
    holds_data = backend.properties().name == "memory"
    gc.collect()
    tracemalloc.start()
    try:
        backend.put(h, _GeneratedSource(size), size)  # type: ignore[arg-type]
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest = hashlib.sha256()
        got = 0
        with backend.get(h) as fh:
            reader: BinaryIO = fh
            while piece := reader.read(4 * MiB):
                digest.update(piece)
                got += len(piece)
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = hashlib.sha256()
    src = _GeneratedSource(size)
    while piece := src.read(4 * MiB):
        expected.update(piece)
    assert got == size and digest.hexdigest() == expected.hexdigest()
    bound = size * 1.2 if holds_data else 48 * MiB
    assert put_peak < bound, f"put peaked at {put_peak / MiB:.0f} MiB"
    assert get_peak < (48 * MiB if not holds_data else size * 1.2), f"get peaked at {get_peak / MiB:.0f} MiB"
    assert backend.stat(h).size == size
