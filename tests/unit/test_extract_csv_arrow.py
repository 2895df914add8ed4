"""Bulk CSV -> Arrow: explicit types, Salesforce quoting, empty == null, property round trips."""

from __future__ import annotations

import gzip
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import SalesforceDataError
from engine.extract.csv_arrow import CsvPageParser, arrow_schema
from engine.extract.model import FieldSpec

FIELDS = [
    FieldSpec("Id", "id"),
    FieldSpec("Name", "string"),
    FieldSpec("Amount", "currency", precision=18, scale=2),
    FieldSpec("Score", "double", precision=18, scale=4, calculated=True),
    FieldSpec("Employees", "int"),
    FieldSpec("IsActive", "boolean"),
    FieldSpec("Founded", "date"),
    FieldSpec("SystemModstamp", "datetime"),
    FieldSpec("OwnerId", "reference"),
    FieldSpec("Wakeup", "time"),
]


def q(v: str) -> str:
    return '"' + v.replace('"', '""') + '"'


def to_csv(names: list[str], rows: list[list[str]]) -> bytes:
    lines = [",".join(q(n) for n in names)] + [",".join(q(v) for v in r) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def test_schema_is_explicit() -> None:
    s = arrow_schema(FIELDS)
    assert s.field("Id").type == pa.string()
    assert s.field("Amount").type == pa.decimal128(18, 2)
    assert s.field("Score").type == pa.float64()
    assert s.field("Employees").type == pa.int64()
    assert s.field("SystemModstamp").type == pa.timestamp("ms", tz="UTC")
    assert s.field("Founded").type == pa.date32()
    assert s.field("Wakeup").type == pa.string()


def test_salesforce_page() -> None:
    data = to_csv(
        [f.name for f in FIELDS],
        [
            [
                "001000000000001AAA",
                'Acme "Big"\nCo 🚀',
                "1234.50",
                "1.5E3",
                "42",
                "true",
                "2024-01-02",
                "2024-01-02T03:04:05.678Z",
                "005000000000001AAA",
                "14:07:22.000Z",
            ],
            ["001000000000002AAA", "", "", "", "", "false", "", "", "", ""],
            [
                "000000000000003AAA",
                "x",
                "-0.01",
                "0",
                "0",
                "true",
                "1970-01-01",
                "1970-01-01T00:00:00.000Z",
                "",
                "",
            ],
        ],
    )
    t = CsvPageParser("Account", FIELDS).parse(data)
    assert t.schema == arrow_schema(FIELDS)
    r = t.to_pylist()
    assert r[0]["Id"] == "001000000000001AAA"  # Ids stay strings
    assert r[2]["Id"] == "000000000000003AAA"  # even when they look like numbers
    assert r[0]["Name"] == 'Acme "Big"\nCo 🚀'
    assert r[0]["Amount"] == Decimal("1234.50") and r[0]["Score"] == 1500.0
    assert r[0]["IsActive"] is True and r[1]["IsActive"] is False
    assert r[0]["Founded"] == date(2024, 1, 2)
    assert r[0]["SystemModstamp"] == datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert r[1]["Name"] is None and r[1]["Amount"] is None and r[1]["SystemModstamp"] is None  # empty == null


def test_empty_pages() -> None:
    p = CsvPageParser("Account", FIELDS)
    assert p.parse(b"").num_rows == 0
    assert p.parse(to_csv([f.name for f in FIELDS], [])).num_rows == 0


def test_header_mismatch_is_typed() -> None:
    with pytest.raises(SalesforceDataError):
        CsvPageParser("Account", FIELDS).parse(to_csv(["Id", "Other"], [["1", "2"]]))


def test_bad_value_is_typed() -> None:
    fields = [FieldSpec("Id", "id"), FieldSpec("N", "int")]
    with pytest.raises(SalesforceDataError):
        CsvPageParser("X", fields).parse(to_csv(["Id", "N"], [["a", "not a number"]]))


def test_excess_scale_is_rounded_not_failed() -> None:
    fields = [FieldSpec("Id", "id"), FieldSpec("Amount", "currency", precision=18, scale=2)]
    p = CsvPageParser("X", fields)
    t = p.parse(to_csv(["Id", "Amount"], [["a", "1.005"], ["b", "2.50"], ["c", ""]]))
    assert t.column("Amount").to_pylist() == [Decimal("1.00"), Decimal("2.50"), None]
    assert p.rounded_values == 1


# --- property round trip ------------------------------------------------------------------

texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
stamps = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=UTC)
)
amounts = st.decimals(
    min_value=Decimal("-9999999999999999.99"), max_value=Decimal("9999999999999999.99"), places=2
)
rows = st.tuples(
    texts, st.none() | amounts, st.none() | st.integers(-(2**63), 2**63 - 1), st.booleans(),
    st.none() | st.dates(min_value=date(1700, 1, 1), max_value=date(4000, 12, 31)), st.none() | stamps,
    st.none() | st.floats(allow_nan=False, allow_infinity=False),
)  # fmt: skip


def fmt_ts(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


@settings(max_examples=150, deadline=None)
@given(st.lists(rows, max_size=25))
def test_round_trip(values: list[tuple[Any, ...]]) -> None:
    fields = [
        FieldSpec("Id", "id"), FieldSpec("Body", "textarea"),
        FieldSpec("Amount", "currency", precision=18, scale=2), FieldSpec("Big", "int"),
        FieldSpec("Flag", "boolean"), FieldSpec("Day", "date"),
        FieldSpec("Stamp", "datetime"), FieldSpec("Ratio", "double"),
    ]  # fmt: skip
    raw = []
    for n, (txt, amt, big, flag, day, ts, ratio) in enumerate(values):
        raw.append([
            f"001{n:012d}AAA", txt, "" if amt is None else str(amt), "" if big is None else str(big),
            "true" if flag else "false", "" if day is None else day.isoformat(),
            "" if ts is None else fmt_ts(ts), "" if ratio is None else repr(ratio),
        ])  # fmt: skip
    data = to_csv([f.name for f in fields], raw)
    if len(data) % 2:
        data = gzip.decompress(gzip.compress(data))  # also exercise the wire path now and then
    table = CsvPageParser("Account", fields).parse(data)
    assert table.num_rows == len(values)
    got = table.to_pylist()
    for n, (txt, amt, big, flag, day, ts, ratio) in enumerate(values):
        g = got[n]
        assert g["Id"] == f"001{n:012d}AAA"
        assert g["Body"] == (txt or None)  # empty string and null are the same in Bulk CSV
        assert g["Amount"] == amt
        assert g["Big"] == big
        assert g["Flag"] is flag
        assert g["Day"] == day
        assert g["Stamp"] == ts
        assert g["Ratio"] == ratio


@pytest.mark.slow
def test_parse_throughput(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints MB/s on a generated ~40 MB page of a wide-ish object (figures for the report)."""
    names = [f.name for f in FIELDS]
    row = ["001000000000001AAA", 'Acme "Big"\nCo, Ltd. 🚀 ' * 3, "1234.50", "1.5", "42", "true",
           "2024-01-02", "2024-01-02T03:04:05.678Z", "005000000000001AAA", "14:07:22.000Z"]  # fmt: skip
    body = "\n".join(",".join(q(v) for v in row) for _ in range(200_000))
    data = (",".join(q(n) for n in names) + "\n" + body + "\n").encode()
    p = CsvPageParser("Account", FIELDS)
    dt = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        n = sum(b.num_rows for b in p.iter_batches(data))
        dt = min(dt, time.perf_counter() - t0)
        assert n == 200_000
    with capsys.disabled():
        print(
            f"\nCSV parse (best of 3): {len(data) / 1e6:.1f} MB in {dt:.3f}s "
            f"= {len(data) / 1e6 / dt:.0f} MB/s"
        )


def test_a_rest_date_time_reads_as_the_bulk_text_of_it_does_and_needs_its_offset() -> None:
    """REST date-times are read with ``datetime.fromisoformat`` (60x faster than ``strptime``, most
    of a driver's CPU in an incremental): Salesforce's text gives the same instant, and a value
    without its offset is refused rather than taken as UTC."""
    from engine.extract.csv_arrow import _json_value

    t = pa.timestamp("ms", tz="UTC")
    got = _json_value("2024-02-29T23:59:59.123+0000", t)
    assert got == datetime(2024, 2, 29, 23, 59, 59, 123000, tzinfo=UTC)
    assert got == datetime.strptime("2024-02-29T23:59:59.123+0000", "%Y-%m-%dT%H:%M:%S.%f%z")
    with pytest.raises(ValueError):
        _json_value("2024-02-29T23:59:59.123", t)
