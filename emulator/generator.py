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
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from emulator import ids as idmod
from emulator.schema import PERMISSION_FLAGS, FieldDef, ObjectDef, custom_template
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
    return mid, outer


# ---------------------------------------------------------------------------------------------
# value rules: each field's ``generate`` hint (emulator/objects.json)

Hint = str | Mapping[str, Any]
"""How one field is generated, as SQL over the row counter ``i``. A string is an SQL template;
otherwise ``{"kind": K, ...}`` with K one of:

``pick`` {key, values?}: one of ``values`` (default: the field's picklist values; a string names
a word list of this module); ``ref`` {target, key, null?}: the Id of an existing ``target``
record; ``user`` {key}: an active User; ``text`` {key, base, null?}: ``base`` (a hint) with a hard
case (quotes, newlines, emoji...) mixed into some rows; ``longText`` {key, null?}; ``number``
{key, lo, hi, scale, null?}; ``date`` {key, null?, futureDays?}; ``datetime`` / ``time`` {key,
null?}; ``email`` / ``phone`` {key, null?}; ``firstName``, ``lastName``, ``company``; ``pct``
{key, p}: true for about ``p`` % of rows; ``int`` {key, n}: in ``[0, n)``; ``address`` {null?}
(on an address compound: all its component columns); ``size`` {object?, counter?}: a file body's
size; ``sql`` {sql, args}: the template with ``{name}`` replaced by the hint ``args[name]``.

``null`` is the percentage of NULLs. ``key`` salts the hash, so hints of one object with one key
draw the same value on a row. Templates may also name ``{field:F}`` (field F's value),
``{first:O}`` / ``{count:O}`` (the counters generated for object O), ``{now_us}`` and ``{tag}``
(the object name's first three letters, upper case). The columns ``c_us`` / ``m_us`` / ``s_us``
(created, modified, modstamp in microseconds) are in scope.
"""

WORD_LISTS: dict[str, list[str]] = {"cities": CITIES, "firstNames": FIRST_NAMES, "lastNames": LAST_NAMES}
_TEMPLATE_NAME = re.compile(r"\{(\w+(?::\w+)?)\}")
_Rule = Callable[["_Rules", Mapping[str, Any], FieldDef | None], str]


class _Rules:
    """The SQL of one object's hints (each field's rendered once, so ``{field:F}`` repeats it)."""

    def __init__(self, ctx: _Ctx, obj: ObjectDef, hints: Mapping[str, Hint]) -> None:
        self.ctx = ctx
        self.obj = obj
        self.e = _Exprs(ctx, obj.name)
        self.hints = hints
        self._done: dict[str, str] = {}

    def values(self) -> dict[str, str]:
        """Column name -> SQL expression over ``i``."""
        out: dict[str, str] = {}
        for name, hint in self.hints.items():
            if isinstance(hint, Mapping) and hint.get("kind") == "address":
                out.update(self.e.address(name.removesuffix("Address"), hint.get("null", 15.0)))
            else:
                out[name] = self.field(name)
        return out

    def field(self, name: str) -> str:
        if name not in self.hints:
            raise ValueError(f"{self.obj.name}: {{field:{name}}} names a field without a generate hint")
        if name not in self._done:
            self._done[name] = self.render(self.hints[name], self.obj.field(name))
        return self._done[name]

    def render(self, hint: Hint, fd: FieldDef | None = None) -> str:
        if isinstance(hint, str):
            return self.template(hint, {})
        rule = _KINDS.get(str(hint.get("kind")))
        if rule is None:
            raise ValueError(f"{self.obj.name}: unknown generate kind {hint.get('kind')!r}")
        return rule(self, hint, fd)

    def template(self, text: str, args: Mapping[str, Hint]) -> str:
        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in args:
                return self.render(args[name])
            word, _, arg = name.partition(":")
            if word == "field":
                return self.field(arg)
            if word in ("first", "count") and arg in self.ctx.ranges:
                return str(self.ctx.ranges[arg][0 if word == "first" else 1])
            if name == "now_us":
                return str(self.ctx.now_us)
            if name == "tag":
                return self.obj.name[:3].upper()
            raise ValueError(f"{self.obj.name}: unknown template name {{{name}}}")

        return _TEMPLATE_NAME.sub(one, text)


def _pick_rule(r: _Rules, h: Mapping[str, Any], fd: FieldDef | None) -> str:
    values = h.get("values")
    if values is None:
        values = fd.picklist_values if fd is not None else ()
    elif isinstance(values, str):
        values = WORD_LISTS[values]
    return r.e.pick(h["key"], values)


def _size_rule(r: _Rules, h: Mapping[str, Any], fd: FieldDef | None) -> str:
    return _size_expr(r.ctx, r.e, counter=r.render(h.get("counter", "i")), obj_name=h.get("object"))


_KINDS: dict[str, _Rule] = {
    "pick": _pick_rule,
    "ref": lambda r, h, fd: r.e.ref(h["target"], h["key"], h.get("null", 0.0)),
    "user": lambda r, h, fd: r.e.user(h["key"]),
    "text": lambda r, h, fd: r.e.text(h["key"], r.render(h["base"]), h.get("null", 0.0)),
    "longText": lambda r, h, fd: r.e.long_text(h["key"], h.get("null", 30.0)),
    "number": lambda r, h, fd: r.e.number(h["key"], h["lo"], h["hi"], h["scale"], h.get("null", 0.0)),
    "date": lambda r, h, fd: r.e.date_expr(h["key"], h.get("null", 0.0), h.get("futureDays", 0)),
    "datetime": lambda r, h, fd: r.e.ts_expr(h["key"], h.get("null", 0.0)),
    "time": lambda r, h, fd: r.e.time_expr(h["key"], h.get("null", 0.0)),
    "email": lambda r, h, fd: r.e.email(h["key"], h.get("null", 10.0)),
    "phone": lambda r, h, fd: r.e.phone(h["key"], h.get("null", 20.0)),
    "firstName": lambda r, h, fd: r.e.person_first(),
    "lastName": lambda r, h, fd: r.e.person_last(),
    "company": lambda r, h, fd: r.e.company(),
    "pct": lambda r, h, fd: r.e.pct(h["key"], h["p"]),
    "int": lambda r, h, fd: r.e.u(h["key"], h["n"]),
    "size": _size_rule,
    "sql": lambda r, h, fd: r.template(h["sql"], h.get("args", {})),
}

AUDIT_TIMESTAMPS = ("CreatedDate", "LastModifiedDate", "SystemModstamp")


def _typed_hint(ctx: _Ctx, obj: ObjectDef, f: FieldDef) -> Hint | None:
    """The hint a field without one gets from its type (objects a schema description added)."""
    k, t = f.name, f.type
    if t == "reference":
        targets = [x for x in f.reference_to if x in ctx.ranges and x in ctx.store.schema]
        if k == "OwnerId" or targets == ["User"]:
            return {"kind": "user", "key": k}
        if not targets:
            return None
        return {"kind": "ref", "target": targets[0], "key": k, "null": 20.0 if f.nillable else 0.0}
    if t in ("string", "textarea", "email", "phone", "url"):
        base = f"'{obj.name.removesuffix('__c')} ' || CAST(i AS VARCHAR)"
        text: Hint = (
            {"kind": t, "key": k}
            if t in ("email", "phone")
            else {"kind": "text", "key": k, "base": base, "null": 0 if k == "Name" else 15}
        )
        if f.length and t != "textarea":
            return {"kind": "sql", "sql": f"left({{v}}, {f.length})", "args": {"v": text}}
        return text
    if t in ("picklist", "multipicklist"):
        return {"kind": "pick", "key": k} if f.picklist_values else None
    if t in ("double", "currency", "percent"):
        hi = 10_000 if t != "percent" else 100
        return {"kind": "number", "key": k, "lo": 0, "hi": hi, "scale": min(f.scale, 4), "null": 15}
    simple: dict[str, Hint] = {
        "int": {"kind": "int", "key": k, "n": 1000},
        "date": {"kind": "date", "key": k, "null": 15},
        "datetime": {"kind": "datetime", "key": k, "null": 15},
        "time": {"kind": "time", "key": k, "null": 15},
        "boolean": {"kind": "pct", "key": k, "p": 50},
    }
    if k in AUDIT_TIMESTAMPS or k == "IsDeleted":
        return None
    return simple.get(t)


def _hints(ctx: _Ctx, obj: ObjectDef) -> dict[str, Hint]:
    """The fields' ``generate`` hints; by type for an object a description added; a custom
    object with none of its own (and not described) gets those of the custom template."""
    own = {f.name: f.generate for f in obj.fields if f.generate is not None}
    if obj.name in ctx.described:
        typed = {f.name: _typed_hint(ctx, obj, f) for f in obj.column_fields}
        return {**{k: h for k, h in typed.items() if h is not None}, **own}
    if not own and obj.name.endswith("__c"):
        own = {f.name: f.generate for f in custom_template().fields if f.generate is not None}
        own = {k: h for k, h in own.items() if obj.field(k) is not None}
    return own


def _values_for(ctx: _Ctx, obj: ObjectDef) -> dict[str, str]:
    """Column name -> SQL expression over ``i``, from the object's hints."""
    return _Rules(ctx, obj, _hints(ctx, obj)).values()


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
    values = _values_for(ctx, obj)
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
    field type, :func:`_typed_hint`), written after the others, in the description's order; the
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
    _generate_heavy(ctx, counts)
    _static_resources(ctx)
    _event_log_files(ctx, now)
    for name, rows in described.items():
        obj = store.schema[name]
        first = store.reserve_counters(obj, rows)
        ctx.ranges[name] = (first, rows)
        insert_generated(ctx, obj, first, rows, deleted_pct=0.0)
    return {k: v for k, v in store.counts(include_deleted=True).items() if v}


HEAVY_BEFORE_CUSTOM = ("Account", "Contact", "Lead", "Opportunity", "Case", "Invoice__c")
HEAVY_AFTER_CUSTOM = (
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
)
"""The order the heavy objects are generated in (the other custom objects between the two)."""
NO_SOFT_DELETES = ("AccountHistory", "ContentVersion", "ContentDocumentLink", "AccountShare")


def _generate_heavy(ctx: _Ctx, counts: dict[str, int]) -> None:
    """Reserve every heavy object's counters first (rows refer to each other), then insert them."""
    store = ctx.store
    customs = [n for n in counts if n.endswith("__c") and n != "Invoice__c"]
    order = [*HEAVY_BEFORE_CUSTOM, *customs, *HEAVY_AFTER_CUSTOM]
    for name in order:
        if name not in counts or name not in store.schema:
            continue
        obj = store.schema[name]
        first = store.reserve_counters(obj, counts[name])
        ctx.ranges[name] = (first, counts[name])
    for name in order:
        if name not in ctx.ranges:
            continue
        first, count = ctx.ranges[name]
        deleted = 0.0 if name in NO_SOFT_DELETES else 1.0
        insert_generated(ctx, store.schema[name], first, count, deleted_pct=deleted)


def _epoch_us(dt: datetime) -> int:
    naive = naive_utc(dt)
    return (naive - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def _setup_objects(ctx: _Ctx, n_users: int, now: datetime) -> None:
    """The org's setup objects, in Python: organization, licences, profiles, users, permission
    sets and their assignments, object and field permissions (counters reserved in that order)."""
    setup = _Setup(ctx, now)
    setup.organization()
    lic_ids = setup.licenses()
    prof_ids = setup.profiles(lic_ids)
    users = setup.users(n_users, prof_ids)
    ps_ids, ps_flags = setup.permission_sets(prof_ids)
    setup.assignments(users, prof_ids, ps_ids)
    setup.permissions(ps_ids, ps_flags)


class _Setup:
    def __init__(self, ctx: _Ctx, now: datetime) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.s = ctx.store.schema
        self.integ = ctx.store.integration_user_id
        self.now = now
        self.created = now - timedelta(days=SPAN_DAYS + 30)

    def audit(self, obj: ObjectDef, row: dict[str, Any]) -> dict[str, Any]:
        for name in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
            if obj.field(name):
                row[name] = self.created
        for name in ("CreatedById", "LastModifiedById"):
            if obj.field(name):
                row[name] = self.integ
        return row

    def new_ids(self, obj: ObjectDef, n: int) -> list[str]:
        first = self.store.reserve_counters(obj, n)
        self.ctx.ranges[obj.name] = (first, n)
        assert obj.key_prefix
        return [idmod.make_id(obj.key_prefix, first + k) for k in range(n)]

    def organization(self) -> None:
        store, org = self.store, self.s["Organization"]
        ids_org = self.new_ids(org, 1)
        assert ids_org[0] == store.org_id
        row = {
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
        }
        _insert_rows(store, org, [self.audit(org, row)])

    def licenses(self) -> dict[str, str]:
        lic = self.s["UserLicense"]
        lic_ids = dict(zip([x[0] for x in LICENSES], self.new_ids(lic, len(LICENSES)), strict=True))
        rows = [
            {
                "Id": lic_ids[name],
                "Name": name,
                "MasterLabel": name,
                "LicenseDefinitionKey": key,
                "Status": "Active",
                "TotalLicenses": total,
                "UsedLicenses": 0,
            }
            for name, key, total in LICENSES
        ]
        _insert_rows(self.store, lic, [self.audit(lic, r) for r in rows])
        return lic_ids

    def profiles(self, lic_ids: dict[str, str]) -> dict[str, str]:
        prof = self.s["Profile"]
        prof_ids = dict(zip([p[0] for p in PROFILES], self.new_ids(prof, len(PROFILES)), strict=True))
        rows = [
            {
                "Id": prof_ids[name],
                "Name": name,
                "UserLicenseId": lic_ids[licence],
                "UserType": utype,
                "Description": None,
            }
            for name, licence, utype in PROFILES
        ]
        _insert_rows(self.store, prof, [self.audit(prof, r) for r in rows])
        return prof_ids

    def users(self, n_users: int, prof_ids: dict[str, str]) -> list[dict[str, Any]]:
        """Users: #1 is the integration user (System Administrator); 80% active."""
        user = self.s["User"]
        user_ids = self.new_ids(user, n_users)
        assert user_ids[0] == self.integ
        users = [
            self.audit(user, self._user_row(k, uid, user_ids[0], prof_ids)) for k, uid in enumerate(user_ids)
        ]
        _insert_rows(self.store, user, users)
        return users

    def _user_row(self, k: int, uid: str, first_id: str, prof_ids: dict[str, str]) -> dict[str, Any]:
        seed, n_active = self.ctx.seed, self.ctx.active_users[1]
        if k == 0:
            pname = "System Administrator"
            first, last, uname = "Integration", "User", "integration@sfvault.example"
        else:
            pname = PROFILES[1 + (k * 3 + seed) % (len(PROFILES) - 1)][0] if k % 5 else "System Administrator"
            first, last = (
                FIRST_NAMES[(k + seed) % len(FIRST_NAMES)],
                LAST_NAMES[(k * 3 + seed) % len(LAST_NAMES)],
            )
            uname = f"user{k}.{seed}@sfvault.example"
        utype = next(p[2] for p in PROFILES if p[0] == pname)
        return {
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
            "ManagerId": first_id if k else None,
            "TimeZoneSidKey": "America/Los_Angeles" if k % 2 else "Europe/Paris",
            "LocaleSidKey": "en_US",
            "LanguageLocaleKey": "en_US",
            "EmailEncodingKey": "UTF-8",
            "LastLoginDate": self.now - timedelta(hours=k) if k < n_active else None,
        }

    def permission_sets(self, prof_ids: dict[str, str]) -> tuple[list[str], dict[str, set[str]]]:
        """One owned by each profile, plus a few standalone ones; their Ids and flags."""
        ps = self.s["PermissionSet"]
        ps_ids = self.new_ids(ps, len(PROFILES) + len(EXTRA_PERMISSION_SETS))
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
            ps_rows.append(self.audit(ps, row))
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
            ps_rows.append(self.audit(ps, row))
        _insert_rows(self.store, ps, ps_rows)
        return ps_ids, ps_flags

    def assignments(self, users: list[dict[str, Any]], prof_ids: dict[str, str], ps_ids: list[str]) -> None:
        profile_ps = {prof_ids[p[0]]: ps_ids[k] for k, p in enumerate(PROFILES)}
        assignments: list[tuple[str, str]] = []
        for k, urow in enumerate(users):
            assignments.append((urow["Id"], profile_ps[urow["ProfileId"]]))
            if k == 0:
                assignments.append((urow["Id"], ps_ids[len(PROFILES)]))  # Sfvault_Backup
            elif k % 4 == 0:
                assignments.append((urow["Id"], ps_ids[len(PROFILES) + 1 + k % 2]))
        psa = self.s["PermissionSetAssignment"]
        psa_ids = self.new_ids(psa, len(assignments))
        rows = [
            {"Id": i, "AssigneeId": a, "PermissionSetId": p, "IsActive": True}
            for i, (a, p) in zip(psa_ids, assignments, strict=True)
        ]
        _insert_rows(self.store, psa, [self.audit(psa, r) for r in rows])

    def permissions(self, ps_ids: list[str], ps_flags: dict[str, set[str]]) -> None:
        """Object and field permissions for the CRM and custom objects."""
        s = self.s
        objs = [s[n] for n in CRM_OBJECTS if n in s] + [o for o in s.values() if o.custom]
        op_rows: list[dict[str, Any]] = []
        fp_rows: list[dict[str, Any]] = []
        for pid in ps_ids:
            flags = ps_flags[pid]
            admin = "PermissionsModifyAllData" in flags
            for o in objs:
                read = admin or "PermissionsViewAllData" in flags or (hash_int(pid, o.name) % 5 != 0)
                op_rows.append(_object_permission(pid, o, flags, read, admin))
                fp_rows.extend(_field_permissions(pid, o, read, admin))
        for name, rows in (("ObjectPermissions", op_rows), ("FieldPermissions", fp_rows)):
            obj = s[name]
            for row, rid in zip(rows, self.new_ids(obj, len(rows)), strict=True):
                row["Id"] = rid
                self.audit(obj, row)
            _insert_rows(self.store, obj, rows)


def _object_permission(pid: str, o: ObjectDef, flags: set[str], read: bool, admin: bool) -> dict[str, Any]:
    return {
        "ParentId": pid,
        "SobjectType": o.name,
        "PermissionsRead": read,
        "PermissionsCreate": admin or (read and hash_int(pid, o.name, "c") % 2 == 0),
        "PermissionsEdit": admin or (read and hash_int(pid, o.name, "e") % 2 == 0),
        "PermissionsDelete": admin,
        "PermissionsViewAllRecords": admin or "PermissionsViewAllData" in flags,
        "PermissionsModifyAllRecords": admin,
    }


def _field_permissions(pid: str, o: ObjectDef, read: bool, admin: bool) -> list[dict[str, Any]]:
    out = []
    for f in o.fields:
        if not f.permissionable:
            continue
        fread = f.readable and (read or admin)
        out.append(
            {
                "ParentId": pid,
                "SobjectType": o.name,
                "Field": f"{o.name}.{f.name}",
                "PermissionsRead": fread,
                "PermissionsEdit": fread and f.updateable and admin,
            }
        )
    return out


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
