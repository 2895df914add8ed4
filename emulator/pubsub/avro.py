"""Change event Avro schemas and payloads, shaped the way Salesforce's Pub/Sub API sends them.

One schema per object (record ``<Object>ChangeEvent``, namespace ``com.sforce.eventbus``, custom
``Invoice__c`` -> ``Invoice__ChangeEvent``): field 0 is ``ChangeEventHeader``, then every field
of the object that a change event carries, each a union ``["null", <type>]`` with default null.
Left out, as Salesforce leaves them out: ``Id`` (the header's ``recordIds`` names the records),
``IsDeleted``, ``SystemModstamp``, formula fields and blob bodies. Compound fields (addresses,
geolocations, a person's ``Name``) are nested records at the compound's position, and their
components are not top-level fields. Datetimes are epoch milliseconds (``long``), dates are days
since the epoch (``int``, logical type ``date``), times are milliseconds after midnight.

Bitmaps (``changedFields``, ``nulledFields``, ``diffFields``): element 0 is ``"0x" + HEX`` where
bit *i* (least significant first) stands for top-level field *i*; a changed component of the
compound at top-level index *n* goes in an element ``"n-0x" + HEX`` whose bits index the nested
record's fields. That is what Salesforce's published Python example
(``ChangeEventHeaderUtility.process_bitmap``) decodes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

import fastavro

from emulator.schema import ADDRESS_COMPONENTS, FieldDef, ObjectDef

NAMESPACE = "com.sforce.eventbus"
CHANGE_TYPES = (
    "CREATE", "UPDATE", "DELETE", "UNDELETE",
    "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW",
)  # fmt: skip
SKIPPED_FIELDS = frozenset({"Id", "IsDeleted", "SystemModstamp"})
PERSON_NAME_PARTS = ("Salutation", "FirstName", "LastName", "MiddleName", "InformalName", "Suffix")
EPOCH_DATE = date(1970, 1, 1)

_PRIMITIVE = {
    "boolean": "boolean",
    "int": "int",
    "double": "double",
    "currency": "double",
    "percent": "double",
    "datetime": "long",
    "time": "long",
}
_DATE = {"type": "int", "logicalType": "date"}


def topic_entity_suffix(obj_name: str) -> str:
    """``Account`` -> ``AccountChangeEvent``; ``Invoice__c`` -> ``Invoice__ChangeEvent``."""
    if obj_name.endswith("__c"):
        return obj_name[:-3] + "__ChangeEvent"
    return obj_name + "ChangeEvent"


def header_schema() -> dict[str, Any]:
    strings = {"type": "array", "items": "string"}
    return {
        "type": "record",
        "name": "ChangeEventHeader",
        "namespace": NAMESPACE,
        "fields": [
            {"name": "entityName", "type": "string"},
            {"name": "recordIds", "type": strings},
            {
                "name": "changeType",
                "type": {
                    "type": "enum",
                    "name": "ChangeType",
                    "namespace": NAMESPACE,
                    "symbols": list(CHANGE_TYPES),
                },
            },
            {"name": "changeOrigin", "type": "string"},
            {"name": "transactionKey", "type": "string"},
            {"name": "sequenceNumber", "type": "int"},
            {"name": "commitTimestamp", "type": "long"},
            {"name": "commitNumber", "type": "long"},
            {"name": "commitUser", "type": "string"},
            {"name": "nulledFields", "type": strings},
            {"name": "diffFields", "type": strings},
            {"name": "changedFields", "type": strings},
        ],
    }


@dataclass(frozen=True)
class Slot:
    """One top-level field of the change event: a plain field, or a compound with components."""

    name: str
    field: FieldDef | None
    """The object's field for a plain slot (None for a compound)."""
    components: tuple[tuple[str, FieldDef], ...] = ()
    """For a compound: (nested field name, the object's component field)."""


@dataclass
class EventSchema:
    """The Avro schema of one object's change events, and how to fill it from a store row."""

    obj: ObjectDef
    slots: list[Slot]
    schema: dict[str, Any]
    parsed: Any
    schema_json: str
    schema_id: str
    slot_index: dict[str, int] = field(default_factory=dict)
    """Object field name -> (top-level index, nested index or -1)."""
    field_pos: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        """The store columns a payload needs."""
        out: list[str] = []
        for s in self.slots:
            if s.field is not None:
                out.append(s.field.name)
            out.extend(fd.name for _, fd in s.components)
        return out


def _value_type(fd: FieldDef) -> Any:
    if fd.type == "date":
        return dict(_DATE)
    return _PRIMITIVE.get(fd.type, "string")


def _nullable(t: Any) -> list[Any]:
    return ["null", t]


def _slots(obj: ObjectDef) -> list[Slot]:
    person_parts = {
        f.name: f for f in obj.fields if f.compound_field_name == "Name" and f.name in PERSON_NAME_PARTS
    }
    slots: list[Slot] = []
    for f in obj.fields:
        if f.name in SKIPPED_FIELDS or f.type == "base64":
            continue
        if f.compound_field_name is not None:
            continue  # a component: it lives inside its compound's record
        if f.type == "address":
            prefix = f.name.removesuffix("Address")
            comps = tuple(
                (suffix, fd)
                for _, suffix in ADDRESS_COMPONENTS
                if (fd := obj.field(prefix + suffix)) is not None
            )
            slots.append(Slot(f.name, None, comps))
        elif f.type == "location":
            stem = f.name.removesuffix("__c")
            comps = tuple(
                (part, fd)
                for part in ("Latitude", "Longitude")
                if (fd := obj.field(f"{stem}__{part}__s")) is not None
            )
            slots.append(Slot(f.name, None, comps))
        elif f.name == "Name" and person_parts:
            comps = tuple((n, person_parts[n]) for n in PERSON_NAME_PARTS if n in person_parts)
            slots.append(Slot("Name", None, comps))
        elif f.calculated:
            continue
        else:
            slots.append(Slot(f.name, f))
    return slots


def build_event_schema(obj: ObjectDef) -> EventSchema:
    """The change event schema of ``obj`` with its id (a fingerprint of the schema JSON)."""
    slots = _slots(obj)
    fields: list[dict[str, Any]] = [
        {"name": "ChangeEventHeader", "type": header_schema(), "doc": "Data:ChangeEventHeader"}
    ]
    defined: set[str] = set()
    for s in slots:
        if s.field is not None:
            fields.append({"name": s.name, "type": _nullable(_value_type(s.field)), "default": None})
            continue
        compound = obj.field(s.name)
        kind = compound.type if compound is not None else ""
        rec_name = {"address": "Address", "location": "Location"}.get(kind, "PersonName")
        full = f"{NAMESPACE}.{rec_name}"
        if full in defined:
            rec: Any = full
        else:
            defined.add(full)
            rec = {
                "type": "record",
                "name": rec_name,
                "namespace": NAMESPACE,
                "fields": [
                    {"name": n, "type": _nullable(_value_type(fd)), "default": None} for n, fd in s.components
                ],
            }
        fields.append({"name": s.name, "type": _nullable(rec), "default": None})
    schema = {
        "type": "record",
        "name": topic_entity_suffix(obj.name),
        "namespace": NAMESPACE,
        "fields": fields,
    }
    schema_json = json.dumps(schema, separators=(",", ":"))
    digest = hashlib.sha256(schema_json.encode()).digest()[:16]
    schema_id = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    es = EventSchema(
        obj=obj,
        slots=slots,
        schema=schema,
        parsed=fastavro.parse_schema(json.loads(schema_json)),
        schema_json=schema_json,
        schema_id=schema_id,
    )
    for i, s in enumerate(slots, start=1):
        if s.field is not None:
            es.field_pos[s.field.name] = (i, -1)
        for j, (_, fd) in enumerate(s.components):
            es.field_pos[fd.name] = (i, j)
    return es


def avro_value(fd: FieldDef, value: Any) -> Any:
    """A store value as the change event carries it (epoch ms for datetimes, days for dates)."""
    if value is None:
        return None
    if fd.type == "datetime":
        dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)
    if fd.type == "date":
        d = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
        return (d - EPOCH_DATE).days
    if fd.type == "time":
        t = value if isinstance(value, time) else time.fromisoformat(str(value))
        return ((t.hour * 60 + t.minute) * 60 + t.second) * 1000 + t.microsecond // 1000
    if fd.type == "boolean":
        return bool(value)
    if fd.type == "int":
        return int(value)
    if fd.type in ("double", "currency", "percent"):
        return float(value)
    return str(value)


def bitmap(es: EventSchema, names: list[str]) -> list[str]:
    """The Salesforce bitmap strings for object field ``names`` (see the module docstring)."""
    top = 0
    nested: dict[int, int] = {}
    for name in names:
        pos = es.field_pos.get(name)
        if pos is None:
            continue
        i, j = pos
        if j < 0:
            top |= 1 << i
        else:
            nested[i] = nested.get(i, 0) | (1 << j)
    if not top and not nested:
        return []
    out = [f"0x{top:X}"]
    out += [f"{i}-0x{bits:X}" for i, bits in sorted(nested.items())]
    return out


def payload_record(es: EventSchema, row: dict[str, Any] | None, only: set[str] | None) -> dict[str, Any]:
    """The record fields of an event (header not included) from ``row`` (column -> value).

    ``only``: the object fields the event carries (an UPDATE's changed fields); None = every field.
    Without a row (DELETE and GAP events) every field is null.
    """
    out: dict[str, Any] = {}
    for s in es.slots:
        if row is None:
            out[s.name] = None
            continue
        if s.field is not None:
            carried = only is None or s.field.name in only
            out[s.name] = avro_value(s.field, row.get(s.field.name)) if carried else None
            continue
        nested = {
            n: avro_value(fd, row.get(fd.name)) if only is None or fd.name in only else None
            for n, fd in s.components
        }
        out[s.name] = None if all(v is None for v in nested.values()) else nested
    return out


def encode(es: EventSchema, header: dict[str, Any], fields: dict[str, Any]) -> bytes:
    """Avro binary (no container header) of one change event."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, es.parsed, {"ChangeEventHeader": header, **fields})
    return buf.getvalue()
