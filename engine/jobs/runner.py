"""The driver of a backup job: plan, run the partitions on Dask, commit, record.

:func:`run_backup` carries out what :mod:`engine.jobs.planning` decided:

1. read the org and its sealed credentials from the catalog;
2. take the org's repository lock; refuse beside another active job of the org; take the job's
   ``queued`` row (written by the job service, :mod:`engine.jobs.service`, or here); log in;
   discover and scope the objects;
3. decide full / incremental per object from the committed manifests of the cycle;
4. move the row ``queued`` → ``running`` with that kind and cycle; cut objects into Id-range partitions (an
   incremental object whose window holds only versions its cursor already captured gets none:
   no task, its cursor stays; see :func:`engine.jobs.discover.window_size`); the partition size
   follows the job's size (:func:`engine.jobs.planning.partition_rows`);
5. register the job's worker plugin (credentials + repository reference, see
   :mod:`engine.jobs.worker`) and submit one task per partition; a partition that fails with a
   query timeout is bisected and resubmitted; an exhausted API allowance stops new work and
   fails the objects not finished (they are redone by the next job);
6. only after every task finished: commit the manifest (the cursors move here and only here),
   then the catalog rows (per-object results, API usage, final state).

A crash or a cancellation before step 6 leaves unreferenced chunks for ``prune`` and no snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import select

from engine.clock import Clock, FrozenClock, SystemClock
from engine.config import Settings
from engine.errors import (
    SalesforceApiLimit,
    SalesforceQueryTimeout,
    SfvaultError,
)
from engine.extract.client import SalesforceClient
from engine.extract.model import ObjectPlan
from engine.extract.plan import Partition, bisect, can_bisect
from engine.extract.rest import RestApi
from engine.extract.scope import ScopeRules
from engine.extract.soql import Soql
from engine.extract.usage import ApiUsage
from engine.jobs.credentials import catalog_sealer, client_options, grant_from_record
from engine.jobs.deletes import DeleteLog, replicate_deletes
from engine.jobs.discover import (
    WindowSize,
    add_calls,
    discover,
    live_count,
    live_rows,
    reads_all_rows,
    split_window,
    window_size,
)
from engine.jobs.errors import (
    CredentialsMissing,
    FilesNotVisible,
    JobAbandoned,
    JobAlreadyRunning,
    JobCancelled,
    NoObjectsInScope,
)
from engine.jobs.file_access import file_warnings, files_not_visible
from engine.jobs.planning import (
    BackupRequest,
    JobDecision,
    JobOptions,
    ObjectWork,
    decide,
    merge_cursor,
    needed_manifests,
    partition_rows,
    redo_in_full,
    warned_at_last_capture,
)
from engine.jobs.tasks import PartitionResult, PartitionTask, extract_partition
from engine.jobs.worker import BackupWorkerPlugin
from engine.model import (
    ChunkRef,
    Cursor,
    CyclePosition,
    JobRecord,
    JobUsage,
    Manifest,
    ObjectEntry,
    ObjectError,
    ObjectWarning,
    OrgFacts,
    Trigger,
)

log = logging.getLogger(__name__)

PLANNING_THREADS = 16
"""Objects planned at once on the driver (each planning step is one to a few short REST calls,
mostly waiting on the network)."""


@dataclass
class ObjectReport:
    name: str
    mode: str
    state: str = "pending"
    partitions: int = 0
    partitions_done: int = 0
    records: int = 0
    deleted: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)
    bulk_jobs: int = 0
    error_code: str | None = None
    error_message: str | None = None
    started: float | None = None
    finished: float | None = None
    reason: str = ""
    files_unavailable: int = 0
    """File bodies Salesforce answered with 403/404 although their record was queried."""
    warning_code: str | None = None
    """A warning on an object that succeeded (SFV-805: only files shared with the user)."""
    warning_message: str | None = None


@dataclass
class BackupResult:
    job_id: str
    org: str
    kind: str
    cycle_id: str
    state: str
    objects: dict[str, ObjectReport]
    usage: dict[str, Any]
    duration_s: float
    snapshot: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def records(self) -> int:
        return sum(o.records for o in self.objects.values() if o.state == "succeeded")

    @property
    def bytes(self) -> int:
        return sum(o.bytes for o in self.objects.values() if o.state == "succeeded")

    @property
    def api_calls(self) -> int:
        return int(self.usage.get("api_calls", 0))


@dataclass(frozen=True)
class Progress:
    """A progress report: one object's state and the job's totals."""

    kind: str  # "planned" | "partition" | "object" | "done"
    job_id: str
    object: str | None
    objects: dict[str, ObjectReport]


ProgressFn = Callable[[Progress], None]


def _err_fields(err: BaseException) -> tuple[str, str]:
    if isinstance(err, SfvaultError):
        return err.code, err.message
    return "SFV-000", f"{type(err).__name__}: {err}"


def _calls_of(usage: dict[str, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in usage.get("calls", {}).items()}


class _Run:
    """State of one running job on the driver."""

    def __init__(
        self,
        *,
        settings: Settings,
        dask: Any,
        org_name: str,
        request: BackupRequest,
        options: JobOptions,
        clock: Clock,
        on_progress: ProgressFn | None,
        cancel: threading.Event | None,
        trigger: str,
    ) -> None:
        self.settings = settings
        self.dask = dask
        self.org_name = org_name
        self.request = request
        self.options = options
        self.clock = clock
        self.on_progress = on_progress
        self.cancel = cancel or threading.Event()
        self.trigger = trigger
        self.usage = ApiUsage()
        self.reports: dict[str, ObjectReport] = {}
        self.results: dict[str, list[PartitionResult]] = {}
        self.cursors: dict[str, dict[str, Any]] = {}
        """Closing cursors (``to_dict``) of the objects that succeeded, merged as each finishes."""
        self.delete_log = DeleteLog()
        """The delete log's answers (deletion chunks, where each object's next window starts)."""
        self.started = time.monotonic()
        self.job_id = ""
        self.submitted: list[Any] = []
        self.warnings_read: Future[dict[str, tuple[str, str]]] | None = None  # object -> (code, message)

    def emit(self, kind: str, obj: str | None = None) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(kind, self.job_id, obj, self.reports))


def run_backup(
    settings: Settings,
    dask: Any,
    org_name: str,
    request: BackupRequest | None = None,
    *,
    options: JobOptions | None = None,
    clock: Clock | None = None,
    on_progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    trigger: str = "manual",
    client_overrides: dict[str, Any] | None = None,
    job_id: str | None = None,
) -> BackupResult:
    """Run one backup job of ``org_name`` on the Dask client ``dask``; see the module docstring.

    ``job_id`` is the ``queued`` row the job service wrote (:mod:`engine.jobs.service`, the door
    of the CLI, the API and the scheduler): this job moves it to ``running`` and writes no other
    row. Without one (direct callers: tests, benchmarks) the job writes its own ``queued`` row as
    soon as it holds the org's lock, before discovery, so the catalog shows it from the start.

    Returns the result for succeeded, partial and failed jobs (the catalog has the same);
    raises :class:`JobCancelled` when cancelled and :class:`JobAlreadyRunning`,
    :class:`FullBackupRequired`, :class:`NoObjectsInScope` before it runs (a row it owns is then
    closed ``failed`` with that code).
    """
    from engine.catalog.db import make_engine, migrate, session_factory
    from engine.sink.repository import open_repository

    request = request or BackupRequest(org=org_name)
    options = options or JobOptions.from_settings(settings.job)
    run = _Run(settings=settings, dask=dask, org_name=org_name, request=request, options=options,
               clock=clock or SystemClock(), on_progress=on_progress, cancel=cancel,
               trigger=trigger)  # fmt: skip
    engine = make_engine(settings.catalog_url)
    migrate(engine)
    sessions = session_factory(engine)
    repo = open_repository(settings, clock=run.clock)
    try:
        _require_credentials(sessions, org_name)
        with repo.lock(org_name, holder=f"sfvault backup of {org_name}") as lock:
            org_id, record, rules, failed_last = _claim_org(run, sessions, job_id)
            try:
                return _plan_and_execute(run, repo, lock, sessions, org_id, record, rules, failed_last,
                                         client_overrides)  # fmt: skip
            except BaseException as err:
                _close_unfinished(run, sessions, err)
                raise
    finally:
        repo.close()
        engine.dispose()


def _require_credentials(sessions: Any, org_name: str) -> None:
    from engine.catalog import orgs as corgs
    from engine.catalog.db import transaction

    with transaction(sessions) as s:
        if corgs.get_org_by_name(s, org_name).credentials_sealed is None:
            raise CredentialsMissing(org=org_name)


def _claim_org(run: _Run, sessions: Any, job_id: str | None) -> tuple[int, Any, ScopeRules, list[str]]:
    """Under the org's lock: close a ``running`` job nobody drives any more (SFV-804: we hold its
    lock), refuse beside another active job, and take this job's ``queued`` row (``job_id``, or
    a new one). Returns the org's id, sealed-credentials record, scope rules and the objects to
    redo."""
    from engine.catalog import jobs as cjobs
    from engine.catalog import orgs as corgs
    from engine.catalog.db import transaction
    from engine.catalog.models import ACTIVE_JOB_STATES, Job, JobState

    clock = run.clock
    with transaction(sessions) as s:
        org = corgs.get_org_by_name(s, run.org_name)
        others = list(s.scalars(
            select(Job)
            .where(Job.org_id == org.id, Job.id != (job_id or ""),
                   Job.state.in_([st.value for st in ACTIVE_JOB_STATES]))
            .order_by(Job.created_at)
        ))  # fmt: skip
        for active in others:
            if active.state != JobState.RUNNING.value:
                raise JobAlreadyRunning(org=run.org_name, job=active.id)
            gone = JobAbandoned(job=active.id)  # we hold the org's lock, so its driver is gone
            cjobs.finish_job(s, active, "failed", error_code=gone.code, error_message=gone.message,
                             clock=clock)  # fmt: skip
        if job_id is not None and cjobs.get_job(s, job_id).state != JobState.QUEUED.value:
            raise JobCancelled(job=job_id)  # cancelled while it waited for a thread
        if job_id is None:
            job = cjobs.create_job(
                s, org, kind="full" if run.request.full else "incremental", trigger=run.trigger,
                requested_objects=list(run.request.objects) if run.request.objects else None, clock=clock,
            )  # fmt: skip
            job_id = job.id
        run.job_id = job_id
        record = corgs.read_credentials(org, catalog_sealer(run.settings))
        st = org.settings
        rules = ScopeRules(
            include_feed=st.include_feed, include_share=st.include_share,
            excluded=frozenset(st.excluded_objects or ()),
        )  # fmt: skip
        return org.id, record, rules, cjobs.objects_to_retry(s, org.id)


def _start_row(run: _Run, sessions: Any, decision: JobDecision) -> str:
    """The job's row ``queued`` → ``running`` with the kind and cycle the runner decided; a row
    cancelled while it waited raises :class:`JobCancelled`. Returns the cycle id."""
    from engine.catalog import jobs as cjobs
    from engine.catalog.db import transaction
    from engine.catalog.models import JobState

    with transaction(sessions) as s:
        job = cjobs.get_job(s, run.job_id)
        if job.state != JobState.QUEUED.value:
            raise JobCancelled(job=run.job_id)
        job.kind = decision.kind
        job.cycle_id = decision.cycle_id or job.id
        cjobs.start_job(s, job, clock=run.clock)
        return job.cycle_id


def _close_unfinished(run: _Run, sessions: Any, err: BaseException) -> None:
    """End the job's row (queued or running) ``cancelled`` or ``failed`` with ``err``'s code."""
    from engine.catalog import jobs as cjobs
    from engine.catalog.db import transaction
    from engine.catalog.models import JobState

    with transaction(sessions) as s:
        job = cjobs.get_job(s, run.job_id)
        if not JobState(job.state).finished:
            code, msg = _err_fields(err)
            target = "cancelled" if isinstance(err, JobCancelled | KeyboardInterrupt) else "failed"
            cjobs.finish_job(s, job, target, error_code=code, error_message=msg, clock=run.clock)


def _plan_and_execute(
    run: _Run,
    repo: Any,
    lock: Any,
    sessions: Any,
    org_id: int,
    record: Any,
    rules: ScopeRules,
    failed_last: list[str],
    client_overrides: dict[str, Any] | None,
) -> BackupResult:
    """Log in, discover, decide, start the row, then :func:`_execute`."""
    grant = grant_from_record(record)
    copts = client_options(record, run.settings, **(client_overrides or {}))
    base = SalesforceClient.connect(grant, copts, usage=run.usage)
    side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="limits")
    try:
        # the org allowance the workers start from, read while the objects are described
        allowance_read = side.submit(_read_allowance, base)
        disc = discover(base, rules)
        allowance_read.result()
        in_scope = {n: p.spec.cursor_field for n, p in disc.plans.items()}
        manifests = needed_manifests(repo.manifests(run.org_name, newest_first=True), in_scope)
        decision = decide(run.request, manifests, in_scope, failed_last=failed_last, now=run.clock.now(),
                          options=run.options)  # fmt: skip
        if not decision.objects:
            raise NoObjectsInScope(org=run.org_name, what="no object matched the scope and the selection")
        # one REST query when file objects are in scope; it runs while the objects are planned
        run.warnings_read = side.submit(file_warnings, base, list(decision.objects), now=run.clock.now())
        decision = _refetch_files_now_visible(run, manifests, decision)
        cycle_id = _start_row(run, sessions, decision)
        # the delete log of each incremental object (one call each); where it cannot serve the
        # window the object is swept in this job (decision 0010)
        decision, run.delete_log = replicate_deletes(base, repo, disc.plans, decision, run.clock.now())
        calls = {n: dict(c) for n, c in disc.usage.items()}
        for name, spent in run.delete_log.calls.items():
            add_calls(calls.setdefault(name, {}), spent.items())
        return _execute(run, repo, lock, base, disc.plans, calls, decision, cycle_id,
                        sessions, org_id, grant, copts)  # fmt: skip
    finally:
        side.shutdown(wait=True)
        base.close()


def _file_warnings(run: _Run) -> dict[str, tuple[str, str]]:
    """The SFV-805 warnings of :func:`file_warnings`; a failure to read the permission is one."""
    if run.warnings_read is None:
        return {}
    try:
        return run.warnings_read.result()
    except SfvaultError as err:
        why = f"the backup user's permission sets could not be read: {err.message}"
        return files_not_visible(run.reports, why)


FILES_NOW_VISIBLE = "files hidden from the last job (no Query All Files) are visible now"


def _refetch_files_now_visible(run: _Run, manifests: list[Manifest], decision: JobDecision) -> JobDecision:
    """Extract a file object in full when its last capture lacked Query All Files and the backup
    user has it now: an incremental would only add the hidden files that change, so the others
    would stay out of the backup until the next cycle. Waits for the permission read only then."""
    incremental = [n for n, w in decision.objects.items() if w.mode == "incremental"]
    hidden = warned_at_last_capture(manifests, incremental, FilesNotVisible.code)
    if not hidden or run.warnings_read is None:
        return decision
    try:
        still_hidden = run.warnings_read.result()
    except SfvaultError:
        return decision  # not known to be visible: the job reports the warning again
    return redo_in_full(decision, [n for n in hidden if n not in still_hidden], FILES_NOW_VISIBLE)


def _read_allowance(base: SalesforceClient) -> None:
    """``/limits`` into ``base.usage`` for the workers' reserve checks (one call for the job).

    Best effort: when it fails, each worker reads ``/limits`` itself and meets the error there.
    """
    try:
        base.limits()
    except SfvaultError as err:
        log.info("could not read the org allowance on the driver", extra={"error": str(err)})


def _execute(
    run: _Run,
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
            result_streams=o.result_streams, chunk_target_bytes=o.chunk_target_bytes,
            chunk_buffer_bytes=o.chunk_buffer_bytes, page_bytes=o.page_bytes, semaphore=sem_name,
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
                cjobs.record_object_result(s, job, _object_result(run.reports[name], chunks=0))
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
                stop = _err_fields(err)
            except SfvaultError as err:
                fail_object(name, *_err_fields(err))
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
                    add_calls(rep.calls, _calls_of(res.usage).items())
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
                    stop = _err_fields(exc)
                    fail_object(name, *stop)
                    break
                fail_object(name, *_err_fields(exc))
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
    return _commit(run, repo, lock, decision, cycle_id, plans, sessions, org_id, failed)


def _object_result(rep: ObjectReport, *, chunks: int) -> Any:
    from engine.catalog.jobs import ObjectResult

    return ObjectResult(
        object_name=rep.name,
        state="succeeded" if rep.state == "succeeded" else "failed",
        records=rep.records,
        bytes=rep.bytes,
        chunks=chunks,
        duration_s=rep.duration_s,
        rest_calls=rep.calls.get("rest", 0),
        bulk2_jobs=rep.bulk_jobs,
        bulk2_pages=rep.calls.get("bulk2_results_page", 0),
        error_code=rep.error_code,
        error_message=rep.error_message,
        files_unavailable=rep.files_unavailable,
        warning_code=rep.warning_code,
        warning_message=rep.warning_message,
    )


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


def _commit(
    run: _Run,
    repo: Any,
    lock: Any,
    decision: JobDecision,
    cycle_id: str,
    plans: dict[str, ObjectPlan],
    sessions: Any,
    org_id: int,
    failed: dict[str, tuple[str, str]],
) -> BackupResult:
    """Commit the manifest (when any object succeeded), then the catalog rows, at one instant.

    The manifest carries the typed job record (:class:`engine.model.JobRecord`, per-object facts in
    each :class:`ObjectEntry`) with the same values the catalog gets, so ``catalog rebuild``
    recreates the job's rows exactly (docs/decisions/0011)."""
    from engine.catalog import jobs as cjobs
    from engine.catalog.db import transaction

    for name, (code, message) in _file_warnings(run).items():
        rep = run.reports.get(name)  # a warning, not a failure: only on objects that succeeded
        if rep is not None and rep.state == "succeeded":
            rep.warning_code, rep.warning_message = code, message
    objects = {name: _object_entry(run, name, decision) for name in run.reports}
    ok = [n for n, r in run.reports.items() if r.state == "succeeded"]
    state = "succeeded" if not failed else ("partial" if ok else "failed")
    first_err = next(iter(failed.values()), None)
    error = (
        None
        if first_err is None or state == "succeeded"
        else ObjectError(first_err[0], f"{len(failed)} object(s) failed; first: {first_err[1]}")
    )
    finished = run.clock.now()
    at = FrozenClock(current=finished)  # the manifest and the catalog rows share the commit instant
    usage = run.usage.snapshot()
    snapshot_name: str | None = None
    if ok:
        with transaction(sessions) as s:
            record = _job_record(s, run.job_id, org_id, decision, finished, error, usage)
        manifest = Manifest(
            org=run.org_name,
            job_id=run.job_id,
            created_at=finished,
            kind=decision.kind,
            cycle_id=cycle_id,
            objects=objects,
            job=record,
        )
        snapshot_name = repo.commit(manifest, lock=lock).name
    with transaction(sessions) as s:
        job = cjobs.get_job(s, run.job_id)
        _record_results(s, job, run, objects, usage, org_id, at)
        cjobs.finish_job(
            s, job, state, snapshot_ref=snapshot_name, error_code=error.code if error else None,
            error_message=error.message if error else None, clock=at,
        )  # fmt: skip
    run.emit("done")
    return BackupResult(
        job_id=run.job_id,
        org=run.org_name,
        kind=decision.kind,
        cycle_id=cycle_id,
        state=state,
        objects=run.reports,
        usage=usage,
        duration_s=time.monotonic() - run.started,
        snapshot=snapshot_name,
        error_code=first_err[0] if first_err else None,
        error_message=first_err[1] if first_err else None,
    )


def _object_calls(rep: ObjectReport) -> dict[str, int]:
    """The object's call counters, with the two the catalog keeps (``bulk2_jobs_created``,
    ``bulk2_pages``) under their own names."""
    calls = dict(rep.calls)
    calls["bulk2_jobs_created"] = rep.bulk_jobs
    calls["bulk2_pages"] = calls.get("bulk2_results_page", 0)
    return calls


def _object_entry(run: _Run, name: str, decision: JobDecision) -> ObjectEntry:
    """The manifest entry of one object: its data, cursor and how it was captured, or its failure."""
    rep = run.reports[name]
    mode = decision.objects[name].mode
    if rep.state != "succeeded":
        return ObjectEntry(
            rows=rep.records, bytes=rep.bytes, api_calls=_object_calls(rep), duration_seconds=rep.duration_s,
            mode=mode, errors=[ObjectError(rep.error_code or "SFV-000", rep.error_message or "")],
        )  # fmt: skip
    results = run.results[name]
    chunks: list[ChunkRef] = []
    dels: list[ChunkRef] = []
    blobs: dict[str, Any] = {}
    for r in results:
        chunks.extend(r.chunks)
        dels.extend(r.deleted_chunks)
        dels.extend(r.sweep_chunks)
        for b in r.blobs:
            blobs[b.name] = b
    dels.extend(run.delete_log.chunks.get(name, []))
    chunks.sort(key=lambda c: (c.min_id or "", c.name))
    closing = run.cursors.get(name)
    if closing is not None and name in run.delete_log.through:  # the next delete-log window's start
        closing = {**closing, "deletes_through": run.delete_log.through[name].isoformat()}
    because = run.delete_log.swept.get(name)
    window_tasks = [r for r in results if not r.boundary_check]
    return ObjectEntry(
        chunks=chunks,
        rows=rep.records,
        bytes=sum(c.sealed_bytes for c in chunks) + sum(c.sealed_bytes for c in dels),
        cursor=Cursor.from_dict(closing) if closing is not None else None,
        api_calls=_object_calls(rep),
        blobs=sorted(blobs.values(), key=lambda b: b.name),
        deleted_ids_chunks=dels,
        duration_seconds=rep.duration_s,
        mode=mode,
        swept=bool(window_tasks) and all(r.swept for r in window_tasks),
        warning=ObjectWarning(rep.warning_code, rep.warning_message or "") if rep.warning_code else None,
        files_unavailable=rep.files_unavailable,
        sweep_reason=ObjectWarning(because["code"], because["message"]) if because else None,
        log_deletions=run.delete_log.deleted.get(name),
    )


def _job_record(
    s: Any,
    job_id: str,
    org_id: int,
    decision: JobDecision,
    finished: datetime,
    error: ObjectError | None,
    usage: dict[str, Any],
) -> JobRecord:
    """The job as the catalog has it (trigger, times, requested objects, org) plus what the runner
    decided (cycle position), finished at ``finished``."""
    from engine.catalog import jobs as cjobs
    from engine.catalog.models import Org

    job = cjobs.get_job(s, job_id)
    org = s.get(Org, org_id)
    position = decision.position() if decision.kind == "incremental" else CyclePosition(finished, 0)
    return JobRecord(
        trigger=cast(Trigger, job.trigger),
        queued_at=job.created_at,
        started_at=job.started_at,
        finished_at=finished,
        scheduled_for=job.scheduled_for,
        cycle=position,
        requested_objects=tuple(job.requested_objects) if job.requested_objects is not None else None,
        error=error,
        usage=JobUsage.from_dict(usage),
        org=OrgFacts(org.instance_url, org.sf_org_id, org.time_zone) if org is not None else None,
    )


def _record_results(
    s: Any,
    job: Any,
    run: _Run,
    objects: dict[str, ObjectEntry],
    usage: dict[str, Any],
    org_id: int,
    at: Clock,
) -> None:
    """The per-object results, their errors and the job's API usage, in the catalog."""
    from engine.catalog import jobs as cjobs
    from engine.catalog.usage import record_api_usage

    for name, rep in run.reports.items():
        cjobs.record_object_result(s, job, _object_result(rep, chunks=len(objects[name].chunks)))
        if rep.error_code:
            cjobs.add_job_error(s, job, code=rep.error_code, message=rep.error_message or "",
                                object_name=name, clock=at)  # fmt: skip
    calls = usage.get("calls", {})
    record_api_usage(
        s, org_id=org_id, job_id=run.job_id, rest_calls=int(calls.get("rest", 0)),
        bulk2_jobs=sum(r.bulk_jobs for r in run.reports.values()),
        bulk2_pages=int(calls.get("bulk2_results_page", 0)),
        remaining=(usage["org_max"] - usage["org_used"]) if usage.get("org_max") is not None
        and usage.get("org_used") is not None else None,
        daily_limit=usage.get("org_max"), clock=at,
    )  # fmt: skip


def cursor_of(manifest: Manifest, obj: str) -> Cursor | None:
    """The closing cursor ``manifest`` recorded for ``obj`` (None: not captured or no timestamp field)."""
    entry = manifest.objects.get(obj)
    return None if entry is None else entry.cursor
