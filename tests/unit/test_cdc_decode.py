"""Change event decoding against payloads encoded by the emulator's Avro code (the wire format the
Pub/Sub API sends): bitmaps into column names, compound fields flattened, nulls, gap events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from emulator.pubsub.avro import EventSchema, bitmap, build_event_schema, encode, payload_record
from emulator.schema import build_schema
from engine.cdc.decode import EventLayout, decode_event, rows_table

REPLAY = (42).to_bytes(8, "big")


def _header(
    es: EventSchema, change: str, ids: list[str], changed: list[str], nulled: list[str]
) -> dict[str, Any]:
    return {
        "entityName": "Account", "recordIds": ids, "changeType": change, "changeOrigin": "x",
        "transactionKey": "tk", "sequenceNumber": 1, "commitTimestamp": 1_796_000_000_123,
        "commitNumber": 7, "commitUser": "005", "nulledFields": bitmap(es, nulled),
        "diffFields": [], "changedFields": bitmap(es, changed) if change == "UPDATE" else [],
    }  # fmt: skip


def _account() -> tuple[EventSchema, EventLayout]:
    es = build_event_schema(build_schema()["Account"])
    return es, EventLayout(json.loads(es.schema_json))


def test_update_with_a_compound_component_and_a_nulled_field() -> None:
    es, layout = _account()
    row = {"BillingCity": "Lyon", "Phone": None, "Name": "Renamed"}
    fields = payload_record(es, row, {"BillingCity", "Phone", "Name"})
    payload = encode(es, _header(es, "UPDATE", ["001A", "001B"], ["BillingCity", "Phone", "Name"], ["Phone"]),
                     fields)  # fmt: skip
    ev = decode_event(layout, payload, REPLAY, "sid")
    assert ev.change_type == "UPDATE" and ev.record_ids == ["001A", "001B"]
    assert set(ev.touched) == {"BillingCity", "Phone", "Name"} and ev.nulled == ["Phone"]
    assert (
        ev.values["BillingCity"] == "Lyon" and ev.values["Name"] == "Renamed" and ev.values["Phone"] is None
    )
    assert ev.values["BillingStreet"] is None  # a component the event did not carry
    assert ev.commit_ts == datetime.fromtimestamp(1_796_000_000.123, UTC) and ev.commit_number == 7
    table = rows_table([ev], {"sid": layout})
    assert table.num_rows == 2 and table["Id"].to_pylist() == ["001A", "001B"]
    assert table["__replay_id"].to_pylist() == [REPLAY, REPLAY]
    assert "BillingCity" in table.column_names and "BillingAddress" not in table.column_names


def test_delete_carries_no_values_and_gap_events_only_their_refetched_rows() -> None:
    es, layout = _account()
    payload = encode(es, _header(es, "DELETE", ["001A"], [], []), payload_record(es, None, None))
    ev = decode_event(layout, payload, REPLAY, "sid")
    assert ev.change_type == "DELETE" and ev.touched == [] and all(v is None for v in ev.values.values())
    gap = decode_event(layout, encode(es, _header(es, "GAP_UPDATE", ["001C"], [], []),
                                      payload_record(es, None, None)), REPLAY, "sid")  # fmt: skip
    assert gap.rows() == []  # nothing until its records are re-read
    gap.refetched = [{"Id": "001C", "Name": "Now"}]
    [row] = gap.rows()
    assert row["__change_type"] == "GAP_UPDATE" and row["Name"] == "Now"
    gap.refetched = [{"Id": "001C"}]
    assert gap.rows()[0]["__change_type"] == "GAP_DELETE"
