"""Driver-side discovery and partition planning (REST calls; no Dask).

``discover`` runs describeGlobal, applies the org's scope rules, describes the objects in scope (a
few at a time) and builds each object's :class:`~engine.extract.model.ObjectPlan`.
``partitions_for`` cuts one object into Id ranges with ``COUNT()`` queries (restricted to the
incremental window when there is one), so each partition holds about ``target_rows`` rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from engine.extract.client import SalesforceClient
from engine.extract.csv_arrow import CsvPageParser
from engine.extract.cursor import Cursor as ExtractCursor
from engine.extract.model import ObjectPlan, ObjectSpec, ScopeDecision
from engine.extract.plan import Partition, plan_partitions
from engine.extract.rest import RestApi
from engine.extract.scope import ScopeRules, plan_object, select_objects
from engine.extract.soql import Soql
from engine.extract.usage import ApiUsage


@dataclass
class Discovery:
    plans: dict[str, ObjectPlan] = field(default_factory=dict)
    decisions: list[ScopeDecision] = field(default_factory=list)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    """REST calls spent per object on describe (and, later, on planning)."""


def _client_for(base: SalesforceClient) -> SalesforceClient:
    """``base``'s pool and session with separate usage counters (the calls are charged per object)."""
    return base.derive(usage=ApiUsage())


def discover(base: SalesforceClient, rules: ScopeRules, *, threads: int = 8) -> Discovery:
    out = Discovery()
    rest = RestApi(base)
    specs = [ObjectSpec.from_describe(d) for d in rest.describe_global()["sobjects"]]
    out.decisions = select_objects(specs, rules)
    names = [d.name for d in out.decisions if d.included]

    def one(name: str) -> tuple[str, ObjectPlan, dict[str, int]]:
        c = _client_for(base)
        try:
            spec = ObjectSpec.from_describe(RestApi(c).describe(name))
            return name, plan_object(spec, rules), dict(c.usage.calls)
        finally:
            c.close()

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="describe") as pool:
        for name, plan, calls in pool.map(one, names):
            out.plans[name] = plan
            out.usage[name] = calls
    return out


def partitions_for(
    base: SalesforceClient,
    plan: ObjectPlan,
    *,
    target_rows: int,
    cursor_field: str | None,
    window_start: datetime | None,
    skip_unchanged: ExtractCursor | None = None,
    deletes: bool = False,
) -> tuple[list[Partition], dict[str, int]]:
    """Id-range partitions of one object (one partition when it is small); and the REST calls spent.

    With ``skip_unchanged`` (the incremental's cursor) a window that holds nothing new returns no
    partition at all, and the job spends no task on the object: see :func:`_nothing_new`.
    ``deletes``: the object keeps deleted rows (a window's deletes must be extracted too).
    """
    c = _client_for(base)
    try:
        rest = RestApi(c)
        base_q = Soql.count(plan.name)
        if window_start is not None and cursor_field:
            base_q = base_q.with_window(cursor_field, window_start)
        include_deleted = False
        if plan.path == "rest":
            # REST paging is not worth splitting; one partition, one cursor of pages.
            return [Partition(plan.name, None, None, "000000000000000", None, 0)], dict(c.usage.calls)
        total = rest.count(base_q, include_deleted=include_deleted)
        if (
            skip_unchanged is not None
            and window_start is not None
            and cursor_field
            and total <= len(skip_unchanged.seen)
            and _nothing_new(rest, plan, skip_unchanged, cursor_field, window_start, deletes=deletes)
        ):
            return [], dict(c.usage.calls)
        if total <= target_rows:
            return [Partition(plan.name, None, None, "000000000000000", None, total)], dict(c.usage.calls)
        lo, hi = rest.id_bounds(base_q, include_deleted=include_deleted)

        def count(a: str | None, b: str | None) -> int:
            return rest.count(base_q.with_id_range(a, b))

        parts = plan_partitions(plan.name, lo, hi, count, target_rows, total=total)
        return parts, dict(c.usage.calls)
    finally:
        c.close()


SKIP_CHECK_MAX_ROWS = 2_000
"""At most this many window rows are compared with the cursor (one REST page)."""


def _nothing_new(
    rest: RestApi,
    plan: ObjectPlan,
    cursor: ExtractCursor,
    cursor_field: str,
    window_start: datetime,
    *,
    deletes: bool,
) -> bool:
    """True when every row of the window (deleted ones included) is a version the cursor already
    captured: the task would drop all of its rows at the boundary and find no deletes.

    The window always holds the boundary rows (a closed start at ``last - lag``), so a plain
    ``COUNT()`` is never zero for an object that has rows. One REST query of ``Id`` and the
    cursor field (with ``IsDeleted`` through ``queryAll`` when the object keeps deleted rows),
    parsed exactly as a task parses its rows, decides it. Anything unexpected: False (extract).
    A skipped object keeps its cursor, so its next window starts at the same place.
    """
    from engine.jobs.tasks import _records_csv

    if cursor.truncated or cursor.field != cursor_field:
        return False
    by_name = {f.name: f for f in plan.fields}
    wanted = ["Id", cursor_field] + (["IsDeleted"] if deletes else [])
    if any(n not in by_name for n in wanted):
        return False
    soql = Soql.select(plan.name, wanted).with_window(cursor_field, window_start)
    records: list[dict[str, object]] = []
    for page in rest.query_pages(soql, include_deleted=deletes, sobject=plan.name):
        records.extend(page.records)
        if len(records) > SKIP_CHECK_MAX_ROWS or len(records) > len(cursor.seen):
            return False
    parser = CsvPageParser(plan.name, tuple(by_name[n] for n in wanted))
    for batch in parser.iter_batches(_records_csv(records, wanted)):
        ids = batch.column("Id").to_pylist()
        stamps = batch.column(cursor_field).to_pylist()
        gone = batch.column("IsDeleted").to_pylist() if deletes else [False] * batch.num_rows
        for i, t, d in zip(ids, stamps, gone, strict=True):
            if d or t is None or (i, t) not in cursor.seen:
                return False
    return True


def live_count(base: SalesforceClient, plan: ObjectPlan) -> tuple[int, dict[str, int]]:
    """``SELECT COUNT() FROM <object>`` (one REST call); and the calls spent."""
    c = _client_for(base)
    try:
        return RestApi(c).count(Soql.count(plan.name)), dict(c.usage.calls)
    finally:
        c.close()


def add_calls(into: dict[str, int], calls: Iterable[tuple[str, int]]) -> None:
    for k, v in calls:
        into[k] = into.get(k, 0) + int(v)
