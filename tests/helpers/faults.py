"""Fault injection for tests (STYLE rule 18): ``FaultyBackend`` and ``Fault`` live in the library
(``engine.sink.wrappers``); :func:`faulty` wraps a backend and checks at exit that every planned
fault fired."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from engine.sink.backend import Backend
from engine.sink.wrappers import Fault, FaultyBackend

__all__ = ["Fault", "FaultyBackend", "faulty"]


@contextmanager
def faulty(inner: Backend, **faults: list[Fault]) -> Iterator[FaultyBackend]:
    """``with faulty(be, put=[Fault(err)]) as fb: ...`` — fails the test if a fault never fired."""
    fb = FaultyBackend(inner, **faults)
    yield fb
    fb.assert_all_fired()
