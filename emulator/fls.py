"""Field-level security from the org's own ``FieldPermissions``, as Salesforce applies it.

A permissionable field is readable by a user when a ``FieldPermissions`` row of one of the
user's permission sets (its profile's set included) grants ``PermissionsRead``. Salesforce
keeps no row for a field a set cannot read, so "no granting row" means hidden; the emulator
applies that to every field that has at least one ``FieldPermissions`` row in the org (the
generator writes rows for the CRM and custom objects; fields of other objects, and fields that
are not permissionable such as Id, Name and audit fields, keep the schema's fixed visibility).

A hidden field is absent from describe, and SOQL that names it fails with ``INVALID_FIELD``
in REST and Bulk API queries, as if it did not exist. :func:`visible_schema` gives the schema
the API routes use: the store's schema with those fields ``readable=False``. It is cached per
store until the next write (the write lock's generation), and rebuilt only when the hidden set
changed, so revoking a permission through the API (``PATCH sobjects/FieldPermissions/{id}``)
takes effect on the next request.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.schema import ObjectDef
    from emulator.store import OrgStore

Hidden = frozenset[tuple[str, str]]


@dataclasses.dataclass
class _View:
    generation: int
    user_id: str
    hidden: Hidden
    schema: dict[str, ObjectDef]


_views: weakref.WeakKeyDictionary[OrgStore, _View] = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def hidden_fields(store: OrgStore, user_id: str) -> Hidden:
    """``(object, field)`` pairs with ``FieldPermissions`` rows in the org, none of them granting
    read in a permission set assigned to ``user_id``."""
    fp = store.table_name(store.object_def("FieldPermissions"))
    psa = store.table_name(store.object_def("PermissionSetAssignment"))
    with store.cursor() as cur:
        sets = f'SELECT "PermissionSetId" FROM {psa} WHERE "AssigneeId" = ?'
        rows = cur.execute(
            f'SELECT "SobjectType", "Field" FROM {fp} GROUP BY 1, 2'
            f' HAVING NOT coalesce(bool_or("PermissionsRead" AND "ParentId" IN ({sets})), false)',
            [user_id],
        ).fetchall()
    out: set[tuple[str, str]] = set()
    for obj, qualified in rows:
        name = str(qualified).split(".", 1)[1] if "." in str(qualified) else str(qualified)
        out.add((str(obj), name))
    return frozenset(out)


def apply_hidden(schema: dict[str, ObjectDef], hidden: Hidden) -> dict[str, ObjectDef]:
    """``schema`` with the ``hidden`` permissionable fields made unreadable (other objects shared)."""
    by_object: dict[str, set[str]] = {}
    for obj_name, field_name in hidden:
        by_object.setdefault(obj_name.lower(), set()).add(field_name.lower())
    out: dict[str, ObjectDef] = {}
    for key, obj in schema.items():
        names = by_object.get(obj.name.lower())
        if not names:
            out[key] = obj
            continue
        fields = tuple(
            dataclasses.replace(f, readable=False) if f.permissionable and f.name.lower() in names else f
            for f in obj.fields
        )
        out[key] = dataclasses.replace(obj, fields=fields, _by_name={})
    return out


def visible_schema(store: OrgStore, user_id: str) -> dict[str, ObjectDef]:
    """The store's schema as ``user_id`` sees it through field-level security."""
    gen = store.lock.generation
    view = _views.get(store)
    if view is not None and view.generation == gen and view.user_id == user_id:
        return view.schema
    with _guard:
        view = _views.get(store)
        if view is not None and view.generation == gen and view.user_id == user_id:
            return view.schema
        hidden = hidden_fields(store, user_id)
        if view is not None and view.user_id == user_id and view.hidden == hidden:
            schema = view.schema
        else:
            schema = apply_hidden(store.schema, hidden) if hidden else store.schema
        _views[store] = _View(gen, user_id, hidden, schema)
        return schema
