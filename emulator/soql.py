"""A SOQL subset, parsed by recursive descent and translated to DuckDB SQL over the store's tables.

Supported: ``SELECT`` of fields, parent fields through relationships (``Owner.Name``,
``Account.Owner.Email``; polymorphic relationships only for fields every target has),
``COUNT()``, aggregates (``COUNT(f)``, ``COUNT_DISTINCT``, ``MIN``, ``MAX``, ``SUM``, ``AVG``)
with ``GROUP BY``; ``FROM`` with an optional alias; ``WHERE`` with ``AND`` / ``OR`` / ``NOT`` and
parentheses, ``= != <> < <= > >=``, ``[NOT] IN`` (a list or a semi-join
``IN (SELECT Id FROM ...)``), ``LIKE``, ``INCLUDES`` / ``EXCLUDES``; literals: quoted strings with
escapes, numbers, ``true`` / ``false`` / ``null``, unquoted dates and datetimes in every form
clients send, date literals (``TODAY``, ``LAST_N_DAYS:n`` ...); ``ORDER BY`` with ``ASC`` /
``DESC`` / ``NULLS FIRST|LAST``; ``LIMIT``; ``OFFSET``.

Semantics follow Salesforce: keywords and names are case-insensitive, text comparisons are
case-insensitive, Id comparisons are case-sensitive in ASCII order and accept 15- or
18-character literals, ``!=`` and ``NOT IN`` match nulls (a comparison is never "unknown"), and
``query`` hides recycle-bin rows. Every literal is a bound parameter. Anything else raises
:class:`SoqlError` with Salesforce's error code and wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from emulator import ids as idmod
from emulator.files import visibility_condition
from emulator.schema import (
    ADDRESS_COMPONENTS,
    ID_TYPES,
    NUMBER_TYPES,
    TEXT_TYPES,
    FieldDef,
    ObjectDef,
    find_object,
)


class SoqlError(Exception):
    """A query Salesforce would refuse: ``error_code`` and ``message`` as Salesforce words them."""

    def __init__(self, error_code: str, message: str, pos: int | None = None) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message
        self.pos = pos
        """Where in the statement the error is, until :func:`translate` puts the statement in front."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (SoqlError, (self.error_code, self.message, self.pos))


# ---------------------------------------------------------------------------------------------
# tokens

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\dT]))
  | (?P<number>[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>')
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),.:])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, date, datetime, op, punct, eof
    text: str
    pos: int
    value: Any = None  # decoded literal
    like: str | None = None  # for strings: the LIKE pattern (\% and \_ kept escaped)


def _read_string(soql: str, start: int) -> tuple[Token, int]:
    i = start + 1
    out: list[str] = []
    like: list[str] = []
    while i < len(soql):
        ch = soql[i]
        if ch == "'":
            return Token("string", soql[start : i + 1], start, "".join(out), "".join(like)), i + 1
        if ch == "\\":
            if i + 1 >= len(soql):
                break
            nxt = soql[i + 1]
            if nxt in ("%", "_"):
                out.append(nxt)
                like.append("\\" + nxt)
            elif nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                like.append("\\\\" if nxt == "\\" else _ESCAPES[nxt])
            else:
                raise SoqlError(
                    "MALFORMED_QUERY",
                    f"Invalid string literal '{soql[start : i + 2]}'. Illegal character sequence '\\{nxt}' in"
                    " string literal.",
                )
            i += 2
            continue
        out.append(ch)
        like.append(ch)
        i += 1
    raise SoqlError("MALFORMED_QUERY", _at(soql, start, "unexpected token: <EOF>"))


def tokenize(soql: str) -> list[Token]:
    """The tokens of ``soql``, ending with an ``eof`` token."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(soql):
        m = _TOKEN_RE.match(soql, pos)
        if m is None:
            raise SoqlError("MALFORMED_QUERY", _at(soql, pos, f"unexpected token: '{soql[pos]}'"))
        kind = m.lastgroup or ""
        if kind == "string":
            tok, pos = _read_string(soql, pos)
            tokens.append(tok)
            continue
        text = m.group(0)
        if (
            kind == "number"
            and tokens
            and tokens[-1].kind in ("ident", "string", "number")
            and text[0] in "+-"
        ):
            raise SoqlError("MALFORMED_QUERY", _at(soql, pos, f"unexpected token: '{text}'"))
        if kind != "ws":
            tokens.append(Token(kind, text, pos))
        pos = m.end()
    tokens.append(Token("eof", "", len(soql)))
    return tokens


def _at(soql: str, pos: int, what: str) -> str:
    """Salesforce's wording: a newline, the statement (40 characters either side of ``pos``), a
    caret under ``pos``, ``ERROR at Row:R:Column:C`` and the message."""
    line = soql[:pos].count("\n") + 1
    col = pos - (soql.rfind("\n", 0, pos) + 1) + 1
    snippet = soql[max(0, pos - 40) : pos + 40].replace("\n", " ")
    return f"\n{snippet}\n{' ' * min(pos, 40)}^\nERROR at Row:{line}:Column:{col}\n{what}"


# ---------------------------------------------------------------------------------------------
# AST


@dataclass(frozen=True)
class FieldPath:
    parts: tuple[str, ...]
    pos: int = 0

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Aggregate:
    func: str  # COUNT, COUNT_DISTINCT, MIN, MAX, SUM, AVG
    arg: FieldPath | None  # None for COUNT()
    alias: str | None = None


SelectItem = FieldPath | Aggregate


@dataclass(frozen=True)
class Literal:
    kind: str  # string, number, date, datetime, boolean, null, date_literal
    value: Any
    text: str
    like: str | None = None


@dataclass(frozen=True)
class Comparison:
    field: FieldPath
    op: str  # = != < <= > >= LIKE
    value: Literal


@dataclass(frozen=True)
class InList:
    field: FieldPath
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class InSubquery:
    field: FieldPath
    query: Query
    negated: bool = False


@dataclass(frozen=True)
class Includes:
    field: FieldPath
    values: tuple[Literal, ...]
    negated: bool = False  # EXCLUDES


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


Expr = Comparison | InList | InSubquery | Includes | And | Or | Not


@dataclass(frozen=True)
class OrderItem:
    field: FieldPath
    descending: bool = False
    nulls_last: bool | None = None  # None = SOQL default (first for ASC, last for DESC)


@dataclass(frozen=True)
class Query:
    select: tuple[SelectItem, ...]
    object: str
    alias: str | None = None
    where: Expr | None = None
    group_by: tuple[FieldPath, ...] = ()
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None
    object_pos: int = 0

    @property
    def is_count(self) -> bool:
        return len(self.select) == 1 and isinstance(self.select[0], Aggregate) and self.select[0].arg is None


# ---------------------------------------------------------------------------------------------
# parser

_RESERVED = frozenset({
    "and", "asc", "desc", "excludes", "first", "from", "group", "having", "in", "includes", "last",
    "like", "limit", "not", "null", "nulls", "or", "order", "select", "where", "with", "offset", "by",
    "for", "using", "typeof", "true", "false",
})  # fmt: skip
_OBJECT_KEYWORDS = frozenset({"group", "order"})
"""Keywords that are also standard objects' names (Group, Order): an object name after FROM."""
_AGGREGATES = frozenset({"count", "count_distinct", "min", "max", "sum", "avg"})
_UNSUPPORTED_CLAUSES = {
    "having": "HAVING",
    "with": "WITH",
    "for": "FOR",
    "using": "USING SCOPE",
    "typeof": "TYPEOF",
    "update": "UPDATE",
    "rollup": "ROLLUP",
}
DATE_LITERALS = frozenset({
    "today", "yesterday", "tomorrow", "this_week", "last_week", "next_week", "this_month",
    "last_month", "next_month", "this_year", "last_year", "next_year", "last_90_days", "next_90_days",
})  # fmt: skip
DATE_N_LITERALS = frozenset(
    {
        "last_n_days",
        "next_n_days",
        "n_days_ago",
        "last_n_weeks",
        "next_n_weeks",
        "last_n_months",
        "next_n_months",
        "last_n_years",
        "next_n_years",
    }
)


class _Parser:
    def __init__(self, soql: str) -> None:
        self.soql = soql
        self.tokens = tokenize(soql)
        self.i = 0

    # helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _kw(self, tok: Token) -> str:
        return tok.text.lower() if tok.kind == "ident" else ""

    def at_kw(self, *words: str) -> bool:
        return self._kw(self.tok) in words

    def advance(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def error(self, tok: Token | None = None, what: str | None = None) -> SoqlError:
        tok = tok or self.tok
        text = "<EOF>" if tok.kind == "eof" else tok.text
        return SoqlError("MALFORMED_QUERY", _at(self.soql, tok.pos, what or f"unexpected token: '{text}'"))

    def expect_kw(self, word: str) -> Token:
        if not self.at_kw(word):
            raise self.error()
        return self.advance()

    def expect_punct(self, p: str) -> Token:
        if self.tok.kind != "punct" or self.tok.text != p:
            raise self.error()
        return self.advance()

    def at_punct(self, p: str) -> bool:
        return self.tok.kind == "punct" and self.tok.text == p

    # grammar
    def parse_query(self, *, nested: bool = False) -> Query:
        self.expect_kw("select")
        select = self.parse_select_list()
        self.expect_kw("from")
        obj_tok = self.tok
        if obj_tok.kind != "ident" or self._kw(obj_tok) in _RESERVED - _OBJECT_KEYWORDS:
            raise self.error()
        self.advance()
        alias = None
        if self.tok.kind == "ident" and self._kw(self.tok) not in _RESERVED:
            alias = self.advance().text
        where = None
        group_by: tuple[FieldPath, ...] = ()
        order_by: tuple[OrderItem, ...] = ()
        limit = offset = None
        self._refuse_unsupported()
        if self.at_kw("where"):
            self.advance()
            where = self.parse_or()
        self._refuse_unsupported()
        if self.at_kw("group"):
            self.advance()
            self.expect_kw("by")
            items = [self.parse_field()]
            while self.at_punct(","):
                self.advance()
                items.append(self.parse_field())
            group_by = tuple(items)
        self._refuse_unsupported()
        if self.at_kw("order"):
            self.advance()
            self.expect_kw("by")
            order = [self.parse_order_item()]
            while self.at_punct(","):
                self.advance()
                order.append(self.parse_order_item())
            order_by = tuple(order)
        if self.at_kw("limit"):
            self.advance()
            limit = self.parse_int()
        if self.at_kw("offset"):
            self.advance()
            offset = self.parse_int()
        self._refuse_unsupported()
        if nested:
            if not self.at_punct(")"):
                raise self.error()
        elif self.tok.kind != "eof":
            raise self.error()
        return Query(
            select=select, object=obj_tok.text, alias=alias, where=where, group_by=group_by,
            order_by=order_by, limit=limit, offset=offset, object_pos=obj_tok.pos,
        )  # fmt: skip

    def _refuse_unsupported(self) -> None:
        kw = self._kw(self.tok)
        if kw in _UNSUPPORTED_CLAUSES:
            raise self.error(
                what=f"unexpected token: '{self.tok.text}' ({_UNSUPPORTED_CLAUSES[kw]} is not supported"
                " by this emulator)"
            )

    def parse_int(self) -> int:
        tok = self.tok
        if tok.kind != "number" or not tok.text.isdigit():
            raise self.error()
        self.advance()
        return int(tok.text)

    def parse_select_list(self) -> tuple[SelectItem, ...]:
        items = [self.parse_select_item()]
        while self.at_punct(","):
            self.advance()
            items.append(self.parse_select_item())
        return tuple(items)

    def parse_select_item(self) -> SelectItem:
        tok = self.tok
        if self.at_punct("("):
            raise self.error(
                what="unexpected token: '(' (parent-to-child subqueries are not supported by this emulator)"
            )
        if tok.kind != "ident" or self._kw(tok) in ("from",):
            raise self.error()
        nxt = self.tokens[self.i + 1]
        if self._kw(tok) in _AGGREGATES and nxt.kind == "punct" and nxt.text == "(":
            func = self.advance().text.upper()
            self.advance()
            arg = None
            if not self.at_punct(")"):
                arg = self.parse_field()
            elif func != "COUNT":
                raise self.error()
            self.expect_punct(")")
            alias = None
            if self.tok.kind == "ident" and self._kw(self.tok) not in _RESERVED:
                alias = self.advance().text
            return Aggregate(func, arg, alias)
        if self._kw(tok) == "fields" and nxt.kind == "punct" and nxt.text == "(":
            raise self.error(what="unexpected token: 'FIELDS' (FIELDS() is not supported by this emulator)")
        if self._kw(tok) in _RESERVED:
            raise self.error()
        return self.parse_field()

    def parse_field(self) -> FieldPath:
        tok = self.tok
        if tok.kind != "ident" or self._kw(tok) in _RESERVED:
            raise self.error()
        parts = [self.advance().text]
        while self.at_punct("."):
            self.advance()
            if self.tok.kind != "ident":
                raise self.error()
            parts.append(self.advance().text)
        return FieldPath(tuple(parts), tok.pos)

    def parse_order_item(self) -> OrderItem:
        fld = self.parse_field()
        desc = False
        nulls_last: bool | None = None
        if self.at_kw("asc", "desc"):
            desc = self.advance().text.lower() == "desc"
        if self.at_kw("nulls"):
            self.advance()
            if not self.at_kw("first", "last"):
                raise self.error()
            nulls_last = self.advance().text.lower() == "last"
        return OrderItem(fld, desc, nulls_last)

    def parse_or(self) -> Expr:
        items = [self.parse_and()]
        while self.at_kw("or"):
            self.advance()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self) -> Expr:
        items = [self.parse_not()]
        while self.at_kw("and"):
            self.advance()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_not(self) -> Expr:
        if self.at_kw("not"):
            self.advance()
            return Not(self.parse_not())
        if self.at_punct("("):
            self.advance()
            expr = self.parse_or()
            self.expect_punct(")")
            return expr
        return self.parse_condition()

    def parse_condition(self) -> Expr:
        fld = self.parse_field()
        tok = self.tok
        if tok.kind == "op":
            self.advance()
            op = "!=" if tok.text == "<>" else tok.text
            return Comparison(fld, op, self.parse_literal())
        negated = False
        if self.at_kw("not"):
            self.advance()
            negated = True
            if not self.at_kw("in"):
                raise self.error()
        if self.at_kw("in"):
            self.advance()
            self.expect_punct("(")
            if self.at_kw("select"):
                sub = self.parse_query(nested=True)
                self.expect_punct(")")
                return InSubquery(fld, sub, negated)
            values = self.parse_literal_list()
            return InList(fld, values, negated)
        if self.at_kw("like"):
            self.advance()
            lit = self.parse_literal()
            if lit.kind != "string":
                raise self.error(what=f"unexpected token: '{lit.text}'")
            return Comparison(fld, "LIKE", lit)
        if self.at_kw("includes", "excludes"):
            neg = self.advance().text.lower() == "excludes"
            self.expect_punct("(")
            return Includes(fld, self.parse_literal_list(), neg)
        raise self.error()

    def parse_literal_list(self) -> tuple[Literal, ...]:
        values = [self.parse_literal()]
        while self.at_punct(","):
            self.advance()
            values.append(self.parse_literal())
        self.expect_punct(")")
        return tuple(values)

    def parse_literal(self) -> Literal:
        tok = self.tok
        if tok.kind == "string":
            self.advance()
            return Literal("string", tok.value, tok.text, tok.like)
        if tok.kind == "number":
            self.advance()
            text = tok.text
            num: int | float = float(text) if any(c in text for c in ".eE") else int(text)
            return Literal("number", num, text)
        if tok.kind == "date":
            self.advance()
            try:
                return Literal("date", date.fromisoformat(tok.text), tok.text)
            except ValueError:
                raise self.error(
                    tok, f"line 1:{tok.pos} no viable alternative at character '{tok.text}'"
                ) from None
        if tok.kind == "datetime":
            self.advance()
            try:
                return Literal("datetime", parse_soql_datetime(tok.text), tok.text)
            except ValueError:
                raise self.error(tok, f"unexpected token: '{tok.text}'") from None
        kw = self._kw(tok)
        if kw in ("true", "false"):
            self.advance()
            return Literal("boolean", kw == "true", tok.text)
        if kw == "null":
            self.advance()
            return Literal("null", None, tok.text)
        if kw in DATE_LITERALS:
            self.advance()
            return Literal("date_literal", (kw, 0), tok.text)
        if kw in DATE_N_LITERALS:
            self.advance()
            self.expect_punct(":")
            n = self.parse_int()
            return Literal("date_literal", (kw, n), f"{tok.text}:{n}")
        raise self.error()


def parse_soql_datetime(text: str) -> datetime:
    """An unquoted SOQL datetime literal as an aware UTC datetime (microseconds truncated to ms)."""
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})", text)
    if m is None:
        raise ValueError(text)
    frac = (m.group(3) or "0")[:6].ljust(6, "0")
    tz = m.group(4)
    tz = "+00:00" if tz == "Z" else (tz if ":" in tz else tz[:3] + ":" + tz[3:])
    dt = datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}.{frac}{tz}").astimezone(UTC)
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def parse(soql: str) -> Query:
    """The AST of ``soql``.

    Raises:
        SoqlError: ``MALFORMED_QUERY`` with Salesforce's ``ERROR at Row:1:Column:N`` wording.
    """
    if len(soql) > 100_000:
        raise SoqlError("MALFORMED_QUERY", "Query string is too long (over 100,000 characters)")
    return _Parser(soql).parse_query()


# ---------------------------------------------------------------------------------------------
# translation


@dataclass
class Translated:
    """A SOQL query as DuckDB SQL over the store's tables.

    ``sql`` yields typed rows in SELECT order (datetimes aware UTC, compounds as dicts, blob
    fields as REST paths); ``csv_sql`` yields the same rows with every column a VARCHAR formatted
    as Bulk API 2.0 writes it; ``rest_sql`` yields ``sql``'s columns followed by the record's own
    Id and, for every relationship in ``relationships``, the parent's Id (NULL when there is no
    parent) — what a REST layer needs for ``attributes.url`` and ``"Owner": null``.
    ``total_sql`` counts the rows the query returns. All take ``params``.

    ``sql`` and ``rest_sql`` are ordered (by the query's ORDER BY, then Id; by Id without one) so
    REST paging is stable. ``csv_sql`` sorts only when the query has ORDER BY: Bulk results have no
    defined order and sorting formatted rows would halve the CSV rate; materialise it once.
    Polymorphic relationships report their first target in ``relationships``; take a parent's
    real type from its Id (:func:`emulator.schema.object_for_id`).
    """

    object: ObjectDef
    columns: list[str]
    field_types: list[str]
    sql: str
    params: list[Any]
    csv_sql: str
    count_sql: str | None
    is_count: bool
    limit: int | None
    has_order_by: bool
    has_aggregate: bool
    selects_compound: bool
    offset: int | None = None
    rest_sql: str = ""
    relationships: list[tuple[str, str]] = field(default_factory=list)  # (path "Owner", sObject type)
    total_sql: str = ""
    selects_blob: bool = False
    has_group_by: bool = False
    csv_exprs: list[str] = field(default_factory=list)  # the VARCHAR expressions of csv_sql's columns
    csv_from: str = ""  # csv_sql after its SELECT list: FROM ... WHERE ... [ORDER BY ...] [LIMIT ...]


_NO_SUCH_COLUMN = (
    "No such column '{field}' on entity '{entity}'. If you are attempting to use a custom field, be sure to"
    " append the '__c' after the custom field name. Please reference your WSDL or the describe call for the"
    " appropriate names."
)
_BAD_RELATIONSHIP = (
    "Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom"
    " relationship, be sure to append the '__r' after the custom relationship name. Please reference your"
    " WSDL or the describe call for the appropriate names."
)
_NOT_SUPPORTED = (
    "sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append"
    " the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate"
    " names."
)
_CDL_RESTRICTION = (
    "Implementation restriction: {name} requires a filter by a single Id on ContentDocumentId or"
    " LinkedEntityId using the equals operator or multiple Id's using the IN operator."
)
_API_VERSION = re.compile(r"^\d{1,3}\.\d$")


@dataclass
class _Resolved:
    """A field path resolved to a SQL expression over the joined tables."""

    name: str  # output name: canonical, dotted for parents
    field: FieldDef
    sql: str  # typed expression
    raw: str  # raw column expression (naive TIMESTAMP etc.)
    table_alias: str  # alias of the (first) table the field lives in
    obj: ObjectDef  # object the field lives in (first target for polymorphic)
    aliases: tuple[str, ...]  # all aliases (polymorphic parents)
    is_parent: bool


@dataclass
class _Join:
    path: str  # canonical relationship path, e.g. "Owner" or "Account.Owner"
    aliases: list[tuple[str, ObjectDef]]
    sql: list[str]
    ref_expr: str  # expression of the parent id on the child side


class _Translator:
    def __init__(
        self,
        schema: dict[str, ObjectDef],
        *,
        include_deleted: bool,
        api_version: str,
        now: datetime | None,
        table_name: Any,
        alias_prefix: str = "t",
        files_visible_to: str | None = None,
    ) -> None:
        self.schema = schema
        self.include_deleted = include_deleted
        self.files_visible_to = files_visible_to
        self.api_version = api_version
        self.now = now
        self.table_name = table_name
        self.alias_prefix = alias_prefix
        self.joins: dict[str, _Join] = {}
        self.obj: ObjectDef | None = None
        self.alias: str | None = None
        self.base = alias_prefix + "0"
        self.subqueries = 0

    # -- resolution -------------------------------------------------------------------------------

    def resolve(self, path: FieldPath) -> _Resolved:
        assert self.obj is not None
        parts = list(path.parts)
        if self.alias and len(parts) > 1 and parts[0].lower() == self.alias.lower():
            parts = parts[1:]
        obj = self.obj
        targets: list[tuple[str, ObjectDef]] = [(self.base, obj)]
        canonical: list[str] = []
        for rel in parts[:-1]:
            if len(targets) > 1:
                raise SoqlError("INVALID_FIELD", _BAD_RELATIONSHIP.format(rel=rel), path.pos)
            alias, cur = targets[0]
            ref = cur.relationship(rel)
            if ref is None or not ref.readable:
                raise SoqlError("INVALID_FIELD", _BAD_RELATIONSHIP.format(rel=rel), path.pos)
            canonical.append(ref.relationship_name or rel)
            key = ".".join(canonical)
            join = self.joins.get(key)
            if join is None:
                join = self._make_join(key, alias, ref)
            targets = join.aliases
        name = parts[-1]
        if len(targets) > 1:
            try:
                return self._resolve_polymorphic(name, canonical, targets)
            except SoqlError as exc:
                exc.pos = path.pos if exc.pos is None else exc.pos
                raise
        alias, tobj = targets[0]
        fd = tobj.field(name)
        if fd is None or not fd.readable:
            raise SoqlError("INVALID_FIELD", _NO_SUCH_COLUMN.format(field=name, entity=tobj.name), path.pos)
        out_name = ".".join([*canonical, fd.name])
        raw = self._raw(alias, tobj, fd)
        return _Resolved(
            name=out_name, field=fd, sql=self._typed(raw, fd, targets[0][1], targets[0][0]), raw=raw,
            table_alias=targets[0][0], obj=targets[0][1], aliases=tuple(a for a, _ in targets),
            is_parent=bool(canonical),
        )  # fmt: skip

    def _resolve_polymorphic(
        self, name: str, canonical: list[str], targets: list[tuple[str, ObjectDef]]
    ) -> _Resolved:
        """A field of a polymorphic parent (the ``Name`` object): ``Type``, or a field some targets have."""
        out_base = ".".join(canonical)
        if name.lower() == "type":
            whens = " ".join(f"WHEN {a}.\"Id\" IS NOT NULL THEN '{t.name}'" for a, t in targets)
            raw = f"(CASE {whens} END)"
            type_fd = FieldDef("Type", "picklist", picklist_values=tuple(t.name for _a, t in targets))
            return _Resolved(
                f"{out_base}.Type",
                type_fd,
                raw,
                raw,
                targets[0][0],
                targets[0][1],
                tuple(a for a, _ in targets),
                True,
            )
        raws: list[str] = []
        found: FieldDef | None = None
        for alias, tobj in targets:
            fd = tobj.field(name)
            if fd is None and name.lower() == "name":
                fd = next((f for f in tobj.fields if f.name_field), None)
            if fd is None or not fd.readable:
                continue
            if found is not None and found.type != fd.type:
                raise SoqlError("INVALID_FIELD", _NO_SUCH_COLUMN.format(field=name, entity="Name"))
            found = found or fd
            raws.append(self._raw(alias, tobj, fd))
        if found is None or found.type in ("address", "location", "base64"):
            raise SoqlError("INVALID_FIELD", _NO_SUCH_COLUMN.format(field=name, entity="Name"))
        canonical_name = "Name" if name.lower() == "name" else found.name
        raw = raws[0] if len(raws) == 1 else f"coalesce({', '.join(raws)})"
        return _Resolved(
            f"{out_base}.{canonical_name}",
            found,
            self._typed(raw, found, targets[0][1], ""),
            raw,
            targets[0][0],
            targets[0][1],
            tuple(a for a, _ in targets),
            True,
        )

    def _make_join(self, key: str, child_alias: str, ref: FieldDef) -> _Join:
        aliases: list[tuple[str, ObjectDef]] = []
        sql: list[str] = []
        n = len(self.joins) + 1
        for k, target_name in enumerate(ref.reference_to):
            target = self.schema.get(target_name)
            if target is None:
                continue
            alias = f"{self.alias_prefix}{n}_{k}"
            aliases.append((alias, target))
            sql.append(
                f"LEFT JOIN {self.table_name(target)} AS {alias}"
                f' ON {alias}."Id" = {child_alias}.{_q(ref.name)}'
            )
        if not aliases:
            raise SoqlError("INVALID_FIELD", _BAD_RELATIONSHIP.format(rel=ref.relationship_name))
        join = _Join(key, aliases, sql, f"{child_alias}.{_q(ref.name)}")
        self.joins[key] = join
        return join

    def _raw(self, alias: str, obj: ObjectDef, fd: FieldDef) -> str:
        if fd.type == "address":
            prefix = fd.name.removesuffix("Address")
            cols = {key: f"{alias}.{_q(prefix + suffix)}" for key, suffix in ADDRESS_COMPONENTS}
            cols["countryCode"] = "CAST(NULL AS VARCHAR)"
            cols["stateCode"] = "CAST(NULL AS VARCHAR)"
            empty = " AND ".join(f"{c} IS NULL" for k, c in cols.items() if not k.endswith("Code"))
            packed = ", ".join(f"{k} := {cols[k]}" for k in sorted(cols))
            return f"(CASE WHEN {empty} THEN NULL ELSE struct_pack({packed}) END)"
        if fd.type == "location":
            stem = fd.name.removesuffix("__c")
            lat, lon = f"{alias}.{_q(stem + '__Latitude__s')}", f"{alias}.{_q(stem + '__Longitude__s')}"
            return (
                f"(CASE WHEN {lat} IS NULL AND {lon} IS NULL THEN NULL"
                f" ELSE struct_pack(latitude := {lat}, longitude := {lon}) END)"
            )
        if fd.type == "base64":
            length_field = {
                "Body": "BodyLength",
                "VersionData": "ContentSize",
                "LogFile": "LogFileLength",
            }.get(fd.name, "BodyLength")
            base = f"/services/data/v{self.api_version}/sobjects/{obj.name}/"
            return (
                f"(CASE WHEN {alias}.{_q(length_field)} IS NULL THEN NULL"
                f" ELSE '{base}' || {alias}.\"Id\" || '/{fd.name}' END)"
            )
        return f"{alias}.{_q(fd.name)}"

    def _typed(self, raw: str, fd: FieldDef, obj: ObjectDef, alias: str) -> str:
        if fd.type == "datetime":
            return f"CAST({raw} AS TIMESTAMPTZ)"
        return raw

    # -- select -----------------------------------------------------------------------------------

    def csv_expr(self, r: _Resolved) -> str:
        fd, raw = r.field, r.raw
        if fd.type == "datetime":
            return f"strftime({raw}, '%Y-%m-%dT%H:%M:%S.%gZ')"
        if fd.type == "date":
            return f"strftime({raw}, '%Y-%m-%d')"
        if fd.type == "time":
            return f"strftime(DATE '1970-01-01' + {raw}, '%H:%M:%S.%gZ')"
        if fd.type == "boolean":
            return f"(CASE WHEN {raw} IS NULL THEN NULL WHEN {raw} THEN 'true' ELSE 'false' END)"
        if fd.type == "int":
            return f"CAST({raw} AS VARCHAR)"
        if fd.type in ("double", "currency", "percent"):
            # via the shortest round-trip text of the double, so 129.445519 does not print its
            # binary expansion (129.445518999999984) when the field's scale is large
            return f"CAST(CAST(CAST({raw} AS VARCHAR) AS DECIMAL(38, {fd.scale})) AS VARCHAR)"
        if fd.type in ("address", "location", "base64"):
            return "CAST(NULL AS VARCHAR)"
        return raw

    # -- where ------------------------------------------------------------------------------------

    def where(self, expr: Expr, params: list[Any]) -> str:
        if isinstance(expr, And):
            return "(" + " AND ".join(self.where(e, params) for e in expr.items) + ")"
        if isinstance(expr, Or):
            return "(" + " OR ".join(self.where(e, params) for e in expr.items) + ")"
        if isinstance(expr, Not):
            return f"(NOT {self.where(expr.item, params)})"
        if isinstance(expr, Comparison):
            return self.comparison(expr, params)
        if isinstance(expr, InList):
            return self.in_list(expr, params)
        if isinstance(expr, Includes):
            return self.includes(expr, params)
        return self.in_subquery(expr, params)

    def _filterable(self, r: _Resolved) -> None:
        if not r.field.filterable:
            raise SoqlError(
                "INVALID_FIELD",
                f"field '{r.field.name}' can not be filtered in a query call",
            )

    def _value(self, r: _Resolved, lit: Literal, op: str) -> Any:
        """The bound value of ``lit`` compared with field ``r`` (None for null)."""
        fd = r.field
        if lit.kind == "null":
            return None
        t = fd.type
        bad_type = SoqlError(
            "INVALID_FIELD",
            f"value of filter criterion for field '{fd.name}' must be of type {_type_word(t)} and should"
            + (
                " not be enclosed in quotes"
                if t not in TEXT_TYPES and t not in ID_TYPES
                else " be enclosed in quotes"
            ),
        )
        if t in ID_TYPES:
            if lit.kind != "string":
                raise bad_type
            try:
                return idmod.to18(lit.value)
            except ValueError:
                raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {lit.value}") from None
        if t in TEXT_TYPES:
            if lit.kind != "string":
                raise bad_type
            return lit.value
        if t in NUMBER_TYPES:
            if lit.kind != "number":
                raise bad_type
            if t == "int" and isinstance(lit.value, float) and not lit.value.is_integer():
                return lit.value
            return lit.value
        if t == "boolean":
            if lit.kind != "boolean":
                raise bad_type
            return lit.value
        if t == "date":
            if lit.kind == "date":
                return lit.value
            raise bad_type
        if t == "datetime":
            if lit.kind == "datetime":
                return lit.value.astimezone(UTC).replace(tzinfo=None)
            raise bad_type
        if t == "time":
            if lit.kind == "string":
                try:
                    return time.fromisoformat(lit.value.rstrip("Zz"))
                except ValueError:
                    raise bad_type from None
            raise bad_type
        raise SoqlError("INVALID_FIELD", f"field '{fd.name}' can not be filtered in a query call")

    def comparison(self, c: Comparison, params: list[Any]) -> str:
        r = self.resolve(c.field)
        self._filterable(r)
        fd, col = r.field, r.raw
        op = c.op
        if op == "LIKE":
            if fd.type not in TEXT_TYPES:
                raise SoqlError(
                    "INVALID_QUERY_FILTER_OPERATOR",
                    f"invalid operator on {_type_word(fd.type)} field: {fd.name}"
                    if fd.type not in ID_TYPES
                    else f"invalid operator on id field: {fd.name}",
                )
            params.append(c.value.like)
            return f"coalesce({col} ILIKE ? ESCAPE '\\', false)"
        if c.value.kind == "date_literal":
            return self.date_literal(r, op, c.value, params)
        value = self._value(r, c.value, op)
        if fd.type == "boolean" and op not in ("=", "!="):
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on boolean field: {fd.name}")
        if fd.type == "multipicklist" and op not in ("=", "!="):
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on multipicklist field: {fd.name}"
            )
        text = fd.type in TEXT_TYPES
        lhs = f"lower({col})" if text else col
        if value is None:
            if op == "=":
                return f"({col} IS NULL)"
            if op == "!=":
                return f"({col} IS NOT NULL)"
            return "false"
        params.append(value)
        rhs = "lower(?)" if text else "?"
        if op == "=":
            return f"coalesce({lhs} = {rhs}, false)"
        if op == "!=":
            return f"({lhs} IS DISTINCT FROM {rhs})"
        return f"coalesce({lhs} {op} {rhs}, false)"

    def date_literal(self, r: _Resolved, op: str, lit: Literal, params: list[Any]) -> str:
        fd = r.field
        if fd.type not in ("date", "datetime"):
            raise SoqlError(
                "INVALID_FIELD",
                f"value of filter criterion for field '{fd.name}' must be of type {_type_word(fd.type)}",
            )
        start, end = date_literal_range(lit.value[0], lit.value[1], self.now or datetime.now(UTC))
        lo: Any = start.date() if fd.type == "date" else start.replace(tzinfo=None)
        hi: Any = end.date() if fd.type == "date" else end.replace(tzinfo=None)
        col = r.raw
        if op == "=":
            params.extend([lo, hi])
            return f"coalesce({col} >= ? AND {col} < ?, false)"
        if op == "!=":
            params.extend([lo, hi])
            return f"NOT coalesce({col} >= ? AND {col} < ?, false)"
        if op in ("<", ">="):
            params.append(lo)
        else:
            params.append(hi)
        sql_op = {"<": "<", ">=": ">=", "<=": "<", ">": ">="}[op]
        return f"coalesce({col} {sql_op} ?, false)"

    def in_list(self, c: InList, params: list[Any]) -> str:
        r = self.resolve(c.field)
        self._filterable(r)
        fd, col = r.field, r.raw
        if fd.type in ("boolean",):
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on boolean field: {fd.name}")
        values = [self._value(r, v, "=") for v in c.values]
        non_null = [v for v in values if v is not None]
        has_null = len(non_null) != len(values)
        text = fd.type in TEXT_TYPES
        parts = []
        if non_null:
            lhs = f"lower({col})" if text else col
            marks = ", ".join("lower(?)" if text else "?" for _ in non_null)
            params.extend(non_null)
            parts.append(f"coalesce({lhs} IN ({marks}), false)")
        if has_null:
            parts.append(f"({col} IS NULL)")
        inner = "(" + " OR ".join(parts) + ")"
        return f"(NOT {inner})" if c.negated else inner

    def includes(self, c: Includes, params: list[Any]) -> str:
        r = self.resolve(c.field)
        if r.field.type != "multipicklist":
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR",
                "includes or excludes operator only valid on multipicklist field",
            )
        col = r.raw
        parts = []
        for lit in c.values:
            if lit.kind != "string":
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{r.field.name}' must be of"
                    " type string and should be enclosed in quotes",
                )
            wanted = sorted({v.strip().lower() for v in lit.value.split(";") if v.strip()})
            params.append(wanted)
            parts.append(
                f"coalesce(list_has_all(list_transform(string_split(lower({col}), ';'), x -> trim(x)),"
                " ?::VARCHAR[]), false)"
            )
        inner = "(" + " OR ".join(parts) + ")"
        return f"(NOT {inner})" if c.negated else inner

    def in_subquery(self, c: InSubquery, params: list[Any]) -> str:
        r = self.resolve(c.field)
        if r.field.type not in ID_TYPES:
            raise SoqlError(
                "INVALID_FIELD", f"semi join sub-selects are only supported on id fields: {r.field.name}"
            )
        self.subqueries += 1
        sub = _Translator(
            self.schema, include_deleted=False, api_version=self.api_version, now=self.now,
            table_name=self.table_name, alias_prefix=f"{self.alias_prefix}s{self.subqueries}_",
            files_visible_to=self.files_visible_to,
        )  # fmt: skip
        q = c.query
        if len(q.select) != 1 or not isinstance(q.select[0], FieldPath) or q.order_by or q.group_by:
            raise SoqlError("MALFORMED_QUERY", "semi join sub-selects must select exactly one Id field")
        sub_sql, sub_params = sub.semi_join(q)
        params.extend(sub_params)
        op = "NOT IN" if c.negated else "IN"
        if c.negated:
            return f"({r.raw} IS NULL OR {r.raw} NOT IN ({sub_sql}))"
        return f"coalesce({r.raw} {op} ({sub_sql}), false)"

    def semi_join(self, q: Query) -> tuple[str, list[Any]]:
        self.set_object(q)
        item = q.select[0]
        assert isinstance(item, FieldPath)
        r = self.resolve(item)
        if r.field.type not in ID_TYPES:
            raise SoqlError("INVALID_FIELD", "semi join sub-selects must select an Id or reference field")
        params: list[Any] = []
        where = self.full_where(q, params)
        sql = f"SELECT {r.raw} FROM {self.from_clause()}{where}"
        if q.limit is not None:
            sql += " LIMIT ?"
            params.append(q.limit)
        return sql, params

    # -- assembly ---------------------------------------------------------------------------------

    def set_object(self, q: Query) -> None:
        obj = find_object(self.schema, q.object)
        if obj is None or not obj.queryable:
            raise SoqlError("INVALID_TYPE", _NOT_SUPPORTED.format(name=q.object), q.object_pos)
        self.obj = obj
        self.alias = q.alias

    def from_clause(self) -> str:
        assert self.obj is not None
        parts = [f"{self.table_name(self.obj)} AS {self.base}"]
        for join in self.joins.values():
            parts.extend(join.sql)
        return " ".join(parts)

    def full_where(self, q: Query, params: list[Any]) -> str:
        assert self.obj is not None
        conds = []
        if q.where is not None:
            conds.append(self.where(q.where, params))
        if not self.include_deleted and self.obj.has_is_deleted:
            conds.append(f'NOT {self.base}."IsDeleted"')
        if (
            not self.include_deleted
            and self.obj.field("IsArchived") is not None
            and self.obj.name in ("Task", "Event")
        ):
            conds.append(f'NOT {self.base}."IsArchived"')
        if self.files_visible_to is not None:
            # without Query All Files only the files the user can see (emulator.files)
            visible = visibility_condition(
                self.obj.name, self.base, self.files_visible_to, lambda n: self.table_name(self.schema[n])
            )
            if visible is not None:
                conds.append(visible)
        return (" WHERE " + " AND ".join(conds)) if conds else ""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _type_word(t: str) -> str:
    return {
        "datetime": "dateTime",
        "int": "number",
        "double": "number",
        "currency": "number",
        "percent": "number",
        "reference": "id",
        "id": "id",
        "boolean": "boolean",
        "date": "date",
        "time": "time",
    }.get(t, "string")


def date_literal_range(name: str, n: int, now: datetime) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC of a SOQL date literal such as ``TODAY`` or ``LAST_N_DAYS:30``."""
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    day = timedelta(days=1)

    def month_start(y: int, m: int) -> datetime:
        y += (m - 1) // 12
        m = (m - 1) % 12 + 1
        return datetime(y, m, 1, tzinfo=UTC)

    week_start = today - timedelta(days=(today.weekday() + 1) % 7)  # weeks start on Sunday
    ranges: dict[str, tuple[datetime, datetime]] = {
        "today": (today, today + day),
        "yesterday": (today - day, today),
        "tomorrow": (today + day, today + 2 * day),
        "this_week": (week_start, week_start + 7 * day),
        "last_week": (week_start - 7 * day, week_start),
        "next_week": (week_start + 7 * day, week_start + 14 * day),
        "this_month": (month_start(now.year, now.month), month_start(now.year, now.month + 1)),
        "last_month": (month_start(now.year, now.month - 1), month_start(now.year, now.month)),
        "next_month": (month_start(now.year, now.month + 1), month_start(now.year, now.month + 2)),
        "this_year": (datetime(now.year, 1, 1, tzinfo=UTC), datetime(now.year + 1, 1, 1, tzinfo=UTC)),
        "last_year": (datetime(now.year - 1, 1, 1, tzinfo=UTC), datetime(now.year, 1, 1, tzinfo=UTC)),
        "next_year": (datetime(now.year + 1, 1, 1, tzinfo=UTC), datetime(now.year + 2, 1, 1, tzinfo=UTC)),
        "last_90_days": (today - 90 * day, today + day),
        "next_90_days": (today + day, today + 91 * day),
        "last_n_days": (today - n * day, today + day),
        "next_n_days": (today + day, today + (n + 1) * day),
        "n_days_ago": (today - n * day, today - (n - 1) * day),
        "last_n_weeks": (week_start - 7 * n * day, week_start),
        "next_n_weeks": (week_start + 7 * day, week_start + 7 * (n + 1) * day),
        "last_n_months": (month_start(now.year, now.month - n), month_start(now.year, now.month)),
        "next_n_months": (month_start(now.year, now.month + 1), month_start(now.year, now.month + 1 + n)),
        "last_n_years": (datetime(now.year - n, 1, 1, tzinfo=UTC), datetime(now.year, 1, 1, tzinfo=UTC)),
        "next_n_years": (
            datetime(now.year + 1, 1, 1, tzinfo=UTC),
            datetime(now.year + 1 + n, 1, 1, tzinfo=UTC),
        ),
    }
    return ranges[name]


def _default_table_name(obj: ObjectDef) -> str:
    return "sf_" + obj.name.lower()


def _agg_type(func: str, fd: FieldDef | None) -> str:
    if func in ("COUNT", "COUNT_DISTINCT"):
        return "int"
    if func == "AVG":
        return "double"
    assert fd is not None
    return fd.type


def translate(
    soql: str,
    schema: dict[str, ObjectDef],
    *,
    include_deleted: bool,
    api_version: str = "59.0",
    now: datetime | None = None,
    files_visible_to: str | None = None,
) -> Translated:
    """Translate ``soql`` into DuckDB SQL over the store's tables (see :class:`Translated`).

    Args:
        soql: the query text.
        schema: the org's objects; FLS-hidden fields are treated as nonexistent.
        include_deleted: True for ``queryAll`` (recycle-bin rows included).
        api_version: used in blob-field paths (``/services/data/v59.0/...``).
        now: "now" for date literals such as ``TODAY`` (default: the wall clock).
        files_visible_to: the session user when it lacks Query All Files: ContentVersion and
            ContentDocument keep only the files it can see (:mod:`emulator.files`); None = all.

    Raises:
        SoqlError: MALFORMED_QUERY, INVALID_TYPE, INVALID_FIELD, INVALID_QUERY_FILTER_OPERATOR.
    """
    try:
        return _translate(
            soql, schema, include_deleted=include_deleted, api_version=api_version, now=now,
            files_visible_to=files_visible_to,
        )  # fmt: skip
    except SoqlError as exc:
        if exc.pos is None:
            raise
        # INVALID_FIELD / INVALID_TYPE: the statement and its position first, as Salesforce words them
        raise SoqlError(exc.error_code, _at(soql, exc.pos, exc.message)) from None


def _translate(
    soql: str,
    schema: dict[str, ObjectDef],
    *,
    include_deleted: bool,
    api_version: str,
    now: datetime | None,
    files_visible_to: str | None,
) -> Translated:
    if not _API_VERSION.match(api_version):
        raise ValueError(f"bad api version {api_version!r}")
    q = parse(soql)
    tr = _Translator(
        schema,
        include_deleted=include_deleted,
        api_version=api_version,
        now=now,
        table_name=_default_table_name,
        files_visible_to=files_visible_to,
    )
    tr.set_object(q)
    obj = tr.obj
    assert obj is not None
    if q.offset is not None and q.offset > 2000:
        raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000")

    is_count = q.is_count
    aggregates = [s for s in q.select if isinstance(s, Aggregate)]
    has_aggregate = bool(aggregates) and not is_count
    if is_count and len(q.select) != 1:
        raise SoqlError("MALFORMED_QUERY", "COUNT() cannot be combined with other fields")
    if any(isinstance(s, Aggregate) and s.arg is None for s in q.select) and not is_count:
        raise SoqlError("MALFORMED_QUERY", "COUNT() cannot be combined with other fields")

    columns: list[str] = []
    types: list[str] = []
    typed: list[str] = []
    csv: list[str] = []
    selects_compound = False
    selects_blob = False
    group_exprs: list[str] = []
    group_names: set[str] = set()
    for g in q.group_by:
        r = tr.resolve(g)
        if not r.field.groupable:
            raise SoqlError("INVALID_FIELD", f"field '{r.field.name}' can not be grouped in a query call")
        group_exprs.append(r.raw)
        group_names.add(r.name.lower())
    if q.group_by and not has_aggregate:
        for s in q.select:
            if isinstance(s, FieldPath) and tr.resolve(s).name.lower() not in group_names:
                raise SoqlError("MALFORMED_QUERY", f"Field must be grouped or aggregated: {s.text}")
    expr_n = 0
    seen: set[str] = set()
    if not is_count:
        for item in q.select:
            if isinstance(item, Aggregate):
                fd: FieldDef | None = None
                arg_sql = "*"
                if item.arg is not None:
                    r = tr.resolve(item.arg)
                    fd = r.field
                    if not fd.aggregatable:
                        raise SoqlError(
                            "INVALID_FIELD",
                            f"field {fd.name} does not support aggregate operator {item.func}",
                        )
                    if item.func in ("SUM", "AVG") and fd.type not in NUMBER_TYPES:
                        raise SoqlError(
                            "INVALID_FIELD",
                            f"field {fd.name} does not support aggregate operator {item.func}",
                        )
                    arg_sql = r.raw
                sql_func = {"COUNT_DISTINCT": "count(DISTINCT {})"}.get(item.func, item.func.lower() + "({})")
                expr = sql_func.format(arg_sql)
                name = item.alias or f"expr{expr_n}"
                if item.alias is None:
                    expr_n += 1
                t = _agg_type(item.func, fd)
                columns.append(name)
                types.append(t)
                if t == "datetime":
                    typed.append(f"CAST({expr} AS TIMESTAMPTZ)")
                else:
                    typed.append(expr)
                fake = _Resolved(name, fd or FieldDef(name, "int"), expr, expr, "", obj, (), False)
                if fd is not None and t == fd.type:
                    fake.field = fd
                elif t != "int":
                    fake.field = FieldDef(name, "double", scale=6)
                csv.append(tr.csv_expr(fake))
                continue
            r = tr.resolve(item)
            if has_aggregate and r.name.lower() not in group_names:
                raise SoqlError("MALFORMED_QUERY", f"Field must be grouped or aggregated: {item.text}")
            if r.name.lower() in seen:
                raise SoqlError("MALFORMED_QUERY", f"duplicate field selected: {r.name}")
            seen.add(r.name.lower())
            columns.append(r.name)
            types.append(r.field.type)
            typed.append(r.sql)
            csv.append(tr.csv_expr(r))
            if r.field.type in ("address", "location"):
                selects_compound = True
            if r.field.type == "base64":
                selects_blob = True

    params: list[Any] = []
    where = tr.full_where(q, params)
    if obj.requires_filter and not _has_id_filter(q.where, tr):
        raise SoqlError("MALFORMED_QUERY", _CDL_RESTRICTION.format(name=obj.name))

    order_sql = ""
    if q.order_by:
        if is_count:
            raise SoqlError("MALFORMED_QUERY", "ORDER BY cannot be used with COUNT()")
        parts = []
        for o in q.order_by:
            r = tr.resolve(o.field)
            if not r.field.sortable:
                raise SoqlError("INVALID_FIELD", f"field '{r.field.name}' can not be sorted in a query call")
            if has_aggregate and r.name.lower() not in group_names:
                raise SoqlError(
                    "MALFORMED_QUERY", f"Ordered field must be grouped or aggregated: {o.field.text}"
                )
            expr = f"lower({r.raw})" if r.field.type in TEXT_TYPES else r.raw
            nulls_last = o.nulls_last if o.nulls_last is not None else o.descending
            parts.append(
                f"{expr} {'DESC' if o.descending else 'ASC'} NULLS {'LAST' if nulls_last else 'FIRST'}"
            )
        if not has_aggregate:
            parts.append(f'{tr.base}."Id" ASC')
        order_sql = " ORDER BY " + ", ".join(parts)
    elif not has_aggregate and not is_count:
        order_sql = f' ORDER BY {tr.base}."Id" ASC'
    elif has_aggregate and group_exprs:
        order_sql = " ORDER BY " + ", ".join(f"{g} ASC NULLS FIRST" for g in group_exprs)

    group_sql = (" GROUP BY " + ", ".join(group_exprs)) if group_exprs else ""
    tail_params: list[Any] = []
    tail = ""
    if q.limit is not None:
        tail += " LIMIT ?"
        tail_params.append(q.limit)
    if q.offset is not None:
        if q.limit is None:
            tail += " LIMIT ?"
            tail_params.append(2**62)
        tail += " OFFSET ?"
        tail_params.append(q.offset)
    from_sql = tr.from_clause()
    body = f" FROM {from_sql}{where}{group_sql}"

    relationships: list[tuple[str, str]] = []
    rest_extra: list[str] = []
    if not is_count and not has_aggregate:
        rest_extra.append(f'{tr.base}."Id"')
        for key, join in tr.joins.items():
            if any(c.lower().startswith(key.lower() + ".") for c in columns):
                relationships.append((key, join.aliases[0][1].name))
                ids = [f'{a}."Id"' for a, _ in join.aliases]
                rest_extra.append(ids[0] if len(ids) == 1 else f"coalesce({', '.join(ids)})")

    all_params = params + tail_params
    count_sql: str | None = None
    csv_from = ""
    if is_count:
        count_sql = f"SELECT count(*) FROM (SELECT 1{body}{tail}) AS _c"
        sql = count_sql
        csv_sql = count_sql
        rest_sql = count_sql
        total_sql = count_sql
    else:
        sql = f"SELECT {', '.join(typed)}{body}{order_sql}{tail}"
        # Bulk results have no defined order: sorting the formatted rows would halve the CSV rate,
        # so csv_sql only sorts when the query says so (the Bulk layer materialises results once)
        csv_order = order_sql if q.order_by or has_aggregate else ""
        csv_from = f"{body}{csv_order}{tail}"
        csv_sql = f"SELECT {', '.join(csv)}{csv_from}"
        rest_sql = f"SELECT {', '.join(typed + rest_extra)}{body}{order_sql}{tail}"
        total_sql = f"SELECT count(*) FROM (SELECT 1{body}{tail}) AS _c"
    return Translated(
        object=obj, columns=columns, field_types=types, sql=sql, params=all_params, csv_sql=csv_sql,
        count_sql=count_sql, is_count=is_count, limit=q.limit, has_order_by=bool(q.order_by),
        has_aggregate=has_aggregate, selects_compound=selects_compound, offset=q.offset, rest_sql=rest_sql,
        relationships=relationships, total_sql=total_sql, selects_blob=selects_blob,
        has_group_by=bool(q.group_by), csv_exprs=[] if is_count else csv,
        csv_from="" if is_count else csv_from,
    )  # fmt: skip


def _has_id_filter(expr: Expr | None, tr: _Translator) -> bool:
    """True when a top-level AND term filters ContentDocumentId / LinkedEntityId with = or IN."""
    if expr is None:
        return False
    terms = expr.items if isinstance(expr, And) else (expr,)
    for term in terms:
        if (isinstance(term, Comparison) and term.op == "=") or (
            isinstance(term, InList | InSubquery) and not (term.negated)
        ):
            name = term.field.parts[-1].lower()
            if len(term.field.parts) == 1 and name in ("contentdocumentid", "linkedentityid", "id"):
                return True
    return False
