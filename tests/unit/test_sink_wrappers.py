"""Retrying, metrics and fault injection wrappers."""

from __future__ import annotations

import io
import threading

import pytest

from engine.errors import BackendTransient, ObjectCorrupt, ObjectNotFound, ObjectTruncated, StorageFull
from engine.sink.backend import Handle, Kind
from engine.sink.backends.memory import MemoryBackend
from engine.sink.blobs import ContentStore
from engine.sink.crypto import DataKeys
from engine.sink.wrappers import MetricsBackend, RetryingBackend, find_metrics, stack_backend
from tests.helpers.faults import Fault, FaultyBackend, faulty

H = Handle(Kind.SNAPSHOT, "org/job.json.enc")


def transient() -> BackendTransient:
    return BackendTransient(name=H.path, what="HTTP 503")


def test_transient_errors_are_retried_until_success() -> None:
    with faulty(
        MemoryBackend(),
        put=[Fault(transient(), repeat=2)],
        get=[Fault(transient())],
        stat=[Fault(transient(), nth=2)],
    ) as fb:
        be = RetryingBackend(fb, wait_max=0)
        be.put(H, io.BytesIO(b"payload"), 7)
        with be.get(H) as fh:
            assert fh.read() == b"payload"
        assert be.stat(H).size == 7
        assert be.stat(H).size == 7
        assert fb.calls["put"] == 3 and fb.calls["get"] == 2 and fb.calls["stat"] == 3


def test_permanent_errors_are_not_retried_and_attempts_are_bounded() -> None:
    with faulty(
        MemoryBackend(), put=[Fault(StorageFull(name=H.path))], stat=[Fault(transient(), repeat=3)]
    ) as fb:
        be = RetryingBackend(fb, wait_max=0, max_attempts=3)
        with pytest.raises(StorageFull):
            be.put(H, io.BytesIO(b"x"), 1)
        assert fb.calls["put"] == 1
        with pytest.raises(BackendTransient):
            be.stat(H)
        assert fb.calls["stat"] == 3


def test_a_put_from_a_stream_that_cannot_rewind_is_not_retried() -> None:
    class OneShot:
        def __init__(self) -> None:
            self.inner = io.BytesIO(b"abc")

        def read(self, n: int = -1) -> bytes:
            return self.inner.read(n)

    with faulty(MemoryBackend(), put=[Fault(transient())]) as fb, pytest.raises(BackendTransient):
        RetryingBackend(fb, wait_max=0).put(H, OneShot(), 3)  # type: ignore[arg-type]


def test_a_retried_delete_whose_first_answer_was_lost_succeeds() -> None:
    inner = MemoryBackend()
    inner.put(H, io.BytesIO(b"x"), 1)
    with faulty(inner, delete=[Fault(transient(), before=False)]) as fb:
        RetryingBackend(fb, wait_max=0).delete(H)
    with pytest.raises(ObjectNotFound):
        inner.stat(H)


def test_metrics_count_calls_bytes_and_errors() -> None:
    be = MetricsBackend(MemoryBackend())
    be.put(H, io.BytesIO(b"12345"), 5)
    with be.get(H, offset=1) as fh:
        fh.read()
    with pytest.raises(ObjectNotFound):
        be.stat(Handle(Kind.CHUNK, "ab" * 32))
    list(be.list(Kind.SNAPSHOT))
    snap = be.snapshot()
    assert snap["put"]["calls"] == 1 and snap["put"]["bytes"] == 5
    assert snap["get"]["calls"] == 1 and snap["get"]["bytes"] == 4
    assert snap["stat"]["errors"] == 1 and snap["list"]["calls"] == 1
    assert find_metrics(stack_backend(MemoryBackend())) is not None


def test_truncated_write_and_corrupted_read_are_caught_by_the_seal() -> None:
    keys = DataKeys.generate()
    data = b"chunk bytes " * 50_000
    with faulty(MemoryBackend(), put=[Fault(truncate=1000)], get=[Fault(corrupt=True)]) as fb:
        store = ContentStore(fb, keys, segment_size=64 * 1024)
        name, sealed, _ = store.put_content(io.BytesIO(data), len(data), 1)  # type: ignore[arg-type]
        assert fb.inner.stat(Handle(Kind.CHUNK, name)).size == 1000
        with pytest.raises(ObjectTruncated), store.open_content(name, sealed) as reader:
            reader.read()
    with faulty(MemoryBackend(), get=[Fault(corrupt=True, corrupt_at=5000)]) as fb:
        store = ContentStore(fb, keys, segment_size=64 * 1024)
        name, sealed, _ = store.put_content(io.BytesIO(data), len(data), 1)  # type: ignore[arg-type]
        with pytest.raises(ObjectCorrupt), store.open_content(name, sealed) as reader:
            reader.read()


def test_block_until_holds_a_call_until_released() -> None:
    release = threading.Event()
    with faulty(MemoryBackend(), put=[Fault(block_until=release)]) as fb:
        fault = fb.planned[0]
        done = threading.Event()

        def writer() -> None:
            fb.put(H, io.BytesIO(b"late"), 4)
            done.set()

        t = threading.Thread(target=writer)
        t.start()
        assert fault.started.wait(10)
        assert not done.is_set()
        release.set()
        assert done.wait(10)
        t.join(10)


def test_a_fault_that_never_fired_fails_the_check() -> None:
    fb = FaultyBackend(MemoryBackend(), get=[Fault(transient(), nth=3)])
    with fb.get(H) if False else _noop():
        pass
    with pytest.raises(AssertionError, match="never fired"):
        fb.assert_all_fired()


class _noop:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
