"""Permission reports and the notification outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.catalog.models import JobTrigger, OutboxMessage, OutboxState, PermissionReport
from engine.clock import Clock, SystemClock


def add_permission_report(
    session: Session,
    *,
    org_id: int,
    fields: list[dict[str, Any]],
    objects: list[dict[str, Any]],
    user_permissions: list[dict[str, Any]],
    trigger: JobTrigger | str = JobTrigger.SCHEDULED,
    clock: Clock | None = None,
) -> PermissionReport:
    row = PermissionReport(
        org_id=org_id,
        trigger=JobTrigger(trigger).value,
        fields=fields,
        objects=objects,
        user_permissions=user_permissions,
        created_at=(clock or SystemClock()).now(),
    )
    session.add(row)
    session.flush()
    return row


def latest_permission_report(session: Session, org_id: int) -> PermissionReport | None:
    return session.scalar(
        select(PermissionReport)
        .where(PermissionReport.org_id == org_id)
        .order_by(PermissionReport.created_at.desc(), PermissionReport.id.desc())
        .limit(1)
    )


def enqueue_message(
    session: Session,
    *,
    kind: str,
    recipient: str,
    subject: str,
    body: str,
    org_id: int | None = None,
    payload: dict[str, Any] | None = None,
    clock: Clock | None = None,
) -> OutboxMessage:
    row = OutboxMessage(
        org_id=org_id,
        kind=kind,
        recipient=recipient,
        subject=subject,
        body=body,
        payload=payload,
        state=OutboxState.PENDING.value,
        attempts=0,
        created_at=(clock or SystemClock()).now(),
    )
    session.add(row)
    session.flush()
    return row


def pending_messages(session: Session, *, limit: int = 100) -> list[OutboxMessage]:
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.state == OutboxState.PENDING.value)
            .order_by(OutboxMessage.created_at, OutboxMessage.id)
            .limit(limit)
        )
    )


def mark_message(
    session: Session,
    message: OutboxMessage,
    *,
    sent: bool,
    error: str | None = None,
    clock: Clock | None = None,
) -> None:
    message.attempts += 1
    if sent:
        message.state = OutboxState.SENT.value
        message.sent_at = (clock or SystemClock()).now()
    else:
        message.last_error = error
    session.flush()
