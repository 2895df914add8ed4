"""Orgs and their settings.

Every function takes an open :class:`~sqlalchemy.orm.Session` and leaves committing to the
caller (``with transaction(factory) as s: ...``), so several calls form one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.catalog.models import AuthKind, EventLogs, Org, OrgSettings
from engine.catalog.secrets import Sealer
from engine.clock import Clock, SystemClock
from engine.errors import ConfigError, NotFound, OrgExists

SETTINGS_FIELDS = frozenset(
    {
        "backup_enabled",
        "include_feed",
        "include_share",
        "event_logs",
        "excluded_objects",
        "excluded_metadata_types",
        "jobs_per_day",
        "first_start_time",
        "permission_check_enabled",
        "permission_check_start",
        "permission_check_interval_days",
    }
)


def _aad(org_name: str) -> bytes:
    return f"org-credentials:{org_name}".encode()


def create_org(
    session: Session,
    *,
    name: str,
    instance_url: str | None,
    auth_kind: AuthKind | str = AuthKind.PASSWORD,
    credentials: Mapping[str, str] | None = None,
    sealer: Sealer | None = None,
    time_zone: str = "UTC",
    storage_location: str | None = None,
    plan: str | None = None,
    subscription_expires_at: datetime | None = None,
    purchased_seats: int | None = None,
    sf_org_id: str | None = None,
    clock: Clock | None = None,
) -> Org:
    """Connect an org and give it default settings (one job a day at 00:00 local time).

    ``credentials`` are sealed with ``sealer`` before they touch the database; passing
    credentials without a sealer is refused. Raises :class:`OrgExists` for a taken name.
    """
    now = (clock or SystemClock()).now()
    org = Org(
        name=name,
        instance_url=instance_url,
        auth_kind=AuthKind(auth_kind).value,
        time_zone=time_zone,
        connected_at=now,
        hidden=False,
        storage_location=storage_location,
        plan=plan,
        subscription_expires_at=subscription_expires_at,
        purchased_seats=purchased_seats,
        sf_org_id=sf_org_id,
        created_at=now,
        updated_at=now,
    )
    org.settings = OrgSettings(
        backup_enabled=True,
        include_feed=False,
        include_share=False,
        event_logs=EventLogs.OFF.value,
        excluded_objects=[],
        excluded_metadata_types=[],
        jobs_per_day=1,
        first_start_time=time(0, 0),
        permission_check_enabled=True,
        permission_check_start=now,
        permission_check_interval_days=30,
        updated_at=now,
    )
    if credentials is not None:
        set_credentials(org, credentials, sealer)
    if session.scalar(select(Org.id).where(Org.name == name)) is not None:
        raise OrgExists(name=name)
    session.add(org)
    # A concurrent writer of the same name loses on the unique constraint (IntegrityError).
    session.flush()
    return org


def set_credentials(org: Org, credentials: Mapping[str, str], sealer: Sealer | None) -> None:
    """Seal ``credentials`` (a flat str → str mapping) onto the org."""
    if sealer is None:
        raise ConfigError(what="org credentials can only be stored sealed; no sealer given")
    plain = json.dumps(dict(credentials), sort_keys=True).encode()
    org.credentials_sealed = sealer.seal(plain, aad=_aad(org.name))


def read_credentials(org: Org, sealer: Sealer) -> dict[str, str]:
    """The org's credentials in clear (for the Salesforce client only; never log them)."""
    if org.credentials_sealed is None:
        raise NotFound(kind="credentials of org", name=org.name)
    value: dict[str, str] = json.loads(sealer.open(org.credentials_sealed, aad=_aad(org.name)))
    return value


def get_org(session: Session, org_id: int) -> Org:
    org = session.get(Org, org_id)
    if org is None:
        raise NotFound(kind="org", name=str(org_id))
    return org


def get_org_by_name(session: Session, name: str) -> Org:
    org = session.scalar(select(Org).where(Org.name == name))
    if org is None:
        raise NotFound(kind="org", name=name)
    return org


def find_org_by_name(session: Session, name: str) -> Org | None:
    return session.scalar(select(Org).where(Org.name == name))


def list_orgs(session: Session, *, hidden: bool | None = None) -> list[Org]:
    """Orgs by name; ``hidden=False`` for the tiles, ``True`` for the hidden section."""
    stmt = select(Org).order_by(Org.name)
    if hidden is not None:
        stmt = stmt.where(Org.hidden == hidden)
    return list(session.scalars(stmt))


def set_hidden(session: Session, org: Org, hidden: bool, *, clock: Clock | None = None) -> Org:
    org.hidden = hidden
    org.updated_at = (clock or SystemClock()).now()
    session.flush()
    return org


def update_org(session: Session, org: Org, *, clock: Clock | None = None, **changes: Any) -> Org:
    """Change plain org fields (instance_url, time_zone, storage_location, plan, ...)."""
    allowed = {
        "instance_url",
        "time_zone",
        "storage_location",
        "plan",
        "subscription_expires_at",
        "purchased_seats",
        "sf_org_id",
        "auth_kind",
    }
    unknown = set(changes) - allowed
    if unknown:
        raise ConfigError(what=f"unknown org fields: {', '.join(sorted(unknown))}")
    for key, value in changes.items():
        setattr(org, key, AuthKind(value).value if key == "auth_kind" else value)
    org.updated_at = (clock or SystemClock()).now()
    session.flush()
    return org


def update_settings(session: Session, org: Org, *, clock: Clock | None = None, **changes: Any) -> OrgSettings:
    """Change the org's backup settings; unknown names are refused, values are checked by the
    database's CHECK constraints (jobs_per_day 1..24, event_logs off/daily/hourly, ...)."""
    unknown = set(changes) - SETTINGS_FIELDS
    if unknown:
        raise ConfigError(what=f"unknown org settings: {', '.join(sorted(unknown))}")
    settings = org.settings
    for key, value in changes.items():
        if key == "event_logs":
            value = EventLogs(value).value
        elif key in ("excluded_objects", "excluded_metadata_types"):
            value = sorted(set(value))
        setattr(settings, key, value)
    settings.updated_at = (clock or SystemClock()).now()
    session.flush()
    return settings


def delete_org(session: Session, org: Org) -> None:
    """Disconnect an org: its catalog rows go; its snapshots stay in the repository."""
    session.delete(org)
    session.flush()
