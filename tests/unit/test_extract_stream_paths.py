"""The Bulk and REST paths type the same records identically (``engine.extract.stream``).

The same generated records are written as a Salesforce Bulk 2.0 CSV page (every value quoted,
``""`` doubled, null as an empty field, ``...Z`` datetimes) and as a REST query JSON body
(``...+0000`` datetimes, numbers as JSON numbers, decoded as ``RestApi.query_pages(exact_numbers=True)``
decodes them); the Arrow batches must be equal, schema metadata included, and so must the digests
the incremental cursor keeps of them.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.extract.csv_arrow import CsvPageParser
from engine.extract.digest import row_digests
from engine.extract.model import FieldSpec

FIELDS = (
    FieldSpec("Id", "id"),
    FieldSpec("Name", "string"),
    FieldSpec("Description", "textarea"),
    FieldSpec("Amount", "currency", precision=18, scale=2),
    FieldSpec("Rate", "percent", precision=5, scale=2),
    FieldSpec("Quantity", "double", precision=18, scale=0),
    FieldSpec("Score", "double", precision=18, scale=4, calculated=True),
    FieldSpec("Ratio", "double"),
    FieldSpec("Employees", "int"),
    FieldSpec("Big", "long"),
    FieldSpec("IsActive", "boolean"),
    FieldSpec("Founded", "date"),
    FieldSpec("SystemModstamp", "datetime"),
    FieldSpec("OwnerId", "reference"),
    FieldSpec("Wakeup", "time"),
    FieldSpec("Stage", "picklist"),
)

# Salesforce text: anything but NUL; lone surrogates cannot be UTF-8
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
SPECIAL = st.sampled_from(["trailing CR\r", "a\r\nb", "\rlead", "bell\x07 tab\t", "emoji 🚀😀", '"q",', " "])


def _decimal_text(precision: int, scale: int) -> st.SearchStrategy[str]:
    """Number text with at most ``precision - scale`` integer digits and up to ``scale + 2``
    fraction digits (more than the scale: both paths round half-even)."""
    int_digits = max(1, precision - scale)

    @st.composite
    def text(draw: st.DrawFn) -> str:
        sign = draw(st.sampled_from(["", "-"]))
        whole = str(draw(st.integers(0, 10 ** min(int_digits, 17) - 1)))
        frac = draw(st.text("0123456789", max_size=scale + 2))
        return sign + whole + ("." + frac if frac else "")

    return text()


def _float_text() -> st.SearchStrategy[str]:
    return st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr)


def _values(f: FieldSpec) -> st.SearchStrategy[Any]:
    """``(csv text, json value text)`` of one field; json text is inserted as is (numbers bare)."""
    t = f.type
    if t in ("id", "reference"):
        ids = st.text(
            "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=18, max_size=18
        )
        return st.one_of(st.none(), ids)
    if t in ("string", "textarea", "picklist"):
        return st.one_of(st.none(), TEXT, SPECIAL)
    if t == "boolean":
        return st.booleans()
    if t in ("int", "long"):
        return st.one_of(st.none(), st.integers(-(2**53), 2**53).map(str))
    if t in ("currency", "percent", "double") and not f.calculated and f.precision:
        return st.one_of(st.none(), _decimal_text(f.precision, f.scale))
    if t == "double":
        return st.one_of(st.none(), _float_text())
    if t == "date":
        return st.one_of(st.none(), st.dates(date(1700, 1, 1), date(4000, 12, 31)))
    if t == "datetime":
        stamps = st.datetimes(datetime(1900, 1, 1), datetime(3000, 1, 1)).map(
            lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=UTC)
        )
        return st.one_of(st.none(), stamps)
    if t == "time":
        return st.one_of(
            st.none(), st.times().map(lambda v: v.replace(microsecond=v.microsecond // 1000 * 1000))
        )
    raise AssertionError(t)


def _csv_cell(f: FieldSpec, v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, time):
        return v.strftime("%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"
    return str(v)


def _json_cell(f: FieldSpec, v: Any) -> str:
    """The value as REST JSON text."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return json.dumps(v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}+0000")
    if isinstance(v, date):
        return json.dumps(v.isoformat())
    if isinstance(v, time):
        return json.dumps(_csv_cell(f, v))
    if f.type in ("int", "long", "currency", "percent", "double"):
        return v  # a JSON number, written with the same digits as the CSV text
    return json.dumps(v)


def bulk_csv(records: list[list[Any]]) -> bytes:
    def q(s: str) -> str:
        return '"' + s.replace('"', '""') + '"'

    lines = [",".join(q(f.name) for f in FIELDS)]
    lines += [",".join(q(_csv_cell(f, v)) for f, v in zip(FIELDS, r, strict=True)) for r in records]
    return ("\n".join(lines) + "\n").encode()


def rest_records(records: list[list[Any]]) -> list[dict[str, Any]]:
    rows = [
        "{"
        + ", ".join(f"{json.dumps(f.name)}: {_json_cell(f, v)}" for f, v in zip(FIELDS, r, strict=True))
        + "}"
        for r in records
    ]
    body = '{"totalSize": %d, "done": true, "records": [%s]}' % (len(rows), ", ".join(rows))  # noqa: UP031
    out: list[dict[str, Any]] = json.loads(body, parse_float=Decimal)["records"]  # as exact_numbers reads it
    return out


RECORDS = st.lists(st.tuples(*(_values(f) for f in FIELDS)).map(list), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(RECORDS)
def test_bulk_csv_and_rest_json_give_equal_batches(records: list[list[Any]]) -> None:
    by_csv = CsvPageParser("Account", FIELDS)
    by_json = CsvPageParser("Account", FIELDS)
    table = by_csv.parse(bulk_csv(records))
    batch = by_json.records_to_batch(rest_records(records))
    assert batch.schema.equals(table.schema, check_metadata=True)
    assert pa.Table.from_batches([batch]).equals(table)
    assert by_json.rounded_values == by_csv.rounded_values
    assert row_digests(batch) == row_digests(table)


def test_text_is_kept_as_it_is_on_the_rest_path() -> None:
    values = ["trailing CR\r", "a\r\nb", "bell\x07", "emoji 🚀", ""]
    rows = [{"Id": f"001{i:015d}", "Name": v} for i, v in enumerate(values)]
    fields = (FieldSpec("Id", "id"), FieldSpec("Name", "string"))
    batch = CsvPageParser("Account", fields).records_to_batch(rows)
    assert batch.column("Name").to_pylist() == [*values[:-1], None]  # empty string is null, as in CSV
