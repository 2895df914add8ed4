"""Connecting an org, and what the overview shows about connected orgs.

:func:`connect_org` is the one way an org gets into the catalog (``sfvault org add`` and
``POST /v1/orgs`` both call it). Its order is the contract: every local check (name, time zone,
plan, credential fields, a taken name) first, then one login and one ``/limits`` call against
Salesforce, and only when those succeed one catalog transaction that stores the org with its
credentials sealed. A refused login therefore leaves nothing behind.

The rest of the module adapts catalog rows into the plain facts of :mod:`engine.policy`
(:func:`backup_settings_of`, :func:`org_facts_of`) and computes the overview tiles and the org
details from them (:func:`org_tiles`, :func:`org_view`): the tile list reads the orgs and the
newest job of every org in two plain-column queries, so it costs a fixed number of queries
however many orgs there are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from engine.catalog import jobs as cjobs
from engine.catalog import orgs as corgs
from engine.catalog.db import transaction
from engine.catalog.models import Job, Org, OrgSettings
from engine.catalog.secrets import Sealer
from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.errors import (
    ConfigError,
    JobAlreadyRunning,
    OrgExists,
    OrgMismatch,
    SealedSecretUnreadable,
)
from engine.extract.client import SalesforceClient
from engine.extract.rest import RestApi
from engine.jobs.credentials import auth_kind, client_options, grant_from_record
from engine.policy import (
    BackupSettings,
    JobFact,
    JobKind,
    JobState,
    JobTrigger,
    OrgFacts,
    ReasonCode,
    ScheduleStatus,
    Subscription,
    Verdict,
    daily_schedule,
    next_full_at,
    next_slot,
    org_zone,
    schedule_status,
    stop_reasons,
)
from engine.policy.schedule import local_date
from engine.sink.manifest import check_segment

# --- connect -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectedOrg:
    """What connecting an org reports (never the credentials).

    Attributes:
        name: the org's short name in sfvault.
        sf_org_id: the Salesforce org id the login answered with, if it did.
        auth_kind: the OAuth grant the credentials use.
        time_zone: the IANA zone of the schedule.
        storage_location: where its backups go.
        connected_at: when it was connected (the schedule starts after it).
        api_remaining: the org's remaining daily API allowance at connect time, if reported.
        api_max: the org's daily API allowance, if reported.
    """

    name: str
    sf_org_id: str | None
    auth_kind: str
    time_zone: str
    storage_location: str | None
    connected_at: datetime
    api_remaining: int | None = None
    api_max: int | None = None


def check_org_fields(*, name: str, time_zone: str | None, plan: str | None) -> None:
    """The local checks of a new org: a safe name, an IANA time zone (if given), a known plan.

    Raises:
        InvalidObjectName: the name cannot name repository objects.
        UnknownTimeZone: not an IANA zone name.
        UnknownPlan: a plan this deployment does not know.
    """
    check_segment(name, "org name")
    if time_zone is not None:
        org_zone(time_zone)
    Subscription.for_plan(plan)


@dataclass(frozen=True)
class _LoginAnswer:
    """What one login tells about the org: its id, its API allowance and its time zone."""

    sf_org_id: str | None
    api_remaining: int | None
    api_max: int | None
    time_zone: str | None


ORG_ZONE_SOQL = "SELECT TimeZoneSidKey FROM Organization LIMIT 1"


def _log_in(rec: dict[str, str], settings: Settings, *, read_zone: bool) -> _LoginAnswer:
    """One login, one ``/limits`` call and (``read_zone``) one query of the org's time zone.

    The zone is ``Organization.TimeZoneSidKey`` (an IANA name): the org's default time zone,
    the one its users see as "midnight" unless they chose their own.
    """
    grant = grant_from_record(rec)
    with SalesforceClient.connect(grant, client_options(rec, settings)) as client:
        sf_org_id = client.session.token.org_id
        limits = client.limits().get("DailyApiRequests", {})
        zone = None
        if read_zone:
            rows = list(RestApi(client).query_records(ORG_ZONE_SOQL, sobject="Organization"))
            zone = str(rows[0].get("TimeZoneSidKey") or "") if rows else ""
            zone = zone or "UTC"
    return _LoginAnswer(
        sf_org_id, _int_or_none(limits.get("Remaining")), _int_or_none(limits.get("Max")), zone
    )


def _connected(org: Org, answer: _LoginAnswer) -> ConnectedOrg:
    return ConnectedOrg(
        name=org.name, sf_org_id=org.sf_org_id, auth_kind=org.auth_kind, time_zone=org.time_zone,
        storage_location=org.storage_location, connected_at=org.connected_at,
        api_remaining=answer.api_remaining, api_max=answer.api_max,
    )  # fmt: skip


def connect_org(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    name: str,
    record: Mapping[str, str],
    time_zone: str | None = None,
    storage_location: str | None = None,
    plan: str | None = None,
    purchased_seats: int | None = None,
    subscription_expires_at: datetime | None = None,
    sealer: Sealer,
    clock: Clock | None = None,
    before_save: Callable[[], None] | None = None,
) -> ConnectedOrg:
    """Check the credentials against Salesforce, then store the org with them sealed.

    Args:
        settings: the service settings (client tuning; ``repository_url`` is the default
            storage location).
        sessions: the catalog's session factory; one short transaction is opened at the end.
        name: the org's short name (``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``).
        record: the flat credentials record (:func:`engine.jobs.credentials.credentials_record`).
        time_zone: IANA zone of the org's schedule; None = the org's own
            (``Organization.TimeZoneSidKey``, read at the login).
        storage_location: where backups go; None = ``settings.repository_url``.
        plan, purchased_seats, subscription_expires_at: the subscription.
        sealer: seals the credentials before they reach the catalog.
        clock: the time source (``connected_at``).
        before_save: run once everything is checked, just before the org is saved (``sfvault org
            add`` writes the catalog's new secrets key here, so a refused add leaves none).

    Raises:
        InvalidObjectName, UnknownTimeZone, UnknownPlan: from :func:`check_org_fields`.
        ConfigError: the credential fields do not make a grant.
        OrgExists: the name is taken (checked before and again while saving).
        SalesforceAuthError: Salesforce refused the credentials; nothing is saved.
    """
    clock = clock or SystemClock()
    check_org_fields(name=name, time_zone=time_zone, plan=plan)
    rec = dict(record)
    grant = grant_from_record(rec)
    with transaction(sessions) as s:
        if corgs.find_org_by_name(s, name) is not None:
            raise OrgExists(name=name)
    # no session is open while Salesforce answers
    answer = _log_in(rec, settings, read_zone=time_zone is None)
    zone = time_zone or answer.time_zone or "UTC"
    org_zone(zone)  # the org's own TimeZoneSidKey is an IANA name; refuse anything else by name
    location = storage_location if storage_location is not None else settings.repository_url
    with transaction(sessions) as s:
        if corgs.find_org_by_name(s, name) is not None:  # taken while Salesforce answered
            raise OrgExists(name=name)
    if before_save is not None:
        before_save()
    try:
        with transaction(sessions) as s:
            org = corgs.create_org(
                s, name=name, instance_url=rec["instance_url"].rstrip("/"), auth_kind=auth_kind(grant),
                credentials=rec, sealer=sealer, time_zone=zone, storage_location=location,
                plan=plan, purchased_seats=purchased_seats,
                subscription_expires_at=subscription_expires_at, sf_org_id=answer.sf_org_id, clock=clock,
            )  # fmt: skip
            connected = _connected(org, answer)
    except IntegrityError as exc:  # a concurrent connect of the same name won the race
        raise OrgExists(name=name) from exc
    return connected


CREDENTIAL_FIELDS = (
    "instance_url", "login_url", "username", "password", "security_token", "client_id", "client_secret",
    "refresh_token", "ca_file",
)  # fmt: skip


def _stored_record(org: Org, sealer: Sealer) -> dict[str, str]:
    """The org's stored credentials, or only its instance URL when it has none (a rebuilt catalog)."""
    if org.credentials_sealed is None:
        return {"instance_url": org.instance_url or ""}
    return corgs.read_credentials(org, sealer)


def merge_credentials(stored: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """The stored record with ``changes`` applied: a value replaces, ``""`` removes, None keeps.

    Raises:
        ConfigError: an unknown field, or the result does not make a grant.
    """
    unknown = set(changes) - set(CREDENTIAL_FIELDS)
    if unknown:
        raise ConfigError(what=f"unknown credential fields: {', '.join(sorted(unknown))}")
    rec = dict(stored)
    for key, value in changes.items():
        if value == "":
            rec.pop(key, None)
        elif value is not None:
            rec[key] = value.rstrip("/") if key == "instance_url" else value
    if not rec.get("instance_url"):
        raise ConfigError(what="the org has no instance URL: give --instance-url")
    grant_from_record(rec)
    return rec


def update_credentials(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    name: str,
    changes: Mapping[str, str | None],
    sealer: Sealer,
    clock: Clock | None = None,
) -> ConnectedOrg:
    """Change a connected org's credentials: checked against Salesforce first, saved only if they work.

    ``changes`` holds :data:`CREDENTIAL_FIELDS` (:func:`merge_credentials`: a value replaces the
    stored one, ``""`` removes it, None keeps it), so a new password alone is enough. An org
    without stored credentials (recreated by ``sfvault catalog rebuild``) gets them here. The
    org's settings, schedule, jobs and ``connected_at`` do not change.

    Raises:
        NotFound: no org of that name.
        ConfigError: the merged fields do not make a grant.
        SalesforceAuthError: Salesforce refused them; nothing is saved.
        OrgMismatch: they log in to another Salesforce org than the connected one; nothing is saved.
    """
    clock = clock or SystemClock()
    with transaction(sessions) as s:
        org = corgs.get_org_by_name(s, name)
        known_id = org.sf_org_id
        try:
            stored = _stored_record(org, sealer)
        except SealedSecretUnreadable:  # a new catalog key: the stored ones are lost, start afresh
            stored = {"instance_url": org.instance_url or ""}
    rec = merge_credentials(stored, changes)
    answer = _log_in(rec, settings, read_zone=False)  # no session is open while Salesforce answers
    if known_id and answer.sf_org_id and known_id[:15] != answer.sf_org_id[:15]:
        raise OrgMismatch(name=name, got=answer.sf_org_id, want=known_id)
    with transaction(sessions) as s:
        org = corgs.get_org_by_name(s, name)
        corgs.set_credentials(org, rec, sealer)
        corgs.update_org(
            s, org, clock=clock, instance_url=rec["instance_url"],
            auth_kind=auth_kind(grant_from_record(rec)),
            sf_org_id=org.sf_org_id or answer.sf_org_id,
        )  # fmt: skip
        return _connected(org, answer)


def disconnect_org(sessions: sessionmaker[Session], name: str) -> None:
    """Remove an org from the catalog (its rows go; the repository keeps its snapshots).

    Raises:
        NotFound: no org of that name.
        JobAlreadyRunning: a job of the org is queued or running (cancel it first).
    """
    with transaction(sessions) as s:
        row = corgs.get_org_by_name(s, name)
        running = cjobs.active_job(s, row.id)
        if running is not None:
            raise JobAlreadyRunning(org=name, job=running.id)
        corgs.delete_org(s, row)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --- policy facts of a connected org -----------------------------------------------------------


def backup_settings_of(org: Org) -> BackupSettings:
    """The schedule-relevant settings of an org (its row and its settings row)."""
    st = org.settings
    return BackupSettings(
        time_zone=org.time_zone,
        connected_at=org.connected_at,
        backup_enabled=st.backup_enabled,
        jobs_per_day=st.jobs_per_day,
        first_start_time=st.first_start_time,
    )


def subscription_of(org: Org) -> Subscription:
    return Subscription.for_plan(
        org.plan, expires_at=org.subscription_expires_at, purchased_seats=org.purchased_seats
    )


def job_fact(job: Job) -> JobFact:
    return JobFact(
        id=job.id, kind=JobKind(job.kind), state=JobState(job.state), created_at=job.created_at,
        trigger=JobTrigger(job.trigger),
        cycle_id=job.cycle_id,
        requested_objects=frozenset(job.requested_objects) if job.requested_objects is not None else None,
        started_at=job.started_at, finished_at=job.finished_at, scheduled_for=job.scheduled_for,
    )  # fmt: skip


def org_facts_of(org: Org, jobs: tuple[JobFact, ...] = ()) -> OrgFacts:
    """The org's facts for the schedule, with the billable users as last counted (0 if never)."""
    return OrgFacts(
        org=org.name, subscription=subscription_of(org), storage_location=org.storage_location, jobs=jobs,
        billable_users=org.billable_users or 0,
    )  # fmt: skip


# --- the overview --------------------------------------------------------------------------


@dataclass(frozen=True)
class LastJob:
    id: str
    state: str
    kind: str
    trigger: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error_code: str | None


@dataclass(frozen=True)
class StopReason:
    """One reason protection is stopped now: its reason, its code and its message (the fix)."""

    reason: ReasonCode
    code: str | None
    message: str


@dataclass(frozen=True)
class OrgTile:
    """One tile of the backup overview.

    ``stops`` lists every reason protection is stopped at the moment (``schedule_stopped`` is the
    first of them); ``protection_ends_at`` is the subscription's end when it comes before the
    next slot would (no scheduled job is left, but it has not expired yet).
    """

    name: str
    hidden: bool
    last_job: LastJob | None
    next_job_at: datetime | None
    schedule_stopped: ReasonCode | None
    schedule_stopped_code: str | None
    stops: tuple[StopReason, ...] = ()
    protection_ends_at: datetime | None = None


@dataclass(frozen=True)
class OrgView:
    """An org's details: its tile and what the details page adds."""

    tile: OrgTile
    org: Org
    next_incremental_at: datetime | None
    next_full_at: datetime | None


_LAST_JOB_COLUMNS = (
    Job.org_id, Job.id, Job.state, Job.kind, Job.trigger, Job.created_at, Job.started_at, Job.finished_at,
    Job.error_code,
)  # fmt: skip
_TILE_COLUMNS = (
    Org.id, Org.name, Org.hidden, Org.time_zone, Org.connected_at, Org.storage_location, Org.plan,
    Org.subscription_expires_at, Org.purchased_seats, Org.billable_users, OrgSettings.backup_enabled,
    OrgSettings.jobs_per_day, OrgSettings.first_start_time,
)  # fmt: skip
StatusCache = dict[tuple[object, ...], ScheduleStatus]


def _last(job: Any) -> LastJob | None:
    """A :class:`Job` or a row of ``_LAST_JOB_COLUMNS`` as a :class:`LastJob`."""
    if job is None:
        return None
    return LastJob(
        id=job.id, state=job.state, kind=job.kind, trigger=job.trigger, created_at=job.created_at,
        started_at=job.started_at, finished_at=job.finished_at, error_code=job.error_code,
    )  # fmt: skip


def _status(bs: BackupSettings, facts: OrgFacts, now: datetime, cache: StatusCache) -> ScheduleStatus:
    """:func:`engine.policy.schedule_status`, shared by orgs whose schedule inputs are equal.

    Besides ``now`` the answer depends on the zone, the settings, the subscription, whether a
    storage location is set, the seats and ``connected_at`` only while it is in the future (the
    next slot is after both it and ``now``); the org's name only enters messages it drops.
    """
    key = (
        bs.time_zone, bs.backup_enabled, bs.jobs_per_day, bs.first_start_time,
        bs.connected_at if bs.connected_at > now else None, facts.subscription, facts.has_storage,
        facts.seats_exceeded,
    )  # fmt: skip
    status = cache.get(key)
    if status is None:
        status = cache[key] = schedule_status(bs, facts, now)
    return status


def _tile(org: Any, last: Any, now: datetime, cache: StatusCache) -> OrgTile:
    """The tile of an :class:`Org` (with its settings) or of a row of ``_TILE_COLUMNS``."""
    if isinstance(org, Org):
        bs, facts = backup_settings_of(org), org_facts_of(org)
    else:
        bs = BackupSettings(
            time_zone=org.time_zone, connected_at=org.connected_at, backup_enabled=org.backup_enabled,
            jobs_per_day=org.jobs_per_day, first_start_time=org.first_start_time,
        )  # fmt: skip
        sub = Subscription.for_plan(
            org.plan, expires_at=org.subscription_expires_at, purchased_seats=org.purchased_seats
        )
        facts = OrgFacts(
            org=org.name, subscription=sub, storage_location=org.storage_location,
            billable_users=org.billable_users or 0,
        )  # fmt: skip
    status = _status(bs, facts, now, cache)
    stops = tuple(_stop(v) for v in stop_reasons(bs, facts, now))
    expires = facts.subscription.expires_at
    ends = (
        expires if status.next_run is None and not stops and expires is not None and expires > now else None
    )
    return OrgTile(
        name=org.name, hidden=org.hidden, last_job=_last(last), next_job_at=status.next_run,
        schedule_stopped=status.stopped, schedule_stopped_code=status.error_code, stops=stops,
        protection_ends_at=ends,
    )  # fmt: skip


def _stop(verdict: Verdict) -> StopReason:
    assert verdict.reason is not None
    err = verdict.error()
    message = (
        err.message if err is not None else f"backup is switched off for org {verdict.details.get('org')}"
    )
    return StopReason(verdict.reason, err.code if err is not None else None, message)


def org_tiles(
    session: Session, *, hidden: bool | None, now: datetime, limit: int | None = None, offset: int = 0
) -> list[OrgTile]:
    """The overview tiles by name (``hidden=None``: every org), in two queries; ``limit`` and
    ``offset`` cut one page of them (by name) in the database.

    Both read plain columns, not ORM objects, and the newest job of each org is one indexed
    lookup per org (``ix_jobs_org_created``) inside a single statement, so the list stays fast
    with hundreds of orgs and many thousands of jobs. Orgs with equal schedule inputs share
    one schedule computation.
    """
    orgs_q = select(*_TILE_COLUMNS).join(OrgSettings, OrgSettings.org_id == Org.id).order_by(Org.name)
    newest = (
        select(Job.id)
        .where(Job.org_id == Org.id)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(1)
        .correlate(Org)
        .scalar_subquery()
    )
    newest_ids = select(newest).select_from(Org)
    if hidden is not None:
        orgs_q = orgs_q.where(Org.hidden == hidden)
        newest_ids = newest_ids.where(Org.hidden == hidden)
    if limit is not None or offset:
        orgs_q = orgs_q.limit(limit).offset(offset)
        newest_ids = newest_ids.order_by(Org.name).limit(limit).offset(offset)
    rows = session.execute(orgs_q).all()
    last = {
        row.org_id: row for row in session.execute(select(*_LAST_JOB_COLUMNS).where(Job.id.in_(newest_ids)))
    }
    cache: StatusCache = {}
    return [_tile(row, last.get(row.id), now, cache) for row in rows]


def org_view(session: Session, name: str, *, now: datetime) -> OrgView:
    """The details of one org; :class:`~engine.errors.NotFound` for an unknown name.

    ``next_full_at`` is the first scheduled slot at or after the instant the next full is due
    (:func:`engine.policy.next_full_at`: the end of the current cycle, or now without a full
    backup). ``next_incremental_at`` is the next scheduled slot that is not that full (an
    incremental runs beside a new cycle's full, and the first one after the first full).
    Both are None while the schedule is stopped.
    """
    org = corgs.get_org_by_name(session, name)
    last = cjobs.latest_jobs(session, [org.id]).get(org.id)
    tile = _tile(org, last, now, {})
    if tile.next_job_at is None:
        return OrgView(tile, org, None, None)
    bs = backup_settings_of(org)
    full = cjobs.last_full_job(session, org.id)
    due = next_full_at((job_fact(full),) if full is not None else (), now)
    full_at = tile.next_job_at if due <= now else next_slot(bs, due - timedelta(microseconds=1))
    # compared as UTC instants: two times of one zone compare by wall time, wrong in a repeated hour
    same = tile.next_job_at.astimezone(UTC) == full_at.astimezone(UTC)
    incremental_at = next_slot(bs, full_at) if same else tile.next_job_at
    subscription = subscription_of(org)
    return OrgView(
        tile,
        org,
        None if subscription.expired(incremental_at) else incremental_at,
        None if subscription.expired(full_at) else full_at,
    )


@dataclass(frozen=True)
class DaySchedule:
    """The day's job start times of an org, in its time zone."""

    time_zone: str
    day: date
    starts: list[datetime]


def day_schedule(org: Org, now: datetime) -> DaySchedule:
    """The start times of today's (org-local) scheduled jobs, daylight saving included."""
    bs = backup_settings_of(org)
    day = local_date(now, bs.zone)
    return DaySchedule(org.time_zone, day, daily_schedule(bs, day))
