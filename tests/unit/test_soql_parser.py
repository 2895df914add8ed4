"""SOQL parsing: the forms clients send, and Salesforce-style errors for everything else."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.schema import build_schema
from emulator.soql import (
    And,
    Comparison,
    InList,
    InSubquery,
    Not,
    Or,
    SoqlError,
    parse,
    parse_soql_datetime,
    translate,
)

SCHEMA = build_schema()


def test_simple_select_case_insensitive_keywords_and_double_spaces() -> None:
    q = parse(
        "select  Id,  name FROM   account  where  Name = 'x'  order by Name desc nulls last limit 10 offset 5"
    )
    assert [p.text for p in q.select] == ["Id", "name"]  # type: ignore[union-attr]
    assert q.object == "account" and q.limit == 10 and q.offset == 5
    assert q.order_by[0].descending and q.order_by[0].nulls_last
    assert isinstance(q.where, Comparison) and q.where.value.value == "x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2000-01-01T00:00:00Z", datetime(2000, 1, 1, tzinfo=UTC)),
        ("2024-12-25T00:00:00.000+00:00", datetime(2024, 12, 25, tzinfo=UTC)),
        ("2024-12-25T00:00:00.000+0000", datetime(2024, 12, 25, tzinfo=UTC)),
        ("2026-11-24T19:42:06.000000Z", datetime(2026, 11, 24, 19, 42, 6, tzinfo=UTC)),
        ("2024-12-25T02:00:00.123+02:00", datetime(2024, 12, 25, 0, 0, 0, 123000, tzinfo=UTC)),
        ("2024-12-25T00:00:00.5-0130", datetime(2024, 12, 25, 1, 30, 0, 500000, tzinfo=UTC)),
    ],
)
def test_datetime_literals_in_every_client_form(text: str, expected: datetime) -> None:
    assert parse_soql_datetime(text) == expected
    q = parse(f"SELECT Id FROM Account WHERE SystemModstamp >= {text}")
    assert isinstance(q.where, Comparison)
    assert q.where.value.kind == "datetime" and q.where.value.value == expected


def test_literals_strings_escapes_numbers_dates() -> None:
    q = parse(
        r"SELECT Id FROM Account WHERE Name = 'O\'Brien \\ \n' AND AnnualRevenue > -1.5 "
        "AND LastActivityDate = 2024-01-02 AND IsDeleted = false AND ParentId = null"
    )
    assert isinstance(q.where, And)
    values = [c.value for c in q.where.items]  # type: ignore[union-attr]
    assert values[0].value == "O'Brien \\ \n"
    assert values[1].value == -1.5
    assert values[2].value == date(2024, 1, 2)
    assert values[3].value is False and values[4].kind == "null"


def test_like_keeps_escaped_wildcards() -> None:
    q = parse(r"SELECT Id FROM Account WHERE Name LIKE '50\% off\_%'")
    assert isinstance(q.where, Comparison)
    assert q.where.value.value == "50% off_%"
    assert q.where.value.like == r"50\% off\_%"


def test_boolean_structure_and_in_lists() -> None:
    q = parse(
        "SELECT Id FROM Account WHERE (Name = 'a' OR NOT Name = 'b') AND Id NOT IN ('001', '002') "
        "AND OwnerId IN (SELECT Id FROM User WHERE IsActive = true)"
    )
    assert isinstance(q.where, And)
    a, b, c = q.where.items
    assert isinstance(a, Or) and isinstance(a.items[1], Not)
    assert isinstance(b, InList) and b.negated and len(b.values) == 2
    assert isinstance(c, InSubquery) and c.query.object == "User"


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT FROM Account",
        "SELECT Id Account",
        "SELECT Id FROM Account WHERE",
        "SELECT Id FROM Account WHERE Name = ",
        "SELECT Id FROM Account WHERE Name = 'unterminated",
        "SELECT Id FROM Account LIMIT x",
        "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
        "SELECT Id FROM Account WHERE Name = 'a' extra",
        "SELECT Id FROM Account WHERE Name ~ 'a'",
        "SELECT Id FROM Account WITH SECURITY_ENFORCED",
        "SELECT Id FROM Account WHERE Name = 'bad \\q escape'",
        "SELECT Id FROM Account WHERE CreatedDate > 2024-13-45",
    ],
)
def test_malformed_queries(soql: str) -> None:
    with pytest.raises(SoqlError) as err:
        parse(soql)
    assert err.value.error_code == "MALFORMED_QUERY"


def test_malformed_message_has_row_and_column() -> None:
    with pytest.raises(SoqlError) as err:
        parse("SELECT Id FROM Account WHERE Name = = 'x'")
    assert "ERROR at Row:1:Column:37" in err.value.message
    assert "unexpected token: '='" in err.value.message


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_arbitrary_text_only_raises_soql_error(text: str) -> None:
    try:
        translate(text, SCHEMA, include_deleted=False)
    except SoqlError:
        pass


TOKENS = [
    "SELECT",
    "Id",
    "Name",
    ",",
    "FROM",
    "Account",
    "Contact",
    "WHERE",
    "=",
    "!=",
    "<",
    ">=",
    "'x'",
    "1",
    "2024-01-01",
    "2024-01-01T00:00:00Z",
    "AND",
    "OR",
    "NOT",
    "(",
    ")",
    "IN",
    "LIKE",
    "null",
    "true",
    "ORDER",
    "BY",
    "LIMIT",
    "Owner.Name",
    "COUNT()",
    "IsDeleted",
    "CreatedDate",
    "AnnualRevenue",
    "DESC",
    "NULLS",
    "LAST",
    "GROUP",
    "OFFSET",
    "TODAY",
    "LAST_N_DAYS:3",
    "INCLUDES",
    "Tags__c",
    "Invoice__c",
    ".",
]


@settings(max_examples=500)
@given(st.lists(st.sampled_from(TOKENS), max_size=16))
def test_token_soup_only_raises_soql_error(tokens: list[str]) -> None:
    try:
        translate("SELECT Id FROM Account WHERE " + " ".join(tokens), SCHEMA, include_deleted=True)
        translate(" ".join(tokens), SCHEMA, include_deleted=False)
    except SoqlError as e:
        assert e.error_code in {
            "MALFORMED_QUERY",
            "INVALID_FIELD",
            "INVALID_TYPE",
            "INVALID_QUERY_FILTER_OPERATOR",
            "NUMBER_OUTSIDE_VALID_RANGE",
        }


@pytest.mark.parametrize("obj", ["Group", "Order", "group"])
def test_objects_named_like_soql_keywords_are_queried(obj: str) -> None:
    """Salesforce has standard objects called Group and Order and runs ``SELECT COUNT() FROM Group``;
    the parser read the name as the keyword (MALFORMED_QUERY), which a backup of an org describing
    them met on its first COUNT()."""
    q = parse(f"SELECT COUNT() FROM {obj}")
    assert q.object == obj
    q = parse(f"SELECT Id FROM {obj} WHERE Id > '0' ORDER BY Id LIMIT 5")
    assert q.object == obj and q.limit == 5 and q.alias is None
    with pytest.raises(SoqlError):
        parse("SELECT Id FROM WHERE Id > '0'")
