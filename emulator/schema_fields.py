"""Field and object builders with the defaults Salesforce gives a field of each type.

For objects written in code (:func:`emulator.schema_data.wide_org`); the org's own objects are
data (``emulator/objects.json``). ``_f`` fills what describe reports for a type (text lengths,
number precision, the filterable/sortable/groupable flags, field-level security) so a definition
names only what is particular to a field.
"""

from __future__ import annotations

from typing import Any

from emulator.ids import KEY_PREFIXES
from emulator.schema import TEXT_TYPES, FieldDef, ObjectDef, _label, _plural


def _f(name: str, type_: str, **kw: Any) -> FieldDef:
    kw.setdefault("label", _label(name))
    custom = name.endswith("__c")
    kw.setdefault("custom", custom)
    if type_ in TEXT_TYPES and "length" not in kw:
        kw["length"] = {"textarea": 32000, "multipicklist": 4099, "email": 80, "phone": 40}.get(type_, 255)
    if type_ == "url" and kw.get("length") == 255:
        kw["length"] = 255
    if type_ == "currency":
        kw.setdefault("precision", 18)
        kw.setdefault("scale", 2)
    if type_ == "percent":
        kw.setdefault("precision", 5)
        kw.setdefault("scale", 2)
    if type_ == "double":
        kw.setdefault("precision", 18)
        kw.setdefault("scale", 0)
    if type_ == "int":
        kw.setdefault("digits", 9)
    if type_ == "boolean":
        kw.setdefault("nillable", False)
        kw.setdefault("defaulted_on_create", True)
    if type_ == "textarea" and kw["length"] > 255:
        kw.setdefault("filterable", False)
        kw.setdefault("sortable", False)
        kw.setdefault("groupable", False)
    if type_ in ("multipicklist",):
        kw.setdefault("sortable", False)
        kw.setdefault("groupable", False)
    if type_ in ("base64", "address", "location"):
        kw.setdefault("filterable", False)
        kw.setdefault("sortable", False)
        kw.setdefault("groupable", False)
        kw.setdefault("aggregatable", False)
    if type_ in ("address", "location"):
        kw.setdefault("createable", False)
        kw.setdefault("updateable", False)
    if type_ in ("double", "currency", "percent", "datetime", "textarea", "multipicklist"):
        kw.setdefault("groupable", type_ not in ("double", "currency", "percent", "datetime", "textarea"))
    # custom fields and optional standard fields carry field-level security
    if kw.get("nillable", True) and type_ not in ("id", "address", "location") and not kw.get("calculated"):
        kw.setdefault("permissionable", True)
    return FieldDef(name=name, type=type_, **kw)


def _ref(name: str, to: tuple[str, ...] | str, rel: str, **kw: Any) -> FieldDef:
    to_t = (to,) if isinstance(to, str) else to
    kw.setdefault("length", 18)
    return _f(name, "reference", reference_to=to_t, relationship_name=rel, **kw)


def _pick(name: str, values: tuple[str, ...] | list[str], **kw: Any) -> FieldDef:
    return _f(name, "picklist", picklist_values=tuple(values), **kw)


def _id() -> FieldDef:
    return _f(
        "Id", "id", label="Record ID", length=18, nillable=False, createable=False, updateable=False,
        id_lookup=True, defaulted_on_create=True, permissionable=False,
    )  # fmt: skip


def _sys(name: str, type_: str, **kw: Any) -> FieldDef:
    """A system-maintained field: not createable, updateable or permissionable."""
    kw.setdefault("nillable", False)
    return _f(
        name, type_, createable=False, updateable=False, defaulted_on_create=True, permissionable=False, **kw
    )


def _audit_ref(name: str, relationship: str, label: str) -> FieldDef:
    """``CreatedById`` / ``LastModifiedById``: a system-maintained lookup to User."""
    return _ref(name, "User", relationship, label=label, nillable=False, createable=False, updateable=False,
                defaulted_on_create=True, permissionable=False)  # fmt: skip


def _audit(
    *, deleted: bool = True, modstamp: bool = True, created: bool = True, modified: bool = True
) -> list[FieldDef]:
    out: list[FieldDef] = []
    if deleted:
        out.append(_sys("IsDeleted", "boolean", label="Deleted"))
    if created:
        out.append(_sys("CreatedDate", "datetime", label="Created Date"))
        out.append(_audit_ref("CreatedById", "CreatedBy", "Created By ID"))
    if modified:
        out.append(_sys("LastModifiedDate", "datetime", label="Last Modified Date"))
        out.append(_audit_ref("LastModifiedById", "LastModifiedBy", "Last Modified By ID"))
    if modstamp:
        out.append(_sys("SystemModstamp", "datetime", label="System Modstamp"))
    return out


def _owner(to: tuple[str, ...] = ("User",)) -> FieldDef:
    return _ref(
        "OwnerId",
        to,
        "Owner",
        label="Owner ID",
        nillable=False,
        defaulted_on_create=True,
        permissionable=False,
    )


def _obj(name: str, fields: list[FieldDef], **kw: Any) -> ObjectDef:
    kw.setdefault("label", _label(name))
    kw.setdefault("label_plural", _plural(kw["label"]))
    kw.setdefault("key_prefix", KEY_PREFIXES.get(name))
    kw.setdefault("has_system_modstamp", any(f.name == "SystemModstamp" for f in fields))
    return ObjectDef(name=name, fields=tuple(fields), **kw)
