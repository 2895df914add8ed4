"""Id maths: checksums, 15/18 conversions, ordering, and the SQL macro that mirrors make_id."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator import ids

BASE62 = st.sampled_from(list(ids.BASE62))
ID15 = st.text(alphabet=ids.BASE62, min_size=15, max_size=15)
PREFIX = st.text(alphabet=ids.BASE62, min_size=3, max_size=3)
COUNTER = st.integers(min_value=0, max_value=ids.MAX_COUNTER)


def test_checksum_matches_a_real_salesforce_id() -> None:
    assert ids.to18("001D000000IRFma") == "001D000000IRFmaIAH"
    assert ids.checksum_suffix("001D000000IRFma") == "IAH"


@given(ID15)
def test_to18_to15_round_trip(id15: str) -> None:
    id18 = ids.to18(id15)
    assert len(id18) == 18
    assert ids.to15(id18) == id15
    assert ids.to18(id18) == id18
    assert ids.is_valid_id(id15) and ids.is_valid_id(id18)


@given(ID15)
def test_checksum_is_case_signature(id15: str) -> None:
    """Two ids that differ only in case have different checksums (unless they are equal)."""
    swapped = id15.swapcase()
    if swapped != id15 and any(c.isalpha() for c in id15):
        assert ids.to18(swapped)[15:] != ids.to18(id15)[15:]


@given(ID15)
def test_lower_cased_18_char_id_is_rejected_when_case_mattered(id15: str) -> None:
    id18 = ids.to18(id15)
    lowered = id18[:15].lower() + id18[15:]
    if lowered != id18:
        assert not ids.is_valid_id(lowered)
        with pytest.raises(ValueError):
            ids.to18(lowered)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "001",
        "001D000000IRFm",
        "001D000000IRFmaIA",
        "001D000000IRFma!",
        "001D000000IRFmaXXX",
        "001D000000IRFmaIAH1",
        "001D000000IRF a",
    ],
)
def test_malformed_ids(bad: str) -> None:
    assert not ids.is_valid_id(bad)
    with pytest.raises(ValueError):
        ids.to18(bad)


@given(PREFIX, COUNTER, COUNTER)
def test_make_id_orders_by_counter(prefix: str, a: int, b: int) -> None:
    ia, ib = ids.make_id(prefix, a), ids.make_id(prefix, b)
    assert ids.is_valid_id(ia) and len(ia) == 18 and ia.startswith(prefix)
    assert (a < b) == (ia < ib)
    assert (a < b) == (ia[:15] < ib[:15])
    assert ids.decode_counter(ia) == a


def test_make_id_refuses_out_of_range() -> None:
    with pytest.raises(ValueError):
        ids.make_id("001", -1)
    with pytest.raises(ValueError):
        ids.make_id("001", ids.MAX_COUNTER + 1)
    with pytest.raises(ValueError):
        ids.make_id("0x", 1)


@settings(max_examples=30)
@given(PREFIX, st.lists(COUNTER, min_size=1, max_size=200))
def test_sql_macro_equals_make_id(prefix: str, counters: list[int]) -> None:
    con = duckdb.connect()
    for macro in ids.id_sql_macros():
        con.execute(macro)
    rows = con.execute(
        "SELECT n, sf_id(?, n) FROM unnest(?::BIGINT[]) AS t(n)", [prefix, counters]
    ).fetchall()
    assert rows == [(n, ids.make_id(prefix, n)) for n in counters]


def test_custom_key_prefixes() -> None:
    assert ids.custom_key_prefix(0) == "a00"
    assert ids.custom_key_prefix(1) == "a01"
    assert ids.custom_key_prefix(62) == "a10"
    assert ids.KEY_PREFIXES["Account"] == "001"
    assert ids.KEY_PREFIXES["ContentVersion"] == "068"
