"""Alerts: tell someone when a backup did not protect the org (issue 15, finding 16).

An alert goes out when a backup job ends ``failed``, ``partial`` or ``skipped`` (a scheduled slot
that could not run: another job still running, a login that failed...), and when protection
stops (the schedule is stopped for seats over the purchased number, an expired subscription,
no storage, backup switched off: :class:`~engine.jobs.service.SlotOutcome` ``stopped``).

Each alert becomes outbox rows (the table every notification goes through), one per channel:

* **mail**: one message per ``settings.admin_emails`` address (kind ``job_alert``), sent by
  SMTP when ``smtp_host`` is set (:func:`engine.jobs.notify.flush_outbox`);
* **webhook**: one message to ``settings.alert_webhook_url`` (kind ``webhook``) whose body is
  the alert as JSON, POSTed with ``X-Sfvault-Signature: sha256=<hex HMAC-SHA256 of the body
  with settings.alert_webhook_secret>`` (GitHub's scheme), so the receiver can check it came
  from this service; a non-2xx answer or a connection error counts a failed attempt and the
  next flush tries again (at most ``MAX_ATTEMPTS``).

An alert is raised once: its key (``job:<id>`` or ``stopped:<org>:<code>:<UTC day>``) is kept in
the outbox rows' ``payload.alert``. The scheduler looks at the jobs that *ended* since its last
alert scan (less :data:`SCAN_OVERLAP`, for rows committed late); its first scan looks back
:data:`LOOKBACK`. A job that ran for days (a full of a large org) is alerted when it ends, and a
scheduler that could not tick for days catches up (decision 0029).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.catalog import reports as creports
from engine.catalog.db import transaction
from engine.catalog.models import Job, Org, OutboxMessage
from engine.clock import Clock
from engine.config import Settings
from engine.errors import NoStorageLocation, SeatsExceeded, SubscriptionExpired

MAIL_KIND = "job_alert"
WEBHOOK_KIND = "webhook"
ALERT_STATES = ("failed", "partial", "skipped")
LOOKBACK = timedelta(days=2)
"""How far a service's first alert scan looks back (a new service does not alert a history it
never saw); later scans start at the previous one."""
SCAN_OVERLAP = timedelta(hours=1)
"""How far before the previous scan a scan starts: a job's end stamped before that scan but
committed after it is still seen (the alert keys keep it from being sent twice)."""
SIGNATURE_HEADER = "X-Sfvault-Signature"
STOP_CODES = (SubscriptionExpired.code, SeatsExceeded.code, NoStorageLocation.code)
"""The schedule stops that are alerted: those the operator did not choose (backup switched off
by an admin is not alerted)."""


@dataclass(frozen=True)
class Alert:
    """One thing to tell: ``event`` is ``job_failed``, ``job_partial``, ``job_skipped`` or
    ``protection_stopped``."""

    key: str
    event: str
    org: str
    at: datetime
    code: str | None
    message: str
    job: str | None = None
    kind: str | None = None
    trigger: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.event, "org": self.org, "at": self.at.isoformat(), "code": self.code,
            "message": self.message, "job": self.job, "kind": self.kind, "trigger": self.trigger,
        }  # fmt: skip


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=`` + hex HMAC-SHA256 with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def job_alerts(session: Session, now: datetime, since: datetime | None = None) -> list[Alert]:
    """Alerts for the jobs that ended failed, partial or skipped since ``since`` (the previous
    scan; None = a first scan, :data:`LOOKBACK` before ``now``), less :data:`SCAN_OVERLAP`.
    A job is placed by its end (``finished_at``; ``created_at`` for a row without one), never by
    its start, so a job that ran longer than the window is still alerted."""
    start = (since if since is not None else now - LOOKBACK) - SCAN_OVERLAP
    ended = func.coalesce(Job.finished_at, Job.created_at)
    rows = session.execute(
        select(Job, Org.name).join(Org, Org.id == Job.org_id)
        .where(Job.state.in_(ALERT_STATES), ended >= start)
    ).all()  # fmt: skip
    out = []
    for job, org in rows:
        at = job.finished_at or job.created_at
        what = job.error_message or f"job {job.id} of {org} ended {job.state}"
        out.append(Alert(f"job:{job.id}", f"job_{job.state}", org, at, job.error_code, what[:1000],
                         job=job.id, kind=job.kind, trigger=job.trigger))  # fmt: skip
    return out


def stopped_alert(org: str, code: str | None, now: datetime) -> Alert:
    """The alert for a schedule slot that did not run because protection is stopped."""
    message = f"backups of {org} are stopped ({code or 'schedule stopped'}); no job ran at the scheduled time"
    return Alert(
        f"stopped:{org}:{code}:{now.date().isoformat()}", "protection_stopped", org, now, code, message
    )


def _raised(session: Session, since: datetime) -> set[str]:
    rows = session.scalars(
        select(OutboxMessage.payload).where(
            OutboxMessage.kind.in_((MAIL_KIND, WEBHOOK_KIND)), OutboxMessage.created_at >= since
        )
    )
    return {str(p["alert"]) for p in rows if isinstance(p, dict) and "alert" in p}


def enqueue_alerts(settings: Settings, sessions: sessionmaker[Session], alerts: Iterable[Alert], *,
                   clock: Clock) -> int:  # fmt: skip
    """Put each alert not raised before into the outbox (mail per admin address, the webhook);
    returns how many alerts were new. Without a channel nothing is recorded."""
    if not settings.admin_emails and not settings.alert_webhook_url:
        return 0
    now = clock.now()
    alerts = list(alerts)
    new = 0
    with transaction(sessions) as s:
        # an alert's rows were written after what it reports happened: look back as far as that
        seen = _raised(s, min((a.at for a in alerts), default=now) - SCAN_OVERLAP)
        org_ids = dict(s.execute(select(Org.name, Org.id)).tuples().all())
        for alert in alerts:
            if alert.key in seen:
                continue
            seen.add(alert.key)
            new += 1
            payload = {"alert": alert.key, **alert.to_json()}
            subject = f"sfvault: {alert.event.replace('_', ' ')} for {alert.org}" + (
                f" ({alert.code})" if alert.code else ""
            )
            body = _mail_body(alert)
            for email in settings.admin_emails:
                creports.enqueue_message(
                    s, kind=MAIL_KIND, recipient=email, subject=subject, body=body,
                    org_id=org_ids.get(alert.org), payload=payload, clock=clock,
                )  # fmt: skip
            if settings.alert_webhook_url:
                creports.enqueue_message(
                    s, kind=WEBHOOK_KIND, recipient=settings.alert_webhook_url, subject=subject,
                    body=json.dumps(alert.to_json(), sort_keys=True), org_id=org_ids.get(alert.org),
                    payload=payload, clock=clock,
                )  # fmt: skip
    return new


def _mail_body(alert: Alert) -> str:
    lines = [alert.message, "", f"org: {alert.org}", f"event: {alert.event}", f"at: {alert.at.isoformat()}"]
    if alert.job:
        lines += [
            f"job: {alert.job} ({alert.kind}, {alert.trigger})",
            f"details: sfvault job show {alert.job}",
        ]
    if alert.code:
        lines.append(f"code: {alert.code} (cause and fix: docs/TROUBLESHOOTING.md#{alert.code.lower()})")
    return "\n".join(lines) + "\n"
