"""Salesforce record Id arithmetic (pure, no I/O).

A 15-character Id is a case-sensitive base-62 number whose digit alphabet ``0-9A-Za-z`` is in
ASCII order, so for two Ids of the same length, comparing the strings byte-wise is the same as
comparing the numbers. That is how Salesforce orders Ids (``ORDER BY Id``, ``Id < 'x'``), and it
lets the partition planner do arithmetic on Ids: the midpoint of two Ids, or ``n`` equal slices
of a range, are again valid 15-character Ids that sort between the two.

The 18-character form appends a 3-character checksum of the case of the first 15 characters.
All arithmetic here is done on the 15-character value; :func:`to18` adds the checksum back.

Invariants (tested with hypothesis in ``tests/unit/test_extract_idmath.py``):

* ``decode(encode(n)) == n`` and ``encode`` preserves order: ``a < b  <=>  encode(a) < encode(b)``.
* ``to18(x)[:15] == to15(x)`` and ``to18(to15(x)) == to18(x)`` for every valid Id.
* ``lo < midpoint(lo, hi) < hi`` whenever ``decode(hi) - decode(lo) >= 2``.
* ``split(lo, hi, n)`` returns strictly increasing boundaries starting at ``lo`` and ending at
  ``hi``: the half-open ranges between them cover ``[lo, hi)`` exactly, without overlap.
"""

from __future__ import annotations

import re

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VALUE = {ch: i for i, ch in enumerate(BASE62)}
CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
ID_LEN = 15
MAX_VALUE = 62**ID_LEN - 1

_ID15 = re.compile(r"^[0-9A-Za-z]{15}$")
_ID18 = re.compile(r"^[0-9A-Za-z]{15}[A-Z0-5]{3}$")


def checksum(id15: str) -> str:
    """The 3-character case checksum of a 15-character Id (SALESFORCE_API.md §5.1)."""
    if len(id15) != ID_LEN:
        raise ValueError(f"not a 15-character Id: {id15!r}")
    out = []
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(CHECKSUM_ALPHABET[bits])
    return "".join(out)


def is_valid(id_: str) -> bool:
    """True for a well-formed 15-character Id or an 18-character Id whose checksum matches."""
    if len(id_) == ID_LEN:
        return _ID15.match(id_) is not None
    if len(id_) == 18 and _ID18.match(id_) is not None:
        return checksum(id_[:15]) == id_[15:]
    return False


def to15(id_: str) -> str:
    """The case-sensitive 15-character form of a 15- or 18-character Id.

    Raises:
        ValueError: not a well-formed Id (an 18-character Id with a wrong checksum included).
    """
    if not is_valid(id_):
        raise ValueError(f"malformed Salesforce Id: {id_!r}")
    return id_[:ID_LEN]


def to18(id_: str) -> str:
    """The 18-character form (15 characters plus the case checksum) of a 15- or 18-character Id."""
    id15 = to15(id_)
    return id15 + checksum(id15)


def decode(id_: str) -> int:
    """The base-62 value of the 15-character part of an Id."""
    n = 0
    for ch in to15(id_):
        n = n * 62 + _VALUE[ch]
    return n


def encode(n: int) -> str:
    """``n`` as a 15-character base-62 Id (no checksum). Order-preserving.

    Raises:
        ValueError: ``n`` is outside ``[0, 62**15)``.
    """
    if not 0 <= n <= MAX_VALUE:
        raise ValueError(f"value out of the Id range: {n}")
    digits = []
    for _ in range(ID_LEN):
        n, r = divmod(n, 62)
        digits.append(BASE62[r])
    return "".join(reversed(digits))


def key_prefix(id_: str) -> str:
    """The 3-character key prefix (which object an Id belongs to)."""
    return to15(id_)[:3]


def successor(id_: str) -> str | None:
    """The next 15-character Id after ``id_``, or None if ``id_`` is the largest possible one.

    Used to turn an inclusive maximum into an exclusive upper bound: ``Id < successor(max)``.
    """
    n = decode(id_)
    return None if n == MAX_VALUE else encode(n + 1)


def midpoint(lo: str, hi: str) -> str:
    """The Id halfway between ``lo`` and ``hi`` (15 characters), rounded down.

    Strictly between both when they are at least 2 apart; equal to ``lo`` when they are
    adjacent or equal (the caller must check :func:`distance` before bisecting).
    """
    a, b = decode(lo), decode(hi)
    if a > b:
        raise ValueError(f"midpoint of a reversed range: {lo} > {hi}")
    return encode((a + b) // 2)


def distance(lo: str, hi: str) -> int:
    """How many Id values lie in ``[lo, hi)``."""
    return decode(hi) - decode(lo)


def split(lo: str, hi: str, n: int) -> list[str]:
    """Boundaries that cut ``[lo, hi)`` into at most ``n`` contiguous non-empty half-open ranges.

    Returns ``[lo, b1, ..., hi]`` (15-character Ids), strictly increasing; fewer than ``n``
    ranges when the range holds fewer than ``n`` Id values.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    a, b = decode(lo), decode(hi)
    if a >= b:
        raise ValueError(f"empty or reversed range: [{lo}, {hi})")
    n = min(n, b - a)
    cuts = [a + (b - a) * k // n for k in range(n + 1)]
    return [encode(c) for c in cuts]
