"""Outbox delivery to a real SMTP server (aiosmtpd on a free loopback port), over a real catalog."""

from __future__ import annotations

import email
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.catalog import reports as creports
from engine.catalog.db import transaction
from engine.catalog.models import OutboxMessage
from engine.clock import FrozenClock
from engine.config import Settings
from engine.errors import NotificationFailed
from engine.jobs.notify import MAX_ATTEMPTS, flush_outbox

pytest_plugins = ["tests.catalog_fixtures"]

NOW = datetime(2026, 3, 11, 8, 0, tzinfo=UTC)
PASSWORD = "s3cret-smtp-pa55"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Inbox:
    messages: list[tuple[str, list[str], Message]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), email.message_from_bytes(envelope.content))
        )
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            self.logins.append((user, password))
            return AuthResult(success=user == "mailer" and password == PASSWORD, handled=False)
        return AuthResult(success=False, handled=False)


@dataclass
class SmtpServer:
    inbox: Inbox
    port: int


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate, auth_require_tls=False
    )
    controller.start()
    try:
        yield SmtpServer(inbox, port)
    finally:
        controller.stop()


def enqueue(sessions: sessionmaker[Session], *recipients: str) -> list[int]:
    with transaction(sessions) as s:
        return [
            creports.enqueue_message(
                s, kind="permission_report", recipient=r, subject=f"report for {r}", body=f"hello {r}\n",
                clock=FrozenClock(NOW),
            ).id
            for r in recipients
        ]  # fmt: skip


def states(sessions: sessionmaker[Session]) -> list[tuple[str, str, int, str | None]]:
    with transaction(sessions) as s:
        rows = s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [(m.recipient, m.state, m.attempts, m.last_error) for m in rows]


def smtp_settings(port: int, **extra: Any) -> Settings:
    return Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_from="sfvault@example.org", **extra)


def test_pending_messages_are_delivered_and_marked_sent(
    catalog_sessions: sessionmaker[Session], smtp_server: SmtpServer
) -> None:
    enqueue(catalog_sessions, "ada@example.org", "bob@example.org")
    sent, failed = flush_outbox(smtp_settings(smtp_server.port), catalog_sessions, clock=FrozenClock(NOW))
    assert (sent, failed) == (2, 0)
    got = {rcpt[0]: (frm, msg) for frm, rcpt, msg in smtp_server.inbox.messages}
    assert sorted(got) == ["ada@example.org", "bob@example.org"]
    frm, msg = got["ada@example.org"]
    assert frm == "sfvault@example.org"
    assert msg["Subject"] == "report for ada@example.org"
    assert msg["X-Sfvault-Kind"] == "permission_report"
    payload = msg.get_payload(decode=True)
    assert isinstance(payload, bytes) and payload.replace(b"\r\n", b"\n") == b"hello ada@example.org\n"
    assert [(r, st, n) for r, st, n, _ in states(catalog_sessions)] == [
        ("ada@example.org", "sent", 1),
        ("bob@example.org", "sent", 1),
    ]
    # sent messages are not sent again
    assert flush_outbox(smtp_settings(smtp_server.port), catalog_sessions, clock=FrozenClock(NOW)) == (0, 0)
    assert len(smtp_server.inbox.messages) == 2


def test_login_uses_the_configured_account_and_never_logs_the_password(
    catalog_sessions: sessionmaker[Session], smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    enqueue(catalog_sessions, "ada@example.org")
    caplog.set_level(logging.DEBUG)
    settings = smtp_settings(smtp_server.port, smtp_username="mailer", smtp_password=PASSWORD)
    assert flush_outbox(settings, catalog_sessions, clock=FrozenClock(NOW)) == (1, 0)
    assert smtp_server.inbox.logins == [("mailer", PASSWORD)]
    # a wrong password: the attempt is counted, and neither password is logged or stored
    enqueue(catalog_sessions, "bob@example.org")
    bad = smtp_settings(smtp_server.port, smtp_username="mailer", smtp_password="wrong-" + PASSWORD)
    assert flush_outbox(bad, catalog_sessions, clock=FrozenClock(NOW)) == (0, 1)
    bob = states(catalog_sessions)[1]
    assert (bob[1], bob[2]) == ("pending", 1)
    assert (
        bob[3] is not None
        and "SMTPAuthenticationError" in bob[3]
        and bob[3].startswith(f"[{NotificationFailed.code}]")
    )
    assert PASSWORD not in caplog.text and PASSWORD not in bob[3]


def test_smtp_down_leaves_messages_pending_then_failed_with_attempts_counted(
    catalog_sessions: sessionmaker[Session],
) -> None:
    enqueue(catalog_sessions, "ada@example.org")
    settings = smtp_settings(free_port())  # nothing listens there
    for attempt in range(1, MAX_ATTEMPTS):
        assert flush_outbox(settings, catalog_sessions, clock=FrozenClock(NOW)) == (0, 1)
        [(_, state, attempts, error)] = states(catalog_sessions)
        assert (state, attempts) == ("pending", attempt)
        assert error is not None and "ConnectionRefusedError" in error and "ada@example.org" in error
    assert flush_outbox(settings, catalog_sessions, clock=FrozenClock(NOW)) == (0, 1)
    [(_, state, attempts, _)] = states(catalog_sessions)
    assert (state, attempts) == ("failed", MAX_ATTEMPTS)
    # given up: later flushes leave it alone
    assert flush_outbox(settings, catalog_sessions, clock=FrozenClock(NOW)) == (0, 0)


def test_without_smtp_the_outbox_is_the_record(catalog_sessions: sessionmaker[Session]) -> None:
    enqueue(catalog_sessions, "ada@example.org")
    assert flush_outbox(Settings(smtp_host=None), catalog_sessions, clock=FrozenClock(NOW)) == (0, 0)
    assert states(catalog_sessions) == [("ada@example.org", "pending", 0, None)]
