"""The scheduler loop of ``sfvault serve``: scheduled backups, permission checks, the outbox.

A daemon thread calls :meth:`Scheduler.tick` every ``settings.scheduler_tick_seconds`` with
``ctx.clock.now()``; tests call ``tick(now)`` directly with any instant. One tick does, per org:

1. **Backups.** The org's catalog rows become the policy facts
   (:func:`engine.jobs.connect.backup_settings_of`, ``org_facts_of``); the slots that came due
   since the previous tick are :func:`engine.policy.due_runs` between the later of the org's
   last tick in this process and its last recorded slot (``Job.scheduled_for``) and ``now``.
   ``due_runs`` returns only the newest missed slot, so downtime costs one catch-up job, not
   one per missed slot. Each due slot goes to the job service
   (:meth:`engine.jobs.service.JobService.admit_slot`, the door the API and the CLI use too),
   which applies :func:`engine.policy.decide_scheduled_run` (billable users counted in the org
   when it has purchased seats) and writes the slot's row:

   - *run*: a ``queued`` job stamped with the slot, run by ``ctx.runner.start_backup``;
   - *skip, recorded*: a skipped job with the decision's error code and the slot (SFV-601
     while another job of the org is queued or running, from the instant it was admitted);
   - *skip, schedule stopped* (backup off, subscription expired, no storage, seats exceeded):
     nothing is recorded; the tick report says why.

   ``Job.scheduled_for`` is unique per org (migration 0002), so a slot makes at most one job
   even when two processes tick at once: an ``IntegrityError`` means another tick handled it.
2. **Dead jobs.** Backup jobs whose process stopped refreshing their heartbeat are closed
   ``failed`` with SFV-804 (:func:`engine.jobs.service.close_dead_jobs`).
3. **Permission checks** that are due (:func:`engine.policy.permission_check_due`, the last
   *scheduled* check against the org's grid) run synchronously
   (:func:`engine.jobs.permission_check.run_permission_check`).

Then exports and compares left ``running`` by a dead process are closed and long-queued ones
resubmitted (:meth:`api.background.JobRunner.recover_queued`), the alerts of jobs that ended
failed, partial or skipped and of slots stopped are queued (:mod:`engine.jobs.alerts`), and the
outbox is flushed once (:func:`engine.jobs.notify.flush_outbox`: mail and webhooks). A failing org is
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

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from api.context import AppContext
from engine.catalog.models import Job, Org
from engine.clock import Clock
from engine.errors import SfvaultError
from engine.jobs.alerts import STOP_CODES, enqueue_alerts, job_alerts, stopped_alert
from engine.jobs.connect import backup_settings_of
from engine.jobs.notify import flush_outbox
from engine.jobs.permission_check import (
    check_settings_of,
    last_scheduled_check,
    run_permission_check,
)
from engine.jobs.service import SlotOutcome, close_dead_jobs
from engine.policy import due_runs, permission_check_due

log = logging.getLogger("sfvault.api.scheduler")

FAILURE_BACKOFF = timedelta(minutes=15)
"""A step that failed for an org is tried again after this long, not on every tick."""


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
    alerts: int = 0

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
        self._alert_scan: datetime | None = None
        """When the last alert scan that queued its alerts ran: the next one looks from there."""
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
            try:  # backup jobs whose process died (their heartbeat stopped)
                close_dead_jobs(self.ctx.sessions, self.ctx.settings, now=now)
            except Exception as exc:  # reported and logged; the next tick tries again
                report.failures.append(self._failed("", "dead_jobs", exc))
            try:  # exports and compares a dead process left running; queued ones nobody runs
                self.ctx.runner.recover_queued(self.ctx.sessions, now=now)
            except Exception as exc:  # reported and logged; the next tick tries again
                report.failures.append(self._failed("", "queued_recovery", exc))
            try:  # jobs that ended failed / partial / skipped, slots stopped: mail and webhook
                report.alerts = self._alerts(report, now)
            except Exception as exc:  # reported and logged; the next tick raises them again
                report.failures.append(self._failed("", "alerts", exc))
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

    def _alerts(self, report: TickReport, now: datetime) -> int:
        """Queue the alerts not raised yet (:mod:`engine.jobs.alerts`); returns how many."""
        with self.ctx.tx() as s:
            alerts = job_alerts(s, now, since=self._alert_scan)
        stops = [o for o in report.by_action("stopped") if o.code in STOP_CODES]
        alerts += [stopped_alert(o.org, o.code, now) for o in stops]
        new = enqueue_alerts(
            self.ctx.settings, self.ctx.sessions, alerts, clock=_TickClock(now, self.ctx.clock)
        )
        self._alert_scan = max(now, self._alert_scan or now)  # the next scan starts here
        return new

    # --- backups ----------------------------------------------------------------------------

    def _backups(self, org_id: int, name: str, now: datetime, report: TickReport) -> None:
        with self.ctx.tx() as s:
            org = s.scalar(select(Org).options(selectinload(Org.settings)).where(Org.id == org_id))
            if org is None:  # disconnected since the tick began
                return
            settings = backup_settings_of(org)
            last_slot = s.scalar(select(func.max(Job.scheduled_for)).where(Job.org_id == org_id))
        lower = max(
            t for t in (settings.connected_at, last_slot, self._last_tick.get(org_id)) if t is not None
        )
        for slot in due_runs(settings, lower, now):
            report.slots.append(self._decide(org_id, slot, now))
        self._last_tick[org_id] = now

    def _decide(self, org_id: int, slot: datetime, now: datetime) -> SlotOutcome:
        """The job service decides the slot and writes its row; a started one is run here."""
        service = self.ctx.jobs
        outcome = service.admit_slot(org_id, slot, now)
        if outcome.admitted is not None:
            self.ctx.runner.start_backup(outcome.admitted, service)
            log.info("scheduler: org=%s slot=%s started job=%s kind=%s", outcome.org, slot.isoformat(),
                     outcome.job_id, outcome.kind)  # fmt: skip
        return outcome

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
