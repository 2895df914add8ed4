"""The Dask driver of a backup job: plan the partitions, run them on the cluster, hand over to the commit.

Steps 4-5 of :mod:`engine.jobs.runner`: objects are cut into Id-range partitions (a few at a time in a
thread pool on the driver), one task per partition runs on Dask; a partition that fails with a query
timeout is bisected and resubmitted; an exhausted API allowance stops new work and fails the objects
not finished; a cancellation stops everything and commits nothing. Then :func:`engine.jobs.commit.commit_job`.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import replace
from typing import Any, Literal

from engine.errors import SalesforceApiLimit, SalesforceQueryTimeout, SfvaultError
from engine.extract.client import SalesforceClient
from engine.extract.model import ObjectPlan
from engine.extract.plan import Partition, bisect, can_bisect
from engine.extract.rest import RestApi
from engine.extract.soql import Soql
from engine.extract.usage import ApiUsage
from engine.jobs.commit import commit_job, object_result
from engine.jobs.discover import (
    WindowSize,
    add_calls,
    live_count,
    live_rows,
    reads_all_rows,
    split_window,
    window_size,
)
from engine.jobs.errors import JobCancelled
from engine.jobs.jobrun import BackupResult, JobRun, ObjectReport, calls_of, err_fields
from engine.jobs.planning import JobDecision, ObjectWork, merge_cursor, partition_rows
from engine.jobs.tasks import PartitionResult, PartitionTask, extract_partition
from engine.jobs.worker import BackupWorkerPlugin

PLANNING_THREADS = 16
"""Objects planned at once on the driver (each planning step is one to a few short REST calls,
mostly waiting on the network)."""


def execute(
    run: JobRun,
    repo: Any,
    lock: Any,
    base: SalesforceClient,
    plans: dict[str, ObjectPlan],
    describe_calls: dict[str, dict[str, int]],
    decision: JobDecision,
    cycle_id: str,
    sessions: Any,
    org_id: int,
    grant: Any,
    copts: Any,
) -> BackupResult:
    from distributed import Event, Semaphore, wait

    from engine.catalog import jobs as cjobs
    from engine.catalog.db import transaction

    o = run.options
    job_id = run.job_id
    for name, work in decision.objects.items():
        rep = ObjectReport(name=name, mode=work.mode, reason=work.reason)
        add_calls(rep.calls, describe_calls.get(name, {}).items())
        run.reports[name] = rep
        run.results[name] = []

    plugin_name = f"sfvault-{job_id}"
    sem_name = f"sfvault-bulk-{run.org_name}"
    cancel_name = f"sfvault-cancel-{job_id}"
    plugin = BackupWorkerPlugin(
        plugin_name, grant, copts, run.settings, token=base.session.token, allowance=base.usage
    )
    run.dask.register_plugin(plugin, name=plugin_name)
    Semaphore(max_leases=o.max_concurrent_bulk_jobs, name=sem_name)
    cancel_event = Event(cancel_name)
    pending: dict[Any, PartitionTask] = {}
    failed: dict[str, tuple[str, str]] = {}
    stop: tuple[str, str] | None = None

    def tasks_for(
        name: str, work: ObjectWork, part: Partition, *, rest_sweep: bool = False
    ) -> list[PartitionTask]:
        """The partition's task; or two, when its cursor boundary is checked on its own: one reads
        what is newer than the cursor, the other checks the boundary by Id (``_extract_boundary``)."""
        cur = work.cursor
        plan = plans[name]
        split = (
            work.mode == "incremental" and cur is not None and cur.last is not None and not cur.truncated
            and cur.field == plan.spec.cursor_field and plan.path == "bulk2"
            and 0 <= o.boundary_check_min_rows < len(cur.seen)
        )  # fmt: skip
        if not split or cur is None:
            return [task_for(name, work, part, rest_sweep=rest_sweep)]
        newer = replace(part, estimated_rows=max(0, part.estimated_rows - len(cur.seen)))
        return [
            task_for(name, work, newer, rest_sweep=rest_sweep, window="after_boundary"),
            replace(task_for(name, work, part, window="boundary"), sweep=False, rest_data=False),
        ]

    def task_for(
        name: str, work: ObjectWork, part: Partition, *, rest_sweep: bool = False,
        window: Literal["all", "after_boundary", "boundary"] = "all",
    ) -> PartitionTask:  # fmt: skip
        plan = plans[name]
        rest_data = work.mode == "incremental" and part.estimated_rows <= o.rest_limit
        return PartitionTask(
            org=run.org_name, job_id=job_id, plugin=plugin_name, sobject=name, fields=plan.fields,
            path=plan.path, partition=part, mode=work.mode, cursor_field=plan.spec.cursor_field,
            cursor=work.cursor if work.mode == "incremental" else None, lag=o.cursor_lag,
            deletes=plan.spec.has_is_deleted and plan.spec.cursor_field is not None,
            sweep=work.sweep, blob_fields=plan.blob_fields if o.file_bodies else (), page_rows=o.page_rows,
            result_streams=o.result_streams, chunk_target_bytes=o.chunk_target_bytes, semaphore=sem_name,
            max_concurrent=o.max_concurrent_bulk_jobs, cancel_event=cancel_name,
            poll_first=o.poll_first, poll_max=o.poll_max, blob_threads=o.blob_threads,
            rest_data=rest_data, rest_sweep=rest_sweep, window=window, archived=reads_all_rows(plan),
        )  # fmt: skip

    def submit(task: PartitionTask) -> None:
        # the largest partitions first (they are the job's critical path), among those queued
        fut = run.dask.submit(
            extract_partition, task, pure=False, key=f"sfvault-{job_id}-{len(run.submitted)}",
            priority=task.partition.estimated_rows,
        )  # fmt: skip
        run.submitted.append(fut)
        pending[fut] = task

    unrecorded: list[str] = []

    def record(name: str) -> None:
        """Show the object's outcome in the catalog while the job runs (PRODUCT: in-progress jobs
        show which objects succeeded and which hit exceptions so far); see :func:`flush_records`."""
        unrecorded.append(name)

    def flush_records() -> None:
        """Write the outcomes recorded since the last flush, in one transaction."""
        if not unrecorded:
            return
        with transaction(sessions) as s:
            job = cjobs.get_job(s, job_id)
            for name in dict.fromkeys(unrecorded):
                cjobs.record_object_result(s, job, object_result(run.reports[name], chunks=0))
        unrecorded.clear()

    def fail_object(name: str, code: str, msg: str) -> None:
        rep = run.reports[name]
        if rep.state == "failed":
            return
        rep.state, rep.error_code, rep.error_message = "failed", code, msg
        rep.finished = time.monotonic()
        failed[name] = (code, msg)
        for fut, t in list(pending.items()):
            if t.sobject == name:
                fut.cancel()
                pending.pop(fut, None)
        record(name)
        run.emit("object", name)

    def finish_object(name: str) -> None:
        rep = run.reports[name]
        cursor_field = plans[name].spec.cursor_field
        if cursor_field:  # merged now, while other objects still run, not at the commit
            work = decision.objects[name]
            run.cursors[name] = merge_cursor(
                cursor_field,
                ((r.cursor_last, r.cursor_seen, r.cursor_truncated) for r in run.results[name]),
                o.cursor_lag,
                work.cursor if work.mode == "incremental" else None,
            ).to_dict()
        rep.state = "succeeded"
        rep.finished = time.monotonic()
        rep.duration_s = rep.finished - (rep.started or rep.finished)
        record(name)
        run.emit("object", name)

    try:
        # plan (driver, REST calls, a few objects at a time): size every object, choose the job's
        # partition size from the total, cut the objects and submit their partitions as they come
        def size_one(name: str, work: ObjectWork) -> tuple[WindowSize, dict[str, int]]:
            base.check_reserve()
            plan = plans[name]
            return window_size(
                base, plan, cursor_field=plan.spec.cursor_field, window_start=work.window_start(o.cursor_lag),
                skip_unchanged=work.cursor if work.mode == "incremental" and not work.sweep else None,
                deletes=plan.spec.has_is_deleted,
            )  # fmt: skip

        def split_one(
            name: str, work: ObjectWork, size: WindowSize, rows_per_partition: int
        ) -> tuple[list[Partition], dict[str, int], bool]:
            base.check_reserve()
            plan = plans[name]
            parts, calls = split_window(
                base, plan, size, target_rows=rows_per_partition, cursor_field=plan.spec.cursor_field,
                window_start=work.window_start(o.cursor_lag),
            )  # fmt: skip
            calls = dict(calls)
            rest_sweep = False
            if work.sweep and len(parts) == 1 and plan.path == "bulk2" and o.rest_limit > 0:
                # a small object is swept with one or a few REST pages instead of a Bulk job
                rows, more = live_count(base, plan)
                add_calls(calls, more.items())
                rest_sweep = rows <= o.rest_limit
            return parts, calls, rest_sweep

        def outcome(name: str, fut: Any) -> Any:
            """The planning step's result, or None when it stopped the job or failed the object."""
            nonlocal stop
            if run.cancel.is_set() or stop is not None:
                fut.cancel()
                return None
            try:
                return fut.result()
            except SalesforceApiLimit as err:
                stop = err_fields(err)
            except SfvaultError as err:
                fail_object(name, *err_fields(err))
            return None

        def cut(name: str, got: tuple[list[Partition], dict[str, int], bool]) -> None:
            parts, calls, rest_sweep = got
            rep = run.reports[name]
            add_calls(rep.calls, calls.items())
            work = decision.objects[name]
            tasks = [t for p in parts for t in tasks_for(name, work, p, rest_sweep=rest_sweep)]
            rep.partitions = len(tasks)
            rep.state = "running"
            if not tasks:
                # nothing new in the incremental window: no task, the cursor stays
                finish_object(name)
                return
            for task in tasks:
                submit(task)

        # Any partition size is at least this, so an object this small is one partition whatever the
        # job's total: it is cut and submitted as soon as it is sized (its Bulk job then queues in
        # the org while the other objects are still being counted).
        small = min(o.target_rows, o.min_partition_rows)
        with ThreadPoolExecutor(max_workers=PLANNING_THREADS, thread_name_prefix="plan") as pool:
            steps: dict[Any, tuple[str, str]] = {}
            for name, work in decision.objects.items():
                run.reports[name].started = time.monotonic()
                steps[pool.submit(size_one, name, work)] = ("size", name)
            sizes: dict[str, WindowSize] = {}
            large: list[str] = []
            while steps:
                done, _ = futures_wait(list(steps), return_when=FIRST_COMPLETED)
                for fut in done:
                    step, name = steps.pop(fut)
                    got = outcome(name, fut)
                    if got is None:
                        continue
                    if step == "cut":
                        cut(name, got)
                        continue
                    size, calls = got
                    sizes[name] = size
                    add_calls(run.reports[name].calls, calls.items())
                    if size.rows is None or size.nothing_new or size.rows <= small:
                        work = decision.objects[name]
                        steps[pool.submit(split_one, name, work, size, small)] = ("cut", name)
                    else:
                        large.append(name)
                if large and not any(step == "size" for step, _ in steps.values()):
                    rows_per_partition = partition_rows(sum(z.rows or 0 for z in sizes.values()), o)
                    for name in large:
                        steps[pool.submit(split_one, name, decision.objects[name], sizes[name],
                                          rows_per_partition)] = ("cut", name)  # fmt: skip
                    large = []
        run.emit("planned")
        flush_records()

        last_cancel_check = time.monotonic()
        while pending:
            flush_records()
            if run.cancel.is_set():
                break
            if time.monotonic() - last_cancel_check > 2.0:
                last_cancel_check = time.monotonic()
                with transaction(sessions) as s:
                    if cjobs.get_job(s, job_id).cancel_requested:
                        run.cancel.set()
                        break
            lock.refresh_if_due()
            try:
                done, _ = wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            for fut in done:
                task = pending.pop(fut, None)
                if task is None:
                    continue
                name = task.sobject
                rep = run.reports[name]
                if fut.status == "finished":
                    res: PartitionResult = fut.result()
                    run.results[name].append(res)
                    rep.partitions_done += 1
                    rep.records += res.rows
                    rep.deleted += res.deleted_rows
                    rep.bytes += res.sealed_bytes
                    rep.bulk_jobs += res.bulk_jobs
                    rep.files_unavailable += res.blobs_unavailable
                    add_calls(rep.calls, calls_of(res.usage).items())
                    run.emit("partition", name)
                    if rep.partitions_done == rep.partitions and rep.state == "running":
                        finish_object(name)
                    continue
                if fut.status == "cancelled":
                    continue
                exc = fut.exception()
                if isinstance(exc, SalesforceQueryTimeout) and task.partition.depth < o.max_bisect_depth:
                    part = _narrow(base, task, plans[name])
                    if can_bisect(part):
                        left, right = bisect(part)
                        rep.partitions += 1
                        submit(replace(task, partition=left))
                        submit(replace(task, partition=right))
                        continue
                if isinstance(exc, SalesforceApiLimit):
                    stop = err_fields(exc)
                    fail_object(name, *stop)
                    break
                fail_object(name, *err_fields(exc))
            if stop is not None:
                break

        if run.cancel.is_set():
            cancel_event.set()
            for fut in pending:
                fut.cancel()
            flush_records()
            raise JobCancelled(job=job_id)
        if stop is not None:
            cancel_event.set()
            for fut in list(pending):
                fut.cancel()
            pending.clear()
            for name, rep in run.reports.items():
                if rep.state not in ("succeeded", "failed"):
                    fail_object(name, *stop)
    finally:
        for fut in pending:
            fut.cancel()
        try:
            run.dask.unregister_worker_plugin(plugin_name)
        except (KeyError, ValueError):
            pass

    total = ApiUsage()
    total.merge(run.usage)
    total.calls = dict(run.usage.calls)
    for rep in run.reports.values():
        add_calls(total.calls, rep.calls.items())
    for results in run.results.values():
        for r in results:
            total.bytes_received += int(r.usage.get("bytes_received", 0))
            total.result_bytes += int(r.usage.get("result_bytes", 0))
            if r.usage.get("org_used") is not None:
                total.org_used, total.org_max = r.usage["org_used"], r.usage["org_max"]
    run.usage = total
    return commit_job(run, repo, lock, decision, cycle_id, plans, sessions, org_id, failed)


def _narrow(base: SalesforceClient, task: PartitionTask, plan: ObjectPlan) -> Partition:
    """Give an open-ended partition the object's real Id span before bisecting it."""
    p = task.partition
    if p.lo is not None and p.hi is not None:
        return p
    q = live_rows(plan, Soql.count(plan.name))
    lo, hi = RestApi(base).id_bounds(p.apply(q), include_deleted=reads_all_rows(plan))
    if lo is None or hi is None:
        return p
    from engine.extract import idmath

    span_lo = p.lo or idmath.to15(lo)
    span_hi = p.hi or idmath.encode(idmath.decode(hi) + 1)
    return replace(p, span_lo=span_lo, span_hi=span_hi)
