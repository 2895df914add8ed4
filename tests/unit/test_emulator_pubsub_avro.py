"""Change event schemas, payloads and bitmaps of the emulator's Pub/Sub API (emulator/pubsub/avro.py).

The bitmaps are decoded with the algorithm of Salesforce's published Python example
(``tests.helpers.pubsub_client.process_bitmap``), for any set of changed fields.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.pubsub.avro import EventSchema, bitmap, build_event_schema, encode, payload_record
from emulator.schema import build_schema
from tests.helpers.pubsub_client import named_types, process_bitmap

SCHEMA = build_schema(2)
OBJECTS = ("Account", "Contact", "Invoice__c")


def _expected_name(es: EventSchema, field_name: str) -> str:
    """``Name`` for a top-level field, ``BillingAddress.City`` for a compound's component."""
    i, j = es.field_pos[field_name]
    slot = es.slots[i - 1]
    return slot.name if j < 0 else f"{slot.name}.{slot.components[j][0]}"


@pytest.mark.parametrize("obj_name", OBJECTS)
@given(data=st.data())
def test_bitmaps_decode_to_the_changed_fields(obj_name: str, data: st.DataObject) -> None:
    es = build_event_schema(SCHEMA[obj_name])
    names = data.draw(st.lists(st.sampled_from(sorted(es.field_pos)), unique=True))
    schema = json.loads(es.schema_json)
    decoded = process_bitmap(schema, bitmap(es, names), named_types(schema))
    assert sorted(decoded) == sorted(_expected_name(es, n) for n in names)


def test_bitmap_strings_are_upper_case_hex_with_nested_elements() -> None:
    es = build_event_schema(SCHEMA["Account"])
    # Name is field 1, LastModifiedDate 18; BillingCity is component 1 of field 4
    assert bitmap(es, ["Name", "LastModifiedDate", "BillingCity"]) == ["0x40002", "4-0x2"]
    assert bitmap(es, []) == []
    assert bitmap(es, ["BillingCity"]) == ["0x0", "4-0x2"]


def test_payload_round_trips_through_fastavro() -> None:
    es = build_event_schema(SCHEMA["Contact"])
    created = datetime(2026, 12, 6, 10, 0, 0, 123000, tzinfo=UTC)
    row = {
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "MailingCity": "London",
        "Birthdate": date(1815, 12, 10),
        "CreatedDate": created.replace(tzinfo=None),
        "DoNotCall": True,
    }
    header = {
        "entityName": "Contact", "recordIds": ["003000000000001AAA"], "changeType": "CREATE",
        "changeOrigin": "", "transactionKey": "t", "sequenceNumber": 1, "commitTimestamp": 1,
        "commitNumber": 1, "commitUser": "005000000000001AAA", "nulledFields": [], "diffFields": [],
        "changedFields": [],
    }  # fmt: skip
    payload = encode(es, header, payload_record(es, row, None))
    schema = fastavro.parse_schema(json.loads(es.schema_json))
    out = fastavro.schemaless_reader(io.BytesIO(payload), schema, None)
    assert isinstance(out, dict)
    assert out["Name"]["FirstName"] == "Ada" and out["Name"]["LastName"] == "Lovelace"
    assert out["MailingAddress"]["City"] == "London" and out["MailingAddress"]["Street"] is None
    assert out["Birthdate"] == date(1815, 12, 10)
    assert out["CreatedDate"] == int(created.timestamp() * 1000)
    assert out["DoNotCall"] is True and out["Email"] is None


def test_update_payload_carries_only_the_changed_fields() -> None:
    es = build_event_schema(SCHEMA["Account"])
    row = {"Name": "Acme", "Phone": "555", "BillingCity": "Paris", "BillingStreet": "1 rue"}
    out = payload_record(es, row, {"Phone", "BillingCity"})
    assert out["Name"] is None and out["Phone"] == "555"
    assert out["BillingAddress"] == {k: ("Paris" if k == "City" else None) for k in out["BillingAddress"]}
    assert all(v is None for v in payload_record(es, None, None).values())
