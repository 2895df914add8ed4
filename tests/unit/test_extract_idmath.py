"""Property tests for Salesforce Id arithmetic."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.extract import idmath

values = st.integers(min_value=0, max_value=idmath.MAX_VALUE)
id15s = values.map(idmath.encode)


def test_known_checksum() -> None:
    assert idmath.to18("001D000000IRFma") == "001D000000IRFmaIAH"
    assert idmath.to15("001D000000IRFmaIAH") == "001D000000IRFma"


def test_malformed_ids_are_refused() -> None:
    for bad in ("", "001", "001D000000IRFm!", "001D000000IRFmaAAA", "001d000000irfmaiah"):
        with pytest.raises(ValueError):
            idmath.to15(bad)


@given(values)
def test_encode_decode_round_trip(n: int) -> None:
    assert idmath.decode(idmath.encode(n)) == n


@given(id15s)
def test_to18_round_trips(id15: str) -> None:
    id18 = idmath.to18(id15)
    assert len(id18) == 18 and id18[:15] == id15
    assert idmath.is_valid(id18)
    assert idmath.to15(id18) == id15
    assert idmath.to18(id18) == id18


@given(values, values)
def test_order_is_preserved(a: int, b: int) -> None:
    ea, eb = idmath.encode(a), idmath.encode(b)
    assert (a < b) == (ea < eb)
    # the 18-character forms compare like their 15-character parts when those differ
    if a != b:
        assert (a < b) == (idmath.to18(ea) < idmath.to18(eb))


@given(values, values)
def test_midpoint_is_strictly_between(a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    if hi - lo < 2:
        return
    m = idmath.midpoint(idmath.encode(lo), idmath.encode(hi))
    assert idmath.encode(lo) < m < idmath.encode(hi)


@given(values, values, st.integers(min_value=1, max_value=64))
def test_split_covers_range_exactly(a: int, b: int, n: int) -> None:
    lo, hi = sorted((a, b))
    if lo == hi:
        with pytest.raises(ValueError):
            idmath.split(idmath.encode(lo), idmath.encode(hi), n)
        return
    cuts = idmath.split(idmath.encode(lo), idmath.encode(hi), n)
    assert cuts[0] == idmath.encode(lo) and cuts[-1] == idmath.encode(hi)
    assert all(x < y for x, y in itertools.pairwise(cuts))  # strictly increasing: no overlap, no gap
    assert len(cuts) - 1 == min(n, hi - lo)
    sizes = [idmath.distance(x, y) for x, y in itertools.pairwise(cuts)]
    assert sum(sizes) == hi - lo
    assert max(sizes) - min(sizes) <= 1  # even slices


def test_successor_and_prefix() -> None:
    assert idmath.successor("001000000000009") == "00100000000000A"
    assert idmath.successor("zzzzzzzzzzzzzzz") is None
    assert idmath.key_prefix("001D000000IRFmaIAH") == "001"
