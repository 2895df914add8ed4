"""Wrappers that stack on any Backend: retries, metrics and fault injection (STYLE rule 2).

Each wrapper is itself a conforming Backend (``tests/contract`` runs over them). The one factory
:func:`stack_backend` puts the production stack together::

    RetryingBackend(MetricsBackend(impl))

Retry policy lives only here (STYLE rule 12): only ``TransientError`` is retried, with random
exponential waits (``Settings.retry_wait_max``, zero in tests) until ``Settings.retry_max_seconds``
or ``max_attempts``. A ``put`` is retried only when its source can be rewound (``seekable()``).
``FaultyBackend`` is library code for tests: a queue of faults per verb that checks itself.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar, cast

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from engine.errors import ObjectNotFound, TransientError
from engine.sink.backend import Backend, BackendProperties, Handle, Kind, ObjectInfo

T = TypeVar("T")
log = structlog.get_logger(__name__)

VERBS = ("put", "get", "stat", "list", "delete")


# --- retries -------------------------------------------------------------------------------


class RetryingBackend:
    """Retries ``TransientError`` of every verb with tenacity.

    ``get`` retries opening the stream; an error while the caller reads it is not retried here
    (the caller re-issues the ranged ``get``). A ``delete`` whose retry finds the object gone
    counts as done (the first attempt may have succeeded before its answer was lost).
    """

    def __init__(
        self,
        inner: Backend,
        *,
        wait_max: float = 60.0,
        max_seconds: float = 900.0,
        max_attempts: int = 10,
    ) -> None:
        self.inner = inner
        self.wait_max = wait_max
        self.max_seconds = max_seconds
        self.max_attempts = max_attempts

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception_type(TransientError),
            wait=wait_random_exponential(multiplier=0.5, max=self.wait_max),
            stop=stop_after_delay(self.max_seconds) | stop_after_attempt(self.max_attempts),
            reraise=True,
            before_sleep=self._log_retry,
        )

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        err = state.outcome.exception() if state.outcome else None
        log.warning("storage retry", attempt=state.attempt_number, error=str(err))

    def _call(self, fn: Callable[[], T]) -> T:
        return self._retrying()(fn)

    def properties(self) -> BackendProperties:
        return self.inner.properties()

    def put(self, h: Handle, src: BinaryIO, size: int) -> None:
        seekable = bool(getattr(src, "seekable", lambda: False)())
        if not seekable:
            self.inner.put(h, src, size)
            return
        start = src.tell()

        def attempt() -> None:
            src.seek(start)
            self.inner.put(h, src, size)

        self._call(attempt)

    @contextmanager
    def get(self, h: Handle, *, offset: int = 0, length: int | None = None) -> Iterator[BinaryIO]:
        with ExitStack() as stack:

            def open_once() -> BinaryIO:
                return stack.enter_context(self.inner.get(h, offset=offset, length=length))

            yield self._call(open_once)

    def stat(self, h: Handle) -> ObjectInfo:
        return self._call(lambda: self.inner.stat(h))

    def list(self, kind: Kind, prefix: str = "") -> Iterator[ObjectInfo]:
        yield from self._call(lambda: list(self.inner.list(kind, prefix)))

    def delete(self, h: Handle) -> None:
        attempts = 0

        def once() -> None:
            nonlocal attempts
            attempts += 1
            try:
                self.inner.delete(h)
            except ObjectNotFound:
                if attempts == 1:
                    raise

        self._call(once)

    def close(self) -> None:
        self.inner.close()


# --- metrics -------------------------------------------------------------------------------


@dataclass
class VerbStats:
    """Counters of one verb."""

    calls: int = 0
    errors: int = 0
    bytes: int = 0
    seconds: float = 0.0


class _CountingReader:
    def __init__(self, inner: BinaryIO, count: Callable[[int], None]) -> None:
        self._inner = inner
        self._count = count

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self._count(len(data))
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(getattr(self._inner, "seekable", lambda: False)())

    def tell(self) -> int:
        return self._inner.tell()

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._inner.seek(pos, whence)

    def close(self) -> None:
        self._inner.close()


class MetricsBackend:
    """Counts calls, errors, bytes and seconds per verb (thread-safe)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.stats: dict[str, VerbStats] = {verb: VerbStats() for verb in VERBS}

    def _add(
        self, verb: str, *, calls: int = 0, errors: int = 0, nbytes: int = 0, seconds: float = 0.0
    ) -> None:
        with self._lock:
            st = self.stats[verb]
            st.calls += calls
            st.errors += errors
            st.bytes += nbytes
            st.seconds += seconds

    def _timed(self, verb: str, fn: Callable[[], T]) -> T:
        t0 = time.perf_counter()
        try:
            return fn()
        except BaseException:
            self._add(verb, errors=1)
            raise
        finally:
            self._add(verb, calls=1, seconds=time.perf_counter() - t0)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """A copy of the counters, e.g. for a job report."""
        with self._lock:
            return {verb: dict(vars(st)) for verb, st in self.stats.items()}

    def properties(self) -> BackendProperties:
        return self.inner.properties()

    def put(self, h: Handle, src: BinaryIO, size: int) -> None:
        counted = _CountingReader(src, lambda n: self._add("put", nbytes=n))
        self._timed("put", lambda: self.inner.put(h, cast(BinaryIO, counted), size))

    @contextmanager
    def get(self, h: Handle, *, offset: int = 0, length: int | None = None) -> Iterator[BinaryIO]:
        t0 = time.perf_counter()
        try:
            with self.inner.get(h, offset=offset, length=length) as fh:
                yield cast(BinaryIO, _CountingReader(fh, lambda n: self._add("get", nbytes=n)))
        except BaseException:
            self._add("get", errors=1)
            raise
        finally:
            self._add("get", calls=1, seconds=time.perf_counter() - t0)

    def stat(self, h: Handle) -> ObjectInfo:
        return self._timed("stat", lambda: self.inner.stat(h))

    def list(self, kind: Kind, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter(self._timed("list", lambda: list(self.inner.list(kind, prefix))))

    def delete(self, h: Handle) -> None:
        self._timed("delete", lambda: self.inner.delete(h))

    def close(self) -> None:
        self.inner.close()


# --- fault injection -------------------------------------------------------------------------


@dataclass
class Fault:
    """One planned fault of one verb.

    Attributes:
        error: raise this exception (a fresh copy each time it fires is not needed: errors pickle).
        nth: fire on the n-th call of the verb counted from when this fault reaches the queue head.
        repeat: fire on this many consecutive calls (then the next fault becomes the head).
        truncate: ``put`` only: store just the first ``truncate`` bytes (a torn write the storage accepted).
        corrupt: ``get`` only: flip one bit of the returned data (at stream offset ``corrupt_at``,
            default the middle of the first read).
        block_until: wait for this Event before going on (``started`` is set when the call arrives).
        before: with ``error`` on ``put``: raise before storing (default) or after storing (False),
            i.e. the object landed but the answer was lost.
    """

    error: BaseException | None = None
    nth: int = 1
    repeat: int = 1
    truncate: int | None = None
    corrupt: bool = False
    corrupt_at: int | None = None
    block_until: threading.Event | None = None
    before: bool = True
    block_timeout: float = 60.0
    started: threading.Event = field(default_factory=threading.Event)
    fired: int = 0


class _BitFlipReader:
    """Flips the lowest bit of the byte at stream offset ``at`` (default: the middle of the first read)."""

    def __init__(self, inner: BinaryIO, at: int | None) -> None:
        self._inner = inner
        self._at = at
        self._pos = 0
        self._done = False

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        if data and not self._done:
            at = len(data) // 2 if self._at is None else self._at - self._pos
            if 0 <= at < len(data):
                buf = bytearray(data)
                buf[at] ^= 0x01
                data = bytes(buf)
                self._done = True
        self._pos += len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._inner.close()


class FaultyBackend:
    """Injects planned faults into any backend; ``assert_all_fired()`` checks the plan at teardown.

    Example::

        be = FaultyBackend(MemoryBackend(), put=[Fault(BackendTransient(name="x", what="t"), repeat=2)])
    """

    def __init__(self, inner: Backend, **faults: list[Fault]) -> None:
        unknown = set(faults) - set(VERBS)
        if unknown:
            raise TypeError(f"unknown verbs {sorted(unknown)}")
        self.inner = inner
        self._lock = threading.Lock()
        self._queues: dict[str, deque[tuple[Fault, int]]] = {v: deque() for v in VERBS}
        self.planned: list[Fault] = []
        self.calls: dict[str, int] = dict.fromkeys(VERBS, 0)
        for verb, plan in faults.items():
            for fault in plan:
                self.add(verb, fault)

    def add(self, verb: str, fault: Fault) -> Fault:
        """Queue one more fault for ``verb`` and return it."""
        with self._lock:
            self._queues[verb].append((fault, fault.nth - 1))
            self.planned.append(fault)
        return fault

    def _next(self, verb: str) -> Fault | None:
        with self._lock:
            self.calls[verb] += 1
            queue = self._queues[verb]
            if not queue:
                return None
            fault, skip = queue[0]
            if skip > 0:
                queue[0] = (fault, skip - 1)
                return None
            fault.fired += 1
            if fault.fired >= fault.repeat:
                queue.popleft()
        fault.started.set()
        if fault.block_until is not None and not fault.block_until.wait(fault.block_timeout):
            raise AssertionError(f"FaultyBackend: {verb} blocked for {fault.block_timeout}s, never released")
        return fault

    def unfired(self) -> list[Fault]:
        with self._lock:
            return [f for f in self.planned if f.fired < f.repeat]

    def assert_all_fired(self) -> None:
        """Fail if a planned fault never fired (a test that declares faults must exercise them)."""
        missing = self.unfired()
        if missing:
            raise AssertionError(f"FaultyBackend: {len(missing)} planned fault(s) never fired: {missing}")

    def properties(self) -> BackendProperties:
        return self.inner.properties()

    def put(self, h: Handle, src: BinaryIO, size: int) -> None:
        fault = self._next("put")
        if fault is not None and fault.error is not None and fault.before:
            raise fault.error
        if fault is not None and fault.truncate is not None:
            keep = max(0, min(size, fault.truncate))
            data = src.read(keep)
            while src.read(1024 * 1024):
                pass
            import io

            self.inner.put(h, io.BytesIO(data), len(data))
        else:
            self.inner.put(h, src, size)
        if fault is not None and fault.error is not None and not fault.before:
            raise fault.error

    @contextmanager
    def get(self, h: Handle, *, offset: int = 0, length: int | None = None) -> Iterator[BinaryIO]:
        fault = self._next("get")
        if fault is not None and fault.error is not None:
            raise fault.error
        with self.inner.get(h, offset=offset, length=length) as fh:
            if fault is not None and fault.corrupt:
                yield cast(BinaryIO, _BitFlipReader(fh, fault.corrupt_at))
            else:
                yield fh

    def _simple(self, verb: str, fn: Callable[[], T]) -> T:
        fault = self._next(verb)
        if fault is not None and fault.error is not None:
            raise fault.error
        return fn()

    def stat(self, h: Handle) -> ObjectInfo:
        return self._simple("stat", lambda: self.inner.stat(h))

    def list(self, kind: Kind, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter(self._simple("list", lambda: list(self.inner.list(kind, prefix))))

    def delete(self, h: Handle) -> None:
        self._simple("delete", lambda: self.inner.delete(h))

    def close(self) -> None:
        self.inner.close()


# --- the factory ---------------------------------------------------------------------------


def stack_backend(
    impl: Backend,
    *,
    wait_max: float = 60.0,
    max_seconds: float = 900.0,
    max_attempts: int = 10,
    metrics: bool = True,
) -> Backend:
    """The production stack over an implementation: retries outside, metrics inside.

    Metrics sit inside the retries so every attempt is counted.
    """
    be: Backend = MetricsBackend(impl) if metrics else impl
    return RetryingBackend(be, wait_max=wait_max, max_seconds=max_seconds, max_attempts=max_attempts)


def find_metrics(be: Any) -> MetricsBackend | None:
    """The MetricsBackend inside a stack, if any (walks ``.inner``)."""
    while be is not None:
        if isinstance(be, MetricsBackend):
            return be
        be = getattr(be, "inner", None)
    return None
