"""The scheduler loop of ``sfvault serve``: scheduled backups, permission checks, the outbox.

A daemon thread calls :meth:`Scheduler.tick` every ``settings.scheduler_tick_seconds`` with
``ctx.clock.now()``; tests call ``tick(now)`` directly with any instant. One tick does, per org:

1. **Backups.** The org's catalog rows become the policy facts
   (:func:`engine.jobs.connect.backup_settings_of`, ``org_facts_of``); the slots that came due
   since the previous tick are :func:`engine.policy.due_runs` between the later of the org's
   last tick in this process and its last recorded slot (``Job.scheduled_for``) and ``now``.
   ``due_runs`` returns only the newest missed slot, so downtime costs one catch-up job, not
   one per missed slot. Each due slot goes through :func:`engine.policy.decide_scheduled_run`:

   - *run*: ``ctx.runner.start_backup`` (full when the plan says so, the org's storage location
     as ``repository_url``); the job row is stamped with the slot as soon as it exists;
   - *skip, recorded*: a skipped job with the decision's error code and the slot;
   - *skip, schedule stopped* (backup off, subscription expired, no storage, seats exceeded):
     nothing is recorded; the tick report says why.

   ``Job.scheduled_for`` is unique per org (migration 0002), so a slot makes at most one job
   even when two processes tick at once: an ``IntegrityError`` means another tick handled it.
2. **Seats.** When the org has purchased seats and a slot is due, its billable users are
   counted *in the org* (one login and a ``COUNT()`` query; the catalog keeps no user counts),
   so an org over its seats stops being backed up at its next slot.
3. **Permission checks** that are due (:func:`engine.policy.permission_check_due`, the last
   *scheduled* check against the org's grid) run synchronously
   (:func:`engine.jobs.permission_check.run_permission_check`).

Then exports and compares left ``running`` by a dead process are closed and long-queued ones
resubmitted (:meth:`api.background.JobRunner.recover_queued`), and the outbox is flushed once
(:func:`engine.jobs.notify.flush_outbox`). A failing org is
logged on one line and reported in :class:`TickReport`; it does not stop the other orgs. The
failed step of that org is tried again :data:`FAILURE_BACKOFF` later (a due slot stays due
until then), so an org whose login fails is not asked to log in on every tick. Orgs without
stored credentials (recreated by ``catalog rebuild``) get no permission check.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from api.context import AppContext
from engine.catalog import jobs as cjobs
from engine.catalog.models import ACTIVE_JOB_STATES, Job, JobKind, JobState, Org
from engine.clock import Clock
from engine.errors import JobStartTimeout, SfvaultError
from engine.jobs.connect import backup_settings_of, job_fact, subscription_of
from engine.jobs.notify import flush_outbox
from engine.jobs.permission_check import (
    check_settings_of,
    count_org_billable_users,
    last_scheduled_check,
    run_permission_check,
)
from engine.jobs.planning import BackupRequest
from engine.policy import JobFact, OrgFacts, decide_scheduled_run, due_runs, permission_check_due, plan_backup
from engine.policy import JobKind as PolicyJobKind

log = logging.getLogger("sfvault.api.scheduler")

FACT_WINDOW = timedelta(hours=25)
"""Jobs newer than this feed the 24-hour quota (OrgFacts' contract asks for 25 hours)."""
FAILURE_BACKOFF = timedelta(minutes=15)
"""A step that failed for an org is tried again after this long, not on every tick."""


@dataclass(frozen=True)
class SlotOutcome:
    """What one tick did with one due slot of one org.

    Attributes:
        org: org name.
        slot: the slot, in the org's zone.
        action: ``started`` (a backup job), ``skipped`` (recorded as a skipped job),
            ``stopped`` (schedule stopped: nothing recorded) or ``already_handled`` (another
            tick or process recorded this slot).
        job_id: the started or skipped job (None for a job still starting: ``code`` SFV-911).
        kind: ``full`` or ``incremental`` for a started job.
        code: the error code of a skip or a stop.
    """

    org: str
    slot: datetime
    action: str
    job_id: str | None = None
    kind: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class OrgFailure:
    org: str
    step: str
    code: str
    message: str


@dataclass
class TickReport:
    """Everything one tick did (returned by :meth:`Scheduler.tick`, logged at debug level)."""

    now: datetime
    slots: list[SlotOutcome] = field(default_factory=list)
    permission_checks: list[tuple[str, int]] = field(default_factory=list)
    failures: list[OrgFailure] = field(default_factory=list)
    messages_sent: int = 0
    messages_failed: int = 0

    def by_action(self, action: str) -> list[SlotOutcome]:
        return [o for o in self.slots if o.action == action]


@dataclass(frozen=True)
class _TickClock:
    """Stamps what a tick records with the tick's ``now`` (so ``tick(now)`` is self-consistent)."""

    at: datetime
    base: Clock

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.base.monotonic()


class Scheduler:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._last_tick: dict[int, datetime] = {}
        self._retry_at: dict[tuple[int, str], datetime] = {}
        self._tick_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the loop ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sfvault-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _loop(self) -> None:
        interval = self.ctx.settings.scheduler_tick_seconds
        while not self._stop.is_set():
            try:
                self.tick(self.ctx.clock.now())
            except Exception:  # keep the loop alive; the next tick tries again
                log.exception("scheduler tick failed")
            if self._stop.wait(interval):
                return

    # --- one tick ---------------------------------------------------------------------------

    def tick(self, now: datetime) -> TickReport:
        """Run everything that is due at ``now``; see the module docstring."""
        with self._tick_lock:
            report = TickReport(now=now)
            with self.ctx.tx() as s:
                orgs = [(o.id, o.name) for o in s.scalars(select(Org).order_by(Org.name))]
            for org_id, name in orgs:
                if self._stop.is_set():
                    break
                self._guard(
                    report, org_id, name, "backup", now, partial(self._backups, org_id, name, now, report)
                )
                self._guard(
                    report,
                    org_id,
                    name,
                    "permission_check",
                    now,
                    partial(self._permission_check, org_id, name, now, report),
                )
            try:  # exports and compares a dead process left running; queued ones nobody runs
                self.ctx.runner.recover_queued(self.ctx.sessions, now=now)
            except Exception as exc:  # reported and logged; the next tick tries again
                report.failures.append(self._failed("", "queued_recovery", exc))
            try:
                report.messages_sent, report.messages_failed = flush_outbox(
                    self.ctx.settings, self.ctx.sessions, clock=_TickClock(now, self.ctx.clock)
                )
            except Exception as exc:  # reported and logged; the outbox keeps the messages
                report.failures.append(self._failed("", "outbox", exc))
            log.debug(
                "scheduler tick now=%s slots=%d checks=%d failures=%d sent=%d",
                now.isoformat(), len(report.slots), len(report.permission_checks), len(report.failures),
                report.messages_sent,
            )  # fmt: skip
            return report

    def _guard(
        self, report: TickReport, org_id: int, org: str, step: str, now: datetime, fn: Callable[[], None]
    ) -> None:
        """Run one step of one org; a failure is logged, reported and backed off (not retried on
        every tick: a login that keeps failing must not lock the integration user out)."""
        retry_at = self._retry_at.get((org_id, step))
        if retry_at is not None and now < retry_at:
            return
        try:
            fn()
        except Exception as exc:  # one org must not stop the tick; logged and reported
            self._retry_at[(org_id, step)] = now + FAILURE_BACKOFF
            report.failures.append(self._failed(org, step, exc))
        else:
            self._retry_at.pop((org_id, step), None)

    @staticmethod
    def _failed(org: str, step: str, exc: Exception) -> OrgFailure:
        code = exc.code if isinstance(exc, SfvaultError) else "SFV-000"
        message = exc.message if isinstance(exc, SfvaultError) else f"{type(exc).__name__}: {exc}"
        log.error(
            "scheduler: org=%s step=%s code=%s error=%s", org or "-", step, code, message.replace("\n", " ")
        )
        return OrgFailure(org, step, code, message)

    # --- backups ----------------------------------------------------------------------------

    def _backups(self, org_id: int, name: str, now: datetime, report: TickReport) -> None:
        with self.ctx.tx() as s:
            org = s.scalar(select(Org).options(selectinload(Org.settings)).where(Org.id == org_id))
            if org is None:  # disconnected since the tick began
                return
            settings = backup_settings_of(org)
            last_slot = s.scalar(select(func.max(Job.scheduled_for)).where(Job.org_id == org_id))
            seats = org.purchased_seats
            storage = org.storage_location
        lower = max(
            t for t in (settings.connected_at, last_slot, self._last_tick.get(org_id)) if t is not None
        )
        for slot in due_runs(settings, lower, now):
            report.slots.append(self._decide(org_id, name, slot, now, seats, storage))
        self._last_tick[org_id] = now

    def _decide(
        self, org_id: int, name: str, slot: datetime, now: datetime, seats: int | None, storage: str | None
    ) -> SlotOutcome:
        clock = _TickClock(now, self.ctx.clock)
        with self.ctx.tx() as s:
            if self._slot_taken(s, org_id, slot):
                return SlotOutcome(name, slot, "already_handled")
        billable = 0
        if seats is not None:
            billable = count_org_billable_users(
                self.ctx.settings, self.ctx.sessions, name, sealer=self.ctx.sealer
            )
        with self.ctx.tx() as s:
            org = s.scalar(select(Org).options(selectinload(Org.settings)).where(Org.id == org_id))
            if org is None:
                return SlotOutcome(name, slot, "stopped", code="SFV-101")
            jobs = _job_facts(s, org_id, now)
            facts = OrgFacts(
                org=name,
                subscription=subscription_of(org),
                storage_location=org.storage_location,
                billable_users=billable,
                jobs=jobs,
            )
            decision = decide_scheduled_run(backup_settings_of(org), facts, now)
        if not decision.runs:
            err = decision.error()
            code = err.code if err is not None else None
            if not decision.record_skip:
                log.info("scheduler: org=%s slot=%s stopped code=%s", name, slot.isoformat(), code)
                return SlotOutcome(name, slot, "stopped", code=code)
            kind = plan_backup(jobs, now).kind.value
            return self._record_skip(
                org_id, name, slot, kind, code or "SFV-600", err.message if err else "", clock
            )
        assert decision.plan is not None
        full = decision.plan.kind is PolicyJobKind.FULL
        return self._start(org_id, name, slot, full, storage)

    @staticmethod
    def _slot_taken(s: Session, org_id: int, slot: datetime) -> bool:
        return s.scalar(select(Job.id).where(Job.org_id == org_id, Job.scheduled_for == slot)) is not None

    def _record_skip(
        self, org_id: int, name: str, slot: datetime, kind: str, code: str, reason: str, clock: Clock
    ) -> SlotOutcome:
        """Record the slot as a skipped job in its own transaction; a taken slot is handled."""
        try:
            with self.ctx.tx() as s:
                org = s.get(Org, org_id)
                if org is None:
                    return SlotOutcome(name, slot, "stopped", code="SFV-101")
                job = cjobs.record_skipped_job(
                    s, org, kind=kind, reason_code=code, reason=reason, clock=clock
                )
                job.scheduled_for = slot
                s.flush()
                job_id = job.id
        except IntegrityError:
            return SlotOutcome(name, slot, "already_handled")
        log.info("scheduler: org=%s slot=%s skipped job=%s code=%s", name, slot.isoformat(), job_id, code)
        return SlotOutcome(name, slot, "skipped", job_id=job_id, kind=kind, code=code)

    def _start(self, org_id: int, name: str, slot: datetime, full: bool, storage: str | None) -> SlotOutcome:
        ctx = self.ctx
        job_settings = (
            ctx.settings.model_copy(update={"repository_url": storage}) if storage else ctx.settings
        )
        duplicate: list[str] = []

        def stamp(job_id: str) -> None:
            try:
                with ctx.tx() as s:
                    s.execute(update(Job).where(Job.id == job_id).values(scheduled_for=slot))
            except IntegrityError:  # another process started this slot first: ours must not run
                duplicate.append(job_id)
                ctx.runner.cancel_local(job_id)

        try:
            job_id = ctx.runner.start_backup(
                name, BackupRequest(org=name, full=full), settings=job_settings, trigger="scheduled",
                on_started=stamp,
            )  # fmt: skip
        except JobStartTimeout as exc:  # slow to start, not refused: the job stamps the slot when recorded
            log.warning("scheduler: org=%s slot=%s job not recorded yet: %s", name, slot.isoformat(), exc)
            return SlotOutcome(name, slot, "started", kind="full" if full else "incremental", code=exc.code)
        except SfvaultError as exc:  # refused before a job was recorded: record the slot as skipped
            kind = JobKind.FULL.value if full else JobKind.INCREMENTAL.value
            return self._record_skip(org_id, name, slot, kind, exc.code, exc.message, ctx.clock)
        if duplicate:
            log.warning(
                "scheduler: org=%s slot=%s job=%s cancelled: slot already handled", name, slot, job_id
            )
            return SlotOutcome(name, slot, "already_handled", job_id=job_id)
        kind = "full" if full else "incremental"
        log.info("scheduler: org=%s slot=%s started job=%s kind=%s", name, slot.isoformat(), job_id, kind)
        return SlotOutcome(name, slot, "started", job_id=job_id, kind=kind)

    # --- permission checks ----------------------------------------------------------------

    def _permission_check(self, org_id: int, name: str, now: datetime, report: TickReport) -> None:
        with self.ctx.tx() as s:
            org = s.scalar(select(Org).options(selectinload(Org.settings)).where(Org.id == org_id))
            if org is None or org.credentials_sealed is None:
                return
            due = permission_check_due(check_settings_of(org), last_scheduled_check(s, org_id), now)
        if not due:
            return
        stored = run_permission_check(
            self.ctx.settings,
            self.ctx.sessions,
            name,
            trigger="scheduled",
            clock=_TickClock(now, self.ctx.clock),
            sealer=self.ctx.sealer,
        )
        log.info("scheduler: org=%s permission check report=%s", name, stored.id)
        report.permission_checks.append((name, stored.id))


def _job_facts(s: Session, org_id: int, now: datetime) -> tuple[JobFact, ...]:
    """The jobs :class:`OrgFacts` needs: active ones, the last 25 hours, the newest committed
    full and everything after it."""
    last_full = s.scalar(
        select(func.max(Job.created_at)).where(
            Job.org_id == org_id,
            Job.kind == JobKind.FULL.value,
            Job.state.in_([JobState.SUCCEEDED.value, JobState.PARTIAL.value]),
        )
    )
    since = now - FACT_WINDOW
    if last_full is not None and last_full < since:
        since = last_full
    rows = s.scalars(
        select(Job).where(
            Job.org_id == org_id,
            or_(Job.created_at >= since, Job.state.in_([st.value for st in ACTIVE_JOB_STATES])),
        )
    )
    return tuple(job_fact(j) for j in rows)
