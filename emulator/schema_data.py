"""The org's objects as data: describe-shaped definitions the emulator loads at startup.

An object is a JSON object with describe's own key names (``name``, ``label``, ``labelPlural``,
``keyPrefix``, ``queryable``, ``retrieveable``, ``replicateable``, ``associateEntityType``,
``customSetting`` ...), the emulator's two facts Salesforce does not describe (``bulkSupported``:
Bulk API can query it; ``requiresFilter``: a query must filter on a parent Id), and ``fields``,
each with describe's field keys (``name``, ``type``, ``length``, ``referenceTo``,
``relationshipName``, ``picklistValues`` ...). A key at its default is left out, so a
definition says only what is particular to the object. :func:`object_to_data` and
:func:`object_from_data` convert both ways; the standard objects of :func:`emulator.schema.build_schema`
convert to data and back unchanged (``tests/unit/test_emulator_schema_data.py``).

A description (``{"objects": [...], "rows": {name: n}}``) adds objects to the org and says how
many rows the generator writes in each (values by field type). :func:`wide_org` builds the
description of an org of a few hundred objects as a real one describes them: standard Sales and
Service objects (mostly empty), custom objects of varied shapes with their ``__History``,
``__Share`` and ``__Feed`` objects, ``ChangeEvent`` objects (not queryable), objects Bulk API
cannot query, a custom setting, an object that is not retrieveable and one with 800 fields.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

from emulator.ids import BASE62
from emulator.schema import FieldDef, ObjectDef
from emulator.schema_fields import _audit, _f, _id, _obj, _owner, _pick, _ref, _sys

FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(FieldDef)}
OBJECT_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ObjectDef) if f.name not in ("_by_name",)}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


FIELD_KEYS = {_camel(k): k for k in FIELD_DEFAULTS}
OBJECT_KEYS = {_camel(k): k for k in OBJECT_DEFAULTS}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def field_to_data(f: FieldDef) -> dict[str, Any]:
    """A field as describe-shaped data: ``name``, ``type`` and every key not at its default."""
    out: dict[str, Any] = {"name": f.name, "type": f.type}
    for key, attr in FIELD_KEYS.items():
        value = getattr(f, attr)
        if attr not in ("name", "type") and value != FIELD_DEFAULTS[attr]:
            out[key] = _plain(value)
    return out


def field_from_data(d: dict[str, Any]) -> FieldDef:
    unknown = set(d) - set(FIELD_KEYS)
    if unknown:
        raise ValueError(f"field {d.get('name')!r}: unknown keys {sorted(unknown)}")
    kw: dict[str, Any] = {FIELD_KEYS[k]: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return FieldDef(**kw)


def object_to_data(o: ObjectDef) -> dict[str, Any]:
    """An object as describe-shaped data (see the module docstring)."""
    out: dict[str, Any] = {"name": o.name}
    for key, attr in OBJECT_KEYS.items():
        value = getattr(o, attr)
        if attr == "fields":
            out["fields"] = [field_to_data(f) for f in value]
        elif attr != "name" and (
            attr in ("label", "label_plural", "key_prefix") or value != OBJECT_DEFAULTS[attr]
        ):
            out[key] = value
    return out


def object_from_data(d: dict[str, Any]) -> ObjectDef:
    unknown = set(d) - set(OBJECT_KEYS)
    if unknown:
        raise ValueError(f"object {d.get('name')!r}: unknown keys {sorted(unknown)}")
    kw = {OBJECT_KEYS[k]: v for k, v in d.items() if k != "fields"}
    return ObjectDef(fields=tuple(field_from_data(f) for f in d.get("fields", ())), **kw)


def load_description(doc: dict[str, Any]) -> tuple[list[ObjectDef], dict[str, int]]:
    """The objects of a description and the rows to generate in each (0 when not given)."""
    objects = [object_from_data(o) for o in doc.get("objects", ())]
    given = {str(k): int(v) for k, v in (doc.get("rows") or {}).items()}
    stray = sorted(set(given) - {o.name for o in objects})
    if stray:
        raise ValueError(f"rows given for objects the description does not define: {stray}")
    return objects, {o.name: given.get(o.name, 0) for o in objects}


MAX_DESCRIPTION_BYTES = 64 * 1024 * 1024
"""A schema description larger than this is refused (and a device such as ``/dev/full``, which
never ends, is not read forever)."""


def read_description(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        raw = f.read(MAX_DESCRIPTION_BYTES + 1)
    if len(raw) > MAX_DESCRIPTION_BYTES:
        raise ValueError(f"{path}: a schema description is at most {MAX_DESCRIPTION_BYTES} bytes")
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a schema description is a JSON object")
    return doc


# ---------------------------------------------------------------------------------------------
# a wide org

STANDARD_EMPTY = (
    "Asset",
    "AssetRelationship",
    "AuthorizationForm",
    "Campaign",
    "CampaignMember",
    "CaseComment",
    "CaseContactRole",
    "CaseMilestone",
    "CaseSolution",
    "ChannelProgram",
    "CollaborationGroup",
    "Contract",
    "ContractContactRole",
    "ContractLineItem",
    "CreditMemo",
    "Dashboard",
    "Entitlement",
    "EntitlementContact",
    "EmailMessage",
    "EmailTemplate",
    "Folder",
    "Group",
    "GroupMember",
    "Idea",
    "Individual",
    "Location",
    "Macro",
    "MilestoneType",
    "Note",
    "OperatingHours",
    "Order",
    "OrderItem",
    "OpportunityContactRole",
    "OpportunityLineItem",
    "OpportunityCompetitor",
    "Partner",
    "Pricebook2",
    "PricebookEntry",
    "Product2",
    "ProductConsumed",
    "ProductItem",
    "ProductRequest",
    "ProductTransfer",
    "Quote",
    "QuoteLineItem",
    "QuickText",
    "RecordType",
    "Report",
    "ReturnOrder",
    "ReturnOrderLineItem",
    "ServiceAppointment",
    "ServiceContract",
    "ServiceResource",
    "ServiceTerritory",
    "Shift",
    "Skill",
    "Solution",
    "Topic",
    "TopicAssignment",
    "UserRole",
    "WorkOrder",
    "WorkOrderLineItem",
    "WorkPlan",
    "WorkStep",
    "WorkType",
)
"""Standard objects of a Sales and Service org, most of them empty or small."""

BULK_UNSUPPORTED = (
    "CaseStatus",
    "ContractStatus",
    "OrderStatus",
    "PartnerRole",
    "SolutionStatus",
    "TaskPriority",
    "TaskStatus",
    "WorkOrderStatus",
)
"""Queryable objects that Bulk API refuses (``INVALIDENTITY``); Salesforce's list (SALESFORCE_API.md §6)."""

SHAPES: tuple[tuple[str, str], ...] = (
    ("string", "Code"),
    ("double", "Score"),
    ("currency", "Amount"),
    ("percent", "Rate"),
    ("date", "Due"),
    ("datetime", "Seen_At"),
    ("boolean", "Active"),
    ("picklist", "Stage"),
    ("email", "Contact_Email"),
    ("phone", "Phone"),
    ("url", "Link"),
    ("textarea", "Notes"),
    ("int", "Count"),
    ("time", "Window"),
    ("multipicklist", "Tags"),
    ("reference", "Account"),
)


def _typed(name: str, type_: str) -> FieldDef:
    if type_ == "picklist":
        return _pick(name, ("New", "Working", "Done"))
    if type_ == "multipicklist":
        return _f(name, "multipicklist", picklist_values=("Red", "Green", "Blue"))
    if type_ == "reference":
        return _ref(name, "Account", name.removesuffix("__c") + "__r")
    if type_ == "textarea":
        return _f(name, "textarea", length=1000)
    return _f(name, type_)


def _record_fields() -> list[FieldDef]:
    name = _f(
        "Name", "string", length=80, name_field=True, nillable=False, custom=False, permissionable=False
    )
    return [_id(), _owner(("Group", "User")), _sys("IsDeleted", "boolean"), name, *_audit(deleted=False)]


CHANGE_EVENT_FLAGS = dict.fromkeys(
    ("queryable", "retrieveable", "replicateable", "createable", "updateable", "deletable", "searchable"),
    False,
)
"""A ``ChangeEvent`` object is none of these (it is subscribed to, not queried)."""


def _associated(parent: str, kind: str, prefix: str) -> ObjectDef:
    """``parent``'s ``__History`` / ``__Share`` / ``__Feed`` / ``ChangeEvent`` object."""
    base = parent.removesuffix("__c")
    name = {
        "History": f"{base}__History",
        "Share": f"{base}__Share",
        "Feed": f"{base}__Feed",
        "ChangeEvent": f"{base}__ChangeEvent",
    }[kind]
    fields, extra = _associated_fields(parent, kind)
    return _obj(
        name,
        fields,
        key_prefix=prefix,
        custom=kind != "ChangeEvent",
        associate_entity_type=kind,
        associate_parent_entity=parent,
        **extra,
    )


def _associated_fields(parent: str, kind: str) -> tuple[list[FieldDef], dict[str, Any]]:
    """The fields of ``parent``'s associated object of ``kind``, and its describe flags."""
    parent_ref = _ref("ParentId", parent, "Parent", nillable=False, permissionable=False)
    created = [
        _sys("CreatedDate", "datetime"),
        _ref(
            "CreatedById",
            "User",
            "CreatedBy",
            nillable=False,
            createable=False,
            updateable=False,
            permissionable=False,
        ),
    ]
    if kind == "History":
        fields = [
            _id(),
            _sys("IsDeleted", "boolean"),
            parent_ref,
            *created,
            _f("Field", "picklist", picklist_values=("Name", "created"), permissionable=False),
            _f("DataType", "string", permissionable=False),
            _f("OldValue", "string", permissionable=False),
            _f("NewValue", "string", permissionable=False),
        ]
        return fields, {"createable": False, "updateable": False, "deletable": False}
    if kind == "Share":
        fields = [
            _id(),
            parent_ref,
            _ref("UserOrGroupId", ("User", "Group"), "UserOrGroup", permissionable=False),
            _pick("AccessLevel", ("Read", "Edit", "All"), permissionable=False),
            _pick("RowCause", ("Owner", "Manual"), permissionable=False),
            _sys("LastModifiedDate", "datetime"),
            _sys("IsDeleted", "boolean"),
        ]
        return fields, {}
    if kind == "Feed":
        fields = [
            _id(),
            parent_ref,
            _pick("Type", ("TextPost", "LinkPost"), permissionable=False),
            *created,
            _sys("IsDeleted", "boolean"),
            _sys("LastModifiedDate", "datetime"),
            _sys("SystemModstamp", "datetime"),
            _f("Body", "textarea", length=10000, permissionable=False),
        ]
        return fields, {}
    fields = [
        _id(),
        _f("ReplayId", "string", permissionable=False),
        _f("ChangeEventHeader", "string", permissionable=False),
        _f("Name", "string", permissionable=False),
    ]
    return fields, dict(CHANGE_EVENT_FLAGS)


def _prefixes(lead: str, start: int = 0) -> Any:
    i = start
    while True:
        yield lead + BASE62[(i // 62) % 62] + BASE62[i % 62]
        i += 1


REAL_ORG_OBJECTS = 300
"""Objects :func:`wide_org` adds to an org served with default settings (``sfvault emulator serve``):
with the 27 core objects, several hundred, as a Sales and Service org describes (decision 0038).
The test harness (:func:`emulator.launcher.start_emulator`) adds none unless a test asks."""


def wide_org(objects: int = REAL_ORG_OBJECTS, seed: int = 1, *, max_rows: int = 12) -> dict[str, Any]:
    """The description of ``objects`` more objects (at least 40), a real org's shape at a small scale.

    Deterministic for a ``seed``. Rows: at most ``max_rows`` per custom object (0 in most
    standard ones), so a backup of the whole org stays quick; ``Wide__c`` has 800 fields.
    """
    if objects < 40:
        raise ValueError("a wide org adds at least 40 objects")
    rnd = random.Random(seed)
    custom_prefix, std_prefix = _prefixes("a", 62 * 4), _prefixes("9")
    out: list[ObjectDef] = []
    rows: dict[str, int] = {}

    wide = [*_record_fields(), *(_typed(f"F{i:03d}__c", SHAPES[i % len(SHAPES)][0]) for i in range(800 - 9))]
    out.append(_obj("Wide__c", wide, custom=True, key_prefix=next(custom_prefix)))
    rows["Wide__c"] = min(5, max_rows)
    for name in BULK_UNSUPPORTED:  # picklist-value objects: a few rows, no owner
        fields = [
            _id(),
            _f("MasterLabel", "string", permissionable=False),
            _f("ApiName", "string", permissionable=False),
            _f("SortOrder", "int", permissionable=False),
            *_audit(),
        ]
        out.append(
            _obj(
                name,
                fields,
                key_prefix=next(std_prefix),
                bulk_supported=False,
                createable=False,
                updateable=False,
                deletable=False,
            )
        )
        rows[name] = 4
    settings = [
        _id(),
        _f("Name", "string", length=38, permissionable=False),
        _sys("IsDeleted", "boolean"),
        _f(
            "SetupOwnerId",
            "reference",
            reference_to=("Organization", "Profile", "User"),
            relationship_name="SetupOwner",
            permissionable=False,
        ),
        *_audit(deleted=False),
        _f("Endpoint__c", "url"),
        _f("Timeout__c", "double"),
    ]
    out.append(
        _obj("App_Settings__c", settings, custom=True, custom_setting=True, key_prefix=next(custom_prefix))
    )
    rows["App_Settings__c"] = 2
    hidden = [*_record_fields(), _f("Secret__c", "string")]
    out.append(_obj("Vault_Key__c", hidden, custom=True, queryable=False, key_prefix=next(custom_prefix)))
    out.append(_obj("Sync_State__c", hidden, custom=True, retrieveable=False, key_prefix=next(custom_prefix)))
    for name in STANDARD_EMPTY:
        if len(out) >= objects:
            break
        # no field-level security on these (the generator writes FieldPermissions for custom objects)
        description = _f("Description", "textarea", length=32000, permissionable=False)
        out.append(_obj(name, [*_record_fields(), description], key_prefix=next(std_prefix)))
        rows[name] = rnd.choice((0, 0, 0, 1, 3))
    i = 0
    while len(out) < objects:
        name = f"Item_{i:03d}__c"
        shape = rnd.sample(SHAPES, rnd.randint(1, 12))
        fields = [*_record_fields(), *(_typed(f"{label}__c", t) for t, label in shape)]
        out.append(_obj(name, fields, custom=True, key_prefix=next(custom_prefix), feed_enabled=i % 7 == 0))
        rows[name] = rnd.randint(0, max_rows)
        for kind, every in (("History", 2), ("Share", 3), ("Feed", 7), ("ChangeEvent", 5)):
            if i % every == 0 and len(out) < objects:
                assoc = _associated(name, kind, next(custom_prefix))
                out.append(assoc)
                if kind in ("History", "Feed"):
                    rows[assoc.name] = rnd.randint(0, max_rows)
        i += 1
    return {"objects": [object_to_data(o) for o in out], "rows": rows}
