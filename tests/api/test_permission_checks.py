"""Permission checks against the emulator: check now over HTTP, the report lists, checks from the tick.

Expected values come from the emulator's own tables (its admin ``/sql``), not from the code
under test: the integration user's permission sets, their field, object and system permissions.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.background import JobRunner
from api.context import AppContext
from api.scheduler import Scheduler
from engine.catalog import orgs as corgs
from engine.catalog.db import make_engine, migrate, session_factory, transaction
from engine.catalog.models import Job, OutboxMessage, PermissionReport, Role
from engine.clock import FrozenClock
from engine.config import Settings
from engine.errors import NotFound, PermissionReportMissing, SeatsExceeded
from engine.jobs.credentials import catalog_sealer, credentials_record
from engine.jobs.permission_check import count_org_billable_users
from engine.policy import REQUIRED
from tests.api.conftest import api_settings, bearer
from tests.helpers.emulator_proc import EmulatorProcess

ADMINS = ["ada@example.org", "bob@example.org"]
CONNECTED = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return api_settings(tmp_path, admin_emails=ADMINS)


def add_org(settings: Settings, name: str, em: EmulatorProcess | None, **fields: Any) -> None:
    engine = make_engine(settings.catalog_url)
    try:
        migrate(engine)
        rec = None
        if em is not None:
            i = em.info
            rec = credentials_record(
                instance_url=i["instance_url"], username=i["username"], password=i["password"],
                security_token=i["security_token"], client_id=i["client_id"],
                client_secret=i["client_secret"], login_url=i["login_url"],
            )  # fmt: skip
        with transaction(session_factory(engine)) as s:
            corgs.create_org(
                s, name=name, instance_url=rec["instance_url"] if rec else None, credentials=rec,
                sealer=catalog_sealer(settings, create=True), **fields,
            )  # fmt: skip
    finally:
        engine.dispose()


# --- ground truth from the emulator's tables ------------------------------------------------


def _queryable_objects(em: EmulatorProcess) -> set[str]:
    """The emulator's queryable objects, from its own describeGlobal."""
    import httpx

    resp = httpx.get(
        em.url + "/services/data/v62.0/sobjects", verify=em.verify, trust_env=False, timeout=60,
        headers={"Authorization": f"Bearer {em.token()}"},
    )  # fmt: skip
    resp.raise_for_status()
    return {o["name"] for o in resp.json()["sobjects"] if o["queryable"]}


def truth(em: EmulatorProcess) -> dict[str, Any]:
    user = em.admin("GET", "/info")["user_id"]
    sets = 'SELECT "PermissionSetId" FROM sf_permissionsetassignment WHERE "AssigneeId" = ?'
    unreadable_fields = {
        (o, f.split(".", 1)[1])
        for o, f in em.sql(
            f'SELECT "SobjectType", "Field" FROM sf_fieldpermissions WHERE "ParentId" IN ({sets}) '
            'GROUP BY 1, 2 HAVING NOT bool_or("PermissionsRead")',
            user,
        )
    }
    readable_objects = {
        r[0]
        for r in em.sql(
            f'SELECT DISTINCT "SobjectType" FROM sf_objectpermissions WHERE "ParentId" IN ({sets}) '
            'AND "PermissionsRead"',
            user,
        )
    }
    all_objects = {r[0] for r in em.sql('SELECT DISTINCT "SobjectType" FROM sf_objectpermissions')}
    # objects without object permissions that a full backs up (User, Organization, *History ...):
    # every API user reads them, so the report lists them as readable, needing no permission
    schema_objects = _queryable_objects(em)
    no_permission = {
        n for n in schema_objects - all_objects
        if not n.endswith(("Share", "Feed", "ChangeEvent")) and n != "ContentDocumentLink"
    }  # fmt: skip
    granted = {
        p.field: bool(
            em.sql(f'SELECT bool_or("{p.field}") FROM sf_permissionset WHERE "Id" IN ({sets})', user)[0][0]
        )
        for p in REQUIRED
    }
    return {
        "unreadable_fields": unreadable_fields,
        "readable_objects": readable_objects | no_permission,
        "no_permission": no_permission,
        "unreadable_objects": all_objects - readable_objects,
        "granted": granted,
    }


# --- check now over HTTP ------------------------------------------------------------------------


@pytest.mark.emulator
def test_check_now_reports_the_three_lists(
    api_client: TestClient,
    settings: Settings,
    as_role: Callable[[Role], dict[str, str]],
    api_emulator: EmulatorProcess,
) -> None:
    add_org(settings, "acme", api_emulator)
    r = api_client.post("/v1/orgs/acme/permission-checks", headers=as_role(Role.ADMIN))
    assert r.status_code == 201, r.text
    body = r.json()
    want = truth(api_emulator)
    assert want["unreadable_fields"], "the emulator hides Account.Tax_Id__c from the integration user"
    assert {(f["object"], f["field"]) for f in body["fields"] if not f["readable"]} == want[
        "unreadable_fields"
    ]
    assert ("Account", "Tax_Id__c") in want["unreadable_fields"]
    readable_fields = {(f["object"], f["field"]) for f in body["fields"] if f["readable"]}
    assert {("Account", "Id"), ("Account", "Name"), ("Account", "Phone")} <= readable_fields
    assert {o["object"] for o in body["objects"] if o["readable"]} == want["readable_objects"]
    assert {o["object"] for o in body["objects"] if not o["needs_permission"]} == want["no_permission"]
    assert {"User", "Organization", "AccountHistory", "EventLogFile"} <= want["no_permission"]
    assert set(body["unreadable_objects"]) == want["unreadable_objects"]
    perms = {p["permission"]: p for p in body["user_permissions"]}
    assert list(perms) == [p.field for p in REQUIRED]
    assert {k: p["granted"] for k, p in perms.items()} == want["granted"]
    assert all(p["why"] and p["needed_for"] for p in perms.values())
    assert body["missing_permissions"] == [perms[k]["label"] for k, ok in want["granted"].items() if not ok]
    assert (body["trigger"], body["messages_queued"]) == ("manual", len(ADMINS))

    # one readable message per admin in the outbox
    engine = make_engine(settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            msgs = list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.recipient)))
            assert [(m.recipient, m.state, m.kind) for m in msgs] == [
                (a, "pending", "permission_report") for a in ADMINS
            ]
            text = msgs[0].body
            assert "Account.Tax_Id__c" in text and "Query All Files" in text
            assert f"Objects the integration user can read: {len(want['readable_objects'])}." in text
            assert msgs[0].payload == {"report_id": body["id"], "org": "acme"}
    finally:
        engine.dispose()

    # a second check: the list is newest first, latest is the second one
    second = api_client.post("/v1/orgs/acme/permission-checks", headers=as_role(Role.ADMIN)).json()
    listed = api_client.get("/v1/orgs/acme/permission-checks", headers=as_role(Role.VIEWER))
    assert listed.status_code == 200
    assert [x["id"] for x in listed.json()] == [second["id"], body["id"]]
    assert listed.json()[0] == {
        "id": second["id"], "trigger": "manual", "created_at": second["created_at"],
        "unreadable_fields": len(want["unreadable_fields"]),
        "unreadable_objects": len(want["unreadable_objects"]),
        "missing_permissions": len(body["missing_permissions"]),
    }  # fmt: skip
    latest = api_client.get("/v1/orgs/acme/permission-checks/latest", headers=as_role(Role.VIEWER))
    assert latest.status_code == 200
    assert latest.json()["id"] == second["id"]
    assert latest.json()["fields"] == body["fields"]


def test_unknown_org_no_report_and_roles(
    api_client: TestClient, settings: Settings, as_role: Callable[[Role], dict[str, str]]
) -> None:
    for method, path in (
        ("POST", "/v1/orgs/nope/permission-checks"),
        ("GET", "/v1/orgs/nope/permission-checks"),
        ("GET", "/v1/orgs/nope/permission-checks/latest"),
    ):
        r = api_client.request(method, path, headers=as_role(Role.ADMIN))
        assert (r.status_code, r.json()["code"]) == (404, NotFound.code), (method, path)
    add_org(settings, "quiet", None)
    r = api_client.get("/v1/orgs/quiet/permission-checks/latest", headers=as_role(Role.VIEWER))
    assert (r.status_code, r.json()["code"]) == (404, PermissionReportMissing.code)
    assert "POST /v1/orgs/quiet/permission-checks" in r.json()["message"]
    assert api_client.get("/v1/orgs/quiet/permission-checks", headers=as_role(Role.VIEWER)).json() == []
    for role in (Role.VIEWER, Role.OPERATOR):
        r = api_client.post("/v1/orgs/quiet/permission-checks", headers=as_role(role))
        assert (r.status_code, r.json()["code"]) == (403, "SFV-902")
    assert api_client.get("/v1/orgs/quiet/permission-checks").status_code == 401
    assert (
        api_client.get("/v1/orgs/quiet/permission-checks", headers=bearer("not-a-token")).status_code == 401
    )
    r = api_client.get("/v1/orgs/quiet/permission-checks?limit=0", headers=as_role(Role.VIEWER))
    assert r.status_code == 422 and "limit" in r.json()["message"]


# --- checks from the scheduler's tick -------------------------------------------------------------


def test_the_report_list_comes_in_pages(
    api_client: TestClient, settings: Settings, as_role: Callable[[Role], dict[str, str]]
) -> None:
    """Issue 15 ("paging cursors on every list"): the list stopped at ``limit`` with no next page."""
    from engine.catalog.reports import add_permission_report

    add_org(settings, "paged", None)
    engine = make_engine(settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            org_id = corgs.get_org_by_name(s, "paged").id
            clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
            ids = []
            for _ in range(5):
                clock.advance(timedelta(days=1))
                ids.append(add_permission_report(s, org_id=org_id, fields=[], objects=[], user_permissions=[],
                                                 clock=clock).id)  # fmt: skip
    finally:
        engine.dispose()
    seen: list[int] = []
    url: str | None = "/v1/orgs/paged/permission-checks?limit=2"
    while url is not None:
        r = api_client.get(url, headers=as_role(Role.VIEWER))
        assert r.status_code == 200, r.text
        assert len(r.json()) <= 2
        seen += [row["id"] for row in r.json()]
        nxt = r.headers.get("X-Next-Offset")
        assert (nxt is None) == ("Link" not in r.headers)
        url = f"/v1/orgs/paged/permission-checks?limit=2&offset={nxt}" if nxt is not None else None
    assert seen == ids[::-1], "newest first, each once"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    def __init__(self) -> None:
        self.recipients: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.recipients += envelope.rcpt_tos
        return "250 OK"


@pytest.fixture
def tick_ctx(tmp_path: Path) -> Iterator[tuple[AppContext, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings = api_settings(tmp_path, admin_emails=ADMINS, smtp_host="127.0.0.1", smtp_port=port)
    engine = make_engine(settings.catalog_url)
    migrate(engine)
    clock = FrozenClock(CONNECTED)
    ctx = AppContext(
        settings=settings, engine=engine, sessions=session_factory(engine),
        sealer=catalog_sealer(settings, create=True), clock=clock,
        runner=JobRunner(settings, clock=clock, dask_factory=lambda: None),
    )  # fmt: skip
    try:
        yield ctx, inbox
    finally:
        ctx.runner.shutdown()
        engine.dispose()
        controller.stop()


@pytest.mark.emulator
def test_a_due_check_runs_from_the_tick_and_reaches_the_admins(
    tick_ctx: tuple[AppContext, Inbox], api_emulator: EmulatorProcess
) -> None:
    ctx, inbox = tick_ctx
    # no storage location: the backup schedule is stopped, only the permission check is due
    add_org(ctx.settings, "monthly", api_emulator)
    with ctx.tx() as s:
        org = corgs.get_org_by_name(s, "monthly")
        start = org.connected_at
    sched = Scheduler(ctx)
    first = sched.tick(start + timedelta(minutes=1))
    assert first.failures == []
    [(name, report_id)] = first.permission_checks
    assert name == "monthly"
    assert (first.messages_sent, first.messages_failed) == (2, 0)
    assert sorted(inbox.recipients) == ADMINS
    assert sched.tick(start + timedelta(minutes=2)).permission_checks == []
    assert sched.tick(start + timedelta(days=29, hours=23)).permission_checks == []
    month = sched.tick(start + timedelta(days=30, minutes=1))
    assert [n for n, _ in month.permission_checks] == ["monthly"]
    with ctx.tx() as s:
        rows = list(s.scalars(select(PermissionReport).order_by(PermissionReport.id)))
        assert [(r.trigger, r.created_at) for r in rows] == [
            ("scheduled", start + timedelta(minutes=1)),
            ("scheduled", start + timedelta(days=30, minutes=1)),
        ]
        assert rows[0].id == report_id
        assert {m.state for m in s.scalars(select(OutboxMessage))} == {"sent"}


@pytest.mark.emulator
def test_seats_counted_in_the_org_stop_the_schedule(
    tick_ctx: tuple[AppContext, Inbox], api_emulator: EmulatorProcess
) -> None:
    ctx, _ = tick_ctx
    add_org(
        ctx.settings, "crowded", api_emulator, purchased_seats=1, storage_location=ctx.settings.repository_url
    )
    with ctx.tx() as s:
        org = corgs.get_org_by_name(s, "crowded")
        corgs.update_settings(s, org, permission_check_enabled=False)
        connected = org.connected_at
    billable = api_emulator.sql(
        'SELECT count(*) FROM sf_user WHERE "IsActive" AND "UserType" = \'Standard\''
    )[0][0]
    assert billable > 1
    assert count_org_billable_users(ctx.settings, ctx.sessions, "crowded", sealer=ctx.sealer) == billable
    slot = datetime.combine(connected.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    report = Scheduler(ctx).tick(slot + timedelta(seconds=3))
    assert [(o.action, o.code) for o in report.slots] == [("stopped", SeatsExceeded.code)]
    with ctx.tx() as s:
        assert list(s.scalars(select(Job))) == []
