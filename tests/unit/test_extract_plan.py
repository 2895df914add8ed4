"""Property tests for the Id-range partition planner."""

from __future__ import annotations

import bisect as bisect_mod
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.extract import idmath
from engine.extract.plan import Partition, bisect, can_bisect, plan_partitions
from engine.extract.soql import Soql

PREFIX = idmath.decode("001gD0000000000")


def make_ids(offsets: list[int]) -> list[str]:
    return sorted({idmath.encode(PREFIX + o) for o in offsets})


class ExactCounter:
    """``count(lo, hi)`` over a sorted list of Ids, like an exact COUNT() query."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.calls = 0

    def __call__(self, lo: str | None, hi: str | None) -> int:
        self.calls += 1
        a = 0 if lo is None else bisect_mod.bisect_left(self.ids, lo)
        b = len(self.ids) if hi is None else bisect_mod.bisect_left(self.ids, hi)
        return max(0, b - a)


def assert_covers(parts: list[Partition]) -> None:
    assert parts[0].lo is None and parts[-1].hi is None
    for a, b in itertools.pairwise(parts):
        assert a.hi is not None and a.hi == b.lo
        assert a.lo is None or a.lo < a.hi


offsets = st.lists(st.one_of(st.integers(0, 5_000), st.integers(0, 62**9)), min_size=1, max_size=400)


@settings(max_examples=200, deadline=None)
@given(offsets, st.integers(1, 120))
def test_partitions_cover_everything_and_respect_target(offs: list[int], target: int) -> None:
    ids = make_ids(offs)
    counter = ExactCounter(ids)
    parts = plan_partitions("Account", idmath.to18(ids[0]), idmath.to18(ids[-1]), counter, target)
    assert_covers(parts)
    # every Id falls in exactly one partition
    for i in ids:
        assert sum(p.contains(i) for p in parts) == 1
    # exact counts: no partition above target, estimates add up
    for p in parts:
        assert p.estimated_rows == counter(p.lo, p.hi)
        assert p.estimated_rows <= target
    assert sum(p.estimated_rows for p in parts) == len(ids)
    if len(ids) <= target:
        assert len(parts) == 1


def test_empty_object_is_one_open_partition() -> None:
    parts = plan_partitions("Account", None, None, ExactCounter([]), 10)
    assert len(parts) == 1 and parts[0].lo is None and parts[0].hi is None


def test_dense_ids_give_about_target_rows_with_few_counts() -> None:
    ids = make_ids(list(range(10_000)))
    counter = ExactCounter(ids)
    parts = plan_partitions("Account", ids[0], ids[-1], counter, 1_000)
    assert 10 <= len(parts) <= 11
    assert counter.calls <= 2 * len(parts) + 2


def test_query_has_range_and_no_order_by() -> None:
    ids = make_ids(list(range(100)))
    parts = plan_partitions("Account", ids[0], ids[-1], ExactCounter(ids), 30)
    text = parts[1].apply(Soql.select("Account", ["Id", "Name"])).render()
    assert "Id >= '" in text and "Id < '" in text and "ORDER BY" not in text


@given(offsets, st.integers(1, 50), st.data())
def test_bisect_halves_cover_parent(offs: list[int], target: int, data: st.DataObject) -> None:
    ids = make_ids(offs)
    parts = plan_partitions("Account", ids[0], ids[-1], ExactCounter(ids), target)
    p = data.draw(st.sampled_from(parts))
    if not can_bisect(p):
        with pytest.raises(ValueError):
            bisect(p)
        return
    left, right = bisect(p)
    assert left.lo == p.lo and right.hi == p.hi and left.hi == right.lo
    assert left.depth == right.depth == p.depth + 1
    for i in ids:
        assert p.contains(i) == (left.contains(i) or right.contains(i))
        assert not (left.contains(i) and right.contains(i))
    # repeated bisection always terminates
    q = left
    for _ in range(200):
        if not can_bisect(q):
            break
        q = bisect(q)[0]
    assert not can_bisect(q) or q.depth > 90


@settings(max_examples=100, deadline=None)
@given(offsets, st.integers(1, 120))
def test_counting_the_pieces_of_a_cut_together_gives_the_same_partitions(
    offs: list[int], target: int
) -> None:
    """Decision 0019: the pieces of one cut are counted in one batch (a composite request holds
    five COUNT() queries), with the very same result as counting them one by one."""
    ids = make_ids(offs)
    lo, hi = idmath.to18(ids[0]), idmath.to18(ids[-1])
    one_by_one = plan_partitions("Account", lo, hi, ExactCounter(ids), target)
    counter = ExactCounter(ids)
    batches: list[int] = []

    def count_many(ranges: list[tuple[str | None, str | None]]) -> list[int]:
        batches.append(len(ranges))
        return [counter(a, b) for a, b in ranges]

    together = plan_partitions("Account", lo, hi, ExactCounter(ids), target, count_many=count_many)
    assert together == one_by_one
    assert sum(batches) == counter.calls and len(batches) <= counter.calls
