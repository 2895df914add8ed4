"""Permission checks of the integration user: when they are due, and the three-list report.

Rules (PRODUCT.md "Permission checks"):

* **When.** On by default. Scheduled checks fall on the grid ``start + k * interval``
  (``k = 0, 1, ...``); ``start`` defaults to the instant the org was connected (the first
  check runs right away), ``interval`` to 30 days (the catalog's
  ``permission_check_interval_days``). A check is due when a grid point has passed that no
  scheduled check has covered yet; missed grid points are one check, not many. "Check now"
  is always allowed and does not move the grid.
* **Report.** Built from the rows Salesforce returns for the user's permission sets
  (SALESFORCE_API.md section 7), where a permission is effective if *any* of the user's
  permission sets (the profile's included) grants it:

  - ``fields``: every field with its object, and whether the user can read it (and edit it).
    Unreadable fields cannot be protected. Fields without a ``FieldPermissions`` row are
    unreadable unless they are not permissionable (Id, Name, audit fields), which are
    always readable; pass them in ``always_readable``.
  - ``objects``: the objects the user can read. Unlisted objects cannot be protected; when
    the caller passes the org's objects, those missing are listed in ``unreadable_objects``.
    Objects Salesforce grants no object permission for (User, Organization, ``*History``,
    ContentDocument, EventLogFile, StaticResource ...) are readable by every API user: pass
    them in ``no_permission_objects`` and they are listed too, ``needs_permission`` false.
  - ``user_permissions``: the system permissions backup and restore need (:data:`REQUIRED`),
    each granted or not, with what it is needed for.

Rows may come from REST (JSON booleans) or Bulk API 2.0 CSV (``"true"`` / ``"false"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.errors import InvalidPolicySetting
from engine.policy.facts import require_aware, utc

DEFAULT_INTERVAL_DAYS = 30


@dataclass(frozen=True)
class PermissionCheckSettings:
    """``OrgSettings.permission_check_*`` and the org's ``connected_at``."""

    connected_at: datetime
    enabled: bool = True
    start: datetime | None = None
    interval_days: int = DEFAULT_INTERVAL_DAYS

    def __post_init__(self) -> None:
        require_aware(self.connected_at, "connected_at")
        if self.start is not None:
            require_aware(self.start, "permission_check_start")
        if isinstance(self.interval_days, bool) or self.interval_days < 1:
            raise InvalidPolicySetting(field="permission_check_interval_days", what="must be at least 1")

    @property
    def first(self) -> datetime:
        return utc(self.start or self.connected_at)

    @property
    def interval(self) -> timedelta:
        return timedelta(days=self.interval_days)


def _last_grid_point(settings: PermissionCheckSettings, now: datetime) -> datetime | None:
    first = settings.first
    if utc(now) < first:
        return None
    k = (utc(now) - first) // settings.interval
    return first + k * settings.interval


def permission_check_due(
    settings: PermissionCheckSettings, last_scheduled_check: datetime | None, now: datetime
) -> bool:
    """Whether a scheduled check should run at ``now``.

    Args:
        last_scheduled_check: when the last *scheduled* check ran (on-demand checks do not
            count), None if never.
    """
    if not settings.enabled:
        return False
    point = _last_grid_point(settings, now)
    if point is None:
        return False
    return last_scheduled_check is None or utc(last_scheduled_check) < point


def next_permission_check(
    settings: PermissionCheckSettings, last_scheduled_check: datetime | None, now: datetime
) -> datetime | None:
    """When the next scheduled check is due (a past grid point if one is overdue); None if off."""
    if not settings.enabled:
        return None
    point = _last_grid_point(settings, now)
    if point is None:
        return settings.first
    if last_scheduled_check is None or utc(last_scheduled_check) < point:
        return point
    return point + settings.interval


# --- the report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RequiredPermission:
    """A system permission backup or restore needs.

    Attributes:
        field: the ``PermissionSet`` field (``PermissionsApiEnabled``).
        label: as Salesforce Setup shows it.
        needed_for: ``backup``, ``restore``, ``metadata`` or ``event logs``.
        why: what breaks without it.
    """

    field: str
    label: str
    needed_for: str
    why: str


REQUIRED: tuple[RequiredPermission, ...] = (
    RequiredPermission("PermissionsApiEnabled", "API Enabled", "backup",
                       "every REST and Bulk API call; without it nothing can be backed up or restored"),
    RequiredPermission("PermissionsViewAllData", "View All Data", "backup",
                       "read every record regardless of sharing; without it records hidden by sharing "
                       "rules are silently missing from the backup"),
    RequiredPermission("PermissionsQueryAllFiles", "Query All Files", "backup",
                       "read every ContentDocument and ContentVersion, also files not shared with the "
                       "user; without it those files are reported as not protected"),
    RequiredPermission("PermissionsViewSetup", "View Setup and Configuration", "backup",
                       "read the org's API limits (/limits) and setup objects"),
    RequiredPermission("PermissionsViewAllUsers", "View All Users", "backup",
                       "read every User row (record owners) and count active users against seats"),
    RequiredPermission("PermissionsViewEventLogFiles", "View Event Log Files", "event logs",
                       "back up EventLogFile (daily or hourly event logs) when event logs are on"),
    RequiredPermission("PermissionsModifyMetadata", "Modify Metadata Through Metadata API Functions",
                       "metadata", "retrieve the org's metadata with the Metadata API"),
    RequiredPermission("PermissionsModifyAllData", "Modify All Data", "restore",
                       "write records back to any object when restoring"),
    RequiredPermission("PermissionsBulkApiHardDelete", "Bulk API Hard Delete", "restore",
                       "remove records restored by mistake without filling the Recycle Bin"),
)


@dataclass(frozen=True)
class FieldAccess:
    object: str
    field: str
    readable: bool
    editable: bool


@dataclass(frozen=True)
class ObjectAccess:
    object: str
    view_all_records: bool
    modify_all_records: bool
    needs_permission: bool = True
    """False for objects that are not permissionable (readable without an object permission)."""


@dataclass(frozen=True)
class UserPermissionAccess:
    permission: str
    label: str
    granted: bool
    needed_for: str
    why: str


@dataclass(frozen=True)
class PermissionReport:
    """The three lists of a permission check, in a stable order."""

    fields: tuple[FieldAccess, ...]
    objects: tuple[ObjectAccess, ...]
    user_permissions: tuple[UserPermissionAccess, ...]
    unreadable_objects: tuple[str, ...]
    checked_at: datetime

    @property
    def unreadable_fields(self) -> tuple[FieldAccess, ...]:
        return tuple(f for f in self.fields if not f.readable)

    @property
    def missing_permissions(self) -> tuple[UserPermissionAccess, ...]:
        return tuple(p for p in self.user_permissions if not p.granted)

    @property
    def backup_ready(self) -> bool:
        """Every permission a backup needs is granted."""
        return all(p.granted for p in self.user_permissions if p.needed_for == "backup")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the catalog's ``permission_reports`` row and the API."""
        return {
            "fields": [asdict(f) for f in self.fields],
            "objects": [asdict(o) for o in self.objects],
            "user_permissions": [asdict(p) for p in self.user_permissions],
            "unreadable_objects": list(self.unreadable_objects),
            "checked_at": self.checked_at.isoformat(),
        }


def flag(row: Mapping[str, Any], name: str) -> bool:
    """A Salesforce checkbox from REST (bool) or Bulk CSV (``"true"``); missing = False."""
    value = row.get(name)
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return False


def _permission_set(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """A ``PermissionSet`` row, or the one nested in a ``PermissionSetAssignment`` row."""
    nested = row.get("PermissionSet")
    return nested if isinstance(nested, Mapping) else row


def _split_field(row: Mapping[str, Any]) -> tuple[str, str]:
    obj = str(row.get("SobjectType") or "")
    qualified = str(row.get("Field") or "")
    prefix, dot, name = qualified.partition(".")
    if dot:
        return (obj or prefix), name
    return obj, qualified


def build_permission_report(
    field_rows: Iterable[Mapping[str, Any]],
    object_rows: Iterable[Mapping[str, Any]],
    permission_set_rows: Iterable[Mapping[str, Any]],
    checked_at: datetime,
    *,
    fields: Iterable[tuple[str, str]] = (),
    always_readable: Iterable[tuple[str, str]] = (),
    objects: Iterable[str] = (),
    no_permission_objects: Iterable[str] = (),
) -> PermissionReport:
    """Build the three lists from the rows of the user's permission sets.

    Args:
        field_rows: ``FieldPermissions`` rows (``SobjectType``, ``Field`` = ``"Account.Phone"``,
            ``PermissionsRead``, ``PermissionsEdit``).
        object_rows: ``ObjectPermissions`` rows (``SobjectType``, ``PermissionsRead``,
            ``PermissionsViewAllRecords``, ``PermissionsModifyAllRecords``).
        permission_set_rows: ``PermissionSet`` rows, or ``PermissionSetAssignment`` rows with
            a nested ``PermissionSet``, carrying the ``Permissions*`` flags of :data:`REQUIRED`.
        checked_at: when the rows were read.
        fields: ``(object, field)`` pairs to report even without a row (unreadable then).
        always_readable: non-permissionable ``(object, field)`` pairs (readable).
        objects: the org's objects; those the user cannot read go to ``unreadable_objects``.
        no_permission_objects: objects with no object permission in Salesforce (not
            permissionable), readable by the user; listed with ``needs_permission`` false.
    """
    require_aware(checked_at, "checked_at")
    read: dict[tuple[str, str], list[bool]] = {}
    for key in fields:
        read.setdefault(key, [False, False])
    for row in field_rows:
        key = _split_field(row)
        acc = read.setdefault(key, [False, False])
        acc[0] = acc[0] or flag(row, "PermissionsRead")
        acc[1] = acc[1] or flag(row, "PermissionsEdit")
    for key in always_readable:
        acc = read.setdefault(key, [False, False])
        acc[0] = True
    field_list = tuple(FieldAccess(o, f, r, e) for (o, f), (r, e) in sorted(read.items()))

    objs: dict[str, list[bool]] = {}
    for row in object_rows:
        name = str(row.get("SobjectType") or "")
        acc = objs.setdefault(name, [False, False, False])
        acc[0] = acc[0] or flag(row, "PermissionsRead")
        acc[1] = acc[1] or flag(row, "PermissionsViewAllRecords")
        acc[2] = acc[2] or flag(row, "PermissionsModifyAllRecords")
    readable = {name for name, acc in objs.items() if acc[0]}
    access = {n: ObjectAccess(n, objs[n][1], objs[n][2]) for n in readable}
    for name in no_permission_objects:
        access.setdefault(name, ObjectAccess(name, False, False, needs_permission=False))
    object_list = tuple(access[n] for n in sorted(access))
    unreadable = tuple(sorted(set(objects) - set(access)))

    sets = [_permission_set(r) for r in permission_set_rows]
    perms = tuple(
        UserPermissionAccess(p.field, p.label, any(flag(s, p.field) for s in sets), p.needed_for, p.why)
        for p in REQUIRED
    )
    return PermissionReport(field_list, object_list, perms, unreadable, checked_at)
