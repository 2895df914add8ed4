"""Which files a user without "Query All Files" sees (SALESFORCE_API.md section 2.8).

Querying ContentVersion / ContentDocument org-wide needs ``PermissionsQueryAllFiles`` on one of
the user's permission sets (the profile's own set included); without it Salesforce answers with
only the files the user can see. The emulator's rule for those, kept deterministic:

* a **ContentDocument** is visible when the user owns it (``OwnerId``) or a
  ``ContentDocumentLink`` shares it with the user (``LinkedEntityId`` = the user);
* a **ContentVersion** is visible when its ContentDocument is visible; a version with no document
  (one inserted through the emulator's REST API) when the user owns it.

:func:`visibility_condition` is the one place the rule is written: the SOQL translation adds it
to the WHERE clause of every REST ``query`` / ``queryAll`` and Bulk 2.0 query job on those objects
(COUNT() included), and :func:`file_visible` asks the same condition for one record (the blob
endpoint answers 404 NOT_FOUND for a body the user cannot see). A user with the permission (the
default org's integration user) sees every file and the SQL is unchanged.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.store import OrgStore

FILE_OBJECTS = frozenset({"ContentVersion", "ContentDocument"})
PERMISSION = "PermissionsQueryAllFiles"
_ID = re.compile(r"^[A-Za-z0-9]{15,18}$")
_granted: weakref.WeakKeyDictionary[OrgStore, tuple[int, str, bool]] = weakref.WeakKeyDictionary()


def user_permission(store: OrgStore, user_id: str, permission: str = PERMISSION) -> bool:
    """True when any permission set assigned to ``user_id`` grants ``permission``.

    Cached per store until its next write (the write lock's generation moves on every write).
    """
    gen = store.lock.generation
    cached = _granted.get(store)
    if cached is not None and cached[0] == gen and cached[1] == f"{user_id}/{permission}":
        return cached[2]
    ps, psa = store.object_def("PermissionSet"), store.object_def("PermissionSetAssignment")
    if not permission.startswith("Permissions") or ps.field(permission) is None:
        raise ValueError(f"not a PermissionSet flag: {permission}")
    with store.cursor() as cur:
        row = cur.execute(
            f'SELECT coalesce(bool_or(p."{permission}"), false) FROM {store.table_name(psa)} a'
            f' JOIN {store.table_name(ps)} p ON p."Id" = a."PermissionSetId" WHERE a."AssigneeId" = ?',
            [user_id],
        ).fetchone()
    granted = bool(row and row[0])
    _granted[store] = (gen, f"{user_id}/{permission}", granted)
    return granted


def set_user_permission(store: OrgStore, user_id: str, permission: str, granted: bool) -> list[str]:
    """Set ``permission`` on every permission set assigned to ``user_id``; the changed set Ids.

    Like an admin editing the user's profile and permission sets in Setup (profile sets are
    shared with the profile's other users).
    """
    ps, psa = store.object_def("PermissionSet"), store.object_def("PermissionSetAssignment")
    if not permission.startswith("Permissions") or ps.field(permission) is None:
        raise ValueError(f"not a PermissionSet flag: {permission}")
    with store.cursor() as cur:
        ids = [
            str(r[0])
            for r in cur.execute(
                f'SELECT DISTINCT "PermissionSetId" FROM {store.table_name(psa)} WHERE "AssigneeId" = ?'
                " ORDER BY 1",
                [user_id],
            ).fetchall()
        ]
    if ids:
        store.update_many(ps.name, ids, {permission: granted})
    return ids


def hidden_files_user(store: OrgStore, user_id: str) -> str | None:
    """``user_id`` when file visibility limits what it sees (no Query All Files), else None."""
    return None if user_permission(store, user_id) else user_id


def visibility_condition(
    obj_name: str, alias: str, user_id: str, table_of: Callable[[str], str]
) -> str | None:
    """The SQL condition on ``alias`` (a row of ``obj_name``) that keeps the files ``user_id`` sees.

    ``table_of`` maps an object name to its table (``sf_contentdocument``). None for objects that
    are not files.
    """
    if obj_name not in FILE_OBJECTS:
        return None
    if not _ID.match(user_id):
        raise ValueError(f"not a record Id: {user_id!r}")
    u = f"'{user_id}'"
    docs = (
        f'SELECT d."Id" FROM {table_of("ContentDocument")} AS d WHERE d."OwnerId" = {u}'
        f' OR d."Id" IN (SELECT l."ContentDocumentId" FROM {table_of("ContentDocumentLink")} AS l'
        f' WHERE l."LinkedEntityId" = {u})'
    )
    if obj_name == "ContentDocument":
        return f'coalesce({alias}."Id" IN ({docs}), false)'
    return (
        f'(coalesce({alias}."ContentDocumentId" IN ({docs}), false)'
        f' OR ({alias}."ContentDocumentId" IS NULL AND {alias}."OwnerId" = {u}))'
    )


def file_visible(store: OrgStore, obj_name: str, record_id: str, user_id: str) -> bool:
    """True when ``user_id`` sees the file record (always, with Query All Files or for non-files)."""
    if obj_name not in FILE_OBJECTS or user_permission(store, user_id):
        return True
    obj = store.object_def(obj_name)
    cond = visibility_condition(obj.name, "t", user_id, lambda n: store.table_name(store.object_def(n)))
    assert cond is not None
    with store.cursor() as cur:
        row = cur.execute(
            f'SELECT 1 FROM {store.table_name(obj)} AS t WHERE t."Id" = ? AND {cond}', [record_id]
        ).fetchone()
    return row is not None
