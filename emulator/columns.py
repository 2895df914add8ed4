"""``GET query?q=...&columns=true``: the columns of a SOQL statement, as Salesforce describes them.

Query tools (the Salesforce CLI, IDE query editors) ask this before running a statement, to
learn its columns without fetching rows. The shape follows what Salesforce answers (captured
responses in published client tests, decision 0017)::

    {"columnMetadata": [{"aggregate": false, "apexType": "Id", "booleanType": false,
                         "columnName": "Id", "custom": false, "displayName": "Id",
                         "foreignKeyName": null, "insertable": false, "joinColumns": [],
                         "numberType": false, "textType": false, "updatable": false}, ...],
     "entityName": "Account", "groupBy": false, "idSelected": true, "keyPrefix": "001"}

A parent field (``Owner.Name``) is one column per relationship (``Owner``, ``foreignKeyName``
``OwnerId``, ``apexType`` null) whose ``joinColumns`` hold the parent's fields. An aggregate
is ``aggregate: true``, ``apexType`` null, named by its alias or ``expr0``, ``expr1``..., and
displayed as ``avg(Amount)``; ``COUNT()`` is one such column (``count()``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulator.soql import Aggregate, FieldPath, parse

if TYPE_CHECKING:
    from emulator.schema import FieldDef, ObjectDef

APEX_TYPES = {
    "id": "Id", "reference": "Id", "string": "String", "textarea": "String", "picklist": "String",
    "multipicklist": "String", "email": "String", "phone": "String", "url": "String",
    "boolean": "Boolean", "int": "Integer", "double": "Double", "currency": "Decimal",
    "percent": "Decimal", "date": "Date", "datetime": "Datetime", "time": "Time", "base64": "Blob",
    "address": "Address", "location": "Location",
}  # fmt: skip
TEXT_TYPES = frozenset({"string", "textarea", "picklist", "multipicklist", "email", "phone", "url"})
NUMBER_TYPES = frozenset({"int", "double", "currency", "percent"})


def _column(
    name: str,
    display: str,
    *,
    apex_type: str | None,
    aggregate: bool = False,
    boolean: bool = False,
    number: bool = False,
    text: bool = False,
    custom: bool = False,
    insertable: bool = False,
    updatable: bool = False,
    foreign_key: str | None = None,
) -> dict[str, Any]:
    return {
        "aggregate": aggregate,
        "apexType": apex_type,
        "booleanType": boolean,
        "columnName": name,
        "custom": custom,
        "displayName": display,
        "foreignKeyName": foreign_key,
        "insertable": insertable,
        "joinColumns": [],
        "numberType": number,
        "textType": text,
        "updatable": updatable,
    }


def field_column(fd: FieldDef) -> dict[str, Any]:
    return _column(
        fd.name, fd.name, apex_type=APEX_TYPES.get(fd.type), boolean=fd.type == "boolean",
        number=fd.type in NUMBER_TYPES, text=fd.type in TEXT_TYPES, custom=fd.custom,
        insertable=fd.createable, updatable=fd.updateable,
    )  # fmt: skip


def _add_path(
    columns: list[dict[str, Any]], obj: ObjectDef, parts: list[str], schema: dict[str, ObjectDef]
) -> None:
    """Add ``parts`` (a field path of ``obj``, already valid) to ``columns``, merging parents."""
    if len(parts) == 1:
        fd = obj.field(parts[0])
        if fd is None and parts[0].lower() == "name":  # Name of a polymorphic parent
            fd = next((f for f in obj.fields if f.name_field), None)
        if fd is not None:
            columns.append(field_column(fd))
        elif parts[0].lower() == "type":
            columns.append(_column("Type", "Type", apex_type="String", text=True))
        return
    ref = obj.relationship(parts[0])
    if ref is None:
        return
    rel = ref.relationship_name or parts[0]
    parent = next((c for c in columns if c["columnName"] == rel and c["foreignKeyName"] == ref.name), None)
    if parent is None:
        parent = _column(rel, rel, apex_type=None, custom=ref.custom, foreign_key=ref.name)
        columns.append(parent)
    target = schema.get(ref.reference_to[0]) if ref.reference_to else None
    if target is not None:
        _add_path(parent["joinColumns"], target, parts[1:], schema)


def column_metadata(soql: str, obj: ObjectDef, schema: dict[str, ObjectDef]) -> dict[str, Any]:
    """The ``columns=true`` answer for ``soql``, a statement :func:`emulator.soql.translate`
    has accepted on ``obj`` (so every path resolves)."""
    q = parse(soql)
    columns: list[dict[str, Any]] = []
    unnamed = 0
    id_selected = False
    for item in q.select:
        if isinstance(item, Aggregate):
            if item.alias:
                name = item.alias
            else:
                name, unnamed = f"expr{unnamed}", unnamed + 1
            arg = item.arg.text if item.arg is not None else ""
            columns.append(
                _column(name, f"{item.func.lower()}({arg})", apex_type=None, aggregate=True, number=True)
            )
            continue
        assert isinstance(item, FieldPath)
        parts = list(item.parts)
        if q.alias and len(parts) > 1 and parts[0].lower() == q.alias.lower():
            parts = parts[1:]
        id_selected = id_selected or (len(parts) == 1 and parts[0].lower() == "id")
        _add_path(columns, obj, parts, schema)
    return {
        "columnMetadata": columns,
        "entityName": obj.name,
        "groupBy": bool(q.group_by),
        "idSelected": id_selected,
        "keyPrefix": obj.key_prefix,
    }
