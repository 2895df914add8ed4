"""Permission checks: when they are due, and the three-list report built from Salesforce rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import FrozenClock
from engine.errors import InvalidPolicySetting
from engine.policy import (
    REQUIRED,
    PermissionCheckSettings,
    build_permission_report,
    next_permission_check,
    permission_check_due,
)

CONNECTED = datetime(2026, 1, 15, 10, tzinfo=UTC)


def test_first_check_is_at_connection_then_every_30_days() -> None:
    s = PermissionCheckSettings(CONNECTED)
    clock = FrozenClock(CONNECTED - timedelta(seconds=1))
    assert not permission_check_due(s, None, clock.now())
    assert next_permission_check(s, None, clock.now()) == CONNECTED
    clock.advance(timedelta(seconds=1))
    assert permission_check_due(s, None, clock.now())
    last = clock.now()
    assert not permission_check_due(s, last, clock.now())
    assert next_permission_check(s, last, clock.now()) == CONNECTED + timedelta(days=30)
    clock.advance(timedelta(days=30) - timedelta(microseconds=1))
    assert not permission_check_due(s, last, clock.now())
    clock.advance(timedelta(microseconds=1))
    assert permission_check_due(s, last, clock.now())


def test_custom_start_and_interval_and_missed_points_coalesce() -> None:
    start = datetime(2026, 2, 1, 6, tzinfo=UTC)
    s = PermissionCheckSettings(CONNECTED, start=start, interval_days=7)
    assert not permission_check_due(s, None, CONNECTED + timedelta(days=1))
    long_after = start + timedelta(days=7 * 5 + 2)
    last = start  # the scheduler was down for five weeks
    assert permission_check_due(s, last, long_after)
    assert next_permission_check(s, last, long_after) == start + timedelta(days=35)
    assert not permission_check_due(s, long_after, long_after)  # one check covers all missed points
    assert next_permission_check(s, long_after, long_after) == start + timedelta(days=42)


def test_on_demand_checks_do_not_move_the_grid_and_off_means_never() -> None:
    s = PermissionCheckSettings(CONNECTED)
    # an on-demand check on day 29 is not a scheduled check: day 30 is still due
    assert permission_check_due(s, CONNECTED, CONNECTED + timedelta(days=30))
    off = PermissionCheckSettings(CONNECTED, enabled=False)
    assert not permission_check_due(off, None, CONNECTED + timedelta(days=90))
    assert next_permission_check(off, None, CONNECTED) is None


def test_settings_validation() -> None:
    with pytest.raises(InvalidPolicySetting):
        PermissionCheckSettings(CONNECTED, interval_days=0)
    with pytest.raises(InvalidPolicySetting):
        PermissionCheckSettings(datetime(2026, 1, 1))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 60), st.lists(st.integers(1, 24 * 90), min_size=1, max_size=30))
def test_property_a_ticking_scheduler_checks_once_per_grid_point(interval: int, steps: list[int]) -> None:
    s = PermissionCheckSettings(CONNECTED, interval_days=interval)
    now, last, checks = CONNECTED, None, 0
    for h in steps:
        if permission_check_due(s, last, now):
            last, checks = now, checks + 1
        nxt = next_permission_check(s, last, now)
        assert nxt is not None and (nxt > now or permission_check_due(s, last, now))
        now += timedelta(hours=h)
    points = (now - timedelta(hours=steps[-1]) - CONNECTED) // timedelta(days=interval) + 1
    assert 1 <= checks <= points


# --- the report --------------------------------------------------------------------------------

FIELD_ROWS: list[dict[str, Any]] = [
    {
        "ParentId": "0PS1",
        "SobjectType": "Account",
        "Field": "Account.Phone",
        "PermissionsRead": True,
        "PermissionsEdit": False,
    },
    {
        "ParentId": "0PS2",
        "SobjectType": "Account",
        "Field": "Account.Phone",
        "PermissionsRead": False,
        "PermissionsEdit": True,
    },
    {
        "ParentId": "0PS1",
        "SobjectType": "Account",
        "Field": "Account.Secret__c",
        "PermissionsRead": "false",
        "PermissionsEdit": "false",
    },  # Bulk CSV strings
    {"ParentId": "0PS1", "SobjectType": "Case", "Field": "Case.Reason", "PermissionsRead": "true"},
]
OBJECT_ROWS: list[dict[str, Any]] = [
    {
        "ParentId": "0PS1",
        "SobjectType": "Account",
        "PermissionsRead": True,
        "PermissionsViewAllRecords": False,
    },
    {
        "ParentId": "0PS2",
        "SobjectType": "Account",
        "PermissionsRead": False,
        "PermissionsViewAllRecords": True,
    },
    {"ParentId": "0PS1", "SobjectType": "Case", "PermissionsRead": True},
    {"ParentId": "0PS1", "SobjectType": "Invoice__c", "PermissionsRead": False},
]
ASSIGNMENTS: list[dict[str, Any]] = [
    {
        "PermissionSetId": "0PS1",
        "PermissionSet": {
            "Name": "X00ex_profile",
            "IsOwnedByProfile": True,
            "PermissionsApiEnabled": True,
            "PermissionsViewSetup": True,
        },
    },
    {
        "PermissionSetId": "0PS2",
        "PermissionSet": {
            "Name": "Backup",
            "IsOwnedByProfile": False,
            "PermissionsViewAllData": "true",
            "PermissionsViewAllUsers": True,
        },
    },
]
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_report_has_the_three_lists_with_effective_permissions() -> None:
    r = build_permission_report(
        FIELD_ROWS,
        OBJECT_ROWS,
        ASSIGNMENTS,
        NOW,
        fields=[("Lead", "Email")],
        always_readable=[("Account", "Id"), ("Account", "Name")],
        objects=["Account", "Case", "Invoice__c", "Lead"],
    )
    by = {(f.object, f.field): (f.readable, f.editable) for f in r.fields}
    assert by == {
        ("Account", "Id"): (True, False),
        ("Account", "Name"): (True, False),
        ("Account", "Phone"): (True, True),  # read from one set, edit from another: both effective
        ("Account", "Secret__c"): (False, False),
        ("Case", "Reason"): (True, False),
        ("Lead", "Email"): (False, False),  # no row: cannot be protected
    }
    assert [(f.object, f.field) for f in r.unreadable_fields] == [("Account", "Secret__c"), ("Lead", "Email")]
    assert [(o.object, o.view_all_records) for o in r.objects] == [("Account", True), ("Case", False)]
    assert r.unreadable_objects == ("Invoice__c", "Lead")
    granted = {p.permission: p.granted for p in r.user_permissions}
    assert granted["PermissionsApiEnabled"] and granted["PermissionsViewAllData"]
    assert not granted["PermissionsQueryAllFiles"] and not granted["PermissionsModifyAllData"]
    assert [p.label for p in r.user_permissions] == [p.label for p in REQUIRED]
    assert {p.label for p in r.missing_permissions} >= {"Query All Files", "Modify All Data"}
    assert not r.backup_ready  # Query All Files is missing
    qaf = next(p for p in r.user_permissions if p.label == "Query All Files")
    assert qaf.needed_for == "backup" and "ContentVersion" in qaf.why


def test_objects_that_need_no_permission_are_listed_readable() -> None:
    """User, Organization, *History ...: no ObjectPermissions row exists, every API user reads them."""
    r = build_permission_report(
        FIELD_ROWS, OBJECT_ROWS, ASSIGNMENTS, NOW,
        objects=["Account", "Case", "Invoice__c", "Lead"],
        no_permission_objects=["User", "AccountHistory", "Organization"],
    )  # fmt: skip
    assert [(o.object, o.needs_permission) for o in r.objects] == [
        ("Account", True), ("AccountHistory", False), ("Case", True), ("Organization", False),
        ("User", False),
    ]  # fmt: skip
    assert r.unreadable_objects == ("Invoice__c", "Lead")
    assert r.to_dict()["objects"][1] == {
        "object": "AccountHistory", "view_all_records": False, "modify_all_records": False,
        "needs_permission": False,
    }  # fmt: skip


def test_report_serialises_for_the_catalog_row() -> None:
    r = build_permission_report(FIELD_ROWS, OBJECT_ROWS, ASSIGNMENTS, NOW)
    d = r.to_dict()
    assert set(d) == {"fields", "objects", "user_permissions", "unreadable_objects", "checked_at"}
    assert d["fields"][0] == {"object": "Account", "field": "Phone", "readable": True, "editable": True}
    assert d["checked_at"] == "2026-03-01T00:00:00+00:00"


def test_flat_permission_set_rows_and_a_fully_permitted_user() -> None:
    flat: list[dict[str, Any]] = [{"Id": "0PS9", **{p.field: True for p in REQUIRED}}]
    r = build_permission_report([], [], flat, NOW)
    assert r.backup_ready and r.missing_permissions == ()
    assert r.fields == () and r.objects == ()


def test_required_permissions_cover_backup_and_restore() -> None:
    labels = {p.label for p in REQUIRED}
    assert {"API Enabled", "View All Data", "Query All Files", "Modify All Data"} <= labels
    assert {p.needed_for for p in REQUIRED} >= {"backup", "restore"}
    assert all(p.why for p in REQUIRED)
