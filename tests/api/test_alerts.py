"""Alerts (issue 15, finding 16): a job that fails, is skipped or is partial, and a schedule that
stops protecting the org, reach the admins by mail (a real SMTP server, aiosmtpd) and a webhook
(a real HTTP receiver on loopback) with an HMAC-SHA256 signature, once each; the scheduler logs
no traceback for a scheduled job that cannot run."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from api.context import AppContext
from api.scheduler import Scheduler
from engine.catalog import jobs as cjobs
from engine.catalog import orgs as corgs
from engine.catalog.models import OutboxMessage
from engine.clock import FrozenClock
from engine.errors import SalesforceAuthError, SubscriptionExpired
from engine.jobs.alerts import SIGNATURE_HEADER
from engine.jobs.credentials import credentials_record
from engine.jobs.errors import CredentialsMissing
from tests.api.conftest import api_settings
from tests.api.test_notify import Inbox, free_port
from tests.api.test_scheduler import CONNECTED, add_org, init_repository, make_ctx
from tests.helpers.emulator_proc import EmulatorProcess, poll_for

pytest_plugins = ["tests.catalog_fixtures"]

SECRET = "whsec-test-0123456789"
ADMINS = ["ada@example.org", "bob@example.org"]
SLOT = datetime(2026, 3, 11, 0, 0, tzinfo=UTC)


@dataclass
class Receiver:
    """A real HTTP server on loopback that records each POST and answers ``statuses`` in turn
    (then 204)."""

    url: str = ""
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            rec.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(rec.statuses.pop(0) if rec.statuses else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/sfvault"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    box, port = Inbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def ctx(
    tmp_path: Path, catalog_url: str, receiver: Receiver, inbox: tuple[Inbox, int]
) -> Iterator[AppContext]:
    settings = api_settings(
        tmp_path, catalog_url, admin_emails=ADMINS, smtp_host="127.0.0.1", smtp_port=inbox[1],
        alert_webhook_url=receiver.url, alert_webhook_secret=SECRET,
    )  # fmt: skip
    init_repository(settings)
    c = make_ctx(settings, FrozenClock(CONNECTED))
    try:
        yield c
    finally:
        c.runner.shutdown()
        c.engine.dispose()


def _verified(posts: list[tuple[dict[str, str], bytes]]) -> list[dict[str, Any]]:
    """The bodies of the posts, each checked against its HMAC signature."""
    out = []
    for headers, body in posts:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers[SIGNATURE_HEADER.lower()], expected)
        assert headers["content-type"] == "application/json"
        out.append(json.loads(body))
    return out


def test_a_scheduled_job_that_cannot_run_is_alerted_once_by_mail_and_signed_webhook(
    ctx: AppContext, receiver: Receiver, inbox: tuple[Inbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    add_org(ctx, "nocreds")  # no stored credentials: the slot is recorded skipped (it cannot log in)
    sched = Scheduler(ctx)
    report = sched.tick(SLOT + timedelta(seconds=5))
    [outcome] = report.slots
    assert (outcome.action, outcome.code) == ("skipped", CredentialsMissing.code)
    assert report.alerts == 1 and report.failures == []
    [hook] = _verified(receiver.posts)
    assert (hook["event"], hook["org"], hook["code"], hook["job"]) == (
        "job_skipped",
        "nocreds",
        CredentialsMissing.code,
        outcome.job_id,
    )
    assert datetime.fromisoformat(hook["at"]).tzinfo is not None
    mails = {rcpt[0]: msg for _frm, rcpt, msg in inbox[0].messages}
    assert sorted(mails) == ADMINS
    assert "job skipped for nocreds" in mails[ADMINS[0]]["Subject"]
    assert f"sfvault job show {outcome.job_id}" in mails[ADMINS[0]].get_payload()
    # raised once: later ticks send nothing again
    sched.tick(SLOT + timedelta(minutes=1))
    assert len(receiver.posts) == 1 and len(inbox[0].messages) == 2
    # one line, no traceback, for a scheduled job that cannot log in
    assert not [r for r in caplog.records if r.exc_info], [
        r.getMessage() for r in caplog.records if r.exc_info
    ]
    assert "Traceback" not in caplog.text


def test_failed_and_partial_jobs_are_alerted(ctx: AppContext, receiver: Receiver) -> None:
    add_org(ctx, "acme", backup_enabled=False)
    clock = FrozenClock(SLOT)
    ids = {}
    with ctx.tx() as s:
        org = corgs.get_org_by_name(s, "acme")
        for state, code in (("failed", "SFV-402"), ("partial", "SFV-301"), ("succeeded", None)):
            job = cjobs.create_job(s, org, kind="incremental", trigger="manual", clock=clock)
            cjobs.start_job(s, job, clock=clock)
            cjobs.finish_job(s, job, state, error_code=code, error_message=f"ended {state}", clock=clock)
            ids[state] = job.id
    Scheduler(ctx).tick(SLOT + timedelta(minutes=5))
    hooks = {h["job"]: h for h in _verified(receiver.posts)}
    assert set(hooks) == {ids["failed"], ids["partial"]}
    assert (hooks[ids["failed"]]["event"], hooks[ids["failed"]]["code"]) == ("job_failed", "SFV-402")
    assert (hooks[ids["partial"]]["event"], hooks[ids["partial"]]["code"]) == ("job_partial", "SFV-301")


def test_protection_stopping_is_alerted(ctx: AppContext, receiver: Receiver) -> None:
    add_org(ctx, "expired", plan="standard", subscription_expires_at=datetime(2026, 3, 10, 20, 0, tzinfo=UTC))
    report = Scheduler(ctx).tick(SLOT + timedelta(minutes=1))
    assert [(o.action, o.code) for o in report.slots] == [("stopped", SubscriptionExpired.code)]
    [hook] = _verified(receiver.posts)
    assert (hook["event"], hook["org"], hook["code"]) == (
        "protection_stopped",
        "expired",
        SubscriptionExpired.code,
    )


def test_a_webhook_that_fails_is_tried_again_at_the_next_tick(ctx: AppContext, receiver: Receiver) -> None:
    receiver.statuses = [503]
    add_org(ctx, "nocreds")
    sched = Scheduler(ctx)
    first = sched.tick(SLOT + timedelta(seconds=5))
    assert first.messages_failed == 1 and len(receiver.posts) == 1
    with ctx.tx() as s:
        [hook] = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "webhook")).all()
        assert (hook.state, hook.attempts) == ("pending", 1) and "503" in (hook.last_error or "")
    sched.tick(SLOT + timedelta(minutes=1))
    assert len(receiver.posts) == 2 and receiver.posts[0][1] == receiver.posts[1][1]
    with ctx.tx() as s:
        assert s.scalars(select(OutboxMessage.state).where(OutboxMessage.kind == "webhook")).all() == ["sent"]


def _org_refused_by_salesforce(ctx: AppContext, em: EmulatorProcess, name: str, **org_fields: Any) -> None:
    """An org whose stored password Salesforce refuses (it was changed in the org)."""
    i = em.info
    rec = credentials_record(
        instance_url=i["instance_url"], username=i["username"], password="changed-in-salesforce",
        security_token=i["security_token"], client_id=i["client_id"], client_secret=i["client_secret"],
        login_url=i["login_url"], ca_file=i.get("ca_file"),
    )  # fmt: skip
    with ctx.tx() as s:
        org = corgs.create_org(
            s, name=name, instance_url=i["instance_url"], credentials=rec, sealer=ctx.sealer, time_zone="UTC",
            storage_location=ctx.settings.repository_url, clock=FrozenClock(CONNECTED), **org_fields,
        )  # fmt: skip
        corgs.update_settings(s, org, permission_check_enabled=False)


@pytest.mark.emulator
@pytest.mark.parametrize("seats", [None, 1000], ids=["login-in-the-job", "login-at-admission"])
def test_a_scheduled_job_whose_credentials_salesforce_refuses_is_alerted(
    ctx: AppContext,
    receiver: Receiver,
    api_emulator: EmulatorProcess,
    seats: int | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 15: the "cannot log in" alert with credentials Salesforce refuses (SFV-402), not only
    missing ones (SFV-803). With purchased seats the admission itself logs in (to count users)."""
    caplog.set_level(logging.INFO)
    _org_refused_by_salesforce(ctx, api_emulator, "refused", purchased_seats=seats)
    assert isinstance(ctx.clock, FrozenClock)
    ctx.clock.advance(SLOT - CONNECTED)  # the job service and the runner stamp the tick's time
    sched = Scheduler(ctx)
    first = sched.tick(SLOT + timedelta(seconds=5))
    [outcome] = first.slots

    def ended() -> Any:
        with ctx.tx() as s:
            job = cjobs.get_job(s, outcome.job_id) if outcome.job_id else None
            return job is not None and job.state not in ("queued", "running")

    poll_for(ended, timeout=120)
    sched.tick(SLOT + timedelta(minutes=1))
    [hook] = _verified(receiver.posts)
    assert hook["org"] == "refused" and hook["code"] == SalesforceAuthError.code, hook
    assert hook["event"] in ("job_failed", "job_skipped") and hook["job"] == outcome.job_id
    assert "Traceback" not in caplog.text


def test_a_webhook_url_with_a_token_never_shows_in_last_error_or_logs(
    ctx: AppContext, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 15: a webhook URL carries its token (in the path, like Slack's, or the query); a failed
    delivery kept it in the outbox's ``last_error`` and httpx logged it. Both show it redacted."""
    caplog.set_level(logging.DEBUG)
    path_token, query_token = "T0KEN-IN-THE-PATH-8f3a", "QUERY-S3CRET-77c1"
    url = f"{receiver.url}/{path_token}?token={query_token}"
    ctx.settings = ctx.settings.model_copy(update={"alert_webhook_url": url})
    receiver.statuses = [503]
    add_org(ctx, "nocreds")
    report = Scheduler(ctx).tick(SLOT + timedelta(seconds=5))
    assert report.messages_failed == 1 and len(receiver.posts) == 1
    with ctx.tx() as s:
        [hook] = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "webhook")).all()
        error = hook.last_error or ""
    assert "503" in error and "SFV-916" in error, error
    for secret in (path_token, query_token):
        assert secret not in error, error
        assert secret not in caplog.text, [r.getMessage() for r in caplog.records if secret in r.getMessage()]


def _ended_job(
    ctx: AppContext, org: str, *, created: datetime, finished: datetime, state: str = "failed"
) -> str:
    with ctx.tx() as s:
        row = corgs.get_org_by_name(s, org)
        job = cjobs.create_job(s, row, kind="full", trigger="manual", clock=FrozenClock(created))
        cjobs.start_job(s, job, clock=FrozenClock(created))
        cjobs.finish_job(
            s, job, state, error_code="SFV-409", error_message="ended", clock=FrozenClock(finished)
        )
        return job.id


def test_a_job_that_ran_longer_than_the_lookback_is_alerted_when_it_ends(
    ctx: AppContext, receiver: Receiver
) -> None:
    """Issue 15: alerts looked only at jobs *created* in the last 2 days, so a full of a large org
    that ran for 3 days and failed was never alerted. Jobs are placed by their end."""
    add_org(ctx, "acme", backup_enabled=False)
    now = SLOT + timedelta(days=10)
    job = _ended_job(ctx, "acme", created=now - timedelta(days=3), finished=now - timedelta(minutes=2))
    Scheduler(ctx).tick(now)
    assert [h["job"] for h in _verified(receiver.posts)] == [job]


def test_the_alert_window_follows_the_last_scan(ctx: AppContext, receiver: Receiver) -> None:
    """A scheduler that could not tick for 4 days (a stalled host) alerts the jobs that ended
    meanwhile, not only those of the last 2 days; each once."""
    add_org(ctx, "acme", backup_enabled=False)
    sched = Scheduler(ctx)
    t0 = SLOT + timedelta(days=10)
    sched.tick(t0)
    assert receiver.posts == []
    during = _ended_job(ctx, "acme", created=t0 + timedelta(hours=20), finished=t0 + timedelta(days=1))
    sched.tick(t0 + timedelta(days=4))
    assert [h["job"] for h in _verified(receiver.posts)] == [during]
    sched.tick(t0 + timedelta(days=4, minutes=1))
    assert len(receiver.posts) == 1
