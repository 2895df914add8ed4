"""A small SOQL builder for the queries a backup needs (pure).

Only what extraction needs: a field list, ``Id`` ranges, ``SystemModstamp`` windows,
``IsDeleted`` filters, ``COUNT()`` and ``LIMIT``. Identifiers are checked against the API-name
grammar and string literals are escaped, so a describe with odd names cannot inject SOQL.

Rules that matter for Salesforce (SALESFORCE_API.md §2.4, §3.4, DESIGN "Plan"):

* Partition queries never carry ``ORDER BY``: it disables Bulk 2.0's server-side PK chunking and
  invites QUERY_TIMEOUT.
* Id literals are quoted 18-character Ids (Salesforce accepts 15 or 18; comparisons use the
  15-character value, and two 18-character Ids compare like their 15-character parts).
* Datetime literals are unquoted ISO-8601 in UTC with milliseconds and ``Z``:
  ``2024-01-02T03:04:05.000Z``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from engine.extract import idmath

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")


def ident(name: str) -> str:
    """``name`` if it is a valid (possibly dotted) API name, else ValueError."""
    if not _IDENT.match(name):
        raise ValueError(f"not a Salesforce API name: {name!r}")
    return name


def string_literal(value: str) -> str:
    """A quoted SOQL string literal (backslash and single quote escaped, control chars too)."""
    out = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f"'{out}'"


def datetime_literal(value: datetime) -> str:
    """``value`` as an unquoted SOQL datetime literal in UTC, ``YYYY-MM-DDTHH:MM:SS.mmmZ``.

    Naive datetimes are refused: a backup cursor must never depend on the local time zone.
    Microseconds are truncated to milliseconds (Salesforce's resolution), so truncation never
    moves a closed window start later than a stored millisecond timestamp.
    """
    if value.tzinfo is None:
        raise ValueError("naive datetime in a SOQL literal")
    v = value.astimezone(UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"


def date_literal(value: date) -> str:
    return value.isoformat()


def id_literal(id_: str) -> str:
    """A quoted 18-character Id literal."""
    return f"'{idmath.to18(id_)}'"


@dataclass(frozen=True)
class Soql:
    """An immutable SELECT; every ``with_*`` method returns a new one.

    Attributes:
        sobject: the FROM object.
        fields: SELECT list; empty means ``COUNT()``.
        where: conjuncts, joined with AND, each already rendered.
        limit: optional LIMIT.
        order_by: optional ORDER BY (REST lookups such as min/max Id, and REST paging by Id;
            never for Bulk partition queries, where it only slows the job down).
    """

    sobject: str
    fields: tuple[str, ...] = ()
    where: tuple[str, ...] = field(default=())
    limit: int | None = None
    order_by: str | None = None

    @staticmethod
    def select(sobject: str, fields: Sequence[str]) -> Soql:
        if not fields:
            raise ValueError("a SELECT needs at least one field")
        return Soql(ident(sobject), tuple(ident(f) for f in fields))

    @staticmethod
    def count(sobject: str) -> Soql:
        return Soql(ident(sobject), ())

    def and_where(self, clause: str) -> Soql:
        return Soql(self.sobject, self.fields, (*self.where, clause), self.limit, self.order_by)

    def with_id_range(self, lo: str | None, hi: str | None) -> Soql:
        """Restrict to ``lo <= Id < hi``; a None bound is open."""
        q = self
        if lo is not None:
            q = q.and_where(f"Id >= {id_literal(lo)}")
        if hi is not None:
            q = q.and_where(f"Id < {id_literal(hi)}")
        return q

    def with_window(self, column: str, start: datetime | None, end: datetime | None = None) -> Soql:
        """Restrict to ``start <= column < end`` (closed start, open end; None = unbounded)."""
        q = self
        if start is not None:
            q = q.and_where(f"{ident(column)} >= {datetime_literal(start)}")
        if end is not None:
            q = q.and_where(f"{ident(column)} < {datetime_literal(end)}")
        return q

    def with_deleted(self, deleted: bool) -> Soql:
        """``IsDeleted = true|false`` (``true`` only makes sense with queryAll)."""
        return self.and_where(f"IsDeleted = {'true' if deleted else 'false'}")

    def with_limit(self, n: int) -> Soql:
        if n < 1:
            raise ValueError("LIMIT must be >= 1")
        return Soql(self.sobject, self.fields, self.where, n, self.order_by)

    def with_order_by(self, column: str, descending: bool = False) -> Soql:
        order = f"{ident(column)} {'DESC' if descending else 'ASC'}"
        return Soql(self.sobject, self.fields, self.where, self.limit, order)

    def in_id_order(self) -> Soql:
        """``ORDER BY Id`` when the query selects ``Id``: a REST query that can resume by Id after
        Salesforce drops its locator (:meth:`engine.extract.rest.RestApi.query_pages`)."""
        return self.with_order_by("Id") if "Id" in self.fields and self.order_by is None else self

    def render(self) -> str:
        select = ", ".join(self.fields) if self.fields else "COUNT()"
        parts = [f"SELECT {select} FROM {self.sobject}"]
        if self.where:
            parts.append("WHERE " + " AND ".join(self.where))
        if self.order_by:
            parts.append(f"ORDER BY {self.order_by}")
        if self.limit is not None:
            parts.append(f"LIMIT {self.limit}")
        return " ".join(parts)

    def __str__(self) -> str:
        return self.render()
