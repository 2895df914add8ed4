"""Discovery: describeGlobal + describe of every in-scope object, turned into object plans.

Describes run a few at a time (one REST call each). Field-level security hides unreadable
fields from describe entirely, so the only way to *report* them is the permission data:
:func:`unreadable_fields` reads ``FieldPermissions`` rows of the backup user's permission sets
and gives the hook :func:`engine.extract.scope.plan_object` takes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from engine.extract.model import ObjectPlan, ObjectSpec, ScopeDecision
from engine.extract.rest import RestApi
from engine.extract.scope import FieldPermissionHook, ScopeRules, plan_object, select_objects
from engine.extract.soql import Soql, string_literal


@dataclass(frozen=True)
class Discovery:
    """What a job will extract: one plan per in-scope object, and every scope decision."""

    decisions: tuple[ScopeDecision, ...]
    plans: tuple[ObjectPlan, ...]

    def plan(self, name: str) -> ObjectPlan | None:
        return next((p for p in self.plans if p.name == name), None)


def parse_global(body: Mapping[str, Any]) -> list[ObjectSpec]:
    """The describeGlobal entries as (field-less) object specs."""
    return [ObjectSpec.from_describe(d) for d in body.get("sobjects", [])]


def discover(
    rest: RestApi,
    rules: ScopeRules,
    *,
    field_permissions: FieldPermissionHook | None = None,
    parallel: int = 4,
) -> Discovery:
    """describeGlobal, scope decisions, then a describe of each included object (in parallel)."""
    decisions = select_objects(parse_global(rest.describe_global()), rules)
    names = [d.name for d in decisions if d.included]
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="describe") as pool:
        bodies = list(pool.map(rest.describe, names))
    plans = tuple(plan_object(ObjectSpec.from_describe(b), rules, field_permissions) for b in bodies)
    return Discovery(tuple(decisions), plans)


def unreadable_fields(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """``{object: {field: reason}}`` for fields no permission set of the user can read.

    ``rows`` are ``FieldPermissions`` records (``SobjectType``, ``Field`` as ``Object.Field``,
    ``PermissionsRead``) of the permission sets assigned to the backup user. A field with at
    least one row and no row granting read is unreadable; a field without rows is unknown and
    not reported.
    """
    readable: dict[tuple[str, str], bool] = {}
    for r in rows:
        obj = str(r.get("SobjectType") or "")
        fld = str(r.get("Field") or "")
        name = fld.split(".", 1)[1] if "." in fld else fld
        key = (obj, name)
        readable[key] = readable.get(key, False) or bool(r.get("PermissionsRead"))
    out: dict[str, dict[str, str]] = {}
    for (obj, name), ok in sorted(readable.items()):
        if not ok:
            out.setdefault(obj, {})[name] = "no read permission for the backup user (field-level security)"
    return out


def permission_hook(rest: RestApi, user_id: str) -> FieldPermissionHook:
    """A hook backed by the user's ``FieldPermissions`` (two REST queries, run once)."""
    assigned = Soql.select("PermissionSetAssignment", ["Id", "PermissionSetId"]).and_where(
        f"AssigneeId = {string_literal(user_id)}"
    )
    set_ids = [str(r["PermissionSetId"]) for r in rest.query_records(assigned.in_id_order())]
    if not set_ids:
        return lambda spec: {}
    in_list = ", ".join(string_literal(i) for i in set_ids)
    q = Soql.select("FieldPermissions", ["Id", "SobjectType", "Field", "PermissionsRead"]).and_where(
        f"ParentId IN ({in_list})"
    )
    table = unreadable_fields(rest.query_records(q.in_id_order()))
    return lambda spec: table.get(spec.name, {})
