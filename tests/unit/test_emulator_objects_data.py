"""The org's objects and their value rules are data (``emulator/objects.json``).

The standard and custom objects are loaded from the data file, an object added there joins the
org, and the generator draws each field's values from its ``generate`` hint: the data generated
for a seed is exactly what the code-built schema and the if/elif value rules generated before
(the digests below were taken from that code, commit f44311a, and must not change unless the
generated data is meant to change).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emulator import schema as schema_mod
from emulator.churn import churn
from emulator.clock import EmulatorClock
from emulator.generator import generate
from emulator.schema import build_schema, describe_global, describe_object
from emulator.schema_data import load_description, object_from_data
from emulator.store import OrgStore

DIGEST_AFTER_GENERATE = "c379e307d7e59c1b22273ae571626cbd764a7c2e78166d4e7b55aafbcc59ffea"
DIGEST_AFTER_CHURN = "cea59023379dc88273284a8aabcd2f382e639032840a6fec8acb638e4b839db2"


def test_the_org_s_objects_are_the_data_file_s() -> None:
    data = json.loads(schema_mod.OBJECTS_FILE.read_text(encoding="utf-8"))
    schema = build_schema(3)
    written = [object_from_data(o) for o in (*data["standard"], *data["custom"])]
    assert [o.name for o in written] == list(schema)[: len(written)]
    assert all(schema[o.name] == o for o in written)
    clone = schema["Custom_2__c"]  # past the written custom objects: the last one's shape
    assert clone.key_prefix not in {o.key_prefix for o in written}
    assert [f.name for f in clone.fields] == [f.name for f in schema["Shipment__c"].fields]
    assert all(f.generate is None for f in schema["User"].fields)  # setup objects are built in Python
    assert schema["Account"].field("Name").generate == {"kind": "company"}  # type: ignore[union-attr]


@pytest.fixture
def objects_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the data file the schema loads instead of the shipped one."""
    path = tmp_path / "objects.json"
    path.write_text(schema_mod.OBJECTS_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(schema_mod, "OBJECTS_FILE", path)
    schema_mod._objects_data.cache_clear()
    yield path
    monkeypatch.undo()
    schema_mod._objects_data.cache_clear()


def test_adding_an_object_is_adding_data(objects_file: Path) -> None:
    data = json.loads(objects_file.read_text(encoding="utf-8"))
    data["standard"].append(
        {
            "name": "Contract",
            "label": "Contract",
            "labelPlural": "Contracts",
            "keyPrefix": "800",
            "fields": [
                {"name": "Id", "type": "id", "length": 18, "nillable": False, "createable": False},
                {"name": "ContractNumber", "type": "string", "length": 30, "nameField": True},
                {
                    "name": "AccountId",
                    "type": "reference",
                    "referenceTo": ["Account"],
                    "relationshipName": "Account",
                },
            ],
            "replicateable": False,
        }
    )
    objects_file.write_text(json.dumps(data), encoding="utf-8")
    schema = build_schema(2)
    entry = {e["name"]: e for e in describe_global(schema, "62.0")["sobjects"]}["Contract"]
    assert entry["keyPrefix"] == "800" and not entry["replicateable"] and entry["queryable"]
    fields = describe_object(schema["Contract"], "62.0", schema)["fields"]
    assert [f["name"] for f in fields] == ["Id", "ContractNumber", "AccountId"]
    children = describe_object(schema["Account"], "62.0", schema)["childRelationships"]
    assert any(c["childSObject"] == "Contract" and c["field"] == "AccountId" for c in children)


def _hinted_description() -> dict[str, object]:
    return {
        "objects": [
            {
                "name": "Ticket__c",
                "label": "Ticket",
                "labelPlural": "Tickets",
                "keyPrefix": "a7Z",
                "custom": True,
                "fields": [
                    {"name": "Id", "type": "id", "length": 18, "nillable": False},
                    {
                        "name": "Name",
                        "type": "string",
                        "length": 80,
                        "generate": "'{tag}-' || CAST(i AS VARCHAR)",
                    },
                    {
                        "name": "Queue__c",
                        "type": "picklist",
                        "picklistValues": ["L1", "L2"],
                        "generate": {"kind": "pick", "key": "q"},
                    },
                    {
                        "name": "Escalated__c",
                        "type": "boolean",
                        "generate": {"kind": "sql", "sql": "({field:Queue__c} = 'L2')"},
                    },
                    {"name": "Hours__c", "type": "double", "scale": 1},
                ],
            }
        ],
        "rows": {"Ticket__c": 40},
    }


def test_a_described_object_s_hints_drive_its_values_and_its_types_the_rest() -> None:
    extra, rows = load_description(_hinted_description())
    store = OrgStore(None, schema=build_schema(2, extra))
    try:
        generate(store, 300, 3, described_rows=rows)
        with store.cursor() as cur:
            got = cur.execute(
                'SELECT Name, "Queue__c", "Escalated__c", "Hours__c" FROM sf_ticket__c'
            ).fetchall()
    finally:
        store.close()
    assert len(got) == 40
    assert all(name.startswith("TIC-") for name, *_ in got)
    assert {q for _n, q, _e, _h in got} == {"L1", "L2"}
    assert all(esc == (q == "L2") for _n, q, esc, _h in got)  # {field:...} reuses the field's value
    assert any(h is not None for *_x, h in got)  # no hint: a value by type (number)


@pytest.mark.parametrize(
    ("hint", "message"),
    [
        ({"kind": "lottery"}, "Ticket__c: unknown generate kind 'lottery'"),
        ("{field:Id} || 'x'", r"Ticket__c: \{field:Id\} names a field without a generate hint"),
        ("{first:Nowhere__c}", r"Ticket__c: unknown template name \{first:Nowhere__c\}"),
    ],
)
def test_a_bad_hint_is_refused_with_the_object_named(hint: object, message: str) -> None:
    doc = _hinted_description()
    doc["objects"][0]["fields"][1]["generate"] = hint  # type: ignore[index]
    extra, rows = load_description(doc)
    store = OrgStore(None, schema=build_schema(2, extra))
    try:
        with pytest.raises(ValueError, match=message):
            generate(store, 300, 3, described_rows=rows)
    finally:
        store.close()


def test_the_generated_org_is_the_one_the_code_built_schema_generated() -> None:
    clock = EmulatorClock(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    store = OrgStore(None, schema=build_schema(3), clock=clock)
    try:
        generate(store, 3000, 3, file_body_bytes=256)
        assert store.digest() == DIGEST_AFTER_GENERATE
        clock.advance(3600)
        churn(store, 5.0, 4)
        assert store.digest() == DIGEST_AFTER_CHURN
    finally:
        store.close()
