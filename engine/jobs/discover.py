"""Driver-side discovery and partition planning (REST calls; no Dask).

``discover`` runs describeGlobal, applies the org's scope rules, describes the objects in scope (a
few at a time) and builds each object's :class:`~engine.extract.model.ObjectPlan`.
``window_size`` counts one object's rows (its incremental window's, when there is one), and
``split_window`` cuts it into Id ranges with ``COUNT()`` queries so each partition holds about the
job's partition size (:func:`engine.jobs.planning.partition_rows`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from engine.errors import SfvaultError, TransientError
from engine.extract.client import SalesforceClient
from engine.extract.composite import COMPOSITE_MAX
from engine.extract.csv_arrow import CsvPageParser
from engine.extract.cursor import Cursor as ExtractCursor
from engine.extract.cursor import utc_datetimes
from engine.extract.digest import row_digests
from engine.extract.model import ObjectPlan, ObjectSpec, ScopeDecision
from engine.extract.plan import Partition, plan_partitions
from engine.extract.rest import RestApi
from engine.extract.scope import ScopeRules, plan_object, select_objects
from engine.extract.soql import Soql
from engine.extract.usage import ApiUsage
from engine.model import ObjectSkipped

log = logging.getLogger(__name__)


@dataclass
class Discovery:
    plans: dict[str, ObjectPlan] = field(default_factory=dict)
    decisions: list[ScopeDecision] = field(default_factory=list)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    """REST calls spent per object on describe (and, later, on planning)."""


def not_backed_up(decisions: list[ScopeDecision]) -> tuple[ObjectSkipped, ...]:
    """The objects scope left out, with their typed reasons; not the ones a job's selection left
    out (``requested_objects`` says which were asked for)."""
    return tuple(
        ObjectSkipped(d.name, d.code, d.reason)
        for d in decisions
        if not d.included and d.code is not None and d.code != "not_selected"
    )


def _client_for(base: SalesforceClient) -> SalesforceClient:
    """``base``'s pool and session with separate usage counters (the calls are charged per object)."""
    return base.derive(usage=ApiUsage())


def discover(base: SalesforceClient, rules: ScopeRules, *, threads: int = 16) -> Discovery:
    out = Discovery()
    rest = RestApi(base)
    specs = [ObjectSpec.from_describe(d) for d in rest.describe_global()["sobjects"]]
    out.decisions = select_objects(specs, rules)
    names = [d.name for d in out.decisions if d.included]

    def chunk(part: list[str]) -> list[tuple[str, ObjectPlan, dict[str, int]]]:
        """Describe ``part`` in one composite call, charged to its first object. A subrequest that
        failed for a transient reason is described again on its own (with retries)."""
        c = _client_for(base)
        try:
            got = RestApi(c).describe_many(part)
            charged: dict[str, dict[str, int]] = {name: {} for name in part}
            charged[part[0]] = dict(c.usage.calls)
        finally:
            c.close()
        described = []
        for name in part:
            answer = got[name]
            if isinstance(answer, TransientError):
                single = _client_for(base)
                try:
                    answer = RestApi(single).describe(name)
                    add_calls(charged[name], single.usage.calls.items())
                finally:
                    single.close()
            elif isinstance(answer, SfvaultError):
                raise answer
            described.append((name, plan_object(ObjectSpec.from_describe(answer), rules), charged[name]))
        return described

    parts = [names[i : i + COMPOSITE_MAX] for i in range(0, len(names), COMPOSITE_MAX)]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="describe") as pool:
        for described in pool.map(chunk, parts):
            for name, plan, calls in described:
                out.plans[name] = plan
                out.usage[name] = calls
    return out


@dataclass(frozen=True)
class WindowSize:
    """What planning learned of one object's window (or whole object) before cutting it.

    ``rows``: rows to extract; None for objects read through REST paging (never split).
    ``nothing_new``: an incremental window that holds only versions the cursor captured.
    ``with_deleted``: ``rows`` came from the window probe and counts deleted rows too.
    ``records``: every row of the window, when the probe's one page held them all (and not
    ``nothing_new``): the window's task writes these instead of querying it again.
    """

    rows: int | None
    nothing_new: bool = False
    with_deleted: bool = False
    records: tuple[dict[str, Any], ...] | None = None


def count_query(plan: ObjectPlan, cursor_field: str | None, window_start: datetime | None) -> Soql:
    q = live_rows(plan, Soql.count(plan.name))
    if window_start is not None and cursor_field:
        q = q.with_window(cursor_field, window_start)
    return q


def live_rows(plan: ObjectPlan, q: Soql) -> Soql:
    """``q`` over the object's live rows, run with ``queryAll`` when :func:`reads_all_rows`: archived
    activities are live rows that ``query`` hides, so they are read as ``IsDeleted = false``."""
    return q.with_deleted(False) if plan.spec.hides_archived_rows else q


def reads_all_rows(plan: ObjectPlan) -> bool:
    """Whether the object's live rows (:func:`live_rows`) are read through ``queryAll``."""
    return plan.spec.hides_archived_rows


def window_size(
    base: SalesforceClient,
    plan: ObjectPlan,
    *,
    cursor_field: str | None,
    window_start: datetime | None,
    probe: ProbeQuery | None = None,
    cursor: ExtractCursor | None = None,
) -> tuple[WindowSize, dict[str, int]]:
    """How many rows the object (or its incremental window) holds; and the REST calls spent.

    One call: with a ``probe`` (an incremental's window probe, :func:`probe_query`) its first page,
    judged against the job's ``cursor`` (:func:`judge_probe`), which also tells whether there is
    anything new at all; else a ``COUNT()``.
    """
    if plan.path == "rest":
        return WindowSize(None), {}
    c = _client_for(base)
    try:
        rest = RestApi(c)
        if probe is not None:
            return probe_size(judge_probe(rest, plan, cursor, probe), probe), dict(c.usage.calls)
        rows = rest.count(count_query(plan, cursor_field, window_start), include_deleted=reads_all_rows(plan))
        return WindowSize(rows), dict(c.usage.calls)
    finally:
        c.close()


def split_window(
    base: SalesforceClient,
    plan: ObjectPlan,
    size: WindowSize,
    *,
    target_rows: int,
    cursor_field: str | None,
    window_start: datetime | None,
) -> tuple[list[Partition], dict[str, int]]:
    """Id-range partitions of about ``target_rows`` rows (one when the window is small, none when
    it holds nothing new); and the REST calls spent (``COUNT()`` queries of the ranges)."""
    if plan.path == "rest":
        # REST paging is not worth splitting; one partition, one cursor of pages.
        return [Partition(plan.name, None, None, "000000000000000", None, 0)], {}
    if size.nothing_new:
        return [], {}
    assert size.rows is not None
    one = [Partition(plan.name, None, None, "000000000000000", None, size.rows)]
    if size.rows <= target_rows:
        return one, {}
    c = _client_for(base)
    try:
        rest = RestApi(c)
        base_q = count_query(plan, cursor_field, window_start)
        all_rows = reads_all_rows(plan)
        total = rest.count(base_q, include_deleted=all_rows) if size.with_deleted else size.rows
        if total <= target_rows:
            return [replace(one[0], estimated_rows=total)], dict(c.usage.calls)
        lo, hi = rest.id_bounds(base_q, include_deleted=all_rows)

        def count(a: str | None, b: str | None) -> int:
            return rest.count(base_q.with_id_range(a, b), include_deleted=all_rows)

        def count_many(ranges: list[tuple[str | None, str | None]]) -> list[int]:
            return rest.count_many([(base_q.with_id_range(a, b), all_rows) for a, b in ranges])

        parts = plan_partitions(plan.name, lo, hi, count, target_rows, total=total, count_many=count_many)
        return parts, dict(c.usage.calls)
    finally:
        c.close()


SKIP_CHECK_MAX_ROWS = 2_000
"""At most this many window rows are compared with the cursor."""
PROBE_BATCH = 200
"""Rows of the probe's first page (Salesforce's smallest REST batch): ``totalSize`` counts the
whole window anyway, and a changed object's window is not read beyond it. When the cursor holds
more boundary rows (objects whose rows share one timestamp, such as setup objects), the page is
that size, up to :data:`SKIP_CHECK_MAX_ROWS`, so an unchanged window is read in one call."""


@dataclass(frozen=True)
class _Probe:
    nothing_new: bool
    rows: int | None
    records: tuple[dict[str, Any], ...] | None = None
    """Every row of the window, when its first page held them all."""


@dataclass(frozen=True)
class ProbeQuery:
    """One REST query asked for its first page: an incremental's window probe (:func:`probe_query`),
    or a small object's read in a full (:func:`first_page_query`)."""

    soql: Soql
    include_deleted: bool
    batch_size: int
    counts_deleted: bool
    """``totalSize`` counts deleted rows too (a window of an object that keeps them)."""


def probe_query(
    plan: ObjectPlan, cursor: ExtractCursor, cursor_field: str, window_start: datetime, *, deletes: bool
) -> ProbeQuery | None:
    """The window probe's query, or None when the probe cannot judge the window (a truncated
    cursor, another cursor field, a field the check needs missing): the object is counted instead.

    The query reads the object's fields (``queryAll`` when it keeps deleted rows) over the window in
    Id order: it is the data query of a task of the whole window, so a page that holds the whole
    window can be written as it is. A window with nothing new holds at most the cursor's boundary
    rows: the page is sized to read those in one page when the check can pass at all (a larger
    boundary cannot: only ``totalSize`` is read).
    """
    if cursor.truncated or cursor.field != cursor_field:
        return None
    names = list(plan.field_names)
    if any(n not in names for n in ["Id", cursor_field] + (["IsDeleted"] if deletes else [])):
        return None
    # every field: a boundary row is the captured version only if its values' digest matches too
    soql = Soql.select(plan.name, names).with_window(cursor_field, window_start).in_id_order()
    seen = len(cursor.seen)
    batch = seen if PROBE_BATCH < seen <= SKIP_CHECK_MAX_ROWS else PROBE_BATCH
    return ProbeQuery(soql, deletes, batch, counts_deleted=deletes)


def first_page_query(plan: ObjectPlan, rest_limit: int) -> ProbeQuery:
    """The first page of the data query of an object read whole (a full, or an object with no
    cursor yet), up to ``rest_limit`` rows (within Salesforce's 200-2,000): what a full asks, five
    to a composite request, of the objects its ``COUNT()`` found small enough for REST (decision
    0043). The object's task writes that page when it was the query's only one.
    """
    soql = live_rows(plan, Soql.select(plan.name, list(plan.field_names)))
    batch = max(PROBE_BATCH, min(SKIP_CHECK_MAX_ROWS, rest_limit))
    return ProbeQuery(soql, reads_all_rows(plan), batch, counts_deleted=False)


def judge_probe(
    rest: RestApi, plan: ObjectPlan, cursor: ExtractCursor | None, query: ProbeQuery,
    first: dict[str, Any] | None = None,
) -> _Probe:  # fmt: skip
    """What the first page of the window probe tells (``first``: that page as a composite
    subrequest answered it; None: ask it here). Without a ``cursor`` (an object read whole,
    :func:`first_page_query`) only its size and, when the page was its only one, its rows.

    ``nothing_new``: every row of the window (deleted ones included) is a version the cursor
    already captured (same Id, timestamp and digest of values), so the task would drop all of its
    rows at the boundary and find no deletes. The window always holds the boundary rows (a closed
    start at ``last - lag``), so a plain ``COUNT()`` is never zero for an object that has rows.
    Anything unexpected: not nothing-new (extract). A skipped object keeps its cursor, so its next
    window starts at the same place.

    ``rows``: the page's ``totalSize`` (deleted rows included when the object keeps them), so the
    planner needs no separate ``COUNT()`` for a small window. ``records``: the window's rows when
    that page was its only one.
    """
    pages = rest.query_pages(
        query.soql, include_deleted=query.include_deleted, sobject=plan.name, batch_size=query.batch_size,
        exact_numbers=True, first=first,
    )  # fmt: skip
    page = next(pages)
    total = page.total_size
    whole = tuple(page.records) if page.done else None
    if cursor is None or total > SKIP_CHECK_MAX_ROWS or total > len(cursor.seen):
        return _Probe(False, total, whole)
    records = list(page.records)
    if not page.done:
        records.extend(r for more in pages for r in more.records)
    if not records:
        return _Probe(True, total)
    rows = CsvPageParser(plan.name, plan.fields).records_to_batch(records)
    stamps = utc_datetimes(rows.column(cursor.field))
    gone = rows.column("IsDeleted").to_pylist() if query.include_deleted else [False] * rows.num_rows
    for i, t, d, h in zip(rows.column("Id").to_pylist(), stamps, gone, row_digests(rows), strict=True):
        if d or t is None or not cursor.captured(i, t, h):
            return _Probe(False, total, whole)
    return _Probe(True, total)


def probe_size(probe: _Probe, query: ProbeQuery) -> WindowSize:
    """The window's size as planning reads it from its probe."""
    assert probe.rows is not None
    records = None if probe.nothing_new else probe.records
    return WindowSize(probe.rows, probe.nothing_new, query.counts_deleted, records)


def probe_windows(
    base: SalesforceClient, probes: Sequence[tuple[ObjectPlan, ExtractCursor | None, ProbeQuery]]
) -> tuple[list[WindowSize | SfvaultError], dict[str, int]]:
    """The probes of up to :data:`COMPOSITE_QUERIES_MAX` objects (windows, or first pages of objects
    read whole: no cursor), their first pages asked in one composite request; and the calls spent
    (the composite and any further page of a window probe).
    An object whose subrequest failed maps to its typed error (the caller probes it again alone)."""
    c = _client_for(base)
    try:
        rest = RestApi(c)
        firsts = rest.first_pages(
            [(q.soql, q.include_deleted) for _, _, q in probes], sobject=probes[0][0].name,
            batch_sizes=[q.batch_size for _, _, q in probes], exact_numbers=True,
        )  # fmt: skip
        out: list[WindowSize | SfvaultError] = []
        for (plan, cursor, query), first in zip(probes, firsts, strict=True):
            if isinstance(first, SfvaultError):
                out.append(first)
                continue
            try:
                out.append(probe_size(judge_probe(rest, plan, cursor, query, first), query))
            except SfvaultError as err:
                out.append(err)
        return out, dict(c.usage.calls)
    finally:
        c.close()


def count_many(base: SalesforceClient, queries: list[tuple[Soql, bool]]) -> tuple[list[int], dict[str, int]]:
    """``COUNT()`` of each ``(query, include_deleted)``, five per composite request; and the calls spent."""
    c = _client_for(base)
    try:
        return RestApi(c).count_many(queries), dict(c.usage.calls)
    finally:
        c.close()


def live_count(base: SalesforceClient, plan: ObjectPlan) -> tuple[int, dict[str, int]]:
    """``SELECT COUNT() FROM <object>`` of its live rows (one REST call); and the calls spent."""
    c = _client_for(base)
    try:
        q = live_rows(plan, Soql.count(plan.name))
        return RestApi(c).count(q, include_deleted=reads_all_rows(plan)), dict(c.usage.calls)
    finally:
        c.close()


def add_calls(into: dict[str, int], calls: Iterable[tuple[str, int]]) -> None:
    for k, v in calls:
        into[k] = into.get(k, 0) + int(v)


def read_allowance_after_bulk1(reports: Iterable[Any], base: SalesforceClient) -> None:
    """Bulk API 1.0 answers carry no ``Sforce-Limit-Info``, so after a job that used it the last
    allowance seen is older than its last calls: one ``/limits`` read (one REST call, counted
    like the others) makes the allowance the job records the one left at its end."""
    if not any(rep.calls.get("bulk1_job") for rep in reports):
        return
    try:
        base.limits()
    except SfvaultError as err:  # the job's data is in; only the allowance it reports is older
        log.warning("the allowance left after the job could not be read", extra={"code": err.code})
