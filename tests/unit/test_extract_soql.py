"""SOQL builder tests (examples + properties)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.extract import idmath
from engine.extract.soql import Soql, datetime_literal, ident, string_literal

names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_]{0,30}\Z")
aware = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


def test_partition_query_shape() -> None:
    q = (
        Soql.select("Account", ["Id", "Name", "SystemModstamp"])
        .with_id_range("001000000000001", "00100000000000A")
        .with_window("SystemModstamp", datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    )
    assert q.render() == (
        "SELECT Id, Name, SystemModstamp FROM Account WHERE Id >= '001000000000001AAA' "
        "AND Id < '00100000000000AAAQ' AND SystemModstamp >= 2024-01-02T03:04:05.678Z"
    )
    assert "ORDER BY" not in q.render()


def test_count_and_deleted() -> None:
    q = Soql.count("Contact").with_deleted(True)
    assert q.render() == "SELECT COUNT() FROM Contact WHERE IsDeleted = true"


def test_open_bounds_add_nothing() -> None:
    assert Soql.select("Case", ["Id"]).with_id_range(None, None).render() == "SELECT Id FROM Case"


def test_identifiers_are_checked() -> None:
    for bad in ("Name; DELETE", "a b", "1abc", "x'y", ""):
        with pytest.raises(ValueError):
            ident(bad)
    assert ident("Owner.Name") == "Owner.Name"


def test_naive_datetime_refused() -> None:
    with pytest.raises(ValueError):
        datetime_literal(datetime(2024, 1, 1))


def test_other_zones_are_converted_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    assert datetime_literal(datetime(2024, 1, 1, 1, 0, tzinfo=cet)) == "2024-01-01T00:00:00.000Z"


@given(aware)
def test_datetime_literal_format_and_truncation(dt: datetime) -> None:
    lit = datetime_literal(dt)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", lit)
    back = datetime.strptime(lit, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert back <= dt < back + timedelta(milliseconds=1)  # truncation never moves a window start later


@given(st.text())
def test_string_literal_cannot_escape(s: str) -> None:
    lit = string_literal(s)
    assert lit.startswith("'") and lit.endswith("'")
    body = lit[1:-1]
    # every quote inside is escaped by an odd run of backslashes
    for m in re.finditer(r"(\\*)'", body):
        assert len(m.group(1)) % 2 == 1


@given(names, st.lists(names, min_size=1, max_size=8), st.integers(0, idmath.MAX_VALUE - 1))
def test_select_renders_fields_in_order(obj: str, fields: list[str], lo: int) -> None:
    q = Soql.select(obj, fields).with_id_range(idmath.encode(lo), idmath.encode(lo + 1))
    text = q.render()
    assert text.startswith(f"SELECT {', '.join(fields)} FROM {obj} WHERE ")
    assert f"Id >= '{idmath.to18(idmath.encode(lo))}'" in text
    assert text.count(" AND ") == 1
