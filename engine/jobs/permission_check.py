"""Permission checks of an org's integration user: read the org, build the report, store it, tell admins.

:func:`run_permission_check` is the one way a check runs ("check now" in the API and the
scheduler's monthly checks). Its order is the same as connecting an org: one short catalog
transaction reads the sealed credentials, then the Salesforce calls run with no session open,
then one transaction stores the report and queues one outbox message per admin
(``settings.admin_emails``); :mod:`engine.jobs.notify` sends them when SMTP is configured.

What is read (SALESFORCE_API.md section 7), all through REST ``query`` with paging:

1. ``PermissionSetAssignment`` rows of the user (the profile's own permission set included),
   each with its ``PermissionSet``'s ``Permissions*`` flags of :data:`engine.policy.REQUIRED`;
2. ``ObjectPermissions`` and ``FieldPermissions`` rows of those permission sets;
3. the org's permissionable objects (``ObjectPermissions`` grouped by ``SobjectType`` over every
   permission set): those the user cannot read are the report's unreadable objects;
4. ``describeGlobal``: the objects a full backup includes (:func:`engine.extract.scope.select_objects`
   with the default rules) that are not permissionable (User, Organization, ``*History``,
   ContentDocument, EventLogFile, StaticResource ...) need no object permission; they are listed
   as readable with ``needs_permission`` false, so every object a full backs up appears;
5. ``describe`` of each readable object: describe applies field-level security, so every field
   it lists is readable (the non-permissionable ones, Id, Name and audit fields, have no
   ``FieldPermissions`` row at all); a field with a row that grants no read is unreadable.

The catalog row keeps the three lists; an object dict carries ``readable`` so the unreadable
objects are kept in the same ``objects`` list (``readable: false``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.catalog import orgs as corgs
from engine.catalog import reports as creports
from engine.catalog.db import transaction
from engine.catalog.models import JobTrigger, Org, PermissionReport
from engine.catalog.secrets import Sealer
from engine.clock import Clock
from engine.config import Settings
from engine.errors import PermissionReportMissing, SalesforceError
from engine.extract.client import SalesforceClient
from engine.extract.describe import parse_global
from engine.extract.rest import RestApi
from engine.extract.scope import ScopeRules, select_objects
from engine.extract.soql import Soql
from engine.jobs.credentials import client_options, grant_from_record
from engine.policy import REQUIRED, PermissionCheckSettings, build_permission_report
from engine.policy import PermissionReport as PolicyReport

MESSAGE_KIND = "permission_report"
IN_LIST_MAX = 200
"""Ids per ``ParentId IN (...)`` clause: keeps each SOQL statement far below its length limit."""


@dataclass(frozen=True)
class ReportSummary:
    """One row of the org's report list (newest first)."""

    id: int
    trigger: str
    created_at: datetime
    unreadable_fields: int
    unreadable_objects: int
    missing_permissions: int


@dataclass(frozen=True)
class StoredReport:
    """A stored report with its three lists, as the API serves it."""

    id: int
    org: str
    trigger: str
    created_at: datetime
    fields: list[dict[str, Any]]
    objects: list[dict[str, Any]]
    user_permissions: list[dict[str, Any]]
    messages_queued: int = 0

    @property
    def unreadable_fields(self) -> list[dict[str, Any]]:
        return [f for f in self.fields if not f.get("readable")]

    @property
    def unreadable_objects(self) -> list[str]:
        return [str(o["object"]) for o in self.objects if not o.get("readable", True)]

    @property
    def missing_permissions(self) -> list[dict[str, Any]]:
        return [p for p in self.user_permissions if not p.get("granted")]


# --- reading the org ---------------------------------------------------------------------------


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


OBJECT_PERMISSION_FIELDS = (
    "Id",
    "ParentId",
    "SobjectType",
    "PermissionsRead",
    "PermissionsViewAllRecords",
    "PermissionsModifyAllRecords",
)
FIELD_PERMISSION_FIELDS = ("Id", "ParentId", "SobjectType", "Field", "PermissionsRead", "PermissionsEdit")


def _in_chunks(ids: list[str]) -> Iterator[str]:
    for i in range(0, len(ids), IN_LIST_MAX):
        yield ", ".join(_quote(x) for x in ids[i : i + IN_LIST_MAX])


def read_assignments(rest: RestApi, user_id: str) -> list[dict[str, Any]]:
    """The user's ``PermissionSetAssignment`` rows (its profile's set included), each with its
    ``PermissionSet``'s flags of :data:`engine.policy.REQUIRED` (one REST query)."""
    flags = ", ".join(f"PermissionSet.{p.field}" for p in REQUIRED)
    return list(
        rest.query_records(
            f"SELECT PermissionSetId, PermissionSet.Name, {flags} FROM PermissionSetAssignment "
            f"WHERE AssigneeId = {_quote(user_id)}",
            sobject="PermissionSetAssignment",
        )
    )


def user_has_permission(rest: RestApi, user_id: str, permission: str, *, checked_at: datetime) -> bool:
    """Whether any permission set of the user grants ``permission`` (a field of
    :data:`engine.policy.REQUIRED`, e.g. ``PermissionsQueryAllFiles``); one REST query."""
    report = build_permission_report((), (), read_assignments(rest, user_id), checked_at)
    return next(p.granted for p in report.user_permissions if p.permission == permission)


def read_permission_rows(rest: RestApi, user_id: str, *, checked_at: datetime) -> PolicyReport:
    """Query the user's permission rows and describe its readable objects; build the report."""
    assignments = read_assignments(rest, user_id)
    set_ids = sorted({str(r["PermissionSetId"]) for r in assignments if r.get("PermissionSetId")})
    object_rows: list[dict[str, Any]] = []
    field_rows: list[dict[str, Any]] = []
    for ids in _in_chunks(set_ids):
        # ordered by Id, so paging resumes if Salesforce drops the query locator
        in_sets = f"ParentId IN ({ids})"
        object_rows += rest.query_records(
            Soql.select("ObjectPermissions", OBJECT_PERMISSION_FIELDS).and_where(in_sets).in_id_order()
        )
        field_rows += rest.query_records(
            Soql.select("FieldPermissions", FIELD_PERMISSION_FIELDS).and_where(in_sets).in_id_order()
        )
    org_objects = [
        str(r["SobjectType"])
        for r in rest.query_records(
            "SELECT SobjectType, COUNT(Id) FROM ObjectPermissions GROUP BY SobjectType",
            sobject="ObjectPermissions",
        )
        if r.get("SobjectType")
    ]
    readable = sorted({str(r["SobjectType"]) for r in object_rows if r.get("PermissionsRead") is True})
    global_body = rest.describe_global()
    queryable = {str(o["name"]) for o in global_body.get("sobjects", []) if o.get("queryable")}
    no_permission = no_permission_objects(global_body, org_objects)
    described: list[tuple[str, str]] = []
    for name in [*readable, *no_permission]:
        if name in queryable:
            described += ((name, str(f["name"])) for f in rest.describe(name).get("fields", []))
    return build_permission_report(
        field_rows, object_rows, assignments, checked_at, always_readable=described, objects=org_objects,
        no_permission_objects=no_permission,
    )  # fmt: skip


def no_permission_objects(global_body: dict[str, Any], permissionable: list[str]) -> list[str]:
    """Objects a full backup includes that have no object permission in Salesforce (User,
    Organization, ``*History`` ...): every API user reads them, so they are protected."""
    included = {d.name for d in select_objects(parse_global(global_body), ScopeRules()) if d.included}
    return sorted(included - set(permissionable))


def _report_lists(
    report: PolicyReport,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    data = report.to_dict()
    objects = [{**o, "readable": True} for o in data["objects"]]
    objects += [
        {
            "object": name,
            "readable": False,
            "view_all_records": False,
            "modify_all_records": False,
            "needs_permission": True,
        }
        for name in data["unreadable_objects"]
    ]
    objects.sort(key=lambda o: str(o["object"]))
    return data["fields"], objects, data["user_permissions"]


# --- the message to admins -----------------------------------------------------------------------


def report_text(org: str, stored: StoredReport) -> tuple[str, str]:
    """Subject and plain-text body of the message admins get about a report."""
    unread_fields = stored.unreadable_fields
    unread_objects = stored.unreadable_objects
    readable_objects = len(stored.objects) - len(unread_objects)
    missing = stored.missing_permissions
    state = "action needed" if unread_fields or unread_objects or missing else "all clear"
    subject = f"sfvault permission check of {org}: {state}"
    lines = [
        f"Permission check of org {org} ({stored.trigger}, {stored.created_at.isoformat()}, "
        f"report {stored.id}).",
        "",
        f"Objects the integration user can read: {readable_objects}.",
    ]
    if unread_objects:
        lines.append(f"Objects it cannot read ({len(unread_objects)}), which cannot be protected:")
        lines += [f"  - {name}" for name in unread_objects]
    else:
        lines.append("Objects it cannot read: none.")
    lines.append("")
    if unread_fields:
        lines.append(f"Fields it cannot read ({len(unread_fields)}), which cannot be protected:")
        lines += [f"  - {f['object']}.{f['field']}" for f in unread_fields]
    else:
        lines.append("Fields it cannot read: none.")
    lines += ["", "System permissions needed for backup and restore:"]
    for p in stored.user_permissions:
        mark = "granted" if p.get("granted") else "MISSING"
        lines.append(
            f"  - {p['label']} ({p['permission']}): {mark}; needed for {p['needed_for']}: {p['why']}"
        )
    lines += ["", "The full report: GET /v1/orgs/{org}/permission-checks/latest".replace("{org}", org)]
    return subject, "\n".join(lines) + "\n"


# --- running a check -----------------------------------------------------------------------------


def run_permission_check(
    settings: Settings,
    sessions: sessionmaker[Session],
    org_name: str,
    *,
    trigger: JobTrigger | str,
    clock: Clock,
    sealer: Sealer,
    client_overrides: dict[str, Any] | None = None,
) -> StoredReport:
    """Check the integration user's permissions in ``org_name``; store and announce the report.

    Raises:
        NotFound: the org is unknown or has no stored credentials.
        SalesforceError: login or a query failed (nothing is stored then).
    """
    with transaction(sessions) as s:
        org = corgs.get_org_by_name(s, org_name)
        record = corgs.read_credentials(org, sealer)
        org_id = org.id
        protected = list(org.settings.cdp_objects or []) if org.settings.cdp_enabled else []
        sf_org_id = org.sf_org_id or ""
    grant = grant_from_record(record)
    with SalesforceClient.connect(
        grant, client_options(record, settings, **(client_overrides or {}))
    ) as client:
        user_id = client.session.token.user_id
        if not user_id:
            raise SalesforceError(
                sf_code="NO_IDENTITY", what="the login answer has no identity URL, so the user is unknown"
            )
        report = read_permission_rows(RestApi(client), user_id, checked_at=clock.now())
        fields, objects, perms = _report_lists(report)
        if protected:  # what Change Data Capture needs (decision 0033)
            perms += _cdc_requirements(
                settings, org_name, client, record, perms, objects, protected, sf_org_id
            )
    with transaction(sessions) as s:
        row = creports.add_permission_report(
            s,
            org_id=org_id,
            fields=fields,
            objects=objects,
            user_permissions=perms,
            trigger=trigger,
            clock=clock,
        )
        stored = _stored(row, org_name)
        subject, body = report_text(org_name, stored)
        for email in settings.admin_emails:
            creports.enqueue_message(
                s, kind=MESSAGE_KIND, recipient=email, subject=subject, body=body, org_id=org_id,
                payload={"report_id": row.id, "org": org_name}, clock=clock,
            )  # fmt: skip
    return StoredReport(**{**stored.__dict__, "messages_queued": len(settings.admin_emails)})


def _cdc_requirements(
    settings: Settings, org: str, client: SalesforceClient, record: Any, perms: list[dict[str, Any]],
    objects: list[dict[str, Any]], protected: list[str], sf_org_id: str,
) -> list[dict[str, Any]]:  # fmt: skip
    """:func:`engine.jobs.cdp_permissions.cdc_requirements`, asking the Pub/Sub API with the
    check's session (``GetTopic`` per protected object)."""
    from engine.cdc.stream import PubSubAuth, PubSubClient
    from engine.jobs.cdp_permissions import cdc_requirements, pubsub_topic_check

    token = client.session.token
    auth = PubSubAuth(token.access_token.get_secret_value(), token.instance_url,
                      token.org_id or sf_org_id)  # fmt: skip
    ca_file = client_options(record, settings).ca_file
    pubsub = PubSubClient.open(settings.pubsub_endpoint, auth, org=org, ca_file=ca_file,
                               tls=not token.instance_url.startswith("http://"))  # fmt: skip
    try:
        return cdc_requirements(perms, objects, protected, pubsub_topic_check(pubsub))
    finally:
        pubsub.close()


def _stored(row: PermissionReport, org: str) -> StoredReport:
    return StoredReport(
        id=row.id, org=org, trigger=row.trigger, created_at=row.created_at, fields=list(row.fields),
        objects=list(row.objects), user_permissions=list(row.user_permissions),
    )  # fmt: skip


def count_org_billable_users(
    settings: Settings,
    sessions: sessionmaker[Session],
    org_name: str,
    *,
    sealer: Sealer,
    client_overrides: dict[str, Any] | None = None,
) -> int:
    """Active users that take a seat, counted in the org (one login and two REST queries).

    The rule is :func:`engine.policy.count_billable_users`' (active ``Standard`` users of a
    production org; every user of a sandbox takes no seat), evaluated by Salesforce with
    ``COUNT()`` so no user rows travel.
    """
    with transaction(sessions) as s:
        org = corgs.get_org_by_name(s, org_name)
        record = corgs.read_credentials(org, sealer)
    grant = grant_from_record(record)
    with SalesforceClient.connect(
        grant, client_options(record, settings, **(client_overrides or {}))
    ) as client:
        rest = RestApi(client)
        org_rows = list(
            rest.query_records("SELECT IsSandbox FROM Organization LIMIT 1", sobject="Organization")
        )
        if org_rows and org_rows[0].get("IsSandbox") is True:
            return 0
        page = next(
            rest.query_pages(
                "SELECT COUNT() FROM User WHERE IsActive = true AND UserType = 'Standard'", sobject="User"
            )
        )
        return page.total_size


# --- reading stored reports ----------------------------------------------------------------------


def check_settings_of(org: Org) -> PermissionCheckSettings:
    st = org.settings
    return PermissionCheckSettings(
        connected_at=org.connected_at,
        enabled=st.permission_check_enabled,
        start=st.permission_check_start,
        interval_days=st.permission_check_interval_days,
    )


def last_scheduled_check(session: Session, org_id: int) -> datetime | None:
    """When the org's last scheduled check ran (checks on demand do not move the schedule)."""
    return session.scalar(
        select(func.max(PermissionReport.created_at)).where(
            PermissionReport.org_id == org_id, PermissionReport.trigger == JobTrigger.SCHEDULED.value
        )
    )


def latest_report(session: Session, org_name: str) -> StoredReport:
    """The org's newest report; NotFound for an unknown org, PermissionReportMissing without one."""
    org = corgs.get_org_by_name(session, org_name)
    row = creports.latest_permission_report(session, org.id)
    if row is None:
        raise PermissionReportMissing(org=org_name)
    return _stored(row, org_name)


def report_summaries(
    session: Session, org_name: str, *, limit: int = 100, offset: int = 0
) -> list[ReportSummary]:
    """The org's reports, newest first, with the counts of what is missing (one page)."""
    org = corgs.get_org_by_name(session, org_name)
    rows = session.scalars(
        select(PermissionReport)
        .where(PermissionReport.org_id == org.id)
        .order_by(PermissionReport.created_at.desc(), PermissionReport.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [_summary(_stored(r, org_name)) for r in rows]


def _summary(r: StoredReport) -> ReportSummary:
    return ReportSummary(
        id=r.id, trigger=r.trigger, created_at=r.created_at, unreadable_fields=len(r.unreadable_fields),
        unreadable_objects=len(r.unreadable_objects), missing_permissions=len(r.missing_permissions),
    )  # fmt: skip
