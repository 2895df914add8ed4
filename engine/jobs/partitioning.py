"""Planning a job's partitions on the driver: size every object, cut it into Id-range partitions,
make its tasks (a few objects at a time in a thread pool; each step is one to a few short REST calls).

An object small enough to be one partition whatever the job's total is cut as soon as it is sized (its
Bulk job then queues in the org while the others are still counted); the others are cut once every
object is sized, with the partition size :func:`engine.jobs.planning.partition_rows` picks for the job's
total. Each object's tasks go to the job's state machine as one :class:`engine.jobs.machine.ObjectCut`,
a planning error as :class:`~engine.jobs.machine.ObjectFailed` (or
:class:`~engine.jobs.machine.ApiLimitReached`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, replace
from typing import Any, Literal

from engine.errors import SalesforceApiLimit, SfvaultError
from engine.extract.client import SalesforceClient
from engine.extract.composite import COMPOSITE_QUERIES_MAX
from engine.extract.model import ObjectPlan
from engine.extract.plan import Partition
from engine.jobs.discover import (
    ProbeQuery,
    WindowSize,
    add_calls,
    count_many,
    count_query,
    first_page_query,
    live_count,
    probe_query,
    probe_windows,
    reads_all_rows,
    split_window,
    window_size,
)
from engine.jobs.jobrun import JobRun, err_fields
from engine.jobs.machine import ApiLimitReached, CancelRequested, Event, ObjectCut, ObjectFailed
from engine.jobs.planning import JobDecision, JobOptions, ObjectWork, partition_rows
from engine.jobs.strategy import choose_extraction
from engine.jobs.tasks import PartitionResult, PartitionTask
from engine.model import ExtractionChoice

COUNTS_PER_CALL = COMPOSITE_QUERIES_MAX
"""Objects sized by one composite request of their ``COUNT()`` queries (Salesforce's limit of
query subrequests): a 25-object full is sized with 5 API calls instead of 25."""

PLANNING_THREADS = 16
"""Objects planned at once on the driver (each planning step is one to a few short REST calls,
mostly waiting on the network)."""


@dataclass(frozen=True)
class JobNames:
    """The cluster-wide names of one job's worker plugin, Bulk job semaphore and cancel event."""

    plugin: str
    semaphore: str
    cancel: str

    @classmethod
    def of(cls, org: str, job_id: str) -> JobNames:
        return cls(f"sfvault-{job_id}", f"sfvault-bulk-{org}", f"sfvault-cancel-{job_id}")


Feed = Callable[[Event[PartitionTask, PartitionResult]], None]
"""Hands an event to the job's state machine (and carries out what it answers)."""


class PartitionPlanner:
    """Plans the partitions of one job's objects; see the module docstring."""

    def __init__(
        self,
        run: JobRun,
        base: SalesforceClient,
        plans: dict[str, ObjectPlan],
        decision: JobDecision,
        names: JobNames,
        *,
        feed: Feed,
        stopped: Callable[[], bool],
        work_of: Callable[[str], ObjectWork] | None = None,
    ) -> None:
        self.run = run
        self.base = base
        self.plans = plans
        self.decision = decision
        self.options: JobOptions = run.options
        self.names = names
        self.feed = feed
        self.stopped = stopped
        self.work_of = work_of or (lambda name: decision.objects[name])
        """An object's work as cut: for one that asks the delete log, once it answered (it may
        sweep); sizing never waits for it."""
        self.probes: dict[str, ProbeQuery] = {}
        """The window probe of each object that probes its window (:meth:`probe_of`), set when
        sizing starts; the others are sized by a ``COUNT()``, or not at all (REST paging)."""
        self.window_records: dict[str, tuple[dict[str, Any], ...]] = {}
        """Objects whose whole window (or whole object) the probe read (:attr:`WindowSize.records`)."""

    def plan(self) -> None:
        """Size, cut and hand over every object (returns when each is cut, failed, or the job stopped)."""
        decision, o = self.decision, self.options
        # Any partition size is at least this, so an object this small is one partition whatever the
        # job's total: it is cut and submitted as soon as it is sized (its Bulk job then queues in
        # the org while the other objects are still being counted).
        small = min(o.target_rows, o.min_partition_rows)
        with ThreadPoolExecutor(max_workers=PLANNING_THREADS, thread_name_prefix="plan") as pool:
            steps = self.start_sizing(pool)
            sizes: dict[str, WindowSize] = {}
            large: list[str] = []
            while steps:
                done, _ = futures_wait(list(steps), return_when=FIRST_COMPLETED)
                for fut in done:
                    step, name = steps.pop(fut)
                    if step == "sizes":
                        # a group that failed is sized again one object at a time (typed errors)
                        if not self.stopped() and not fut.cancelled() and fut.exception() is not None:
                            for one in name.split(","):
                                steps[pool.submit(self.size_one, one, decision.objects[one])] = ("size", one)
                            continue
                        got_group = self.outcome(name.split(",")[0], fut)
                        reads = self.small_reads(got_group or {})
                        for one, got in (got_group or {}).items():
                            if one in reads:  # counted in the job's total now, cut once read
                                sizes[one] = got[0]
                            else:
                                self.sized(one, got, sizes, large, steps, pool, small)
                        if reads:
                            steps[pool.submit(self.read_small, reads)] = ("read", ",".join(reads))
                        continue
                    if step == "read":
                        for one, got in (self.outcome(name.split(",")[0], fut) or {}).items():
                            self.sized(one, got, sizes, large, steps, pool, small)
                        continue
                    got = self.outcome(name, fut)
                    if got is None:
                        continue
                    if step == "cut":
                        self.cut(name, got)
                        continue
                    self.sized(name, got, sizes, large, steps, pool, small)
                if large and not any(step in ("size", "sizes") for step, _ in steps.values()):
                    rows_per_partition = partition_rows(sum(z.rows or 0 for z in sizes.values()), o)
                    for name in large:
                        steps[pool.submit(self.split_one, name, decision.objects[name], sizes[name],
                                          rows_per_partition)] = ("cut", name)  # fmt: skip
                    large = []

    def start_sizing(self, pool: ThreadPoolExecutor) -> dict[Any, tuple[str, str]]:
        """Submit the sizing of every object: a ``COUNT()`` (a full, a sweep, an incremental that
        cannot probe its window) and an incremental's window probe share composite requests,
        :data:`COUNTS_PER_CALL` objects each; an object read by REST paging is sized alone (no
        call)."""
        steps: dict[Any, tuple[str, str]] = {}
        counted: list[str] = []
        for name, work in self.decision.objects.items():
            self.run.reports[name].started = time.monotonic()
            query = self.probe_of(work)
            if query is not None:
                self.probes[name] = query
            elif self.plans[name].path != "rest":  # one COUNT(): a full, a sweep, an unprobed window
                counted.append(name)
            else:
                steps[pool.submit(self.size_one, name, work)] = ("size", name)
        for names, size in ((counted, self.size_group), (list(self.probes), self.probe_group)):
            for i in range(0, len(names), COUNTS_PER_CALL):
                group = names[i : i + COUNTS_PER_CALL]
                if len(group) == 1:
                    one = group[0]
                    steps[pool.submit(self.size_one, one, self.decision.objects[one])] = ("size", one)
                else:
                    steps[pool.submit(size, group)] = ("sizes", ",".join(group))
        return steps

    def sized(
        self, name: str, got: tuple[WindowSize, dict[str, int]], sizes: dict[str, WindowSize],
        large: list[str], steps: dict[Any, tuple[str, str]], pool: ThreadPoolExecutor, small: int,
    ) -> None:  # fmt: skip
        """Record one object's size; cut it at once when it is small, else wait for the job's total."""
        size, calls = got
        sizes[name] = size
        if size.records is not None:
            self.window_records[name] = size.records
        rep, work = self.run.reports[name], self.decision.objects[name]
        add_calls(rep.calls, calls.items())
        rep.extraction = self.choose(name, work, size)
        if size.rows is None or size.nothing_new or size.rows <= small:
            steps[pool.submit(self.split_one, name, work, size, small)] = ("cut", name)
        elif rep.extraction.reason == "pk_chunking":
            # one Bulk API 1.0 job over the whole object: Salesforce cuts it (PK chunking)
            steps[pool.submit(self.split_one, name, work, size, size.rows)] = ("cut", name)
        else:
            large.append(name)

    def choose(self, name: str, work: ObjectWork, size: WindowSize) -> ExtractionChoice:
        """Through which API the object is read, and why (:func:`choose_extraction`)."""
        o = self.options
        return choose_extraction(
            strategy=o.extraction_strategy, bulk_capable=self.plans[name].path != "rest",
            full=work.mode == "full", rows=None if size.nothing_new else size.rows, rest_limit=o.rest_limit,
            pk_chunking_min_rows=o.pk_chunking_min_rows,
        )  # fmt: skip

    def size_group(self, names: list[str]) -> dict[str, tuple[WindowSize, dict[str, int]]]:
        """The sizes of up to :data:`COUNTS_PER_CALL` objects from one composite request of their
        ``COUNT()`` queries (one API call, charged to the first object)."""
        base, o = self.base, self.options
        base.check_reserve()
        queries = []
        for name in names:
            plan, work = self.plans[name], self.decision.objects[name]
            window = work.window_start(o.cursor_lag)
            queries.append((count_query(plan, plan.spec.cursor_field, window), reads_all_rows(plan)))
        rows, calls = count_many(base, queries)
        out: dict[str, tuple[WindowSize, dict[str, int]]] = {}
        for i, (name, n) in enumerate(zip(names, rows, strict=True)):
            # an object read whole and found empty is given its (no) rows: its task reads nothing
            size = WindowSize(n, records=() if n == 0 and self.reads_whole(name) else None)
            out[name] = (size, calls if i == 0 else {})
        return out

    def reads_whole(self, name: str) -> bool:
        """Whether the object's data query is the whole object's (a full, or no cursor yet), not a window."""
        return self.decision.objects[name].window_start(self.options.cursor_lag) is None

    def small_reads(
        self, counted: dict[str, tuple[WindowSize, dict[str, int]]]
    ) -> dict[str, tuple[WindowSize, dict[str, int]]]:
        """The objects of a counted group that :meth:`read_small` reads: read whole, with rows, and
        small enough for REST."""
        limit = self.options.rest_limit
        return {
            name: got
            for name, got in counted.items()
            if self.reads_whole(name) and 0 < (got[0].rows or 0) <= limit
        }

    def read_small(
        self, reads: dict[str, tuple[WindowSize, dict[str, int]]]
    ) -> dict[str, tuple[WindowSize, dict[str, int]]]:
        """Read up to :data:`COUNTS_PER_CALL` small objects (:meth:`small_reads`) in one composite
        request of the first pages of their own data queries (decision 0043): five small objects
        cost one call, not five; the call is charged to the first. A page that is its query's only
        one goes to the object's task, which then makes no call of its own. Run as a planning step
        of its own: the large objects of the group are cut meanwhile."""
        out = dict(reads)
        limit = self.options.rest_limit
        small = [(self.plans[name], None, first_page_query(self.plans[name], limit)) for name in reads]
        try:
            read, calls = probe_windows(self.base, small)
        except SalesforceApiLimit:
            raise
        except SfvaultError:  # the tasks read their objects themselves (their own retries and errors)
            return out
        for i, ((plan, _, _), got) in enumerate(zip(small, read, strict=True)):
            size, charged = out[plan.name]
            charged = dict(charged)
            if i == 0:
                add_calls(charged, calls.items())
            # a subrequest that failed: the task reads the object itself (its own retries and error)
            out[plan.name] = (size if isinstance(got, SfvaultError) else got, charged)
        return out

    def probe_of(self, work: ObjectWork) -> ProbeQuery | None:
        """The window probe of an incremental object read by its cursor through Bulk (None: it is
        sized otherwise, :meth:`size_one`)."""
        plan = self.plans[work.name]
        window, cursor_field = work.window_start(self.options.cursor_lag), plan.spec.cursor_field
        if plan.path == "rest" or work.mode != "incremental" or work.cursor is None:
            return None
        if window is None or not cursor_field:
            return None
        return probe_query(plan, work.cursor, cursor_field, window, deletes=plan.spec.has_is_deleted)

    def probe_group(self, names: list[str]) -> dict[str, tuple[WindowSize, dict[str, int]]]:
        """The window sizes of up to :data:`COUNTS_PER_CALL` incremental objects from one composite
        request of their probes (one API call, charged to the first object); an object whose
        subrequest failed is probed again alone (its own retries and typed error)."""
        self.base.check_reserve()
        works = [self.decision.objects[name] for name in names]
        probes = [(self.plans[w.name], w.cursor, self.probes[w.name]) for w in works]
        sizes, calls = probe_windows(self.base, probes)
        out: dict[str, tuple[WindowSize, dict[str, int]]] = {}
        for work, size in zip(works, sizes, strict=True):
            out[work.name] = self.size_one(work.name, work) if isinstance(size, SfvaultError) else (size, {})
        add_calls(out[names[0]][1], calls.items())
        return out

    def size_one(self, name: str, work: ObjectWork) -> tuple[WindowSize, dict[str, int]]:
        base, plans, o = self.base, self.plans, self.options
        base.check_reserve()
        plan = plans[name]
        return window_size(
            base, plan, cursor_field=plan.spec.cursor_field, window_start=work.window_start(o.cursor_lag),
            probe=self.probes.get(name), cursor=work.cursor,
        )  # fmt: skip

    def split_one(
        self, name: str, work: ObjectWork, size: WindowSize, rows_per_partition: int
    ) -> tuple[list[Partition], dict[str, int], list[Partition], bool]:
        """The window's partitions, the calls spent, and for a swept object its sweep's partitions
        and whether they go through REST (:meth:`sweep_parts`)."""
        base, plans, o = self.base, self.plans, self.options
        base.check_reserve()
        plan = plans[name]
        work = self.work_of(name)
        parts, calls = split_window(
            base, plan, size, target_rows=rows_per_partition, cursor_field=plan.spec.cursor_field,
            window_start=work.window_start(o.cursor_lag),
        )  # fmt: skip
        calls = dict(calls)
        if not work.sweep:
            return parts, calls, [], False
        sweep, rest_sweep = self.sweep_parts(plan, calls)
        return parts, calls, sweep, rest_sweep

    def sweep_parts(self, plan: ObjectPlan, calls: dict[str, int]) -> tuple[list[Partition], bool]:
        """The Id sweep of one object, Ids only, as its own partitions (decision 0031): one
        ``COUNT()`` of its live rows; up to :attr:`JobOptions.sweep_rest_rows` Ids, one task of
        REST pages (2,000 Ids a call, no Bulk job to queue); more, Bulk jobs over Id ranges of
        about :attr:`JobOptions.sweep_partition_rows` Ids each, run in parallel."""
        o, base = self.options, self.base
        if plan.path == "rest":
            return [Partition(plan.name, None, None, "000000000000000", None, 0)], True
        rows, more = live_count(base, plan)
        add_calls(calls, more.items())
        whole = Partition(plan.name, None, None, "000000000000000", None, rows)
        if rows <= o.sweep_rest_rows:
            return [whole], True
        parts, more = split_window(base, plan, WindowSize(rows), target_rows=o.sweep_partition_rows,
                                   cursor_field=None, window_start=None)  # fmt: skip
        add_calls(calls, more.items())
        return parts, False

    def tasks_for(self, name: str, work: ObjectWork, part: Partition) -> list[PartitionTask]:
        """The partition's task; or two, when its cursor boundary is checked on its own: one reads
        what is newer than the cursor, the other checks the boundary by Id (``_extract_boundary``)."""
        plans, o, task_for = self.plans, self.options, self.task_for
        cur = work.cursor
        plan = plans[name]
        split = (
            work.mode == "incremental" and cur is not None and cur.last is not None and not cur.truncated
            and cur.field == plan.spec.cursor_field and plan.path == "bulk2"
            and 0 <= o.boundary_check_min_rows < len(cur.seen)
        )  # fmt: skip
        if not split or cur is None:
            return [task_for(name, work, part)]
        newer = replace(part, estimated_rows=max(0, part.estimated_rows - len(cur.seen)))
        return [
            task_for(name, work, newer, window="after_boundary"),
            replace(task_for(name, work, part, window="boundary"), rest_data=False),
        ]

    def task_for(
        self, name: str, work: ObjectWork, part: Partition, *, rest_sweep: bool = False,
        window: Literal["all", "after_boundary", "boundary", "ids"] = "all",
    ) -> PartitionTask:  # fmt: skip
        """The task of one partition; ``window="ids"``: of the object's Id sweep (Ids only)."""
        run, plans, o, job_id = self.run, self.plans, self.options, self.run.job_id
        plugin_name, sem_name, cancel_name = self.names.plugin, self.names.semaphore, self.names.cancel
        plan = plans[name]
        # a window (or a whole small object, in a full) of at most rest_limit rows is one or a few REST
        # pages: one call each, against a Bulk job's create, queue, poll and page
        rest_data = o.rest_limit > 0 and part.estimated_rows <= o.rest_limit
        # the probe read the whole window or object (the same query): the task writes those rows, no call
        whole = window == "all" and part.lo is None and part.hi is None
        records = self.window_records.get(name) if whole and rest_data else None
        return PartitionTask(
            org=run.org_name, job_id=job_id, plugin=plugin_name, sobject=name, fields=plan.fields,
            path=plan.path, partition=part, mode=work.mode, cursor_field=plan.spec.cursor_field,
            cursor=work.cursor if work.mode == "incremental" else None, lag=o.cursor_lag,
            deletes=plan.spec.has_is_deleted and plan.spec.cursor_field is not None,
            sweep=window == "ids", blob_fields=plan.blob_fields if o.file_bodies else (),
            page_rows=o.page_rows,
            result_streams=o.result_streams, chunk_target_bytes=o.chunk_target_bytes,
            chunk_buffer_bytes=o.chunk_buffer_bytes, page_bytes=o.page_bytes, semaphore=sem_name,
            max_concurrent=o.max_concurrent_bulk_jobs, cancel_event=cancel_name,
            poll_first=o.poll_first, poll_max=o.poll_max, delete_bulk_jobs=o.delete_bulk_jobs,
            blob_threads=o.blob_threads,
            rest_data=rest_data, rest_sweep=rest_sweep, window=window, archived=reads_all_rows(plan),
            strategy=self.bulk_api(name), window_records=records,
        )  # fmt: skip

    def bulk_api(self, name: str) -> Literal["bulk2", "bulk1"]:
        """The Bulk API of the object's Bulk reads: the one its :class:`ExtractionChoice` names
        (a REST choice still names one: a task of a Bulk-capable object may read through Bulk,
        such as an Id sweep); else the configured strategy (``auto``: Bulk API 2.0)."""
        choice = self.run.reports[name].extraction
        if choice is not None and choice.path in ("bulk2", "bulk1"):
            return "bulk1" if choice.path == "bulk1" else "bulk2"
        return "bulk1" if self.options.extraction_strategy == "bulk1" else "bulk2"

    def outcome(self, name: str, fut: Any) -> Any:
        """The planning step's result, or None when it stopped the job or failed the object."""
        if self.run.cancel.is_set():
            self.feed(CancelRequested())
        if self.stopped():
            fut.cancel()
            return None
        try:
            return fut.result()
        except SalesforceApiLimit as err:
            self.feed(ApiLimitReached(*err_fields(err)))
        except SfvaultError as err:
            self.feed(ObjectFailed(name, *err_fields(err)))
        return None

    def cut(self, name: str, got: tuple[list[Partition], dict[str, int], list[Partition], bool]) -> None:
        run, tasks_for = self.run, self.tasks_for
        parts, calls, sweep, rest_sweep = got
        rep = run.reports[name]
        add_calls(rep.calls, calls.items())
        work = self.work_of(name)  # answered by now (split_one waited for it)
        tasks = [t for p in parts for t in tasks_for(name, work, p)]
        # the sweep reads after the window's data (an Id inserted between the two reads must not
        # look deleted): the machine submits its tasks once the data tasks are done
        then = [self.task_for(name, work, p, rest_sweep=rest_sweep, window="ids") for p in sweep]
        rep.partitions = len(tasks) + len(then)
        rep.state = "running"
        # no task (nothing new in the incremental window, no sweep): the object succeeds, its cursor stays
        self.feed(ObjectCut(name, tuple(tasks), tuple(then)))
