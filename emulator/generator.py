# ruff: noqa: E501  (long SQL snippets read better unwrapped)
"""A fast, seeded generator of realistic org data.

The heavy objects are made by one ``INSERT ... SELECT FROM range(n)`` each: every value is a
function of (seed, row counter) through DuckDB's ``hash``, Ids come from the ``sf_id`` macro,
so no Python loop runs per row and the same seed always gives the same org (same
:meth:`OrgStore.digest`). The small setup objects (users, profiles, permissions, the
organization, event log files) are built in Python.

Shape of the data (what the exporters and the backup engine must survive):

* skew: Task, Contact and the custom objects hold most rows;
* parents that resolve: ``Contact.AccountId`` points at a real Account, ``OwnerId`` /
  ``CreatedById`` at real Users, Task ``WhoId`` / ``WhatId`` at real Contacts/Leads/Accounts...;
* Ids grow with CreatedDate; ``CreatedDate <= LastModifiedDate <= SystemModstamp <= now``, and
  about one row in ten has a SystemModstamp on a whole hour, shared with other rows;
* text with double quotes, commas, CR/LF newlines, tabs, backslashes, non-BMP emoji, NULLs
  and (in ``Invoice__c.Summary__c``) empty strings; a few soft-deleted rows (recycle bin) and
  archived Tasks;
* file bodies of about ``file_body_bytes`` bytes, derived from the seed and the Id on demand.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from emulator import ids as idmod
from emulator.schema import PERMISSION_FLAGS, ObjectDef
from emulator.store import OrgStore, naive_utc, q

SPAN_DAYS = 730
SUMMARY_BASE = "CAST(i AS VARCHAR) || ' items'"

# share of the generated rows per heavy object (normalised over the objects in the schema)
WEIGHTS: dict[str, float] = {
    "Account": 0.07,
    "Contact": 0.17,
    "Lead": 0.06,
    "Opportunity": 0.05,
    "Case": 0.05,
    "Task": 0.21,
    "Event": 0.05,
    "Invoice__c": 0.12,
    "Shipment__c": 0.08,
    "Attachment": 0.01,
    "Document": 0.002,
    "ContentDocument": 0.008,
    "ContentVersion": 0.01,
    "ContentDocumentLink": 0.016,
    "AccountHistory": 0.03,
    "AccountShare": 0.01,
    "AccountFeed": 0.01,
}
EXTRA_CUSTOM_WEIGHT = 0.02

PROFILES = (
    # name, licence, user type
    ("System Administrator", "Salesforce", "Standard"),
    ("Standard User", "Salesforce", "Standard"),
    ("Read Only", "Salesforce", "Standard"),
    ("Marketing User", "Salesforce", "Standard"),
    ("Contract Manager", "Salesforce", "Standard"),
    ("Standard Platform User", "Salesforce Platform", "Standard"),
    ("Customer Community User", "Customer Community", "CspLitePortal"),
    ("Chatter Free User", "Chatter Free", "CsnOnly"),
)
LICENSES = (
    ("Salesforce", "SFDC", 100),
    ("Salesforce Platform", "AUL", 50),
    ("Customer Community", "PID_Customer_Community", 500),
    ("Chatter Free", "PID_Chatter", 5000),
)
EXTRA_PERMISSION_SETS: tuple[tuple[str, str, set[str]], ...] = (
    # name, label, flags
    (
        "Sfvault_Backup",
        "sfvault Backup",
        {
            "PermissionsApiEnabled",
            "PermissionsViewAllData",
            "PermissionsQueryAllFiles",
            "PermissionsViewSetup",
            "PermissionsViewEventLogFiles",
        },
    ),
    ("Sales_Operations", "Sales Operations", {"PermissionsApiEnabled"}),
    ("Marketing_Tools", "Marketing Tools", set()),
)
CRM_OBJECTS = (
    "Account",
    "Contact",
    "Lead",
    "Opportunity",
    "Case",
    "Task",
    "Event",
    "Document",
    "ContentVersion",
    "Attachment",
)

FIRST_NAMES = [
    "Ann",
    "Bob",
    "Chloé",
    "Dmitri",
    "Eve",
    "François",
    "Grace",
    "Hiro",
    "Ines",
    "José",
    "Kai",
    "Léa",
    "Mohammed",
    "Nora",
    "O'Brien",
    "Priya",
    "Quinn",
    "Raúl",
    "Sven",
    "Zoë",
]
LAST_NAMES = [
    "Smith",
    "Jones",
    "Müller",
    "García",
    "Rossi",
    "Dubois",
    "O'Neil",
    "Nakamura",
    "Kowalski",
    "Nguyen",
    "Johansson",
    "da Silva",
    "Van der Berg",
    "Smith-Jones",
    "Øster",
    "Zhang",
]
COMPANY_WORDS = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Cyberdyne",
    "Tyrell",
    "Wonka",
    "Aperture",
    "Massive",
    "Dunder",
]
COMPANY_SUFFIX = ["Inc.", "LLC", "GmbH", "S.A.", "Ltd", "Corp", "AG", "BV", "SARL", "KK"]
CITIES = [
    "Paris",
    "London",
    "New York",
    "San Francisco",
    "Berlin",
    "Tokyo",
    "São Paulo",
    "Zürich",
    "Montréal",
    "Kraków",
]
COUNTRIES = [
    "France",
    "United Kingdom",
    "USA",
    "USA",
    "Germany",
    "Japan",
    "Brazil",
    "Switzerland",
    "Canada",
    "Poland",
]


def _lit(values: list[str] | tuple[str, ...]) -> str:
    """A DuckDB list literal of strings (generator-internal constants only)."""
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


@dataclass
class _Ctx:
    store: OrgStore
    seed: int
    now_us: int
    span_us: int
    file_body_bytes: int
    ranges: dict[str, tuple[int, int]]  # object -> (first counter, count)
    active_users: tuple[int, int]
    described: frozenset[str] = frozenset()
    """Objects added by a schema description (:mod:`emulator.schema_data`): values by field type."""


class _Exprs:
    """SQL snippets over the row counter ``i`` (and ``k`` = 0-based position in the batch)."""

    def __init__(self, ctx: _Ctx, obj_name: str) -> None:
        self.ctx = ctx
        self.obj = obj_name

    def h(self, key: str) -> str:
        return f"hash(i, {self.ctx.seed}, '{self.obj}.{key}')"

    def u(self, key: str, n: int) -> str:
        """An integer in ``[0, n)``."""
        return f"CAST({self.h(key)} % {max(1, n)} AS BIGINT)"

    def pct(self, key: str, p: float) -> str:
        """True for about ``p`` percent of the rows."""
        return f"({self.h(key)} % 10000 < {int(p * 100)})"

    def pick(self, key: str, values: list[str] | tuple[str, ...]) -> str:
        return f"{_lit(values)}[{self.u(key, len(values))} + 1]"

    def ref(self, target: str, key: str, null_pct: float = 0.0) -> str:
        """An Id of an existing record of ``target`` (NULL for ``null_pct`` percent of rows)."""
        first, count = self.ctx.ranges.get(target, (1, 0))
        prefix = self.ctx.store.schema[target].key_prefix
        if count == 0:
            return "CAST(NULL AS VARCHAR)"
        expr = f"sf_id('{prefix}', {first} + {self.u(key, count)})"
        if null_pct > 0:
            return f"(CASE WHEN {self.pct(key + '.null', null_pct)} THEN NULL ELSE {expr} END)"
        return expr

    def user(self, key: str) -> str:
        first, count = self.ctx.active_users
        return f"sf_id('005', {first} + {self.u(key, count)})"

    def any_user(self, key: str) -> str:
        return self.ref("User", key)

    def text(self, key: str, base: str, null_pct: float = 0.0) -> str:
        """``base`` (an SQL string expression), with a hard case mixed into some rows."""
        hard = (
            f"CASE {self.u(key + '.hard', 40)}"
            f" WHEN 0 THEN {base} || ' \"quoted\", with comma'"
            f" WHEN 1 THEN {base} || chr(10) || 'second line' || chr(13) || chr(10) || 'third'"
            f" WHEN 2 THEN {base} || ' 😀 emoji 𝄞'"
            f" WHEN 3 THEN {base} || ' back\\slash \\n not a newline'"
            f" WHEN 4 THEN {base} || chr(9) || 'tab;semi|pipe^caret`tick'"
            f" WHEN 5 THEN '\"' || {base} || '\"'"
            f" WHEN 6 THEN ' ' || {base} || ' '"
            f" ELSE {base} END"
        )
        if null_pct > 0:
            return f"(CASE WHEN {self.pct(key + '.null', null_pct)} THEN NULL ELSE {hard} END)"
        return f"({hard})"

    def long_text(self, key: str, null_pct: float = 30.0) -> str:
        words = ["lorem", "ipsum", "dolor", "sit", "amet", "naïve", "café", "Straße", "日本語", "données"]
        body = (
            f"{self.pick(key + '.w1', words)} || ' ' || {self.pick(key + '.w2', words)} || ' ' || "
            f"repeat({self.pick(key + '.w3', words)} || ' ', CAST({self.u(key + '.len', 30)} AS INTEGER))"
        )
        return self.text(key, body, null_pct)

    def number(self, key: str, lo: float, hi: float, scale: int, null_pct: float = 0.0) -> str:
        span = int((hi - lo) * 10**scale)
        expr = f"round({lo} + {self.u(key, span + 1)} / {10**scale}.0, {scale})"
        if null_pct > 0:
            return f"(CASE WHEN {self.pct(key + '.null', null_pct)} THEN NULL ELSE {expr} END)"
        return expr

    def date_expr(self, key: str, null_pct: float = 0.0, future_days: int = 0) -> str:
        """A date in the span (or up to ``future_days`` after now)."""
        days = SPAN_DAYS + future_days
        expr = (
            f"CAST(make_timestamp({self.ctx.now_us - self.ctx.span_us}) AS DATE)"
            f" + CAST({self.u(key, days)} AS INTEGER)"
        )
        if null_pct > 0:
            return f"(CASE WHEN {self.pct(key + '.null', null_pct)} THEN NULL ELSE {expr} END)"
        return expr

    def ts_expr(self, key: str, null_pct: float = 0.0) -> str:
        expr = (
            f"make_timestamp(({self.ctx.now_us - self.ctx.span_us} + {self.u(key, self.ctx.span_us)})"
            " // 1000 * 1000)"
        )
        if null_pct > 0:
            return f"(CASE WHEN {self.pct(key + '.null', null_pct)} THEN NULL ELSE {expr} END)"
        return expr

    def time_expr(self, key: str, null_pct: float = 0.0) -> str:
        expr = f"make_time(0, 0, 0) + to_milliseconds({self.u(key, 86_400_000)})"
        expr = f"CAST(TIMESTAMP '2000-01-01' + to_milliseconds({self.u(key, 86_400_000)}) AS TIME)"
        if null_pct > 0:
            return f"(CASE WHEN {self.pct(key + '.null', null_pct)} THEN NULL ELSE {expr} END)"
        return expr

    def person_first(self) -> str:
        return self.text("first", self.pick("first", FIRST_NAMES), null_pct=5)

    def person_last(self) -> str:
        return f"{self.pick('last', LAST_NAMES)} || ' ' || CAST(i AS VARCHAR)"

    def company(self) -> str:
        base = (
            f"{self.pick('co1', COMPANY_WORDS)} || ' ' || {self.pick('co2', COMPANY_SUFFIX)}"
            " || ' #' || CAST(i AS VARCHAR)"
        )
        return self.text("company", base)

    def email(self, key: str, null_pct: float = 10.0) -> str:
        base = f"lower({self.pick(key + '.u', FIRST_NAMES)}) || '.' || CAST(i AS VARCHAR) || '@example.com'"
        return f"(CASE WHEN {self.pct(key + '.null', null_pct)} THEN NULL ELSE replace({base}, '''', '') END)"

    def phone(self, key: str, null_pct: float = 20.0) -> str:
        base = f"'+1 (' || CAST(200 + {self.u(key + '.a', 700)} AS VARCHAR) || ') 555-' || lpad(CAST({self.u(key, 10000)} AS VARCHAR), 4, '0')"
        return f"(CASE WHEN {self.pct(key + '.null', null_pct)} THEN NULL ELSE {base} END)"

    def address(self, prefix: str, null_pct: float = 15.0) -> dict[str, str]:
        n = self.pct(prefix + "addr.null", null_pct)
        city_idx = self.u(prefix + "city", len(CITIES))

        def wrap(e: str) -> str:
            return f"(CASE WHEN {n} THEN NULL ELSE {e} END)"

        return {
            prefix + "Street": wrap(
                f"CAST(1 + {self.u(prefix + 'no', 999)} AS VARCHAR) || ' Main St'"
                f" || CASE WHEN {self.pct(prefix + 'st2', 10)} THEN chr(10) || 'Suite 5' ELSE '' END"
            ),
            prefix + "City": wrap(f"{_lit(CITIES)}[{city_idx} + 1]"),
            prefix + "State": wrap("CAST(NULL AS VARCHAR)"),
            prefix + "PostalCode": wrap(f"lpad(CAST({self.u(prefix + 'zip', 99999)} AS VARCHAR), 5, '0')"),
            prefix + "Country": wrap(f"{_lit(COUNTRIES)}[{city_idx} + 1]"),
            prefix + "Latitude": wrap(self.number(prefix + "lat", -60, 70, 6)),
            prefix + "Longitude": wrap(self.number(prefix + "lon", -170, 170, 6)),
            prefix + "GeocodeAccuracy": wrap("'Address'"),
        }


def _audit_sql(
    ctx: _Ctx, obj: ObjectDef, first: int, count: int, *, fresh: bool
) -> tuple[str, dict[str, str]]:
    """The inner SELECT computing the timestamps per row, and the outer expressions for them.

    Rows are spread over the last ``SPAN_DAYS`` days in counter order (so Ids grow with
    CreatedDate); with ``fresh`` they are all created "now" (churn inserts).
    """
    e = _Exprs(ctx, obj.name)
    now = ctx.now_us
    step = max(1, ctx.span_us // max(1, count))
    # one group of four consecutive rows in ten is a "data load": the four share one timestamp
    # for CreatedDate, LastModifiedDate and SystemModstamp (the duplicate-cursor case)
    group = f"((i - {first}) // 4)"
    dup = "false" if fresh else f"(hash({group}, {ctx.seed}, '{obj.name}.dup') % 10 = 0)"
    if fresh:
        created = f"{now}"
    else:
        created = (
            f"(CASE WHEN {dup} THEN {now - ctx.span_us} + {group} * 4 * {step}"
            f" ELSE {now - ctx.span_us} + (i - {first}) * {step} + {e.u('jit', max(1, step))} END)"
        )
    inner = (
        f"SELECT i, least({created}, {now}) // 1000 * 1000 AS c_us, {dup} AS dup"
        f" FROM range({first}, {first + count}) AS r(i)"
    )
    mid = (
        "SELECT i, c_us, m_us, CASE WHEN dup THEN m_us ELSE least("
        f"{now}, m_us + CASE WHEN {e.pct('sys', 20)} THEN {e.u('sysd', 86_400_000)} * 1000 ELSE 0 END) END AS s_us"
        f" FROM (SELECT i, c_us, dup, CASE WHEN dup OR NOT {e.pct('mod', 60)} THEN c_us ELSE"
        f" (c_us + {e.u('modd', 1 << 40)} % ({now} - c_us + 1)) // 1000 * 1000 END AS m_us FROM ({inner}))"
    )
    outer = {
        "CreatedDate": "make_timestamp(c_us)",
        "LastModifiedDate": "make_timestamp(m_us)",
        "SystemModstamp": "make_timestamp(s_us)",
        "CreatedById": e.any_user("cby"),
        "LastModifiedById": e.any_user("mby"),
    }
    if obj.name == "AccountShare":
        outer["LastModifiedDate"] = "make_timestamp(s_us)"
    return mid, outer


def _values_for(ctx: _Ctx, obj: ObjectDef) -> dict[str, str]:
    """Column name -> SQL expression over ``i`` for a heavy object."""
    e = _Exprs(ctx, obj.name)
    n = obj.name
    v: dict[str, str] = {}
    if n == "Account":
        v = {
            "Name": e.company(),
            "Type": e.pick("type", obj.field("Type").picklist_values),  # type: ignore[union-attr]
            "ParentId": f"CASE WHEN i > {ctx.ranges['Account'][0] + 10} AND {e.pct('par', 5)} THEN "
            f"sf_id('001', {ctx.ranges['Account'][0]} + {e.u('parent', 10)}) END",
            **e.address("Billing"),
            **e.address("Shipping", 50),
            "Phone": e.phone("phone"),
            "Fax": e.phone("fax", 80),
            "AccountNumber": f"CASE WHEN {e.pct('an', 30)} THEN NULL ELSE 'AC-' || lpad(CAST(i AS VARCHAR), 8, '0') END",
            "Website": f"CASE WHEN {e.pct('web', 40)} THEN NULL ELSE 'https://www.example.com/?q=' || CAST(i AS VARCHAR)"
            " || '&lang=fr' END",
            "Industry": e.pick("ind", obj.field("Industry").picklist_values),  # type: ignore[union-attr]
            "AnnualRevenue": e.number("rev", 0, 5e9, 0, 30),
            "NumberOfEmployees": f"CASE WHEN {e.pct('emp.n', 20)} THEN NULL ELSE {e.u('emp', 100000)} END",
            "Rating": e.pick("rating", ("Hot", "Warm", "Cold")),
            "Description": e.long_text("desc", 40),
            "OwnerId": e.user("owner"),
            "Tax_Id__c": "'TX' || lpad(CAST(i AS VARCHAR), 9, '0')",
            "LastActivityDate": e.date_expr("lad", 50),
        }
    elif n in ("Contact", "Lead"):
        v = {
            "FirstName": e.person_first(),
            "LastName": e.person_last(),
            "Email": e.email("email"),
            "Phone": e.phone("phone"),
            "OwnerId": e.user("owner"),
            "Description": e.long_text("desc", 60),
            "LeadSource": e.pick(
                "src", ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
            ),
        }
        v["Name"] = f"concat_ws(' ', {v['FirstName']}, {v['LastName']})"
        if n == "Contact":
            v.update(
                {
                    "AccountId": e.ref("Account", "acct", 5),
                    **e.address("Mailing", 30),
                    "MobilePhone": e.phone("mob", 50),
                    "Title": e.text(
                        "title",
                        e.pick("title", ("CEO", "CTO", "VP Sales", "Engineer", "Buyer", "Office Manager")),
                        20,
                    ),
                    "Birthdate": f"CASE WHEN {e.pct('bd', 50)} THEN NULL ELSE DATE '1950-01-01' + "
                    f"CAST({e.u('bdd', 18000)} AS INTEGER) END",
                    "HasOptedOutOfEmail": e.pct("opt", 10),
                    "DoNotCall": e.pct("dnc", 5),
                    "ReportsToId": f"CASE WHEN i > {ctx.ranges['Contact'][0] + 20} AND {e.pct('rt', 10)} THEN "
                    f"sf_id('003', {ctx.ranges['Contact'][0]} + {e.u('rtc', 20)}) END",
                }
            )
        else:
            conv = e.pct("conv", 15)
            v.update(
                {
                    "Company": e.company(),
                    **e.address("", 40),
                    "Status": f"CASE WHEN {conv} THEN 'Closed - Converted' ELSE "
                    f"{e.pick('st', ('Open - Not Contacted', 'Working - Contacted', 'Closed - Not Converted'))} END",
                    "Rating": e.pick("rating", ("Hot", "Warm", "Cold")),
                    "AnnualRevenue": e.number("rev", 0, 1e8, 0, 50),
                    "NumberOfEmployees": e.u("emp", 5000),
                    "IsConverted": conv,
                    "ConvertedAccountId": f"CASE WHEN {conv} THEN {e.ref('Account', 'cacct')} END",
                    "ConvertedContactId": f"CASE WHEN {conv} THEN {e.ref('Contact', 'ccont')} END",
                }
            )
    elif n == "Opportunity":
        stage = e.pick("stage", obj.field("StageName").picklist_values)  # type: ignore[union-attr]
        v = {
            "AccountId": e.ref("Account", "acct", 3),
            "Name": e.text("name", "'Deal ' || CAST(i AS VARCHAR)"),
            "Description": e.long_text("desc", 70),
            "StageName": stage,
            "Amount": e.number("amt", 100, 2e6, 2, 10),
            "Probability": e.u("prob", 101),
            "CloseDate": e.date_expr("close", future_days=180),
            "Type": e.pick(
                "type", ("New Customer", "Existing Customer - Upgrade", "Existing Customer - Replacement")
            ),
            "LeadSource": e.pick("src", ("Web", "Phone Inquiry", "Partner Referral")),
            "IsClosed": f"starts_with({stage}, 'Closed')",
            "IsWon": f"({stage} = 'Closed Won')",
            "ForecastCategory": e.pick("fc", ("Omitted", "Pipeline", "BestCase", "Forecast", "Closed")),
            "OwnerId": e.user("owner"),
        }
    elif n == "Case":
        status = e.pick("status", ("New", "Working", "Escalated", "Closed"))
        v = {
            "CaseNumber": "lpad(CAST(i AS VARCHAR), 8, '0')",
            "ContactId": e.ref("Contact", "cont", 10),
            "AccountId": e.ref("Account", "acct", 10),
            "Subject": e.text("subj", "'Issue #' || CAST(i AS VARCHAR)"),
            "Description": e.long_text("desc", 20),
            "Status": status,
            "Priority": e.pick("prio", ("High", "Medium", "Low")),
            "Origin": e.pick("orig", ("Phone", "Email", "Web")),
            "IsClosed": f"({status} = 'Closed')",
            "ClosedDate": f"CASE WHEN {status} = 'Closed' THEN make_timestamp(m_us) END",
            "OwnerId": e.user("owner"),
        }
    elif n in ("Task", "Event"):
        who = e.u("who", 10)
        what = e.u("what", 10)
        v = {
            "WhoId": f"CASE WHEN {who} < 6 THEN {e.ref('Contact', 'whoc')} WHEN {who} < 8 THEN {e.ref('Lead', 'whol')} END",
            "WhatId": f"CASE WHEN {what} < 4 THEN {e.ref('Account', 'wa')} WHEN {what} < 6 THEN {e.ref('Opportunity', 'wo')}"
            f" WHEN {what} < 7 THEN {e.ref('Case', 'wc')} WHEN {what} < 8 THEN {e.ref('Invoice__c', 'wi')} END",
            "Subject": e.text(
                "subj", e.pick("subj", ("Call", "Email", "Meeting", "Follow up", "Send quote"))
            ),
            "Description": e.long_text("desc", 50),
            "OwnerId": e.user("owner"),
            "IsArchived": f"({e.pct('arch', 2)} AND c_us < {ctx.now_us - 365 * 86_400_000_000})",
        }
        if n == "Task":
            status = e.pick(
                "status", ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
            )
            v.update(
                {
                    "ActivityDate": e.date_expr("act", 10),
                    "Status": status,
                    "Priority": e.pick("prio", ("High", "Normal", "Low")),
                    "TaskSubtype": e.pick("sub", ("Task", "Email", "Call")),
                    "CallDurationInSeconds": f"CASE WHEN {e.pct('cd', 70)} THEN NULL ELSE {e.u('cds', 3600)} END",
                    "IsClosed": f"({status} = 'Completed')",
                }
            )
        else:
            v.update(
                {
                    "Location": e.text("loc", e.pick("loc", CITIES), 40),
                    "IsAllDayEvent": e.pct("allday", 10),
                    "ActivityDateTime": "make_timestamp(c_us + 86400000000)",
                    "ActivityDate": "CAST(make_timestamp(c_us + 86400000000) AS DATE)",
                    "DurationInMinutes": f"30 * (1 + {e.u('dur', 4)})",
                    "StartDateTime": "make_timestamp(c_us + 86400000000)",
                    "EndDateTime": f"make_timestamp(c_us + 86400000000 + 30 * (1 + {e.u('dur', 4)}) * 60000000)",
                    "ShowAs": e.pick("show", ("Busy", "OutOfOffice", "Free")),
                }
            )
    elif n == "Invoice__c":
        v = {
            "OwnerId": e.user("owner"),
            "Name": "'INV-' || lpad(CAST(i AS VARCHAR), 9, '0')",
            "Account__c": e.ref("Account", "acct", 5),
            "Contact__c": e.ref("Contact", "cont", 30),
            "Amount__c": e.number("amt", -500, 100000, 2, 5),
            "Tax_Rate__c": e.number("tax", 0, 30, 2, 10),
            "Quantity__c": e.number("qty", 1, 1000, 0, 10),
            "Invoice_Date__c": e.date_expr("idate", 5),
            "Paid_At__c": e.ts_expr("paid", 40),
            "Reminder_Time__c": e.time_expr("rem", 50),
            "Is_Paid__c": e.pct("paidb", 60),
            "Status__c": e.pick("st", ("Draft", "Sent", "Paid", "Overdue", "Void")),
            "Tags__c": f"CASE WHEN {e.pct('tags', 40)} THEN NULL ELSE array_to_string(list_distinct(["
            f"{e.pick('t1', ('Priority', 'Export', 'Manual'))}, {e.pick('t2', ('Recurring', 'Disputed', 'Export'))}]), ';') END",
            "Contact_Email__c": e.email("ce", 30),
            "Contact_Phone__c": e.phone("cp", 30),
            "Portal_Url__c": f"CASE WHEN {e.pct('url', 50)} THEN NULL ELSE 'https://portal.example.com/inv/' || CAST(i AS VARCHAR) END",
            "Notes__c": e.long_text("notes", 50),
            "Summary__c": f"CASE {e.u('sum', 10)} WHEN 0 THEN '' WHEN 1 THEN NULL WHEN 2 THEN ' ' ELSE "
            f"{e.text('sumt', SUMMARY_BASE)} END",
            "External_Key__c": "'EXT-' || CAST(i AS VARCHAR)",
            "Location__Latitude__s": e.number("lat", -60, 70, 6, 60),
            "Location__Longitude__s": e.number("lon", -170, 170, 6, 60),
        }
    elif n.endswith("__c"):
        v = {
            "OwnerId": e.user("owner"),
            "Name": f"'{n[:3].upper()}-' || lpad(CAST(i AS VARCHAR), 9, '0')",
            "Invoice__c": e.ref("Invoice__c", "inv", 2),
            "Tracking_Number__c": "'1Z' || upper(md5(CAST(i AS VARCHAR))[1:16])",
            "Carrier__c": e.pick("car", ("DHL", "FedEx", "UPS", "USPS", "La Poste")),
            "Shipped_At__c": e.ts_expr("ship", 20),
            "Delivery_Date__c": e.date_expr("dd", 30),
            "Window_Start__c": e.time_expr("win", 30),
            "Weight__c": e.number("w", 0, 5000, 3, 10),
            "Cost__c": e.number("cost", 0, 20000, 2, 10),
            "Damage_Rate__c": e.number("dmg", 0, 100, 2, 70),
            "Delivered__c": e.pct("del", 70),
            "Packages__c": f"1 + {e.u('pk', 20)}",
            "Handling__c": f"CASE WHEN {e.pct('hd', 60)} THEN NULL ELSE {e.pick('hd1', ('Fragile', 'Cold', 'Hazmat', 'Oversize', 'Fragile;Cold'))} END",
            "Recipient_Email__c": e.email("re", 20),
            "Recipient_Phone__c": e.phone("rp", 20),
            "Tracking_Url__c": "'https://track.example.com/?id=' || CAST(i AS VARCHAR)",
            "Notes__c": e.long_text("notes", 60),
        }
    elif n in ("Attachment", "Document"):
        ext = e.pick("ext", ("pdf", "png", "txt", "csv", "docx"))
        v = {
            "Name": e.text("name", f"'file_' || CAST(i AS VARCHAR) || '.' || {ext}"),
            "ContentType": f"CASE {ext} WHEN 'pdf' THEN 'application/pdf' WHEN 'png' THEN 'image/png' WHEN 'txt' THEN"
            " 'text/plain' WHEN 'csv' THEN 'text/csv' ELSE 'application/octet-stream' END",
            "BodyLength": _size_expr(ctx, e),
            "Description": e.long_text("desc", 70),
        }
        if n == "Attachment":
            pk = e.u("pk", 4)
            v.update(
                {
                    "ParentId": f"CASE {pk} WHEN 0 THEN {e.ref('Account', 'pa')} WHEN 1 THEN {e.ref('Contact', 'pc')}"
                    f" WHEN 2 THEN {e.ref('Opportunity', 'po')} ELSE {e.ref('Case', 'pca')} END",
                    "IsPrivate": e.pct("priv", 10),
                    "OwnerId": e.user("owner"),
                }
            )
        else:
            v.update(
                {
                    "FolderId": e.user("folder"),
                    "DeveloperName": "'doc_' || CAST(i AS VARCHAR)",
                    "Type": ext,
                    "IsPublic": e.pct("pub", 20),
                    "Keywords": e.text("kw", "'kw'", 60),
                    "AuthorId": e.user("author"),
                    "IsInternalUseOnly": e.pct("int", 10),
                }
            )
    elif n == "ContentDocument":
        first_v, n_v = ctx.ranges["ContentVersion"]
        first_d, n_d = ctx.ranges["ContentDocument"]
        twice = n_v - n_d  # documents first_d .. first_d + twice - 1 have a second version
        latest = f"(CASE WHEN i - {first_d} < {twice} THEN {first_v + n_d} + (i - {first_d}) ELSE {first_v} + (i - {first_d}) END)"
        v = {
            "Title": e.text("title", "'Document ' || CAST(i AS VARCHAR)"),
            "FileType": "'PDF'",
            "FileExtension": "'pdf'",
            "ContentSize": _size_expr(ctx, e, counter=latest, obj_name="ContentVersion"),
            "LatestPublishedVersionId": f"sf_id('068', {latest})",
            "PublishStatus": "'P'",
            "IsArchived": "false",
            "OwnerId": e.user("owner"),
        }
    elif n == "ContentVersion":
        first_v, n_v = ctx.ranges["ContentVersion"]
        first_d, n_d = ctx.ranges["ContentDocument"]
        twice = n_v - n_d
        doc = f"(CASE WHEN i - {first_v} < {n_d} THEN {first_d} + (i - {first_v}) ELSE {first_d} + (i - {first_v} - {n_d}) END)"
        v = {
            "ContentDocumentId": f"sf_id('069', {doc})",
            "IsLatest": f"NOT (i - {first_v} < {twice})",
            "Title": e.text("title", f"'Document ' || CAST({doc} AS VARCHAR)"),
            "Description": e.long_text("desc", 70),
            "PathOnClient": f"'C:\\Users\\me\\doc_' || CAST({doc} AS VARCHAR) || '.pdf'",
            "VersionNumber": f"CASE WHEN i - {first_v} < {n_d} THEN '1' ELSE '2' END",
            "ReasonForChange": "CAST(NULL AS VARCHAR)",
            "ContentSize": _size_expr(ctx, e, obj_name="ContentVersion"),
            "FileType": "'PDF'",
            "FileExtension": "'pdf'",
            "ContentModifiedDate": "make_timestamp(m_us)",
            "FirstPublishLocationId": e.ref("Account", "fpl"),
            "OwnerId": e.user("owner"),
        }
    elif n == "ContentDocumentLink":
        first_d, n_d = ctx.ranges["ContentDocument"]
        first_l, _n_l = ctx.ranges["ContentDocumentLink"]
        k = f"(i - {first_l})"
        v = {
            "ContentDocumentId": f"sf_id('069', {first_d} + {k} % {max(1, n_d)})",
            "LinkedEntityId": f"CASE WHEN {k} < {n_d} THEN {e.user('le')} ELSE {e.ref('Account', 'lea')} END",
            "ShareType": f"CASE WHEN {k} < {n_d} THEN 'I' ELSE 'V' END",
            "Visibility": "'AllUsers'",
        }
    elif n == "AccountHistory":
        v = {
            "AccountId": e.ref("Account", "acct"),
            "Field": e.pick("f", ("Name", "Phone", "Industry", "Rating", "Owner")),
            "DataType": "'Text'",
            "OldValue": e.text("old", "'old ' || CAST(i AS VARCHAR)", 20),
            "NewValue": e.text("new", "'new ' || CAST(i AS VARCHAR)", 10),
        }
    elif n == "AccountShare":
        v = {
            "AccountId": e.ref("Account", "acct"),
            "UserOrGroupId": e.user("ug"),
            "AccountAccessLevel": e.pick("aal", ("Read", "Edit", "All")),
            "OpportunityAccessLevel": e.pick("oal", ("None", "Read", "Edit")),
            "CaseAccessLevel": e.pick("cal", ("None", "Read", "Edit")),
            "ContactAccessLevel": e.pick("col", ("None", "Read", "Edit")),
            "RowCause": e.pick("rc", ("Owner", "Manual", "Rule")),
        }
    elif n == "AccountFeed":
        v = {
            "ParentId": e.ref("Account", "acct"),
            "Type": e.pick("type", ("TextPost", "LinkPost", "TrackedChange")),
            "Title": e.text("title", "'Post ' || CAST(i AS VARCHAR)", 50),
            "Body": e.long_text("body", 10),
            "LinkUrl": f"CASE WHEN {e.pct('lu', 80)} THEN NULL ELSE 'https://example.com/p/' || CAST(i AS VARCHAR) END",
            "IsRichText": e.pct("rich", 30),
            "CommentCount": e.u("cc", 20),
            "LikeCount": e.u("lc", 50),
        }
    return v


def _typed_values(ctx: _Ctx, obj: ObjectDef) -> dict[str, str]:
    """Column name -> SQL expression by field type, for an object a description added (its fields
    are data, so its values are too)."""
    e = _Exprs(ctx, obj.name)
    v: dict[str, str] = {}
    for f in obj.column_fields:
        k, t = f.name, f.type
        if t == "reference":
            targets = [x for x in f.reference_to if x in ctx.ranges and x in ctx.store.schema]
            if k == "OwnerId" or targets == ["User"]:
                v[k] = e.user(k)
            elif targets:
                v[k] = e.ref(targets[0], k, 0.0 if not f.nillable else 20.0)
        elif t in ("string", "textarea", "email", "phone", "url"):
            v[k] = {"email": e.email(k), "phone": e.phone(k)}.get(
                t,
                e.text(
                    k, f"'{obj.name.removesuffix('__c')} ' || CAST(i AS VARCHAR)", 0 if k == "Name" else 15
                ),
            )
            if f.length and t != "textarea":
                v[k] = f"left({v[k]}, {f.length})"
        elif t in ("picklist", "multipicklist") and f.picklist_values:
            v[k] = e.pick(k, f.picklist_values)
        elif t in ("double", "currency", "percent"):
            v[k] = e.number(k, 0, 10_000 if t != "percent" else 100, min(f.scale, 4), 15)
        elif t == "int":
            v[k] = e.u(k, 1000)
        elif t == "date":
            v[k] = e.date_expr(k, 15)
        elif t == "datetime" and k not in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
            v[k] = e.ts_expr(k, 15)
        elif t == "time":
            v[k] = e.time_expr(k, 15)
        elif t == "boolean" and k != "IsDeleted":
            v[k] = e.pct(k, 50)
    return v


def _size_expr(ctx: _Ctx, e: _Exprs, *, counter: str = "i", obj_name: str | None = None) -> str:
    fbb = max(1, ctx.file_body_bytes)
    key = f"{obj_name or e.obj}.size"
    return f"(CAST({fbb // 2} + hash({counter}, {ctx.seed}, '{key}') % {fbb + 1} AS BIGINT))"


def insert_generated(
    ctx: _Ctx, obj: ObjectDef, first: int, count: int, *, fresh: bool = False, deleted_pct: float = 0.0,
    fix_rows: Callable[[], None] | None = None,
) -> None:  # fmt: skip
    """Insert ``count`` generated rows of ``obj`` with counters ``first ..``; log them as inserts.

    ``fix_rows`` runs inside the insert's transaction before the rows are logged (and their CREATE
    events published), so what it changes is part of the insert, not a change without an event."""
    if count <= 0:
        return
    store = ctx.store
    mid, audit = _audit_sql(ctx, obj, first, count, fresh=fresh)
    values = _typed_values(ctx, obj) if obj.name in ctx.described else _values_for(ctx, obj)
    e = _Exprs(ctx, obj.name)
    exprs: dict[str, str] = {"Id": f"sf_id('{obj.key_prefix}', i)"}
    for f in obj.column_fields:
        if f.name in exprs:
            continue
        if f.name in values:
            exprs[f.name] = values[f.name]
        elif f.name in audit:
            exprs[f.name] = audit[f.name]
        elif f.name == "IsDeleted":
            exprs[f.name] = e.pct("deleted", deleted_pct) if deleted_pct else "false"
        elif f.type == "boolean":
            exprs[f.name] = "false"
    if obj.has_is_deleted:
        exprs["_DeletedAt"] = f"CASE WHEN {exprs['IsDeleted']} THEN make_timestamp(s_us) END"
    names = list(exprs)
    sql = (
        f"INSERT INTO {store.table_name(obj)} ({', '.join(q(c) for c in names)}) "
        f"SELECT {', '.join(exprs[c] for c in names)} FROM ({mid})"
    )
    with store.lock:
        con = store.connection
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            if fix_rows is not None:
                fix_rows()
            ts = store.clock.now()
            store.log_changes(
                con,
                obj,
                f"SELECT sf_id('{obj.key_prefix}', i) AS Id FROM range({first}, {first + count}) r(i)",
                [],
                "insert",
                False,
                True,
                ts,
            )
            if obj.has_is_deleted and deleted_pct:
                store.log_changes(
                    con,
                    obj,
                    f"SELECT Id FROM {store.table_name(obj)} WHERE IsDeleted AND Id >= ? AND Id <= ?",
                    [
                        idmod.make_id(obj.key_prefix or "000", first),
                        idmod.make_id(obj.key_prefix or "000", first + count - 1),
                    ],
                    "delete",
                    True,
                    False,
                    ts,
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def _insert_rows(store: OrgStore, obj: ObjectDef, rows: list[dict[str, Any]]) -> None:
    """Insert Python-built rows (small setup objects) through Arrow in one statement."""
    if not rows:
        return
    names = [f.name for f in obj.column_fields]
    data: dict[str, list[Any]] = {nm: [] for nm in names}
    for r in rows:
        for nm in names:
            fd = obj.field(nm)
            val = r.get(nm)
            if val is None and fd is not None and fd.type == "boolean":
                val = False
            if isinstance(val, datetime):
                val = naive_utc(val)
            data[nm].append(val)
    table = pa.table(
        {
            nm: pa.array(vals) if any(v is not None for v in vals) else pa.nulls(len(vals))
            for nm, vals in data.items()
        }
    )
    casts = ", ".join(f"CAST({q(nm)} AS {_duck(obj, nm)}) AS {q(nm)}" for nm in names)
    with store.lock:
        con = store.connection
        con.register("_gen_rows", table)
        try:
            con.execute(f"INSERT INTO {store.table_name(obj)} BY NAME SELECT {casts} FROM _gen_rows")
            store.log_changes(
                con,
                obj,
                "SELECT unnest(?::VARCHAR[]) AS Id",
                [[r["Id"] for r in rows]],
                "insert",
                False,
                True,
                store.clock.now(),
            )
        finally:
            con.unregister("_gen_rows")


def _duck(obj: ObjectDef, name: str) -> str:
    from emulator.store import DUCK_TYPES

    fd = obj.field(name)
    assert fd is not None
    return DUCK_TYPES[fd.type]


def _counts(store: OrgStore, scale: int, described: Collection[str] = ()) -> dict[str, int]:
    weights = {k: w for k, w in WEIGHTS.items() if k in store.schema}
    for name, obj in store.schema.items():
        if obj.custom and name not in weights and name not in described:
            weights[name] = EXTRA_CUSTOM_WEIGHT
    total = sum(weights.values())
    counts = {k: max(1, round(scale * w / total)) for k, w in weights.items()}
    counts["ContentVersion"] = min(
        max(counts["ContentVersion"], counts["ContentDocument"]), 2 * counts["ContentDocument"]
    )
    return counts


def generate(
    store: OrgStore,
    scale: int,
    seed: int,
    *,
    file_body_bytes: int = 4096,
    object_rows: dict[str, int] | None = None,
    described_rows: dict[str, int] | None = None,
) -> dict[str, int]:
    """Fill an empty org with about ``scale`` records; returns the rows per object.

    ``object_rows`` sets the rows of some generated objects outright (``{"Task": 5_000_000}``: one
    very large object for memory benchmarks), whatever their share of ``scale``.
    ``described_rows`` are the rows of the objects a schema description added (their values by
    field type, :func:`_typed_values`), written after the others, in the description's order; the
    other objects' rows are the same as without them.

    Deterministic: the same (scale, seed, file_body_bytes) and clock time give the same
    :meth:`OrgStore.digest`.

    Raises:
        ValueError: the org already holds records.
    """
    if any(store.counts(include_deleted=True).values()):
        raise ValueError("generate() needs an empty org")
    store.set_meta("blob_seed", str(seed))
    store.set_meta("scale", str(scale))
    store.set_meta("file_body_bytes", str(file_body_bytes))
    now = store.clock.now()
    now_us = _epoch_us(now)
    described = dict(described_rows or {})
    counts = _counts(store, scale, described)
    for name, rows in (object_rows or {}).items():
        obj = store.schema.get(name)
        if obj is None or name not in counts:
            raise ValueError(f"{name!r} is not a generated object; choose from {', '.join(sorted(counts))}")
        counts[name] = max(0, int(rows))
    n_users = max(10, min(500, scale // 2000))
    ctx = _Ctx(
        store=store,
        seed=seed,
        now_us=now_us,
        span_us=SPAN_DAYS * 86_400_000_000,
        file_body_bytes=file_body_bytes,
        ranges={},
        active_users=(1, max(1, int(n_users * 0.8))),
        described=frozenset(described),
    )
    _setup_objects(ctx, n_users, now)
    order = [
        "Account",
        "Contact",
        "Lead",
        "Opportunity",
        "Case",
        "Invoice__c",
        *[n for n in counts if n.endswith("__c") and n != "Invoice__c"],
        "Task",
        "Event",
        "Attachment",
        "Document",
        "ContentDocument",
        "ContentVersion",
        "ContentDocumentLink",
        "AccountHistory",
        "AccountShare",
        "AccountFeed",
    ]
    for name in order:
        if name not in counts or name not in store.schema:
            continue
        obj = store.schema[name]
        first = store.reserve_counters(obj, counts[name])
        ctx.ranges[name] = (first, counts[name])
    for name in order:
        if name not in ctx.ranges:
            continue
        obj = store.schema[name]
        first, count = ctx.ranges[name]
        deleted = (
            0.0
            if name in ("AccountHistory", "ContentVersion", "ContentDocumentLink", "AccountShare")
            else 1.0
        )
        insert_generated(ctx, obj, first, count, deleted_pct=deleted)
    _static_resources(ctx)
    _event_log_files(ctx, now)
    for name, rows in described.items():
        obj = store.schema[name]
        first = store.reserve_counters(obj, rows)
        ctx.ranges[name] = (first, rows)
        insert_generated(ctx, obj, first, rows, deleted_pct=0.0)
    return {k: v for k, v in store.counts(include_deleted=True).items() if v}


def _epoch_us(dt: datetime) -> int:
    naive = naive_utc(dt)
    return (naive - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def _setup_objects(ctx: _Ctx, n_users: int, now: datetime) -> None:
    store = ctx.store
    s = store.schema
    integ = store.integration_user_id
    created = now - timedelta(days=SPAN_DAYS + 30)

    def audit(obj: ObjectDef, row: dict[str, Any], when: datetime = created) -> dict[str, Any]:
        for name in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
            if obj.field(name):
                row[name] = when
        for name in ("CreatedById", "LastModifiedById"):
            if obj.field(name):
                row[name] = integ
        return row

    def new_ids(obj: ObjectDef, n: int) -> list[str]:
        first = store.reserve_counters(obj, n)
        ctx.ranges[obj.name] = (first, n)
        assert obj.key_prefix
        return [idmod.make_id(obj.key_prefix, first + k) for k in range(n)]

    org = s["Organization"]
    ids_org = new_ids(org, 1)
    assert ids_org[0] == store.org_id
    _insert_rows(
        store,
        org,
        [
            audit(
                org,
                {
                    "Id": store.org_id,
                    "Name": "sfvault Emulated Org",
                    "Division": None,
                    "Country": "US",
                    "IsSandbox": False,
                    "OrganizationType": "Enterprise Edition",
                    "InstanceName": "EMU1",
                    "TimeZoneSidKey": "America/Los_Angeles",
                    "LanguageLocaleKey": "en_US",
                    "DefaultLocaleSidKey": "en_US",
                    "NamespacePrefix": None,
                    "TrialExpirationDate": None,
                },
            )
        ],
    )

    lic = s["UserLicense"]
    lic_ids = dict(zip([x[0] for x in LICENSES], new_ids(lic, len(LICENSES)), strict=True))
    _insert_rows(
        store,
        lic,
        [
            audit(
                lic,
                {
                    "Id": lic_ids[name],
                    "Name": name,
                    "MasterLabel": name,
                    "LicenseDefinitionKey": key,
                    "Status": "Active",
                    "TotalLicenses": total,
                    "UsedLicenses": 0,
                },
            )
            for name, key, total in LICENSES
        ],
    )
    prof = s["Profile"]
    prof_ids = dict(zip([p[0] for p in PROFILES], new_ids(prof, len(PROFILES)), strict=True))
    _insert_rows(
        store,
        prof,
        [
            audit(
                prof,
                {
                    "Id": prof_ids[name],
                    "Name": name,
                    "UserLicenseId": lic_ids[licence],
                    "UserType": utype,
                    "Description": None,
                },
            )
            for name, licence, utype in PROFILES
        ],
    )

    # users: #1 is the integration user (System Administrator); 80% active
    user = s["User"]
    user_ids = new_ids(user, n_users)
    assert user_ids[0] == integ
    n_active = ctx.active_users[1]
    users = []
    for k, uid in enumerate(user_ids):
        if k == 0:
            pname = "System Administrator"
            first, last, uname = "Integration", "User", "integration@sfvault.example"
        else:
            pname = (
                PROFILES[1 + (k * 3 + ctx.seed) % (len(PROFILES) - 1)][0] if k % 5 else "System Administrator"
            )
            first, last = (
                FIRST_NAMES[(k + ctx.seed) % len(FIRST_NAMES)],
                LAST_NAMES[(k * 3 + ctx.seed) % len(LAST_NAMES)],
            )
            uname = f"user{k}.{ctx.seed}@sfvault.example"
        utype = next(p[2] for p in PROFILES if p[0] == pname)
        users.append(
            audit(
                user,
                {
                    "Id": uid,
                    "Username": uname,
                    "FirstName": first,
                    "LastName": last,
                    "Name": f"{first} {last}",
                    "CompanyName": "sfvault",
                    "Title": None if k % 3 else "Manager",
                    "Department": None,
                    "Email": uname,
                    "Alias": (first[:4] + str(k))[:8],
                    "IsActive": k < n_active,
                    "UserType": utype,
                    "ProfileId": prof_ids[pname],
                    "ManagerId": user_ids[0] if k else None,
                    "TimeZoneSidKey": "America/Los_Angeles" if k % 2 else "Europe/Paris",
                    "LocaleSidKey": "en_US",
                    "LanguageLocaleKey": "en_US",
                    "EmailEncodingKey": "UTF-8",
                    "LastLoginDate": now - timedelta(hours=k) if k < n_active else None,
                },
            )
        )
    _insert_rows(store, user, users)

    # permission sets: one owned by each profile, plus a few standalone ones
    ps = s["PermissionSet"]
    ps_ids = new_ids(ps, len(PROFILES) + len(EXTRA_PERMISSION_SETS))
    ps_rows = []
    ps_flags: dict[str, set[str]] = {}
    for k, (pname, _licence, _utype) in enumerate(PROFILES):
        if pname == "System Administrator":
            flags = set(PERMISSION_FLAGS)
        elif pname in ("Standard User", "Marketing User", "Contract Manager", "Standard Platform User"):
            flags = {"PermissionsApiEnabled"}
        else:
            flags = set()
        ps_flags[ps_ids[k]] = flags
        row = {
            "Id": ps_ids[k],
            "Name": f"X00e{k}_profile_{k}",
            "Label": f"{pname} (profile)",
            "Description": None,
            "IsOwnedByProfile": True,
            "ProfileId": prof_ids[pname],
        }
        row.update({f: f in flags for f in PERMISSION_FLAGS})
        ps_rows.append(audit(ps, row))
    for j, (name, label, flags) in enumerate(EXTRA_PERMISSION_SETS):
        pid = ps_ids[len(PROFILES) + j]
        ps_flags[pid] = set(flags)
        row = {
            "Id": pid,
            "Name": name,
            "Label": label,
            "Description": f"{label} access",
            "IsOwnedByProfile": False,
            "ProfileId": None,
        }
        row.update({f: f in flags for f in PERMISSION_FLAGS})
        ps_rows.append(audit(ps, row))
    _insert_rows(store, ps, ps_rows)

    profile_ps = {prof_ids[p[0]]: ps_ids[k] for k, p in enumerate(PROFILES)}
    assignments: list[tuple[str, str]] = []
    for k, urow in enumerate(users):
        assignments.append((urow["Id"], profile_ps[urow["ProfileId"]]))
        if k == 0:
            assignments.append((urow["Id"], ps_ids[len(PROFILES)]))  # Sfvault_Backup
        elif k % 4 == 0:
            assignments.append((urow["Id"], ps_ids[len(PROFILES) + 1 + k % 2]))
    psa = s["PermissionSetAssignment"]
    psa_ids = new_ids(psa, len(assignments))
    _insert_rows(
        store,
        psa,
        [
            audit(psa, {"Id": i, "AssigneeId": a, "PermissionSetId": p, "IsActive": True})
            for i, (a, p) in zip(psa_ids, assignments, strict=True)
        ],
    )

    # object and field permissions for the CRM and custom objects
    objs = [s[n] for n in CRM_OBJECTS if n in s] + [o for o in s.values() if o.custom]
    op_rows: list[dict[str, Any]] = []
    fp_rows: list[dict[str, Any]] = []
    for pid in ps_ids:
        flags = ps_flags[pid]
        admin = "PermissionsModifyAllData" in flags
        for o in objs:
            read = admin or "PermissionsViewAllData" in flags or (hash_int(pid, o.name) % 5 != 0)
            op_rows.append(
                {
                    "ParentId": pid,
                    "SobjectType": o.name,
                    "PermissionsRead": read,
                    "PermissionsCreate": admin or (read and hash_int(pid, o.name, "c") % 2 == 0),
                    "PermissionsEdit": admin or (read and hash_int(pid, o.name, "e") % 2 == 0),
                    "PermissionsDelete": admin,
                    "PermissionsViewAllRecords": admin or "PermissionsViewAllData" in flags,
                    "PermissionsModifyAllRecords": admin,
                }
            )
            for f in o.fields:
                if not f.permissionable:
                    continue
                fread = f.readable and (read or admin)
                fp_rows.append(
                    {
                        "ParentId": pid,
                        "SobjectType": o.name,
                        "Field": f"{o.name}.{f.name}",
                        "PermissionsRead": fread,
                        "PermissionsEdit": fread and f.updateable and admin,
                    }
                )
    op = s["ObjectPermissions"]
    for orow, rid in zip(op_rows, new_ids(op, len(op_rows)), strict=True):
        orow["Id"] = rid
        audit(op, orow)
    _insert_rows(store, op, op_rows)
    fp = s["FieldPermissions"]
    for frow, rid in zip(fp_rows, new_ids(fp, len(fp_rows)), strict=True):
        frow["Id"] = rid
        audit(fp, frow)
    _insert_rows(store, fp, fp_rows)


def hash_int(*parts: str) -> int:
    """A small deterministic hash for setup decisions (Python's ``hash`` is salted per process)."""
    import hashlib

    return int.from_bytes(hashlib.blake2b("|".join(parts).encode(), digest_size=8).digest(), "big")


def _static_resources(ctx: _Ctx) -> None:
    store = ctx.store
    obj = store.schema.get("StaticResource")
    if obj is None:
        return
    n = 12
    first = store.reserve_counters(obj, n)
    now = store.clock.now()
    rows = []
    for k in range(n):
        rid = idmod.make_id(obj.key_prefix or "081", first + k)
        size = ctx.file_body_bytes // 2 + hash_int(str(ctx.seed), rid) % (ctx.file_body_bytes + 1)
        when = now - timedelta(days=400 - k * 30)
        rows.append(
            {
                "Id": rid,
                "NamespacePrefix": None,
                "Name": f"resource_{k}",
                "ContentType": ("application/javascript", "text/css", "application/zip")[k % 3],
                "BodyLength": size,
                "Description": None if k % 2 else 'Static "resource", v1',
                "CacheControl": "Public" if k % 2 else "Private",
                "CreatedDate": when,
                "LastModifiedDate": when,
                "SystemModstamp": when,
                "CreatedById": store.integration_user_id,
                "LastModifiedById": store.integration_user_id,
            }
        )
    _insert_rows(store, obj, rows)


EVENT_FIELDS = {
    "Login": (
        ["EVENT_TYPE", "TIMESTAMP", "REQUEST_ID", "USER_ID", "LOGIN_STATUS", "SOURCE_IP", "BROWSER_TYPE"],
        ["String", "String", "String", "Id", "String", "IP", "String"],
    ),
    "API": (
        ["EVENT_TYPE", "TIMESTAMP", "REQUEST_ID", "USER_ID", "API_TYPE", "METHOD_NAME", "ROWS_PROCESSED"],
        ["String", "String", "String", "Id", "String", "String", "Number"],
    ),
}


def _event_log_files(ctx: _Ctx, now: datetime) -> None:
    """Thirty days of daily Login and API log files with real CSV bodies (stored in ``_blobs``)."""
    store = ctx.store
    obj = store.schema.get("EventLogFile")
    if obj is None:
        return
    days = 15
    types = ["Login", "API"]
    first = store.reserve_counters(obj, days * len(types))
    rows = []
    bodies = []
    today = datetime(now.year, now.month, now.day, tzinfo=now.tzinfo)
    users = [idmod.make_id("005", 1 + k) for k in range(ctx.active_users[1])]
    k = 0
    for d in range(days, 0, -1):
        log_date = today - timedelta(days=d)
        for et in types:
            rid = idmod.make_id(obj.key_prefix or "0AT", first + k)
            k += 1
            names, ftypes = EVENT_FIELDS[et]
            buf = io.StringIO()
            w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
            w.writerow(names)
            n_lines = 5 + hash_int(str(ctx.seed), rid) % 40
            for line in range(n_lines):
                ts = (log_date + timedelta(seconds=line * 97)).strftime("%Y%m%d%H%M%S.%f")[:-3]
                uid = users[(line + d) % len(users)]
                if et == "Login":
                    w.writerow(
                        [
                            et,
                            ts,
                            f"4{rid[-6:]}{line}",
                            uid[:15],
                            "LOGIN_NO_ERROR" if line % 7 else "LOGIN_ERROR_INVALID_PASSWORD",
                            f"10.0.{d}.{line}",
                            "Chrome",
                        ]
                    )
                else:
                    w.writerow([et, ts, f"4{rid[-6:]}{line}", uid[:15], "REST", "query", str(line * 200)])
            body = buf.getvalue().encode()
            bodies.append((rid, body))
            created = log_date + timedelta(days=1, hours=3)
            rows.append(
                {
                    "Id": rid,
                    "EventType": et,
                    "LogDate": log_date,
                    "LogFileLength": float(len(body)),
                    "LogFileContentType": "CSV",
                    "ApiVersion": 59.0,
                    "Interval": "Daily",
                    "Sequence": 0,
                    "LogFileFieldNames": ",".join(names),
                    "LogFileFieldTypes": ",".join(ftypes),
                    "CreatedDate": created,
                    "LastModifiedDate": created,
                    "SystemModstamp": created,
                    "CreatedById": store.integration_user_id,
                    "LastModifiedById": store.integration_user_id,
                    "IsDeleted": False,
                }
            )
    _insert_rows(store, obj, rows)
    with store.lock:
        store.connection.executemany(
            "INSERT INTO _blobs VALUES (?, ?, ?)", [[obj.name, rid, b] for rid, b in bodies]
        )
