"""The job service: the one door to a backup job for the CLI, the API and the scheduler.

Every backup, whoever asks for it (``sfvault backup``, ``POST /v1/orgs/{org}/backups``, a
schedule slot), goes through the same three steps (decision 0012):

1. **Admit.** Close the org's jobs whose process died (:func:`close_dead_jobs`), then check the
   policy of :mod:`engine.policy` against the catalog's facts: storage location set,
   subscription, seats (billable users counted in the org when seats were purchased), objects
   only after a full, a job of the same lane already queued or running (SFV-601: an incremental
   runs beside a new cycle's full, decision 0016), the plan's quota; for a slot
   also "backup enabled" and the connection time (:func:`engine.policy.decide_scheduled_run`).
   Then the org's stored credentials. A refusal raises its typed error (a slot records it as a
   skipped job, or nothing when the schedule is stopped) and writes nothing else.
2. **Write the queued row** with its first heartbeat and answer its id at once: from this
   instant the catalog shows the job, so a second request is refused with SFV-601 (not with the
   repository lock's SFV-330) and a caller never waits for discovery or planning.
3. **Run** it: :func:`engine.jobs.runner.run_backup` given that job id moves the row
   ``queued`` → ``running`` (it writes no other row); a failure before that closes the row
   ``failed`` with its code. While the job is queued or running its process refreshes the
   heartbeat (:class:`JobHeartbeat`); a job whose process died is closed ``failed`` with SFV-804
   within ``Settings.job_stale_after_seconds`` by the next scheduler tick or admission.

``sfvault backup --override-policy`` passes the refusals an operator may overrule
(subscription, seats, quota, no storage location: then the CLI's configured repository); the
job records ``policy_override`` and the refusal it passed. A job already running, objects before
the first full and missing credentials are never overridden.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from engine.catalog import jobs as cjobs
from engine.catalog import orgs as corgs
from engine.catalog.db import transaction
from engine.catalog.models import ACTIVE_JOB_STATES, Job, JobState, Org
from engine.clock import Clock
from engine.config import Settings
from engine.errors import (
    FullBackupRequired,
    JobAlreadyRunning,
    NoStorageLocation,
    PolicyError,
    SfvaultError,
)
from engine.jobs.connect import backup_settings_of, job_fact, org_facts_of
from engine.jobs.errors import CredentialsMissing, JobAbandoned
from engine.jobs.planning import BackupRequest, JobOptions
from engine.model import lane_of
from engine.policy import (
    JobFact,
    JobKind,
    ManualRequest,
    OrgFacts,
    blocking_job,
    decide_manual_run,
    decide_scheduled_run,
    has_full_backup,
    plan_backup,
)

if TYPE_CHECKING:
    from engine.catalog.secrets import Sealer
    from engine.jobs.runner import BackupResult, ProgressFn

log = logging.getLogger("sfvault.jobs.service")

FACTS_WINDOW = timedelta(hours=25)
"""The policy needs the jobs of the last 25 hours (quota) besides the cycle's jobs."""
NEVER_OVERRIDDEN = (JobAlreadyRunning, FullBackupRequired, CredentialsMissing)
"""Refusals ``--override-policy`` does not pass: one job per org, the runner's own rules."""


@dataclass(frozen=True)
class Admitted:
    """A job the service admitted: its ``queued`` row exists.

    Attributes:
        job_id: the row's id.
        org: the org's name.
        kind: the kind the policy predicts (the runner decides it again from the manifests).
        request: what to back up.
        trigger: ``manual`` or ``scheduled``.
        settings: the settings to run it with (``repository_url`` = the org's storage location).
    """

    job_id: str
    org: str
    kind: str
    request: BackupRequest
    trigger: str
    settings: Settings


@dataclass(frozen=True)
class SlotOutcome:
    """What the service did with one due schedule slot of one org.

    Attributes:
        org: org name.
        slot: the slot, in the org's zone.
        action: ``started`` (a queued job to run: :attr:`admitted`), ``skipped`` (recorded as a
            skipped job), ``stopped`` (schedule stopped: nothing recorded) or ``already_handled``
            (another tick or process recorded this slot).
        job_id: the started or skipped job.
        kind: ``full`` or ``incremental``.
        code: the error code of a skip or a stop.
    """

    org: str
    slot: datetime
    action: str
    job_id: str | None = None
    kind: str | None = None
    code: str | None = None
    admitted: Admitted | None = None


def org_settings(base: Settings, storage_location: str | None) -> Settings:
    """``base`` pointed at the org's storage location (unchanged when the org has none)."""
    if storage_location and storage_location.strip():
        return base.model_copy(update={"repository_url": storage_location.strip()})
    return base


def policy_jobs(s: Session, org_id: int, now: datetime) -> tuple[JobFact, ...]:
    """The jobs :class:`~engine.policy.facts.OrgFacts` needs: every active job, the last 25 hours,
    the newest committed full and every job after it."""
    since = now - FACTS_WINDOW
    full = cjobs.last_full_job(s, org_id)
    if full is not None and full.created_at < since:
        since = full.created_at
    rows = s.scalars(
        select(Job).where(
            Job.org_id == org_id,
            or_(Job.created_at >= since, Job.state.in_([st.value for st in ACTIVE_JOB_STATES])),
        )
    )
    return tuple(job_fact(j) for j in rows)


def close_dead_jobs(
    sessions: sessionmaker[Session], settings: Settings, *, now: datetime, org_id: int | None = None
) -> list[str]:
    """Close the active jobs whose heartbeat is older than ``settings.job_stale_after_seconds``
    as ``failed`` with SFV-804 (each with one conditional UPDATE); returns their ids."""
    stale = timedelta(seconds=settings.job_stale_after_seconds)
    closed: list[str] = []
    with transaction(sessions) as s:
        found = [j.id for j in cjobs.dead_jobs(s, now=now, stale_after=stale, org_id=org_id)]
    for job_id in found:
        err = JobAbandoned(job=job_id)
        with transaction(sessions) as s:
            if cjobs.close_dead_job(s, job_id, now=now, stale_after=stale, error_code=err.code,
                                    error_message=err.message):  # fmt: skip
                closed.append(job_id)
                log.warning("%s (no heartbeat for %s)", err, stale)
    return closed


class JobHeartbeat:
    """Stamps ``jobs.heartbeat_at`` every ``settings.job_heartbeat_seconds`` from a daemon thread
    while the job is queued or running; stops by itself once the row is no longer active.

    The thread waits on an Event between beats, so :meth:`stop` ends it at once.
    """

    def __init__(self, sessions: sessionmaker[Session], job_id: str, *, clock: Clock, every: float) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.clock = clock
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"sfvault-job-beat-{job_id[-12:]}", daemon=True
        )

    def beat(self) -> bool:
        with transaction(self.sessions) as s:
            return cjobs.record_job_heartbeat(s, self.job_id, now=self.clock.now())

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if not self.beat():
                    return
            except SQLAlchemyError as exc:  # the catalog is briefly unreachable: try at the next beat
                log.warning("heartbeat of job %s failed: %s", self.job_id, exc)

    def start(self) -> JobHeartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> JobHeartbeat:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class JobService:
    """Admits and runs backup jobs (see the module docstring). Stateless: cheap to make."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        *,
        clock: Clock,
        sealer: Sealer | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clock = clock
        self.sealer = sealer

    # --- admission ------------------------------------------------------------------------

    def admit(
        self,
        org: str,
        request: BackupRequest | None = None,
        *,
        role: str = "admin",
        trigger: str = "manual",
        override: bool = False,
    ) -> Admitted:
        """Check the "back up now" policy, write the queued row, answer at once.

        Raises the policy's typed errors (SFV-601 ... SFV-607), :class:`CredentialsMissing`,
        :class:`~engine.jobs.errors.UnknownObjects` for a selection naming objects outside the scope;
        ``override`` passes the refusals outside :data:`NEVER_OVERRIDDEN` and records it.
        """
        request = request or BackupRequest(org=org)
        now = self.clock.now()
        with transaction(self.sessions) as s:
            row = corgs.get_org_by_name(s, org)
            org_id, has_storage = row.id, bool((row.storage_location or "").strip())
        if not has_storage and not override:
            raise _no_storage(org)  # before the seats count logs in to Salesforce
        close_dead_jobs(self.sessions, self.settings, now=now, org_id=org_id)
        billable = self._billable_users(org)
        if request.objects is not None:
            self._check_selection(org, request.objects)
        passed: SfvaultError | None = None
        try:
            with transaction(self.sessions) as s:
                row = corgs.get_org(s, org_id)
                facts = replace(org_facts_of(row, policy_jobs(s, org_id, now)), billable_users=billable)
                chosen = frozenset(request.objects) if request.objects is not None else None
                try:
                    if not facts.has_storage:
                        raise _no_storage(row.name)
                    plan_kind = decide_manual_run(
                        backup_settings_of(row), facts,
                        ManualRequest(role=role, objects=chosen, full=request.full), now,
                    ).kind.value  # fmt: skip
                except PolicyError as err:
                    if not override or isinstance(err, NEVER_OVERRIDDEN):
                        raise
                    passed = err
                    plan_kind = _refuse_beyond_override(facts, chosen, request.full, now).value
                if row.credentials_sealed is None:
                    raise CredentialsMissing(org=row.name)
                job = self._queue(s, row, plan_kind, request, trigger, now, override=override, passed=passed)
                job_settings = org_settings(self.settings, row.storage_location)
        except IntegrityError as err:  # an admission of the same instant queued a job of this lane first
            raise self._lane_taken(org, org_id, lane_of(plan_kind, request.objects)) from err
        if passed is not None:
            log.warning("job %s of %s overrides the policy: %s", job.id, org, passed)
        return Admitted(job.id, org, plan_kind, request, trigger, job_settings)

    def _lane_taken(self, org: str, org_id: int, lane: JobKind) -> JobAlreadyRunning:
        """SFV-601 naming the active job that holds ``lane`` of the org (the catalog's unique index
        ``ux_jobs_org_active_lane`` refused a second one)."""
        with transaction(self.sessions) as s:
            holder = s.scalar(select(Job.id).where(
                Job.org_id == org_id, Job.lane == lane.value,
                Job.state.in_([st.value for st in ACTIVE_JOB_STATES]),
            ))  # fmt: skip
        return JobAlreadyRunning(org=org, job=holder or f"a {lane.value} job")

    def admit_slot(self, org_id: int, slot: datetime, now: datetime) -> SlotOutcome:
        """Decide a due schedule slot: a queued job stamped with the slot (``started``), a skipped
        job (``skipped``), nothing (``stopped``) or ``already_handled``. Never raises a policy
        refusal; ``scheduled_for`` is unique per org, so a slot makes at most one row."""
        close_dead_jobs(self.sessions, self.settings, now=now, org_id=org_id)
        with transaction(self.sessions) as s:
            row = s.scalar(select(Org).options(selectinload(Org.settings)).where(Org.id == org_id))
            if row is None:
                return SlotOutcome("", slot, "stopped", code="SFV-101")
            name, seats = row.name, row.purchased_seats
            if s.scalar(select(Job.id).where(Job.org_id == org_id, Job.scheduled_for == slot)) is not None:
                return SlotOutcome(name, slot, "already_handled")
        count_failed: SfvaultError | None = None
        try:
            billable = self._billable_users(name) if seats is not None else 0
        except SfvaultError as exc:  # Salesforce refused the login (SFV-402) ...: a skipped, alerted slot
            billable, count_failed = 0, exc
        for _attempt in range(2):  # a lane taken by an admission of the same instant: decide again
            try:
                with transaction(self.sessions) as s:
                    row = s.scalar(select(Org).options(selectinload(Org.settings)).where(Org.id == org_id))
                    if row is None:
                        return SlotOutcome(name, slot, "stopped", code="SFV-101")
                    jobs = policy_jobs(s, org_id, now)
                    facts = replace(org_facts_of(row, jobs), billable_users=billable)
                    decision = decide_scheduled_run(backup_settings_of(row), facts, now)
                    kind = (decision.plan.kind if decision.plan else plan_backup(jobs, now).kind).value
                    err: SfvaultError | None = decision.error()
                    if not decision.runs and err is None:
                        err = PolicyError(what=str(decision.reason))
                    if not decision.runs and not decision.record_skip:
                        log.info("scheduler: org=%s slot=%s stopped code=%s", name, slot.isoformat(),
                                 err.code if err else None)  # fmt: skip
                        return SlotOutcome(name, slot, "stopped", code=err.code if err else None)
                    if decision.runs and row.credentials_sealed is None:
                        err = CredentialsMissing(org=name)
                    elif decision.runs and count_failed is not None:
                        err = count_failed
                    request = BackupRequest(org=name, full=kind == "full")
                    if err is None:
                        job = self._queue(s, row, kind, request, "scheduled", now, slot=slot)
                    else:
                        job = cjobs.record_skipped_job(s, row, kind=kind, reason_code=err.code,
                                                       reason=err.message, clock=_At(now))  # fmt: skip
                        job.scheduled_for = slot
                        s.flush()
                    job_id, job_settings = job.id, org_settings(self.settings, row.storage_location)
            except IntegrityError:  # this slot recorded first by another tick, or the lane taken
                with transaction(self.sessions) as s:
                    if s.scalar(select(Job.id).where(Job.org_id == org_id, Job.scheduled_for == slot)):
                        return SlotOutcome(name, slot, "already_handled")
                continue
            break
        else:
            return SlotOutcome(name, slot, "stopped", code=JobAlreadyRunning.code)
        if err is not None:
            log.info(
                "scheduler: org=%s slot=%s skipped job=%s code=%s", name, slot.isoformat(), job_id, err.code
            )
            return SlotOutcome(name, slot, "skipped", job_id=job_id, kind=kind, code=err.code)
        admitted = Admitted(job_id, name, kind, request, "scheduled", job_settings)
        return SlotOutcome(name, slot, "started", job_id=job_id, kind=kind, admitted=admitted)

    def _check_selection(self, org: str, objects: tuple[str, ...]) -> None:
        """SFV-806 now, naming every unknown object, rather than from the job after a 202."""
        from engine.jobs.selection import check_selection

        check_selection(self.settings, self.sessions, org, objects, sealer=self.sealer)

    def _billable_users(self, org: str) -> int:
        """Billable users counted in the org (one login and a COUNT query) when it has purchased
        seats, with no catalog session open meanwhile; 0 otherwise."""
        from engine.jobs.permission_check import count_org_billable_users

        with transaction(self.sessions) as s:
            seats = corgs.get_org_by_name(s, org).purchased_seats
        if seats is None:
            return 0
        from engine.jobs.credentials import catalog_sealer

        sealer = self.sealer or catalog_sealer(self.settings)
        count = count_org_billable_users(self.settings, self.sessions, org, sealer=sealer)
        # kept for the overview: the tile shows "seats exceeded" without asking Salesforce per tile;
        # its own transaction, so a refusal that follows (SFV-604) does not roll it back
        with transaction(self.sessions) as s:
            row = corgs.find_org_by_name(s, org)
            if row is not None:
                row.billable_users, row.billable_users_counted_at = count, self.clock.now()
        return count

    def _queue(
        self,
        s: Session,
        org: Org,
        kind: str,
        request: BackupRequest,
        trigger: str,
        now: datetime,
        *,
        slot: datetime | None = None,
        override: bool = False,
        passed: SfvaultError | None = None,
    ) -> Job:
        job = cjobs.create_job(
            s, org, kind=kind, trigger=trigger, clock=_At(now),
            requested_objects=list(request.objects) if request.objects else None,
        )  # fmt: skip
        job.heartbeat_at = now
        job.scheduled_for = slot
        job.policy_override = override
        job.override_reason = f"{passed.code}: {passed.message}" if passed is not None else None
        s.flush()
        return job

    # --- running --------------------------------------------------------------------------

    def heartbeat(self, job_id: str) -> JobHeartbeat:
        """The heartbeat of an admitted job (start it at once; stop it when the job has ended)."""
        return JobHeartbeat(
            self.sessions, job_id, clock=self.clock, every=self.settings.job_heartbeat_seconds
        )

    def run(
        self,
        job: Admitted,
        dask: Any,
        *,
        options: JobOptions | None = None,
        client_overrides: dict[str, Any] | None = None,
        on_progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        init_repository: bool = False,
    ) -> BackupResult:
        """Run an admitted job (blocking). A failure before the runner took the row closes the
        ``queued`` row ``failed`` with its code (``cancelled`` for a cancellation).
        ``init_repository`` initialises the org's repository on first use (the API does)."""
        from engine.jobs.runner import run_backup

        try:
            if init_repository:
                ensure_repository(job.settings)
            return run_backup(
                job.settings, dask, job.org, job.request, options=options, clock=self.clock,
                on_progress=on_progress, cancel=cancel, trigger=job.trigger,
                client_overrides=client_overrides, job_id=job.job_id,
            )  # fmt: skip
        except BaseException as err:
            self.close_queued(job.job_id, err)
            raise

    def close_queued(self, job_id: str, err: BaseException) -> None:
        """End a job that never left ``queued`` with ``err``'s code (no-op once it ran)."""
        from engine.jobs.errors import JobCancelled

        code, message = (err.code, err.message) if isinstance(err, SfvaultError) else ("SFV-000", repr(err))
        with transaction(self.sessions) as s:
            row = cjobs.get_job(s, job_id)
            if row.state == JobState.QUEUED.value:
                target = "cancelled" if isinstance(err, JobCancelled | KeyboardInterrupt) else "failed"
                cjobs.finish_job(
                    s, row, target, error_code=code, error_message=message[:2000], clock=self.clock
                )

    def cancel(self, job_id: str) -> Job:
        """Ask a job to stop: a queued one is cancelled at once (SFV-801 on it), a running one
        flagged (its driver polls the flag). :class:`InvalidJobTransition` once finished."""
        from engine.jobs.errors import JobCancelled

        with transaction(self.sessions) as s:
            job = cjobs.get_job(s, job_id)
            queued = job.state == JobState.QUEUED.value
            cjobs.request_cancel(s, job, clock=self.clock)
            if queued:
                gone = JobCancelled(job=job.id)
                job.cancel_requested = True
                job.error_code, job.error_message = gone.code, gone.message
            s.flush()
            s.expunge(job)
            return job


def _refuse_beyond_override(
    facts: OrgFacts, chosen: frozenset[str] | None, full: bool, now: datetime
) -> JobKind:
    """The rules an override never passes (:data:`NEVER_OVERRIDDEN`), checked on their own: the
    policy stops at its first refusal, so the ones after an overridden refusal were not asked.
    Returns the kind of the job to queue."""
    if chosen is not None and not has_full_backup(facts.jobs):
        raise FullBackupRequired(org=facts.org)
    kind = plan_backup(facts.jobs, now, chosen, full=full).kind
    running = blocking_job(facts.jobs, kind)
    if running is not None:
        raise JobAlreadyRunning(org=facts.org, job=running.id)
    return kind


def ensure_repository(settings: Settings) -> None:
    """Initialise the repository ``settings.repository_url`` on first use (a no-op when one is
    there): fresh data keys wrapped by the local key file ``settings.key_file``."""
    from engine.errors import RepositoryExists, RepositoryNotInitialized
    from engine.sink.keys import LocalKeyFile
    from engine.sink.repository import Repository, open_backend, read_config

    backend = open_backend(settings.repository_url, settings)
    try:
        read_config(backend)
        return
    except RepositoryNotInitialized:
        pass
    try:
        Repository.init(backend, LocalKeyFile.load_or_create(settings.key_file), settings=settings).close()
    except RepositoryExists:
        pass  # a concurrent first backup initialised it


def _no_storage(org: str) -> NoStorageLocation:
    return NoStorageLocation(
        f"org {org} has no storage location configured; set one with "
        f"`sfvault settings set {org} --storage-location URL` or "
        f'PATCH /v1/orgs/{org}/settings {{"storage_location": "azure://container/path"}} '
        "(admin), then back up again",
        org=org,
        fix=f"PATCH /v1/orgs/{org}/settings",
        field="storage_location",
    )


@dataclass(frozen=True)
class _At:
    """A clock frozen at ``at`` (rows of one decision carry the decision's instant)."""

    at: datetime

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return time.monotonic()
