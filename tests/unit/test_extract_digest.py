"""Row digests (engine.extract.digest): the text a digest is made of must never change.

Cursors written by earlier jobs hold digests of their boundary rows; a digest that changed would
re-capture those rows once (harmless, decision 0009) but it must not change by accident: the fast
path for ``timestamp[tz=UTC]`` columns gives exactly the text of Arrow's own cast.
"""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st

from engine.extract.digest import _text, row_digests

UTC = dt.UTC


def test_digests_of_known_rows_are_those_of_the_earlier_jobs() -> None:
    """Digests computed by the implementation before the UTC fast path (every type the extract
    produces, nulls, a pre-1970 timestamp, separators inside a text)."""
    batch = pa.RecordBatch.from_pydict({
        "Id": pa.array(["001000000000001AAA", "001000000000002AAA", None]),
        "SystemModstamp": pa.array(
            [dt.datetime(2026, 12, 6, 22, 51, 25, 123000, tzinfo=UTC), None,
             dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)], pa.timestamp("ms", tz="UTC")),
        "Created": pa.array(
            [dt.datetime(2001, 1, 1, tzinfo=UTC), dt.datetime(2030, 5, 6, 7, 8, 9, 654321, tzinfo=UTC), None],
            pa.timestamp("us", tz="UTC")),
        "Day": pa.array([dt.date(2020, 2, 29), None, dt.date(1900, 1, 1)], pa.date32()),
        "Amount": pa.array([decimal.Decimal("12.50"), None, decimal.Decimal("-0.01")], pa.decimal128(18, 2)),
        "Flag": pa.array([True, False, None]),
        "Score": pa.array([1.5, None, -2.25]),
        "Text": pa.array(["a|b:c", "", "\u00e9\U0001f600"]),
    })  # fmt: skip
    assert row_digests(batch) == ["9c39656f848c1d78", "6e84d409afcdac80", "bb4352763c25819a"]


MS_RANGE = st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999)  # years 1-9999


@given(values=st.lists(st.none() | MS_RANGE, max_size=40), unit=st.sampled_from(["s", "ms", "us"]))
def test_utc_timestamps_read_as_arrows_own_cast(values: list[int | None], unit: str) -> None:
    per_ms = {"s": None, "ms": 1, "us": 1000}[unit]
    raw = [None if v is None else (v // 1000 if per_ms is None else v * per_ms) for v in values]
    col = pa.array(raw, pa.timestamp(unit, tz="UTC"))
    assert _text(col).equals(pc.cast(col, pa.string()))
    chunked = pa.chunked_array([col, col], type=col.type)
    assert _text(chunked).equals(pc.cast(chunked, pa.string()))


def test_other_zones_keep_arrows_cast() -> None:
    col = pa.array([0, None, 1_796_597_485_123], pa.timestamp("ms", tz="America/New_York"))
    assert _text(col).to_pylist() == ["1969-12-31 19:00:00.000-0500", None, "2026-12-06 17:51:25.123-0500"]
