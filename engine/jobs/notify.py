"""Deliver the notification outbox by SMTP, and alert webhooks by HTTP POST.

Messages of kind ``webhook`` (:mod:`engine.jobs.alerts`) are POSTed to their recipient URL with
an HMAC signature, whether or not SMTP is configured; every other message is mail.

The outbox table is the record of every notification (permission-check reports today). When
``settings.smtp_host`` is empty nothing is sent and messages stay ``pending``: the outbox is
then the only channel, read from the catalog. With SMTP configured, :func:`flush_outbox` sends
each pending message (STARTTLS and login when configured), marks it ``sent``, or counts the
failed attempt with its error (:class:`engine.errors.NotificationFailed`) and leaves it
pending for the next flush; after :data:`MAX_ATTEMPTS` failures it is ``failed`` for good.

One SMTP connection serves one flush; a connection that cannot be opened fails every message
of the flush (each gets its attempt counted), so an SMTP outage is visible on each message.
The password is never logged and never part of an error message.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy.orm import Session, sessionmaker

from engine.catalog import reports as creports
from engine.catalog.db import transaction
from engine.catalog.models import OutboxMessage, OutboxState
from engine.clock import Clock
from engine.config import Settings
from engine.errors import NotificationFailed

log = logging.getLogger("sfvault.notify")

MAX_ATTEMPTS = 5
"""Failed deliveries after which a message is given up (state ``failed``)."""
BATCH = 100
SMTP_TIMEOUT_S = 15.0
WEBHOOK_TIMEOUT_S = 15.0
WEBHOOK_KIND = "webhook"


def _email(settings: Settings, msg: OutboxMessage, clock: Clock) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = settings.smtp_from
    mail["To"] = msg.recipient
    mail["Subject"] = msg.subject
    mail["Date"] = format_datetime(clock.now())
    mail["Message-ID"] = make_msgid(idstring=f"sfvault-outbox-{msg.id}")
    mail["X-Sfvault-Kind"] = msg.kind
    mail.set_content(msg.body)
    return mail


def _open(settings: Settings) -> smtplib.SMTP:
    assert settings.smtp_host
    smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_S)
    try:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            smtp.login(settings.smtp_username, password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def _failure(msg: OutboxMessage, exc: BaseException) -> str:
    # smtplib errors carry the server's answer, never our password; keep the class and the text
    what = f"{type(exc).__name__}: {exc}"[:500]
    return str(NotificationFailed(id=msg.id, recipient=msg.recipient, what=what))


def redact_webhook_url(url: str) -> str:
    """A webhook URL fit for errors and logs: scheme, host and port only. Receivers put their token
    in the path (Slack's ``/services/T.../B.../XXXX``), the query (``?token=``) or the userinfo, so
    all three go."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(webhook URL)"
    return f"{parts.scheme}://{host}{port}/(redacted)" if host else "(webhook URL)"


def _secret_parts(url: str) -> list[str]:
    """The parts of ``url`` that may hold a token, longest first (whole URL, path+query, ...)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    candidates = [url, parts.path + ("?" + parts.query if parts.query else ""), parts.query, parts.path,
                  parts.netloc.rpartition("@")[0]]  # fmt: skip
    return sorted({c for c in candidates if c and c != "/"}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with every part of the webhook ``url`` that may hold its token replaced."""
    for part in _secret_parts(url):
        text = text.replace(part, redact_webhook_url(url) if part == url else "(redacted)")
    return text


def _webhook_failure(msg: OutboxMessage, exc: BaseException) -> str:
    """The ``last_error`` of a failed delivery: the status or the error, never the URL's token."""
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        what = f"HTTP {exc.response.status_code} {exc.response.reason_phrase}"
    else:
        what = scrub(f"{type(exc).__name__}: {exc}", msg.recipient)[:500]
    return str(NotificationFailed(id=msg.id, recipient=redact_webhook_url(msg.recipient), what=what))


class _ScrubUrls(logging.Filter):
    """Redacts the webhook URLs in the records of a logger (httpx logs each request's URL)."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__()
        self.urls = urls

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        for url in self.urls:
            text = scrub(text, url)
        record.msg, record.args = text, None
        return True


def _record_failure(session: Session, msg: OutboxMessage, error: str, clock: Clock) -> bool:
    """Count the failed attempt; True when the message is given up now."""
    creports.mark_message(session, msg, sent=False, error=error, clock=clock)
    if msg.attempts >= MAX_ATTEMPTS:
        msg.state = OutboxState.FAILED.value
        session.flush()
        return True
    return False


def flush_outbox(settings: Settings, sessions: sessionmaker[Session], *, clock: Clock) -> tuple[int, int]:
    """Send the pending messages; return ``(sent, failed attempts)`` of this flush.

    Without ``smtp_host`` nothing happens and ``(0, 0)`` is returned. Each message is marked in
    its own transaction, so a crash mid-flush re-sends at most the message being sent.
    """
    hooks_sent, hooks_failed = flush_webhooks(settings, sessions, clock=clock)
    sent, failed = _flush_mail(settings, sessions, clock=clock)
    return sent + hooks_sent, failed + hooks_failed


def _flush_mail(settings: Settings, sessions: sessionmaker[Session], *, clock: Clock) -> tuple[int, int]:
    if not settings.smtp_host:
        return 0, 0
    with transaction(sessions) as s:
        ids = [m.id for m in creports.pending_messages(s, limit=BATCH) if m.kind != WEBHOOK_KIND]
    if not ids:
        return 0, 0
    sent = failed = 0
    try:
        smtp = _open(settings)
    except (smtplib.SMTPException, OSError) as exc:
        with transaction(sessions) as s:
            for mid in ids:
                msg = s.get(OutboxMessage, mid)
                if msg is not None and msg.state == OutboxState.PENDING.value:
                    _record_failure(s, msg, _failure(msg, exc), clock)
                    failed += 1
        log.warning(
            "outbox: smtp=%s:%s unreachable or refused the login, %d message(s) not sent: %s",
            settings.smtp_host, settings.smtp_port, failed, type(exc).__name__,
        )  # fmt: skip
        return 0, failed
    try:
        for mid in ids:
            with transaction(sessions) as s:
                msg = s.get(OutboxMessage, mid)
                if msg is None or msg.state != OutboxState.PENDING.value:
                    continue
                try:
                    smtp.send_message(_email(settings, msg, clock))
                except (smtplib.SMTPException, OSError) as exc:
                    gave_up = _record_failure(s, msg, _failure(msg, exc), clock)
                    failed += 1
                    log.warning(
                        "outbox: message=%s recipient=%s attempt=%d gave_up=%s error=%s",
                        msg.id, msg.recipient, msg.attempts, gave_up, type(exc).__name__,
                    )  # fmt: skip
                    if isinstance(exc, smtplib.SMTPServerDisconnected):
                        break
                    continue
                creports.mark_message(s, msg, sent=True, clock=clock)
                sent += 1
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
    return sent, failed


def flush_webhooks(settings: Settings, sessions: sessionmaker[Session], *, clock: Clock) -> tuple[int, int]:
    """POST the pending webhook messages (kind ``webhook``) to their URL, signed
    (:func:`engine.jobs.alerts.sign`); a 2xx answer marks one ``sent``, anything else counts a
    failed attempt (given up after :data:`MAX_ATTEMPTS`). Returns ``(sent, failed attempts)``.

    The URL is a secret (receivers put their token in it): ``last_error`` and the log lines of this
    flush (httpx logs every request's URL) show it redacted (:func:`redact_webhook_url`)."""
    with transaction(sessions) as s:
        ids = [m.id for m in creports.pending_messages(s, limit=BATCH) if m.kind == WEBHOOK_KIND]
    secret = settings.alert_webhook_secret.get_secret_value() if settings.alert_webhook_secret else ""
    urls = [u for u in {settings.alert_webhook_url} if u]
    scrubber = _ScrubUrls(urls)
    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    for logger in loggers:
        logger.addFilter(scrubber)
    try:
        return _post_webhooks(sessions, ids, secret, scrubber, clock)
    finally:
        for logger in loggers:
            logger.removeFilter(scrubber)


def _post_webhooks(sessions: sessionmaker[Session], ids: list[int], secret: str, scrubber: _ScrubUrls,
                   clock: Clock) -> tuple[int, int]:  # fmt: skip
    import httpx

    from engine.jobs.alerts import SIGNATURE_HEADER, sign

    sent = failed = 0
    with httpx.Client(timeout=WEBHOOK_TIMEOUT_S, follow_redirects=False) as http:
        for mid in ids:
            with transaction(sessions) as s:
                msg = s.get(OutboxMessage, mid)
                if msg is None or msg.state != OutboxState.PENDING.value:
                    continue
                if msg.recipient not in scrubber.urls:  # queued under a URL changed since
                    scrubber.urls.append(msg.recipient)
                body = msg.body.encode()
                headers = {
                    "Content-Type": "application/json", "User-Agent": "sfvault-alerts",
                    SIGNATURE_HEADER: sign(secret, body), "X-Sfvault-Delivery": str(msg.id),
                }  # fmt: skip
                try:
                    answer = http.post(msg.recipient, content=body, headers=headers)
                    answer.raise_for_status()
                except httpx.HTTPError as exc:
                    gave_up = _record_failure(s, msg, _webhook_failure(msg, exc), clock)
                    failed += 1
                    log.warning("webhook: message=%s attempt=%d gave_up=%s error=%s", msg.id, msg.attempts,
                                gave_up, type(exc).__name__)  # fmt: skip
                    continue
                creports.mark_message(s, msg, sent=True, clock=clock)
                sent += 1
    return sent, failed
