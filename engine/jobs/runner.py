"""The driver of a backup job: plan, run the partitions on Dask, commit, record.

:func:`run_backup` carries out what :mod:`engine.jobs.planning` decided:

1. read the org and its sealed credentials from the catalog;
2. take the lane of the org's repository lock that the job's kind needs (``full`` for a new
   cycle's full, ``incremental`` otherwise: an incremental runs beside a new cycle's full,
   decision 0016); refuse beside another active job of that lane; take the job's ``queued`` row
   (written by the job service, :mod:`engine.jobs.service`, or here); log in; discover and scope
   the objects;
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

Steps 4-5 run in :mod:`engine.jobs.driver`, a thin loop over the pure job state machine of
:mod:`engine.jobs.machine` (planning in :mod:`engine.jobs.partitioning`); step 6 is
:mod:`engine.jobs.commit` (decision 0014).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.errors import SfvaultError
from engine.extract.client import SalesforceClient
from engine.extract.scope import ScopeRules
from engine.jobs.credentials import catalog_sealer, client_options, grant_from_record
from engine.jobs.deletes import WorkAfterTheLog
from engine.jobs.discover import discover, not_backed_up
from engine.jobs.driver import execute
from engine.jobs.errors import (
    CredentialsMissing,
    FilesNotVisible,
    JobAbandoned,
    JobAlreadyRunning,
    JobCancelled,
    NoObjectsInScope,
)
from engine.jobs.file_access import file_warnings
from engine.jobs.jobrun import BackupResult, JobRun, ObjectReport, Progress, ProgressFn, err_fields
from engine.jobs.partitioning import JobNames
from engine.jobs.planning import (
    BackupRequest,
    JobDecision,
    JobOptions,
    decide,
    job_kind,
    needed_manifests,
    redo_in_full,
    warned_at_last_capture,
)
from engine.jobs.worker import prepare_workers, release_workers
from engine.model import Cursor, Manifest
from engine.sink.repair import redo_after_repair

__all__ = [
    "FILES_NOW_VISIBLE",
    "BackupResult",
    "ObjectReport",
    "Progress",
    "ProgressFn",
    "cursor_of",
    "run_backup",
]

log = logging.getLogger(__name__)


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
    run = JobRun(settings=settings, dask=dask, org_name=org_name, request=request, options=options,
               clock=clock or SystemClock(), on_progress=on_progress, cancel=cancel,
               trigger=trigger)  # fmt: skip
    engine = make_engine(settings.catalog_url)
    migrate(engine)
    sessions = session_factory(engine)
    repo = open_repository(settings, clock=run.clock)
    try:
        _require_credentials(sessions, org_name)
        run.lane_at = run.clock.now()
        run.lane = job_kind(request, needed_manifests(repo.manifests(org_name, newest_first=True), ()),
                            run.lane_at)  # fmt: skip
        holder = f"sfvault {run.lane} backup of {org_name}"
        with repo.lock(org_name, holder=holder, lane=run.lane, job=job_id) as lock:
            org_id, record, rules, failed_last = _claim_org(run, sessions, job_id, lock)
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


def _claim_org(
    run: JobRun, sessions: Any, job_id: str | None, lock: Any
) -> tuple[int, Any, ScopeRules, list[str]]:
    """Under the org's lock lane: close a ``running`` job of the lane nobody drives any more
    (SFV-804: we hold its lane), refuse beside another active job of the lane, note the fulls in
    flight beside an incremental, and take this job's ``queued`` row (``job_id``, or a new one).
    Returns the org's id, sealed-credentials record, scope rules and the objects to redo."""
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
        beside: list[str] = []
        for active in others:
            if active.lane != run.lane:
                beside.append(active.id)  # the other lane: a new cycle's full beside an incremental
                continue
            if active.state != JobState.RUNNING.value:
                raise JobAlreadyRunning(org=run.org_name, job=active.id)
            gone = JobAbandoned(job=active.id)  # we hold its lane of the org's lock: its driver is gone
            cjobs.finish_job(s, active, "failed", error_code=gone.code, error_message=gone.message,
                             clock=clock)  # fmt: skip
        if run.lane == "incremental":
            run.fulls_beside = _fulls_in_flight(lock, beside)
        if job_id is not None and cjobs.get_job(s, job_id).state != JobState.QUEUED.value:
            raise JobCancelled(job=job_id)  # cancelled while it waited for a thread
        if job_id is None:
            job = cjobs.create_job(
                s, org, kind=run.lane, trigger=run.trigger,
                requested_objects=list(run.request.objects) if run.request.objects else None, clock=clock,
            )  # fmt: skip
            job_id = job.id
            lock.job = job_id  # the lock names its job from now on (an incremental reads it back)
            lock.refresh()
        run.job_id = job_id
        record = corgs.read_credentials(org, catalog_sealer(run.settings))
        st = org.settings
        rules = ScopeRules(
            include_feed=st.include_feed, include_share=st.include_share,
            excluded=frozenset(st.excluded_objects or ()),
        )  # fmt: skip
        return org.id, record, rules, cjobs.objects_to_retry(s, org.id)


def _fulls_in_flight(lock: Any, catalog_fulls: list[str]) -> tuple[str, ...]:
    """The new-cycle fulls in flight beside this incremental, sampled before it reads the manifests:
    active full rows of the catalog and holders of the org's full lane (by job id, else by the
    second they took the lane: an id made after it sorts after it). Decision 0016."""
    found = set(catalog_fulls)
    for info in lock.holders("full"):
        found.add(info.job or f"{info.acquired_at:%Y%m%dT%H%M%SZ}")
    return tuple(sorted(found))


def _start_row(run: JobRun, sessions: Any, decision: JobDecision) -> str:
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
        job.lane = run.lane  # the lane of the org's lock this job holds (it was admitted in it)
        job.cycle_id = decision.cycle_id or job.id
        cjobs.start_job(s, job, clock=run.clock)
        return job.cycle_id


def _close_unfinished(run: JobRun, sessions: Any, err: BaseException) -> None:
    """End the job's row (queued or running) ``cancelled`` or ``failed`` with ``err``'s code."""
    from engine.catalog import jobs as cjobs
    from engine.catalog.db import transaction
    from engine.catalog.models import JobState

    with transaction(sessions) as s:
        job = cjobs.get_job(s, run.job_id)
        if not JobState(job.state).finished:
            code, msg = err_fields(err)
            target = "cancelled" if isinstance(err, JobCancelled | KeyboardInterrupt) else "failed"
            cjobs.finish_job(s, job, target, error_code=code, error_message=msg, clock=run.clock)


def _plan_and_execute(
    run: JobRun,
    repo: Any,
    lock: Any,
    sessions: Any,
    org_id: int,
    record: Any,
    rules: ScopeRules,
    failed_last: list[str],
    client_overrides: dict[str, Any] | None,
) -> BackupResult:
    """Log in, discover, decide, start the row, then :func:`engine.jobs.driver.execute`."""
    grant = grant_from_record(record)
    copts = client_options(record, run.settings, **(client_overrides or {}))
    base = SalesforceClient.connect(grant, copts, usage=run.usage)
    side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="limits")
    log_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delete-log")
    workers_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workers")
    workers: Future[str] | None = None
    try:
        # the org allowance the workers start from, read while the objects are described
        allowance_read = side.submit(_read_allowance, base)
        # the workers get the job's plugin meanwhile: the job's first calls need not wait (0046)
        plugin = JobNames.of(run.org_name, run.job_id).plugin
        workers = workers_pool.submit(prepare_workers, run.dask, plugin, grant, copts, run.settings, base,
                                      allowance_read)  # fmt: skip
        disc = discover(base, rules)
        run.not_backed_up = not_backed_up(disc.decisions)
        allowance_read.result()
        in_scope = {n: p.spec.cursor_field for n, p in disc.plans.items()}
        manifests = needed_manifests(repo.manifests(run.org_name, newest_first=True), in_scope)
        # the kind is the lane's (asked at the same instant; a full committed since only makes the
        # cycle newer), and a lane "full" stays a full even if another full committed meanwhile
        request = replace(run.request, full=True) if run.lane == "full" else run.request
        decision = decide(request, manifests, in_scope, failed_last=failed_last, now=run.lane_at,
                          options=run.options)  # fmt: skip
        decision = replace(decision, fulls_beside=run.fulls_beside)
        # objects whose newest data `sfvault repair` set aside are extracted in full
        redo = redo_after_repair(repo, run.org_name, manifests, list(decision.objects))
        decision = redo_in_full(decision, redo, SET_ASIDE_BY_REPAIR)
        if not decision.objects:
            raise NoObjectsInScope(org=run.org_name, what="no object matched the scope and the selection")
        # one REST query when file objects are in scope; it runs while the objects are planned
        run.warnings_read = side.submit(file_warnings, base, list(decision.objects), now=run.clock.now())
        decision = _refetch_files_now_visible(run, manifests, decision)
        cycle_id = _start_row(run, sessions, decision)
        # the delete log of each incremental object (one call each), asked while the objects are
        # sized; where it cannot serve the window the object is swept in this job (decision 0010),
        # up to the job's start by the org's clock (the Date of its answers; ours without one)
        org_now = base.usage.org_time or run.clock.now()
        deletes = WorkAfterTheLog(decision)
        deletes.ask(log_pool, base, repo, disc.plans, org_now)
        calls = {n: dict(c) for n, c in disc.usage.items()}
        return execute(run, repo, lock, base, disc.plans, calls, decision, cycle_id,
                       sessions, org_id, workers, deletes=deletes)  # fmt: skip
    finally:
        side.shutdown(wait=True)
        log_pool.shutdown(wait=True)
        workers_pool.shutdown(wait=True)
        if workers is not None:  # the job's plugin leaves the workers with it, however it ended
            release_workers(run.dask, workers)
        base.close()


SET_ASIDE_BY_REPAIR = "its newest snapshot was set aside by sfvault repair"
FILES_NOW_VISIBLE = "files hidden from the last job (no Query All Files) are visible now"


def _refetch_files_now_visible(run: JobRun, manifests: list[Manifest], decision: JobDecision) -> JobDecision:
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


def cursor_of(manifest: Manifest, obj: str) -> Cursor | None:
    """The closing cursor ``manifest`` recorded for ``obj`` (None: not captured or no timestamp field)."""
    entry = manifest.objects.get(obj)
    return None if entry is None else entry.cursor
