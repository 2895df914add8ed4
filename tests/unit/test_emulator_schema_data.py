"""The emulator's objects as data (``emulator.schema_data``).

Today's objects convert to describe-shaped data and back unchanged (so adding an object is adding
data), a description's objects join the org with their rows, and the wide org has the shape of a
real one: several hundred objects, some not queryable or not retrieveable, some that Bulk API
cannot query, ``*History``/``*Share``/``*Feed``/``*ChangeEvent`` objects with the right describe
flags, a custom setting, and one object of 800 fields.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest

from emulator.schema import build_schema, describe_global, describe_object
from emulator.schema_data import load_description, object_from_data, object_to_data, wide_org
from emulator.store import OrgStore


def test_every_object_of_today_converts_to_data_and_back_unchanged() -> None:
    schema = build_schema(3)
    assert len(schema) == len(build_schema(2)) + 1
    for obj in schema.values():
        data = json.loads(json.dumps(object_to_data(obj)))
        back = object_from_data(data)
        assert back == obj, obj.name
        assert describe_object(back, "62.0", schema) == describe_object(obj, "62.0", schema)


def test_unknown_keys_are_refused() -> None:
    data = object_to_data(build_schema()["Account"])
    with pytest.raises(ValueError, match="unknown keys"):
        object_from_data(data | {"colour": "red"})
    data["fields"][0]["colour"] = "red"
    with pytest.raises(ValueError, match="unknown keys"):
        object_from_data(data)


def test_the_wide_org_has_a_real_orgs_shape() -> None:
    doc = wide_org(300, seed=3)
    assert doc == wide_org(300, seed=3)  # deterministic
    extra, rows = load_description(json.loads(json.dumps(doc)))
    schema = build_schema(2, extra)
    base = build_schema(2)
    assert len(schema) == len(base) + 300
    assert all(schema[n] == base[n] for n in base), "today's objects stay as they are"
    entries = {e["name"]: e for e in describe_global(schema, "62.0")["sobjects"]}
    assert len(entries) == len(base) + 300
    kinds = Counter(e["associateEntityType"] for e in entries.values())
    assert (
        min(kinds["History"] // 20, kinds["Share"] // 10, kinds["Feed"] // 5, kinds["ChangeEvent"] // 10) >= 1
    )
    for e in entries.values():
        if e["associateEntityType"] == "ChangeEvent":
            assert not e["queryable"] and not e["retrieveable"] and not e["replicateable"]
    assert not entries["Vault_Key__c"]["queryable"]
    assert entries["Sync_State__c"]["queryable"] and not entries["Sync_State__c"]["retrieveable"]
    assert entries["App_Settings__c"]["customSetting"]
    assert len(describe_object(schema["Wide__c"], "62.0", schema)["fields"]) == 800
    assert not schema["CaseStatus"].bulk_supported and schema["CaseStatus"].queryable
    prefixes = [o.key_prefix for o in extra]
    assert all(p is not None and len(p) == 3 for p in prefixes) and len(set(prefixes)) == len(prefixes)
    assert set(rows) <= set(schema) and sum(rows.values()) < 3_000


def test_a_description_is_generated_with_its_rows_and_today_s_objects_keep_theirs() -> None:
    from emulator.clock import EmulatorClock
    from emulator.generator import generate

    doc = wide_org(60, seed=5, max_rows=6)
    extra, rows = load_description(doc)
    t0 = EmulatorClock().now()
    plain = OrgStore(None, schema=build_schema(2), clock=EmulatorClock(t0))
    wide = OrgStore(None, schema=build_schema(2, extra), clock=EmulatorClock(t0))
    try:
        a = generate(plain, 300, 7)
        b = generate(wide, 300, 7, described_rows=rows)
        for name, n in a.items():
            if name not in ("ObjectPermissions", "FieldPermissions"):  # they cover every custom object
                assert b.get(name) == n, name
        assert {n: b.get(n, 0) for n in rows} == rows
        assert wide.counts()["Wide__c"] == rows["Wide__c"]
    finally:
        plain.close()
        wide.close()


def test_the_digest_of_an_org_with_an_800_field_object_covers_its_last_field() -> None:
    """Issue 16: ``OrgStore.digest()`` joined a row's columns with ~1,600 ``||`` operators, and
    DuckDB refused ``Wide__c`` (800 fields) with "Max expression depth limit of 1000 exceeded"."""
    from emulator.clock import EmulatorClock

    extra, _ = load_description(wide_org(40, seed=1))
    wide = next(o for o in extra if o.name == "Wide__c")
    last = wide.column_fields[-1]
    assert len(wide.fields) == 800 and last.type == "boolean"
    t0 = EmulatorClock().now()
    digests = []
    for value in (True, False):  # two orgs that differ only in the last of the 800 columns
        store = OrgStore(None, schema=build_schema(1, [wide]), clock=EmulatorClock(t0))
        try:
            rows: list[dict[str, Any]] = [{"Name": "a", last.name: True}, {"Name": "b", last.name: value}]
            store.insert_many("Wide__c", rows)
            digests.append(store.digest())
        finally:
            store.close()
    assert all(re.fullmatch("[0-9a-f]{64}", d) for d in digests)
    assert digests[0] != digests[1]
