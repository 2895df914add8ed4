"""The emulated org's schema: objects, fields, and the describe JSON built from them.

The org's objects are data: ``emulator/objects.json`` holds their describe-shaped definitions
(:mod:`emulator.schema_data` reads and writes that shape) and :func:`build_schema` loads them, so
adding a standard object is adding an entry there.

Field ``type`` values are Salesforce describe types only (SALESFORCE_API.md §2.3). Compound
fields (``address``, ``location``) and blob fields (``base64``) have no column of their own in
the store: compounds are assembled from their component fields, blobs live beside the row.
A field with ``readable=False`` is hidden by field-level security from the integration user:
it is absent from describe and SOQL that names it fails with ``INVALID_FIELD``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.ids import KEY_PREFIXES, custom_key_prefix

FIELD_TYPES = frozenset(
    {
        "id", "string", "textarea", "picklist", "multipicklist", "currency", "percent", "double",
        "int", "date", "datetime", "time", "boolean", "email", "phone", "url", "reference",
        "base64", "address", "location",
    }
)  # fmt: skip

SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "textarea": "xsd:string",
    "picklist": "xsd:string",
    "multipicklist": "xsd:string",
    "email": "xsd:string",
    "phone": "xsd:string",
    "url": "xsd:string",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "double": "xsd:double",
    "int": "xsd:int",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "time": "xsd:time",
    "boolean": "xsd:boolean",
    "base64": "xsd:base64Binary",
    "address": "urn:address",
    "location": "urn:location",
}

TEXT_TYPES = frozenset({"string", "textarea", "picklist", "multipicklist", "email", "phone", "url"})
NUMBER_TYPES = frozenset({"currency", "percent", "double", "int"})
ID_TYPES = frozenset({"id", "reference"})
COMPOUND_TYPES = frozenset({"address", "location"})
AUDIT_FIELDS = ("CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp")

# address JSON keys (REST) -> component suffix (e.g. "Billing" + "City")
ADDRESS_COMPONENTS = (
    ("street", "Street"),
    ("city", "City"),
    ("state", "State"),
    ("postalCode", "PostalCode"),
    ("country", "Country"),
    ("latitude", "Latitude"),
    ("longitude", "Longitude"),
    ("geocodeAccuracy", "GeocodeAccuracy"),
)
ADDRESS_KEYS = (
    "city", "country", "countryCode", "geocodeAccuracy", "latitude", "longitude", "postalCode",
    "state", "stateCode", "street",
)  # fmt: skip


@dataclass(frozen=True)
class FieldDef:
    """One field of an sObject, with the flags describe reports."""

    name: str
    type: str
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    nillable: bool = True
    custom: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist_values: tuple[str, ...] = ()
    compound_field_name: str | None = None
    readable: bool = True
    createable: bool = True
    updateable: bool = True
    filterable: bool = True
    sortable: bool = True
    groupable: bool = True
    aggregatable: bool = True
    calculated: bool = False
    auto_number: bool = False
    name_field: bool = False
    external_id: bool = False
    unique: bool = False
    id_lookup: bool = False
    defaulted_on_create: bool = False
    permissionable: bool = False
    digits: int = 0
    generate: str | Mapping[str, Any] | None = field(default=None, hash=False)
    """How the generator fills this field (:mod:`emulator.generator`); not part of describe."""

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"{self.name}: not a describe type: {self.type}")

    @property
    def has_column(self) -> bool:
        """True when the store keeps this field in a column of the object's table."""
        return self.type not in COMPOUND_TYPES and self.type != "base64"

    @property
    def soap_type(self) -> str:
        return SOAP_TYPES[self.type]

    @property
    def polymorphic(self) -> bool:
        return len(self.reference_to) > 1


@dataclass(frozen=True)
class ObjectDef:
    """One sObject: its describe flags and fields (``fields`` in describe order)."""

    name: str
    label: str
    label_plural: str
    key_prefix: str | None
    fields: tuple[FieldDef, ...]
    custom: bool = False
    queryable: bool = True
    retrieveable: bool = True
    replicateable: bool = True
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    bulk_supported: bool = True
    requires_filter: bool = False
    blob_field: str | None = None
    has_system_modstamp: bool = True
    associate_entity_type: str | None = None
    associate_parent_entity: str | None = None
    feed_enabled: bool = False
    searchable: bool = True
    custom_setting: bool = False
    _by_name: dict[str, FieldDef] = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        self._by_name.update({f.name.lower(): f for f in self.fields})

    def field(self, name: str) -> FieldDef | None:
        """The field called ``name`` (case-insensitive), readable or not, or None."""
        return self._by_name.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field whose relationship name is ``name`` (case-insensitive)."""
        low = name.lower()
        for f in self.fields:
            if f.relationship_name is not None and f.relationship_name.lower() == low:
                return f
        return None

    @property
    def readable_fields(self) -> tuple[FieldDef, ...]:
        return tuple(f for f in self.fields if f.readable)

    @property
    def column_fields(self) -> tuple[FieldDef, ...]:
        """Fields with a column in the store (everything but compounds and blobs)."""
        return tuple(f for f in self.fields if f.has_column)

    @property
    def has_is_deleted(self) -> bool:
        return self.field("IsDeleted") is not None

    @property
    def cursor_field(self) -> str | None:
        """SystemModstamp, else LastModifiedDate, else CreatedDate (what getUpdated uses)."""
        for name in ("SystemModstamp", "LastModifiedDate", "CreatedDate"):
            if self.field(name) is not None:
                return name
        return None


# ---------------------------------------------------------------------------------------------
# the org's objects as data

OBJECTS_FILE = Path(__file__).with_name("objects.json")
"""The standard objects (``standard``) and the custom ones (``custom``: ``Invoice__c``, then
``Shipment__c``, whose shape ``Custom_<i>__c`` objects repeat), describe-shaped: see
:mod:`emulator.schema_data` for the keys and :mod:`emulator.generator` for each field's
``generate`` hint."""

PERMISSION_FLAGS = (
    "PermissionsApiEnabled", "PermissionsViewAllData", "PermissionsModifyAllData", "PermissionsQueryAllFiles",
    "PermissionsViewSetup", "PermissionsBulkApiHardDelete", "PermissionsViewAllUsers",
    "PermissionsViewEventLogFiles", "PermissionsModifyMetadata", "PermissionsAuthorApex",
    "PermissionsCustomizeApplication", "PermissionsManageUsers",
)  # fmt: skip
"""The ``Permissions*`` flags of PermissionSet (its fields in ``objects.json``)."""


def _label(name: str) -> str:
    base = name.removesuffix("__c").removesuffix("Id") if name.endswith("Id") and name != "Id" else name
    base = base.removesuffix("__c").replace("_", " ")
    out = []
    for i, ch in enumerate(base):
        if i and ch.isupper() and base[i - 1].islower():
            out.append(" ")
        out.append(ch)
    return "".join(out) or name


def _plural(label: str) -> str:
    return label + ("es" if label.endswith(("s", "ch")) else "s")


@functools.cache
def _objects_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(OBJECTS_FILE.read_text(encoding="utf-8"))
    return data


def _custom_data(i: int) -> dict[str, Any]:
    """The ``i``-th custom object: as written, or ``Custom_<i>__c`` in the last one's shape."""
    written = _objects_data()["custom"]
    if i < len(written):
        return dict(written[i])
    name = f"Custom_{i}__c"
    label = _label(name)
    return dict(
        written[-1],
        name=name,
        label=label,
        labelPlural=_plural(label),
        keyPrefix=KEY_PREFIXES.get(name, custom_key_prefix(i)),
    )


@functools.cache
def custom_template() -> ObjectDef:
    """The shape every custom object past ``Invoice__c`` repeats (and whose ``generate`` hints a
    custom object without hints of its own gets)."""
    from emulator.schema_data import object_from_data

    return object_from_data(_objects_data()["custom"][-1])


def build_schema(custom_objects: int = 2, extra: list[ObjectDef] | None = None) -> dict[str, ObjectDef]:
    """The org's objects by canonical name: the standard objects plus ``custom_objects`` custom ones,
    then ``extra`` (objects loaded from a description, :mod:`emulator.schema_data`).

    ``Invoice__c`` and ``Shipment__c`` come first; more custom objects are ``Custom_<i>__c``.
    Task/Event ``WhatId`` may point at ``Invoice__c``, so ``custom_objects`` must be >= 1.
    """
    from emulator.schema_data import object_from_data

    if custom_objects < 1:
        raise ValueError("the schema needs at least one custom object (Invoice__c)")
    data = [*_objects_data()["standard"], *(_custom_data(i) for i in range(custom_objects))]
    out: dict[str, ObjectDef] = {}
    for o in [*(object_from_data(d) for d in data), *(extra or ())]:
        if find_object(out, o.name) is not None:
            raise ValueError(f"{o.name}: the description defines an object the org already has")
        if o.key_prefix is not None and any(x.key_prefix == o.key_prefix for x in out.values()):
            raise ValueError(f"{o.name}: key prefix {o.key_prefix} is taken")
        out[o.name] = o
    return out


def find_object(schema: dict[str, ObjectDef], name: str) -> ObjectDef | None:
    """The object called ``name``, case-insensitive."""
    obj = schema.get(name)
    if obj is not None:
        return obj
    low = name.lower()
    for key, value in schema.items():
        if key.lower() == low:
            return value
    return None


def object_for_id(schema: dict[str, ObjectDef], record_id: str) -> ObjectDef | None:
    """The object whose key prefix starts ``record_id`` (for polymorphic parents), or None."""
    prefix = record_id[:3]
    for obj in schema.values():
        if obj.key_prefix == prefix and obj.associate_entity_type is None:
            return obj
    return None


# ---------------------------------------------------------------------------------------------
# describe


def _urls(name: str, api_version: str) -> dict[str, str]:
    base = f"/services/data/v{api_version}/sobjects/{name}"
    return {
        "sobject": base,
        "describe": f"{base}/describe",
        "rowTemplate": f"{base}/{{ID}}",
        "compactLayouts": f"{base}/describe/compactLayouts",
        "layouts": f"{base}/describe/layouts",
        "quickActions": f"{base}/quickActions",
        "approvalLayouts": f"{base}/describe/approvalLayouts",
        "defaultValues": f"{base}/defaultValues?recordTypeId&fields",
    }


def _global_entry(obj: ObjectDef, api_version: str) -> dict[str, Any]:
    return {
        "activateable": False,
        "associateEntityType": obj.associate_entity_type,
        "associateParentEntity": obj.associate_parent_entity,
        "createable": obj.createable,
        "custom": obj.custom,
        "customSetting": obj.custom_setting,
        "deepCloneable": False,
        "deletable": obj.deletable,
        "deprecatedAndHidden": False,
        "feedEnabled": obj.feed_enabled,
        "hasSubtypes": False,
        "isInterface": False,
        "isSubtype": False,
        "keyPrefix": obj.key_prefix,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "layoutable": obj.associate_entity_type is None,
        "mergeable": obj.name in ("Account", "Contact", "Lead", "Case"),
        "mruEnabled": obj.associate_entity_type is None,
        "name": obj.name,
        "queryable": obj.queryable,
        "replicateable": obj.replicateable,
        "retrieveable": obj.retrieveable,
        "searchable": obj.searchable and obj.associate_entity_type is None,
        "triggerable": obj.associate_entity_type is None,
        "undeletable": obj.deletable and obj.has_is_deleted,
        "updateable": obj.updateable,
        "urls": _urls(obj.name, api_version),
    }


def describe_global(schema: dict[str, ObjectDef], api_version: str) -> dict[str, Any]:
    """The body of ``GET /services/data/vX/sobjects``."""
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [_global_entry(o, api_version) for o in schema.values()],
    }


def describe_field(f: FieldDef) -> dict[str, Any]:
    """One entry of ``fields`` in an sObject describe: every documented key, null when N/A."""
    is_text = f.type in TEXT_TYPES or f.type in ID_TYPES
    byte_length = f.length * 3 if is_text else 0
    return {
        "aggregatable": f.aggregatable,
        "aiPredictionField": False,
        "autoNumber": f.auto_number,
        "byteLength": byte_length,
        "calculated": f.calculated,
        "calculatedFormula": None,
        "cascadeDelete": False,
        "caseSensitive": f.type == "id",
        "compoundFieldName": f.compound_field_name,
        "controllerName": None,
        "createable": f.createable,
        "custom": f.custom,
        "defaultValue": False if f.type == "boolean" else None,
        "defaultValueFormula": None,
        "defaultedOnCreate": f.defaulted_on_create,
        "dependentPicklist": False,
        "deprecatedAndHidden": False,
        "digits": f.digits,
        "displayLocationInDecimal": f.type == "location",
        "encrypted": False,
        "externalId": f.external_id,
        "extraTypeInfo": None,
        "filterable": f.filterable,
        "filteredLookupInfo": None,
        "formulaTreatNullNumberAsZero": False,
        "groupable": f.groupable,
        "highScaleNumber": False,
        "htmlFormatted": False,
        "idLookup": f.id_lookup,
        "inlineHelpText": None,
        "label": f.label,
        "length": f.length if is_text else 0,
        "mask": None,
        "maskType": None,
        "name": f.name,
        "nameField": f.name_field,
        "namePointing": f.polymorphic,
        "nillable": f.nillable,
        "permissionable": f.permissionable,
        "picklistValues": [
            {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
            for v in f.picklist_values
        ],
        "polymorphicForeignKey": f.polymorphic,
        "precision": f.precision,
        "queryByDistance": f.type == "location",
        "referenceTargetField": None,
        "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship_name,
        "relationshipOrder": None,
        "restrictedDelete": False,
        "restrictedPicklist": False,
        "scale": f.scale,
        "searchPrefilterable": f.type == "reference",
        "soapType": f.soap_type,
        "sortable": f.sortable,
        "type": f.type,
        "unique": f.unique,
        "updateable": f.updateable,
        "writeRequiresMasterRead": False,
    }


def _child_relationships(obj: ObjectDef, schema: dict[str, ObjectDef] | None) -> list[dict[str, Any]]:
    if schema is None:
        return []
    out = []
    for child in schema.values():
        for f in child.fields:
            if f.type == "reference" and obj.name in f.reference_to and f.readable:
                rel = None
                if f.name not in ("CreatedById", "LastModifiedById", "OwnerId") and child.label_plural:
                    rel = (
                        (child.name.removesuffix("__c") + "s__r")
                        if child.custom
                        else child.label_plural.replace(" ", "")
                    )
                out.append(
                    {
                        "cascadeDelete": False,
                        "childSObject": child.name,
                        "deprecatedAndHidden": False,
                        "field": f.name,
                        "junctionIdListNames": [],
                        "junctionReferenceTo": [],
                        "relationshipName": rel,
                        "restrictedDelete": False,
                    }
                )
    return out


def describe_object(
    obj: ObjectDef, api_version: str, schema: dict[str, ObjectDef] | None = None
) -> dict[str, Any]:
    """The body of ``GET /sobjects/{obj}/describe``; FLS-hidden fields are left out.

    Pass ``schema`` to fill ``childRelationships``.
    """
    body = _global_entry(obj, api_version)
    body.update(
        {
            "actionOverrides": [],
            "childRelationships": _child_relationships(obj, schema),
            "compactLayoutable": obj.associate_entity_type is None,
            "fields": [describe_field(f) for f in obj.readable_fields],
            "listviewable": None,
            "lookupLayoutable": None,
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "recordTypeInfos": [
                {
                    "active": True,
                    "available": True,
                    "defaultRecordTypeMapping": True,
                    "developerName": "Master",
                    "master": True,
                    "name": "Master",
                    "recordTypeId": "012000000000000AAA",
                    "urls": {
                        "layout": f"/services/data/v{api_version}/sobjects/{obj.name}/describe/layouts/"
                        "012000000000000AAA"
                    },
                }
            ]
            if obj.associate_entity_type is None
            else [],
            "searchLayoutable": obj.searchable,
            "sobjectDescribeOption": "FULL",
            "supportedScopes": [{"label": "All " + obj.label_plural.lower(), "name": "everything"}],
        }
    )
    return body
