"""Damage repository objects on purpose (STYLE rule 18; anti-pattern 14: flip bits, never write
a fixed byte). Each helper checks that it really changed what it claims to have changed.

Objects are write-once, so the helpers replace an object by deleting it and putting the damaged
bytes (the way bit rot or a tampering storage admin would present it to sfvault).
"""

from __future__ import annotations

import io

from engine.sink.backend import Backend, Handle


def read_all(be: Backend, h: Handle) -> bytes:
    with be.get(h) as fh:
        return fh.read()


def _replace(be: Backend, h: Handle, data: bytes) -> None:
    be.delete(h)
    be.put(h, io.BytesIO(data), len(data))


def flip_bit(be: Backend, h: Handle, offset: int, bit: int = 0) -> None:
    """Flip one bit of the byte at ``offset`` (negative counts from the end)."""
    original = read_all(be, h)
    data = bytearray(original)
    data[offset] ^= 1 << bit
    _replace(be, h, bytes(data))
    after = read_all(be, h)
    diff = sum(bin(a ^ b).count("1") for a, b in zip(after, original, strict=True))
    assert diff == 1, f"flip_bit changed {diff} bits of {h.path}"


def truncate(be: Backend, h: Handle, keep: int) -> None:
    """Keep only the first ``keep`` bytes (``keep`` < size)."""
    original = read_all(be, h)
    assert 0 <= keep < len(original), "truncate must remove something"
    _replace(be, h, original[:keep])
    assert be.stat(h).size == keep


def delete(be: Backend, h: Handle) -> None:
    """Remove an object (e.g. a chunk that a snapshot references)."""
    be.delete(h)
    assert not any(o.handle == h for o in be.list(h.kind, h.name))
