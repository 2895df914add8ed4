"""Change events (Avro payloads) into typed change rows: one row per record per event.

A change event's schema (``GetSchema``) is a record whose field 0 is ``ChangeEventHeader`` and whose
other fields are the object's fields, each ``["null", T]``; compound fields (addresses,
geolocations, a person's name) are nested records. This module flattens compounds into the
object's own columns (what a backup chunk holds: ``BillingAddress.City`` -> ``BillingCity``,
``Geo__c.Latitude`` -> ``Geo__Latitude__s``, ``Name.FirstName`` -> ``FirstName``) and expands the
``changedFields`` / ``nulledFields`` bitmaps the way Salesforce's published example
(``ChangeEventHeaderUtility.process_bitmap``) does, into those column names.

Row columns (:data:`META`): ``Id``, ``__change_type``, ``__replay_id`` (the event's opaque bytes),
``__commit_ts`` (``commitTimestamp``), ``__commit_number``, ``__transaction_key``, ``__seq``
(``sequenceNumber``), ``__touched`` (columns an UPDATE set, nulls included) and ``__nulled``; then
one column per flattened field with its Avro type (datetimes stay epoch milliseconds: the recovery
point casts them to the snapshot's column types, which the Avro schema alone cannot tell apart
from times of day).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import fastavro
import pyarrow as pa

FULL_ROW = ("CREATE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_UNDELETE", "GAP_OVERFLOW")
"""Change row types that carry every field (null = null); a gap row is the record re-read."""
DELETES = ("DELETE", "GAP_DELETE")
GAP_TYPES = ("GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW")

META = pa.schema([
    ("Id", pa.string()), ("__change_type", pa.string()), ("__replay_id", pa.binary()),
    ("__commit_ts", pa.timestamp("ms", "UTC")), ("__commit_number", pa.int64()),
    ("__transaction_key", pa.string()), ("__seq", pa.int32()),
    ("__touched", pa.list_(pa.string())), ("__nulled", pa.list_(pa.string())),
])  # fmt: skip

_ARROW = {"boolean": pa.bool_(), "int": pa.int32(), "long": pa.int64(), "float": pa.float32(),
          "double": pa.float64(), "string": pa.string(), "bytes": pa.binary()}  # fmt: skip


def _value_type(t: Any) -> Any:
    """The non-null branch of a ``["null", T]`` union."""
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        return rest[0] if rest else "null"
    return t


def _named(schema: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema, dict):
        if schema.get("type") in ("record", "enum") and "name" in schema:
            ns = schema.get("namespace")
            out[f"{ns}.{schema['name']}" if ns and "." not in schema["name"] else schema["name"]] = schema
        for v in schema.values():
            _named(v, out)
    elif isinstance(schema, list):
        for v in schema:
            _named(v, out)
    return out


def component_column(parent: str, record_name: str, child: str) -> str:
    """The object column of component ``child`` of compound ``parent`` (Salesforce's naming)."""
    short = record_name.rsplit(".", 1)[-1]
    if short == "Address":
        return parent.removesuffix("Address") + child
    if short == "Location":
        return f"{parent.removesuffix('__c')}__{child}__s"
    return child


def _arrow_type(t: Any) -> pa.DataType:
    if isinstance(t, dict):
        if t.get("logicalType") == "date":
            return pa.date32()
        return _ARROW.get(str(t.get("type")), pa.string())
    return _ARROW.get(str(t), pa.string())


@dataclass
class Slot:
    """One top-level field of the event schema: a column, or a compound with component columns."""

    name: str
    column: str | None
    components: list[tuple[str, str]]  # (nested name, column)


class EventLayout:
    """What one event schema means for change rows: the slots, the columns and their types."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.parsed = fastavro.parse_schema(schema)
        named = _named(schema, {})
        self.slots: list[Slot] = []
        fields: list[pa.Field] = []
        for f in schema["fields"][1:]:
            t = _value_type(f["type"])
            if isinstance(t, str) and t in named:
                t = named[t]
            if isinstance(t, dict) and t.get("type") == "record":
                rec_name = t["name"] if "." in t["name"] else f"{t.get('namespace', '')}.{t['name']}"
                comps = []
                for c in t["fields"]:
                    col = component_column(f["name"], rec_name, c["name"])
                    comps.append((c["name"], col))
                    fields.append(pa.field(col, _arrow_type(_value_type(c["type"]))))
                self.slots.append(Slot(f["name"], None, comps))
            else:
                self.slots.append(Slot(f["name"], f["name"], []))
                fields.append(pa.field(f["name"], _arrow_type(t)))
        self.columns = pa.schema(fields)

    def names_of(self, bitmap: list[str]) -> list[str]:
        """The columns a bitmap (``changedFields`` / ``nulledFields``) names."""
        out: list[str] = []
        items = list(bitmap)
        if items and items[0].startswith("0x"):
            bits = int(items.pop(0)[2:], 16)
            for i, slot in enumerate(self.slots, start=1):  # bit 0 is the header
                if bits >> i & 1:
                    out.extend([slot.column] if slot.column else [c for _, c in slot.components])
        for item in items:
            pos, sep, hexbits = item.partition("-")
            if not sep or not pos.isdigit():
                continue
            slot = self.slots[int(pos) - 1]
            bits = int(hexbits[2:], 16)
            out.extend(c for j, (_, c) in enumerate(slot.components) if bits >> j & 1)
        return list(dict.fromkeys(out))

    def values(self, record: dict[str, Any]) -> dict[str, Any]:
        """Column -> value of a decoded event record (compounds flattened)."""
        out: dict[str, Any] = {}
        for slot in self.slots:
            v = record.get(slot.name)
            if slot.column is not None:
                out[slot.column] = v
            else:
                for nested, col in slot.components:
                    out[col] = v.get(nested) if isinstance(v, dict) else None
        return out


@dataclass
class ChangeEvent:
    """One decoded change event."""

    entity: str
    change_type: str
    record_ids: list[str]
    replay_id: bytes
    commit_ts: datetime
    commit_number: int
    transaction_key: str
    sequence: int
    touched: list[str]
    nulled: list[str]
    values: dict[str, Any]
    schema_id: str
    refetched: list[dict[str, Any]] = field(default_factory=list)
    """A gap event's records as re-read through REST (column -> value, ``Id`` included; a record
    that is gone has only ``Id``): its change rows, typed like the layout's columns."""

    def rows(self) -> list[dict[str, Any]]:
        """One change row per record id (the identical change of several records); a gap event's
        rows are its re-read records (GAP_DELETE for one that is gone)."""
        if self.change_type in GAP_TYPES:
            return [self._gap_row(r) for r in self.refetched]
        base = {
            "__change_type": self.change_type, "__replay_id": self.replay_id, "__commit_ts": self.commit_ts,
            "__commit_number": self.commit_number, "__transaction_key": self.transaction_key,
            "__seq": self.sequence, "__touched": self.touched, "__nulled": self.nulled, **self.values,
        }  # fmt: skip
        return [{"Id": rid, **base} for rid in self.record_ids]

    def _gap_row(self, record: dict[str, Any]) -> dict[str, Any]:
        gone = len(record) == 1
        return {
            "__change_type": "GAP_DELETE" if gone else self.change_type, "__replay_id": self.replay_id,
            "__commit_ts": self.commit_ts, "__commit_number": self.commit_number,
            "__transaction_key": self.transaction_key, "__seq": self.sequence, "__touched": [],
            "__nulled": [], **record,
        }  # fmt: skip


def decode_event(layout: EventLayout, payload: bytes, replay_id: bytes, schema_id: str) -> ChangeEvent:
    """Decode one event's Avro payload (no container header) into a :class:`ChangeEvent`."""
    record: Any = fastavro.schemaless_reader(io.BytesIO(payload), layout.parsed, None)
    h = record["ChangeEventHeader"]
    change = str(h["changeType"])
    nulled = layout.names_of(list(h.get("nulledFields") or []))
    touched = layout.names_of(list(h.get("changedFields") or [])) if change == "UPDATE" else []
    touched = list(dict.fromkeys([*touched, *nulled])) if change == "UPDATE" else touched
    return ChangeEvent(
        entity=str(h["entityName"]), change_type=change, record_ids=[str(r) for r in h["recordIds"]],
        replay_id=replay_id, commit_ts=datetime.fromtimestamp(int(h["commitTimestamp"]) / 1000, UTC),
        commit_number=int(h["commitNumber"]), transaction_key=str(h["transactionKey"]),
        sequence=int(h["sequenceNumber"]), touched=touched, nulled=nulled,
        values=layout.values(record) if change not in GAP_TYPES else {}, schema_id=schema_id,
    )  # fmt: skip


def rows_table(events: list[ChangeEvent], layouts: dict[str, EventLayout]) -> pa.Table:
    """The change rows of ``events`` (gap events excluded) as one Arrow table: :data:`META` plus
    the union of the events' layouts' columns."""
    fields = list(META)
    seen = set(META.names)
    for sid in dict.fromkeys(e.schema_id for e in events):
        for f in layouts[sid].columns:
            if f.name not in seen:
                seen.add(f.name)
                fields.append(f)
    schema = pa.schema(fields)
    rows = [r for e in events for r in e.rows()]
    return pa.Table.from_pylist(rows, schema=schema)
