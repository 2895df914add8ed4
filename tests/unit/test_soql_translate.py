"""SOQL translation against a real generated org in DuckDB.

The property test builds random WHERE trees over real Account fields and literals drawn from the
data, runs the translated SQL, and checks the Ids against a Python evaluation of the same tree
with Salesforce's semantics (case-insensitive text, null-safe ``!=``, case-sensitive Ids).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator import ids as idmod
from emulator.clock import EmulatorClock
from emulator.generator import generate
from emulator.soql import SoqlError, translate
from emulator.store import OrgStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FIELDS = {
    "Id": "id", "Name": "string", "Industry": "picklist", "Rating": "picklist", "AnnualRevenue": "currency",
    "NumberOfEmployees": "int", "CreatedDate": "datetime", "SystemModstamp": "datetime",
    "LastActivityDate": "date", "OwnerId": "reference", "ParentId": "reference", "IsDeleted": "boolean",
    "BillingCity": "string", "Phone": "phone",
}  # fmt: skip


@pytest.fixture(scope="module")
def org() -> Iterator[OrgStore]:
    store = OrgStore(clock=EmulatorClock(NOW))
    generate(store, 3000, seed=7)
    yield store
    store.close()


@pytest.fixture(scope="module")
def rows(org: OrgStore) -> list[dict[str, Any]]:
    cols = ", ".join(f'"{c}"' for c in FIELDS)
    with org.cursor() as cur:
        result = cur.execute(f"SELECT {cols} FROM sf_account").fetchall()
    return [dict(zip(FIELDS, r, strict=True)) for r in result]


# -- a tiny reference model of SOQL semantics ------------------------------------------------------


@dataclass
class Cond:
    soql: str
    pred: Callable[[dict[str, Any]], bool]


def _norm(ftype: str, v: Any) -> Any:
    if v is None:
        return None
    if ftype in ("string", "picklist", "phone"):
        return v.lower()
    return v


def _soql_literal(ftype: str, v: Any, style: int) -> str:
    if v is None:
        return "null"
    if ftype in ("id", "reference"):
        return "'" + (v[:15] if style % 2 else v) + "'"
    if ftype in ("string", "picklist", "phone"):
        return (
            "'"
            + v.replace("\\", "\\\\")
            .replace("'", "\\'")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            .replace("\t", "\\t")
            + "'"
        )
    if ftype == "boolean":
        return "true" if v else "false"
    if ftype == "date":
        return v.isoformat()
    if ftype == "datetime":
        forms = [
            "%Y-%m-%dT%H:%M:%S.{ms}Z",
            "%Y-%m-%dT%H:%M:%S.{ms}+0000",
            "%Y-%m-%dT%H:%M:%S.{ms}+00:00",
            "%Y-%m-%dT%H:%M:%S.{ms}000Z",
        ]
        return v.strftime(forms[style % len(forms)]).replace("{ms}", f"{v.microsecond // 1000:03d}")
    if isinstance(v, float) and v.is_integer():
        return str(int(v)) if style % 2 else repr(v)
    return repr(v)


OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _like_to_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), re.S | re.I)


@st.composite
def conditions(draw: st.DrawFn, rows: list[dict[str, Any]], depth: int = 0) -> Cond:
    kind = draw(
        st.sampled_from(["cmp", "cmp", "cmp", "in", "like", "and", "or", "not"] if depth < 3 else ["cmp"])
    )
    if kind in ("and", "or"):
        parts = draw(st.lists(conditions(rows, depth + 1), min_size=2, max_size=3))
        joiner = " AND " if kind == "and" else " OR "
        combine = all if kind == "and" else any
        preds = [p.pred for p in parts]
        return Cond("(" + joiner.join(p.soql for p in parts) + ")", lambda r: combine(p(r) for p in preds))
    if kind == "not":
        inner = draw(conditions(rows, depth + 1))
        return Cond(f"(NOT {inner.soql})", lambda r: not inner.pred(r))
    field = draw(st.sampled_from(sorted(FIELDS)))
    ftype = FIELDS[field]
    pool = [r[field] for r in rows]
    value = draw(st.sampled_from(pool) | st.none())
    if ftype == "datetime" and value is not None:
        value = value + timedelta(milliseconds=draw(st.integers(-2, 2)))
    style = draw(st.integers(0, 7))
    lit = _soql_literal(ftype, value, style)
    fname = draw(st.sampled_from([field, field.lower(), field.upper()]))
    norm_v = _norm(ftype, value)
    if kind == "like" and ftype in ("string", "picklist", "phone") and value:
        cut = draw(st.integers(0, len(value)))
        pat = value[:cut].replace("%", "").replace("_", "") + "%"
        rx = _like_to_regex(pat)
        esc = (
            pat.replace("\\", "\\\\")
            .replace("'", "\\'")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            .replace("\t", "\\t")
        )
        return Cond(
            f"{fname} LIKE '{esc}'", lambda r: r[field] is not None and rx.fullmatch(r[field]) is not None
        )
    if kind == "in" and ftype != "boolean":
        values = [*draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3)), value]
        lits = ", ".join(_soql_literal(ftype, v, style) for v in values)
        normed = {_norm(ftype, v) for v in values}
        negated = draw(st.booleans())
        if negated:
            return Cond(f"{fname} NOT IN ({lits})", lambda r: _norm(ftype, r[field]) not in normed)
        return Cond(f"{fname} IN ({lits})", lambda r: _norm(ftype, r[field]) in normed)
    ops = ["=", "!="] if ftype == "boolean" else ["=", "!=", "<>", "<", "<=", ">", ">="]
    op = draw(st.sampled_from(ops))
    if op in ("=",):
        return Cond(f"{fname} {op} {lit}", lambda r: _norm(ftype, r[field]) == norm_v)
    if op in ("!=", "<>"):
        return Cond(f"{fname} {op} {lit}", lambda r: _norm(ftype, r[field]) != norm_v)
    cmp = OPS[op]
    return Cond(
        f"{fname} {op} {lit}",
        lambda r: norm_v is not None and r[field] is not None and cmp(_norm(ftype, r[field]), norm_v),
    )


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), include_deleted=st.booleans())
def test_where_matches_reference_evaluation(
    org: OrgStore, rows: list[dict[str, Any]], data: st.DataObject, include_deleted: bool
) -> None:
    cond = data.draw(conditions(rows))
    soql = f"SELECT Id FROM Account WHERE {cond.soql}"
    t = translate(soql, org.schema, include_deleted=include_deleted)
    with org.cursor() as cur:
        got = [r[0] for r in cur.execute(t.sql, t.params).fetchall()]
    expected = sorted(r["Id"] for r in rows if cond.pred(r) and (include_deleted or not r["IsDeleted"]))
    assert got == expected, soql


# -- targeted behaviour ----------------------------------------------------------------------------


def _run(
    org: OrgStore, soql: str, *, include_deleted: bool = False, csv: bool = False
) -> list[tuple[Any, ...]]:
    t = translate(soql, org.schema, include_deleted=include_deleted, now=NOW)
    with org.cursor() as cur:
        return cur.execute(t.csv_sql if csv else t.sql, t.params).fetchall()


def test_query_hides_deleted_rows_and_query_all_shows_them(org: OrgStore) -> None:
    live = _run(org, "SELECT COUNT() FROM Account")[0][0]
    everything = _run(org, "SELECT COUNT() FROM Account", include_deleted=True)[0][0]
    deleted = _run(org, "SELECT COUNT() FROM Account WHERE IsDeleted = true", include_deleted=True)[0][0]
    assert deleted > 0 and live + deleted == everything
    assert org.counts()["Account"] == live and org.counts(include_deleted=True)["Account"] == everything


def test_id_ranges_compare_case_sensitively_and_accept_15_chars(org: OrgStore) -> None:
    ids = [r[0] for r in _run(org, "SELECT Id FROM Account ORDER BY Id", include_deleted=True)]
    assert ids == sorted(ids)
    lo, hi = ids[10], ids[20]
    got = [
        r[0]
        for r in _run(
            org, f"SELECT Id FROM Account WHERE Id >= '{lo[:15]}' AND Id < '{hi}'", include_deleted=True
        )
    ]
    assert got == ids[10:20]
    assert _run(org, f"SELECT Id FROM Account WHERE Id = '{lo[:15]}'", include_deleted=True) == [(lo,)]
    # a lower-cased id is another id entirely (or malformed): never matches the row
    lowered = lo[:15].lower()
    if lowered != lo[:15]:
        assert _run(org, f"SELECT Id FROM Account WHERE Id = '{lowered}'", include_deleted=True) == []
    with pytest.raises(SoqlError) as err:
        _run(org, "SELECT Id FROM Account WHERE Id = 'nonsense'")
    assert err.value.error_code == "INVALID_QUERY_FILTER_OPERATOR"


def test_parent_fields_and_polymorphic_who(org: OrgStore) -> None:
    t = translate(
        "SELECT Id, Name, Account.Name, Account.Owner.Name, Owner.Alias FROM Contact LIMIT 5",
        org.schema,
        include_deleted=False,
    )
    assert t.columns == ["Id", "Name", "Account.Name", "Account.Owner.Name", "Owner.Alias"]
    assert t.relationships == [("Account", "Account"), ("Account.Owner", "User"), ("Owner", "User")]
    with org.cursor() as cur:
        rows = cur.execute(t.rest_sql, t.params).fetchall()
    assert len(rows) == 5
    for r in rows:
        assert r[-3] is None or idmod.is_valid_id(r[-3])  # Account id
        if r[-3] is not None:
            assert r[2] is not None
        assert r[-1] is not None and r[4] is not None  # owner
    rows2 = _run(org, "SELECT Id, Who.Name, Who.Type, What.Name FROM Task WHERE WhoId != null LIMIT 20")
    assert rows2 and all(r[1] is not None and r[2] in ("Contact", "Lead") for r in rows2)


def test_semi_join(org: OrgStore) -> None:
    got = _run(org, "SELECT COUNT() FROM Account WHERE Id IN (SELECT AccountId FROM Contact)")[0][0]
    with org.cursor() as cur:
        exp = cur.execute(
            "SELECT count(*) FROM sf_account WHERE NOT IsDeleted AND Id IN "
            "(SELECT AccountId FROM sf_contact WHERE NOT IsDeleted)"
        ).fetchone()
    assert exp is not None and got == exp[0] > 0


def test_order_by_nulls_and_limit_offset(org: OrgStore) -> None:
    rows = _run(org, "SELECT Id, AnnualRevenue FROM Account ORDER BY AnnualRevenue ASC NULLS FIRST LIMIT 50")
    revenues = [r[1] for r in rows]
    nulls = [v for v in revenues if v is None]
    assert revenues[: len(nulls)] == nulls
    assert revenues[len(nulls) :] == sorted(revenues[len(nulls) :])
    desc = [
        r[1] for r in _run(org, "SELECT Id, AnnualRevenue FROM Account ORDER BY AnnualRevenue DESC LIMIT 5")
    ]
    assert None not in desc and desc == sorted(desc, reverse=True)
    a = _run(org, "SELECT Id FROM Account ORDER BY Name LIMIT 10")
    b = _run(org, "SELECT Id FROM Account ORDER BY Name LIMIT 5 OFFSET 5")
    assert a[5:] == b


def test_date_literals(org: OrgStore) -> None:
    n = _run(org, "SELECT COUNT() FROM Account WHERE CreatedDate = LAST_N_DAYS:30")[0][0]
    with org.cursor() as cur:
        exp = cur.execute(
            "SELECT count(*) FROM sf_account WHERE NOT IsDeleted AND CreatedDate >= ?",
            [datetime(2025, 12, 2)],
        ).fetchone()
    assert exp is not None and n == exp[0] > 0


def test_csv_formats(org: OrgStore) -> None:
    rows = _run(
        org,
        "SELECT Id, CreatedDate, LastActivityDate, AnnualRevenue, IsDeleted, NumberOfEmployees "
        "FROM Account WHERE LastActivityDate != null AND AnnualRevenue != null LIMIT 20",
        csv=True,
    )
    assert rows
    for r in rows:
        assert all(isinstance(v, str) for v in r[:5]) and (r[5] is None or r[5].isdigit())
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r[1])
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", r[2])
        assert re.fullmatch(r"-?\d+(\.\d+)?", r[3]) and "e" not in r[3].lower()
        assert r[4] == "false"
    times = _run(
        org,
        "SELECT Reminder_Time__c, Amount__c, Tax_Rate__c, Tags__c FROM Invoice__c "
        "WHERE Reminder_Time__c != null LIMIT 5",
        csv=True,
    )
    assert times and all(re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}Z", r[0]) for r in times)
    nulls = _run(org, "SELECT Id, ParentId FROM Account WHERE ParentId = null LIMIT 1", csv=True)
    assert nulls[0][1] is None


def test_count_aggregates_and_flags(org: OrgStore) -> None:
    t = translate("SELECT COUNT() FROM Contact WHERE AccountId != null", org.schema, include_deleted=False)
    assert t.is_count and t.count_sql is not None and t.columns == []
    t = translate(
        "SELECT Industry, COUNT(Id), MAX(AnnualRevenue) m FROM Account GROUP BY Industry",
        org.schema,
        include_deleted=False,
    )
    assert t.has_aggregate and t.columns == ["Industry", "expr0", "m"]
    t = translate(
        "SELECT Id, Location__c FROM Invoice__c WHERE Location__Latitude__s != null LIMIT 3",
        org.schema,
        include_deleted=False,
    )
    assert t.selects_compound and t.field_types == ["id", "location"]
    with org.cursor() as cur:
        locs = [r[1] for r in cur.execute(t.sql, t.params).fetchall()]
    assert locs and all(set(loc) == {"latitude", "longitude"} for loc in locs)
    t = translate("SELECT Id, BillingAddress FROM Account", org.schema, include_deleted=False)
    assert t.selects_compound and t.field_types == ["id", "address"]
    t = translate(
        "SELECT Id, Body FROM Attachment LIMIT 1", org.schema, include_deleted=False, api_version="61.0"
    )
    with org.cursor() as cur:
        rid, body = cur.execute(t.sql, t.params).fetchone()  # type: ignore[misc]
    assert body == f"/services/data/v61.0/sobjects/Attachment/{rid}/Body"


@pytest.mark.parametrize(
    ("soql", "code", "fragment"),
    [
        ("SELECT Id FROM Foo__c", "INVALID_TYPE", "sObject type 'Foo__c' is not supported."),
        ("SELECT Foo FROM Account", "INVALID_FIELD", "No such column 'Foo' on entity 'Account'."),
        ("SELECT Tax_Id__c FROM Account", "INVALID_FIELD", "No such column 'Tax_Id__c' on entity 'Account'."),
        ("SELECT Id FROM Account WHERE Tax_Id__c = 'x'", "INVALID_FIELD", "Tax_Id__c"),
        ("SELECT Bogus.Name FROM Account", "INVALID_FIELD", "Didn't understand relationship 'Bogus'"),
        (
            "SELECT Id FROM Account WHERE CreatedDate > 2024-01-01",
            "INVALID_FIELD",
            "must be of type dateTime",
        ),
        ("SELECT Id FROM Account WHERE AnnualRevenue = '5'", "INVALID_FIELD", "must be of type number"),
        ("SELECT Id FROM Account WHERE IsDeleted > true", "INVALID_QUERY_FILTER_OPERATOR", "boolean"),
        ("SELECT Id FROM Account WHERE Description = 'x'", "INVALID_FIELD", "can not be filtered"),
        (
            "SELECT Id FROM ContentDocumentLink",
            "MALFORMED_QUERY",
            "Implementation restriction: ContentDocumentLink",
        ),
        ("SELECT Id FROM Account OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "2000"),
        ("SELECT Name, COUNT(Id) FROM Account", "MALFORMED_QUERY", "grouped or aggregated"),
    ],
)
def test_salesforce_errors(org: OrgStore, soql: str, code: str, fragment: str) -> None:
    with pytest.raises(SoqlError) as err:
        translate(soql, org.schema, include_deleted=False)
    assert err.value.error_code == code
    assert fragment in err.value.message


def test_content_document_link_with_filter(org: OrgStore) -> None:
    doc = _run(org, "SELECT Id FROM ContentDocument LIMIT 1")[0][0]
    rows = _run(org, f"SELECT Id, LinkedEntityId FROM ContentDocumentLink WHERE ContentDocumentId = '{doc}'")
    assert len(rows) >= 1


def test_literals_are_bound_never_interpolated(org: OrgStore) -> None:
    evil = "x'); DROP TABLE sf_account; --"
    t = translate(
        "SELECT Id FROM Account WHERE Name = 'x\\'); DROP TABLE sf_account; --'",
        org.schema,
        include_deleted=False,
    )
    assert "DROP" not in t.sql and evil in t.params
    assert _run(org, "SELECT COUNT() FROM Account")[0][0] > 0


def test_date_field_against_dates(org: OrgStore) -> None:
    d = date(2025, 6, 1)
    n = _run(org, f"SELECT COUNT() FROM Account WHERE LastActivityDate >= {d.isoformat()}")[0][0]
    with org.cursor() as cur:
        exp = cur.execute(
            "SELECT count(*) FROM sf_account WHERE NOT IsDeleted AND LastActivityDate >= ?", [d]
        ).fetchone()
    assert exp is not None and n == exp[0]


NO_SUCH_COLUMN = (
    "No such column 'Nope' on entity 'Account'. If you are attempting to use a custom field, be sure to"
    " append the '__c' after the custom field name. Please reference your WSDL or the describe call for the"
    " appropriate names."
)


@pytest.mark.parametrize(
    ("soql", "code", "message"),
    [
        (
            "SELECT Id, Nope FROM Account",
            "INVALID_FIELD",
            f"\nSELECT Id, Nope FROM Account\n           ^\nERROR at Row:1:Column:12\n{NO_SUCH_COLUMN}",
        ),
        (
            "SELECT Id FROM Account WHERE Nope = 'x'",
            "INVALID_FIELD",
            f"\nSELECT Id FROM Account WHERE Nope = 'x'\n                             ^\n"
            f"ERROR at Row:1:Column:30\n{NO_SUCH_COLUMN}",
        ),
        (
            "SELECT Id, Name FROM AccountOpps WHERE Name like 'x%'",
            "INVALID_TYPE",
            "\nSELECT Id, Name FROM AccountOpps WHERE Name like 'x%'\n                     ^\n"
            "ERROR at Row:1:Column:22\nsObject type 'AccountOpps' is not supported. If you are attempting"
            " to use a custom object, be sure to append the '__c' after the entity name. Please reference"
            " your WSDL or the describe call for the appropriate names.",
        ),
    ],
)
def test_invalid_field_and_type_echo_the_statement(org: OrgStore, soql: str, code: str, message: str) -> None:
    """Salesforce puts the statement, a caret and ``ERROR at Row:1:Column:N`` before the message."""
    with pytest.raises(SoqlError) as err:
        translate(soql, org.schema, include_deleted=False)
    assert (err.value.error_code, err.value.message) == (code, message)
