"""Partition planning by Id range (pure: the only outside effect is the ``count`` callback).

Given an object's smallest and largest Id and a ``count(lo, hi)`` callback (a ``COUNT()`` query
for ``lo <= Id < hi``), :func:`plan_partitions` cuts the object into contiguous Id ranges of
about ``target_rows`` records. Cuts are made with base-62 arithmetic (:mod:`idmath`), each piece
is counted, and pieces still above the target are cut again; small neighbours are then merged.

Invariants (hypothesis-tested in ``tests/unit/test_extract_plan.py``):

* The partitions are contiguous and cover every possible Id: the first has ``lo=None``, the
  last ``hi=None``, and each ``hi`` equals the next ``lo``. Rows created after planning with an
  Id outside ``[min, max]`` are therefore still extracted (by the first or last partition).
* When ``count`` is exact, each partition holds at most ``target_rows`` rows (a range one Id
  wide holds at most one row, so refinement always terminates below the target).
* An object with at most ``target_rows`` rows, or without rows, is a single partition.

Queries built from a partition filter ``Id >= lo AND Id < hi`` and never add ``ORDER BY``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace

from engine.extract import idmath
from engine.extract.soql import Soql

CountFn = Callable[[str | None, str | None], int]
CountManyFn = Callable[[list[tuple[str | None, str | None]]], list[int]]
"""Counts several Id ranges at once (one composite request holds five ``COUNT()`` queries)."""
"""``count(lo, hi)``: rows with ``lo <= Id < hi`` (15-character bounds; None = open)."""

_END = idmath.MAX_VALUE + 1


@dataclass(frozen=True)
class Partition:
    """One unit of extraction work: a half-open Id range of one object.

    Attributes:
        sobject: object API name.
        lo: inclusive lower bound of the query (15-character Id), None = unbounded.
        hi: exclusive upper bound of the query, None = unbounded.
        span_lo: lower bound used for arithmetic when the query bound is open (the object's
            minimum Id at planning time); equals ``lo`` when ``lo`` is set.
        span_hi: upper bound for arithmetic, exclusive; None = past the largest possible Id.
        estimated_rows: rows counted at planning time (an estimate once data changes).
        depth: how many times this range was bisected after a timeout.
    """

    sobject: str
    lo: str | None
    hi: str | None
    span_lo: str
    span_hi: str | None
    estimated_rows: int
    depth: int = 0

    def apply(self, query: Soql) -> Soql:
        """``query`` restricted to this partition's Id range."""
        return query.with_id_range(self.lo, self.hi)

    def contains(self, id_: str) -> bool:
        v = idmath.to15(id_)
        return (self.lo is None or v >= self.lo) and (self.hi is None or v < self.hi)

    @property
    def key(self) -> str:
        """A stable, readable name for reports: ``Account[001..., 001...)``."""
        return f"{self.sobject}[{self.lo or '-'},{self.hi or '+'})"


def _enc(n: int) -> str | None:
    return None if n >= _END else idmath.encode(n)


def _dec(s: str | None) -> int:
    return _END if s is None else idmath.decode(s)


def plan_partitions(
    sobject: str,
    min_id: str | None,
    max_id: str | None,
    count: CountFn,
    target_rows: int,
    *,
    total: int | None = None,
    count_many: CountManyFn | None = None,
) -> list[Partition]:
    """Cut ``sobject`` into contiguous Id ranges of at most about ``target_rows`` rows.

    Args:
        sobject: object API name.
        min_id, max_id: smallest and largest Id (15 or 18 characters), None for an empty object.
        count: ``count(lo, hi)`` callback; called O(partitions) times.
        target_rows: wanted rows per partition (>= 1).
        total: the object's row count if already known (saves one ``count`` call).
        count_many: counts the pieces of one cut together (fewer API calls); by default one
            ``count`` call per piece.

    Returns:
        Partitions in Id order; see the module invariants.
    """
    if target_rows < 1:
        raise ValueError("target_rows must be >= 1")
    if min_id is None or max_id is None:
        return [Partition(sobject, None, None, idmath.encode(0), None, 0)]
    a = idmath.decode(min_id)
    b = idmath.decode(max_id) + 1
    if a >= b:
        raise ValueError(f"min Id {min_id} is above max Id {max_id}")
    n = count(_enc(a), _enc(b)) if total is None else total

    pieces: list[tuple[int, int, int]] = []  # (lo, hi, rows), in order

    def refine(lo: int, hi: int, rows: int) -> None:
        # Iterative over the children, recursive only for oversized ones: depth is
        # O(log(range) / log(k)), far below the recursion limit.
        if rows <= target_rows or hi - lo <= 1:
            pieces.append((lo, hi, rows))
            return
        k = min(-(-rows // target_rows), hi - lo)  # ceil, and at most one piece per Id value
        cuts = [lo + (hi - lo) * j // k for j in range(k + 1)]  # same cut rule as idmath.split
        ranges = list(itertools.pairwise(cuts))
        counted = many([(_enc(x), _enc(y)) for x, y in ranges])
        for (x, y), rows_xy in zip(ranges, counted, strict=True):
            refine(x, y, rows_xy)

    def one_by_one(ranges: list[tuple[str | None, str | None]]) -> list[int]:
        return [count(lo, hi) for lo, hi in ranges]

    many = count_many or one_by_one

    refine(a, b, n)

    merged: list[list[int]] = []
    for lo, hi, rows in pieces:
        if merged and merged[-1][2] + rows <= target_rows:
            merged[-1][1] = hi
            merged[-1][2] += rows
        else:
            merged.append([lo, hi, rows])

    out: list[Partition] = []
    for i, (lo, hi, rows) in enumerate(merged):
        out.append(
            Partition(
                sobject=sobject,
                lo=None if i == 0 else _enc(lo),
                hi=None if i == len(merged) - 1 else _enc(hi),
                span_lo=idmath.encode(lo),
                span_hi=_enc(hi),
                estimated_rows=rows,
            )
        )
    return out


def can_bisect(p: Partition) -> bool:
    """True when the partition's Id span holds at least two Id values."""
    return _dec(p.span_hi) - idmath.decode(p.span_lo) >= 2


def bisect(p: Partition) -> tuple[Partition, Partition]:
    """Split a partition in two at the midpoint of its Id span (after a query timeout).

    The halves are contiguous, cover exactly the parent's range (open bounds stay open on the
    outside), and carry ``depth + 1`` so the caller can cap repeated bisection.

    Raises:
        ValueError: the span is too narrow to split (see :func:`can_bisect`).
    """
    if not can_bisect(p):
        raise ValueError(f"cannot bisect {p.key}: its span is a single Id")
    a, b = idmath.decode(p.span_lo), _dec(p.span_hi)
    mid = idmath.encode((a + b) // 2)
    half = p.estimated_rows // 2
    left = replace(p, hi=mid, span_hi=mid, estimated_rows=p.estimated_rows - half, depth=p.depth + 1)
    right = replace(p, lo=mid, span_lo=mid, estimated_rows=half, depth=p.depth + 1)
    return left, right
