"""The Dask driver of a backup job: a thin loop that carries out the job state machine's instructions.

Steps 4-5 of :mod:`engine.jobs.runner`. :mod:`engine.jobs.partitioning` cuts the objects; each result,
failure and cancel becomes an event of :class:`engine.jobs.machine.JobMachine`, and this module does
what it answers: submit a partition task to Dask, keep a result, bisect a partition that timed out
(after giving an open-ended one the object's real Id span, one REST call), cancel tasks, finish or
fail an object (report, catalog row, progress event), tell running tasks to stop. Once the machine
commits, :func:`engine.jobs.commit.commit_job`; once it stops for a cancel, :class:`JobCancelled`.

The loop also watches what the machine cannot: the caller's cancel Event, the catalog's
``cancel_requested`` (every :data:`CANCEL_POLL_S`), and the repository lock's refresh.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from engine.errors import SalesforceApiLimit, SalesforceQueryTimeout, SfvaultError
from engine.extract.client import SalesforceClient
from engine.extract.model import ObjectPlan
from engine.extract.plan import Partition, bisect, can_bisect
from engine.extract.rest import RestApi
from engine.extract.soql import Soql
from engine.extract.usage import ApiUsage
from engine.jobs.commit import commit_job, object_result
from engine.jobs.deletes import WorkAfterTheLog
from engine.jobs.discover import add_calls, live_rows, read_allowance_after_bulk1, reads_all_rows
from engine.jobs.errors import JobCancelled, JobError
from engine.jobs.jobrun import BackupResult, JobRun, ObjectReport, calls_of, err_fields
from engine.jobs.machine import (
    ApiLimitReached,
    Bisect,
    CancelPartition,
    CancelRequested,
    Commit,
    Event,
    FailObject,
    FinishObject,
    Instruction,
    JobMachine,
    KeepResult,
    PartitionBisected,
    PartitionDone,
    PartitionFailed,
    PartitionTimedOut,
    Stop,
    Submit,
    WorkerLost,
)
from engine.jobs.partitioning import JobNames, PartitionPlanner
from engine.jobs.planning import JobDecision, merge_cursor
from engine.jobs.tasks import PartitionResult, PartitionTask, extract_partition

CANCEL_POLL_S = 2.0
"""How often the loop reads the catalog's ``cancel_requested`` (a cancel from another process)."""
WAIT_S = 0.5
"""The longest the loop waits for a task before it looks at cancels and the lock again."""

JobEvent = Event[PartitionTask, PartitionResult]


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
    workers: Future[str],
    *,
    deletes: WorkAfterTheLog | None = None,
) -> BackupResult:
    """Plan, run and commit the job's partitions (``run.job_id`` is recorded and running).

    ``workers``: :func:`engine.jobs.worker.prepare_workers` under way (the objects are sized
    meanwhile; the first submit waits for it); the runner that started it unregisters the plugin.
    ``deletes``: the delete log's run (:class:`engine.jobs.deletes.WorkAfterTheLog`), asked while
    the objects are sized; an object that asks the log is cut once its own answer is in (it may be
    swept), and the job commits under the decision the log's answers leave.
    """
    from distributed import Event, Semaphore

    o = run.options
    for name, work in decision.objects.items():
        rep = ObjectReport(name=name, mode=work.mode, reason=work.reason)
        add_calls(rep.calls, describe_calls.get(name, {}).items())
        run.reports[name] = rep
        run.results[name] = []
    names = JobNames.of(run.org_name, run.job_id)
    Semaphore(max_leases=o.max_concurrent_bulk_jobs, name=names.semaphore)
    driver = Driver(run, base, plans, decision, sessions, lock, Event(names.cancel), workers)
    try:
        PartitionPlanner(run, base, plans, decision, names, feed=driver.feed, stopped=driver.stopped,
                         work_of=deletes).plan()  # fmt: skip
        if deletes is not None:
            decision, run.delete_log = deletes.learnt(run.reports)
            driver.decision = decision
        run.emit("planned")
        driver.loop()
    finally:
        driver.cancel_all()
    read_allowance_after_bulk1(run.reports.values(), base)
    run.usage = _total_usage(run)
    return commit_job(run, repo, lock, decision, cycle_id, plans, sessions, org_id, driver.failed)


class Driver:
    """Feeds one job's events to its :class:`JobMachine` and carries out the instructions."""

    def __init__(
        self,
        run: JobRun,
        base: SalesforceClient,
        plans: dict[str, ObjectPlan],
        decision: JobDecision,
        sessions: Any,
        lock: Any,
        cancel_event: Any,
        workers: Future[str],
    ) -> None:
        self.run = run
        self.base = base
        self.plans = plans
        self.decision = decision
        self.sessions = sessions
        self.lock = lock
        self.cancel_event = cancel_event
        """The job's ``distributed.Event``: set, it tells running tasks to stop early."""
        self.workers = workers
        """The job's plugin on its way to the workers: the objects are sized meanwhile, and the
        first submit waits for it (an incremental's window probes no longer wait ~0.9 s for it)."""
        self.machine: JobMachine[PartitionTask, PartitionResult] = JobMachine(
            decision.objects, max_bisect_depth=run.options.max_bisect_depth
        )
        self.pending: dict[Any, int] = {}
        """Dask futures of the running partitions -> their pid."""
        self.failed: dict[str, tuple[str, str]] = {}
        """Failed objects -> (code, message), in the order they failed."""
        self.unrecorded: list[str] = []

    # -- events in

    def stopped(self) -> bool:
        """The job stopped (API limit or cancel): planning launches nothing more."""
        return self.machine.stopped is not None

    def feed(self, event: JobEvent) -> None:
        """Hand ``event`` to the machine and carry out its answer, in order."""
        for ins in self.machine.handle(event):
            self.do(ins)

    def loop(self) -> None:
        """Wait for tasks and feed their outcomes until the machine commits or stops.

        Raises:
            JobCancelled: the job was cancelled (nothing is committed).
        """
        from distributed import wait
        from distributed.client import FuturesCancelledError

        self.flush_records()
        last_cancel_check = time.monotonic()
        while not self.machine.finished:
            self.flush_records()
            if time.monotonic() - last_cancel_check > CANCEL_POLL_S:
                last_cancel_check = time.monotonic()
                self.poll_cancel_requested()
            if self.run.cancel.is_set():
                self.feed(CancelRequested())
                break
            self.lock.refresh_if_due()
            if not self.pending:  # the machine waits for a partition the driver does not run: a bug
                raise JobError(what=f"partitions {self.machine.open_parts()} are open but no task runs")
            try:
                done, _ = wait(list(self.pending), timeout=WAIT_S, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            except FuturesCancelledError:  # the cluster cancelled a task: a failure of its object
                done = {fut for fut in self.pending if fut.status == "cancelled"}
            for fut in done:
                pid = self.pending.pop(fut, None)  # None: cancelled by an earlier instruction
                if pid is not None:
                    self.feed(_event_of(pid, fut))
        self.flush_records()
        if self.machine.stopped is not None and self.machine.stopped.cancelled:
            raise JobCancelled(job=self.run.job_id)

    def poll_cancel_requested(self) -> None:
        """A cancel asked through the catalog (the API, another process) sets the run's cancel Event."""
        from engine.catalog import jobs as cjobs
        from engine.catalog.db import transaction

        with transaction(self.sessions) as s:
            if cjobs.get_job(s, self.run.job_id).cancel_requested:
                self.run.cancel.set()

    # -- instructions out

    def do(self, ins: Instruction[PartitionTask, PartitionResult]) -> None:
        match ins:
            case Submit():
                self.submit(ins.pid, ins.part)
            case KeepResult():
                self.keep(ins.obj, ins.result)
            case Bisect():
                self.bisect(ins)
            case CancelPartition():
                for fut, pid in list(self.pending.items()):
                    if pid == ins.pid:
                        fut.cancel()
                        del self.pending[fut]
            case FinishObject():
                self.finish_object(ins.obj)
            case FailObject():
                self.fail_object(ins.obj, ins.code, ins.message)
            case Stop():
                self.cancel_event.set()
            case Commit():
                pass  # the loop ends (machine.finished) and execute() commits

    def submit(self, pid: int, task: PartitionTask) -> None:
        run = self.run
        self.workers.result()  # raises WorkerPreflightFailed: the job fails before any task runs
        # the largest partitions first (they are the job's critical path), among those queued
        fut = run.dask.submit(
            extract_partition, task, pure=False, key=f"sfvault-{run.job_id}-{len(run.submitted)}",
            priority=task.partition.estimated_rows,
        )  # fmt: skip
        run.submitted.append(fut)
        self.pending[fut] = pid

    def keep(self, name: str, res: PartitionResult) -> None:
        rep = self.run.reports[name]
        self.run.results[name].append(res)
        rep.partitions_done += 1
        rep.records += res.rows
        rep.deleted += res.deleted_rows
        rep.bytes += res.sealed_bytes
        rep.bulk_jobs += res.bulk_jobs
        rep.files_unavailable += res.blobs_unavailable
        add_calls(rep.calls, calls_of(res.usage).items())
        self.run.emit("partition", name)

    def bisect(self, ins: Bisect[PartitionTask]) -> None:
        """Split a partition that timed out in two; when it cannot be split, it failed with the timeout."""
        task = ins.part
        try:
            part = _narrow(self.base, task, self.plans[ins.obj])
        except SalesforceApiLimit as err:
            self.feed(ApiLimitReached(*err_fields(err), pid=ins.pid))
            return
        except SfvaultError as err:
            self.feed(PartitionFailed(ins.pid, *err_fields(err)))
            return
        if not can_bisect(part):
            self.feed(PartitionFailed(ins.pid, ins.code, ins.message))
            return
        left, right = bisect(part)
        self.run.reports[ins.obj].partitions += 1
        halves = (
            replace(task, partition=left, window_records=None),
            replace(task, partition=right, window_records=None),
        )
        self.feed(PartitionBisected(ins.pid, halves))

    def finish_object(self, name: str) -> None:
        run, o = self.run, self.run.options
        rep = run.reports[name]
        cursor_field = self.plans[name].spec.cursor_field
        if cursor_field:  # merged now, while other objects still run, not at the commit
            work = self.decision.objects[name]
            run.cursors[name] = merge_cursor(
                cursor_field,
                ((r.cursor_last, r.cursor_seen, r.cursor_truncated) for r in run.results[name]),
                o.cursor_lag,
                work.cursor if work.mode == "incremental" else None,
            )
        rep.state = "succeeded"
        rep.finished = time.monotonic()
        rep.duration_s = rep.finished - (rep.started or rep.finished)
        self.record(name)
        run.emit("object", name)

    def fail_object(self, name: str, code: str, msg: str) -> None:
        rep = self.run.reports[name]
        rep.state, rep.error_code, rep.error_message = "failed", code, msg
        rep.finished = time.monotonic()
        self.failed[name] = (code, msg)
        self.record(name)
        self.run.emit("object", name)

    def cancel_all(self) -> None:
        for fut in self.pending:
            fut.cancel()

    # -- the catalog while the job runs

    def record(self, name: str) -> None:
        """Show the object's outcome in the catalog while the job runs (PRODUCT: in-progress jobs
        show which objects succeeded and which hit exceptions so far); see :meth:`flush_records`."""
        self.unrecorded.append(name)

    def flush_records(self) -> None:
        """Write the outcomes recorded since the last flush, in one transaction."""
        from engine.catalog import jobs as cjobs
        from engine.catalog.db import transaction

        if not self.unrecorded:
            return
        with transaction(self.sessions) as s:
            job = cjobs.get_job(s, self.run.job_id)
            for name in dict.fromkeys(self.unrecorded):
                cjobs.record_object_result(s, job, object_result(self.run.reports[name], chunks=0))
        self.unrecorded.clear()


def _event_of(pid: int, fut: Any) -> JobEvent:
    """What a finished Dask future of partition ``pid`` means for the job."""
    from distributed import KilledWorker

    if fut.status == "finished":
        return PartitionDone(pid, fut.result())
    if fut.status == "cancelled":  # not by the driver (that one left ``pending`` at once): the cluster
        return PartitionFailed(pid, "SFV-000", f"the cluster cancelled the task {fut.key}")
    exc = fut.exception()
    if isinstance(exc, SalesforceQueryTimeout):
        return PartitionTimedOut(pid, *err_fields(exc))
    if isinstance(exc, SalesforceApiLimit):
        return ApiLimitReached(*err_fields(exc), pid=pid)
    if isinstance(exc, KilledWorker):
        return WorkerLost(pid, *err_fields(exc))
    return PartitionFailed(pid, *err_fields(exc))


def _total_usage(run: JobRun) -> ApiUsage:
    """The job's API usage: the driver's calls, each object's calls, the tasks' bytes and org view."""
    total = ApiUsage()
    total.merge(run.usage)
    total.calls = dict(run.usage.calls)
    for rep in run.reports.values():
        add_calls(total.calls, rep.calls.items())
    for results in run.results.values():
        for r in results:
            total.bytes_received += int(r.usage.get("bytes_received", 0))
            total.result_bytes += int(r.usage.get("result_bytes", 0))
            total.observe_org(r.usage.get("org_used"), r.usage.get("org_max"))  # the newest: the most used
    return total


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
