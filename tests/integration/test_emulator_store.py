"""The org store, generator and churn over real DuckDB: CRUD, ground truth, determinism, data shape."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator import ids as idmod
from emulator.churn import churn
from emulator.clock import EmulatorClock
from emulator.generator import generate
from emulator.soql import translate
from emulator.store import OrgStore, StoreError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _store(path: Path | None = None) -> OrgStore:
    return OrgStore(path, clock=EmulatorClock(NOW))


@pytest.fixture
def store() -> Iterator[OrgStore]:
    s = _store()
    yield s
    s.close()


@pytest.fixture(scope="module")
def generated() -> Iterator[OrgStore]:
    s = _store()
    generate(s, 3000, seed=11, file_body_bytes=1000)
    yield s
    s.close()


def _one(s: OrgStore, sql: str, params: list[Any] | None = None) -> Any:
    with s.cursor() as cur:
        row = cur.execute(sql, params or []).fetchone()
    assert row is not None
    return row[0]


# -- CRUD --------------------------------------------------------------------------------------------


def test_insert_get_update_delete_undelete_purge(store: OrgStore) -> None:
    rid = store.insert("Account", {"Name": "Acme", "BillingCity": "Paris", "AnnualRevenue": "12.5"})
    assert idmod.is_valid_id(rid) and rid.startswith("001")
    rec = store.get("Account", rid[:15])
    assert rec is not None
    assert rec["Name"] == "Acme" and rec["AnnualRevenue"] == 12.5 and rec["IsDeleted"] is False
    assert (
        rec["CreatedDate"] == NOW
        and rec["SystemModstamp"] == NOW
        and rec["OwnerId"] == store.integration_user_id
    )
    assert rec["BillingAddress"]["city"] == "Paris"
    assert "Tax_Id__c" not in rec  # FLS-hidden

    store.clock.advance(60)
    store.update("Account", rid, {"Phone": "+33 1 23"})
    rec = store.get("Account", rid, ["Phone", "CreatedDate", "LastModifiedDate", "SystemModstamp"])
    assert rec == {
        "Phone": "+33 1 23",
        "CreatedDate": NOW,
        "LastModifiedDate": NOW + timedelta(seconds=60),
        "SystemModstamp": NOW + timedelta(seconds=60),
    }

    store.clock.advance(60)
    store.delete("Account", rid)
    assert store.get("Account", rid, ["IsDeleted"]) == {"IsDeleted": True}
    assert store.counts()["Account"] == 0 and store.counts(include_deleted=True)["Account"] == 1
    with pytest.raises(StoreError) as err:
        store.update("Account", rid, {"Phone": "x"})
    assert err.value.error_code == "ENTITY_IS_DELETED"

    store.clock.advance(60)
    store.undelete("Account", rid)
    assert store.counts()["Account"] == 1
    store.purge("Account", rid)
    assert store.get("Account", rid) is None
    assert store.counts(include_deleted=True)["Account"] == 0


def test_store_errors(store: OrgStore) -> None:
    with pytest.raises(StoreError) as err:
        store.insert("Account", {"Nope__c": 1})
    assert err.value.error_code == "INVALID_FIELD"
    with pytest.raises(StoreError) as err:
        store.insert("Account", {"Tax_Id__c": "hidden"})
    assert err.value.error_code == "INVALID_FIELD"
    with pytest.raises(StoreError) as err:
        store.insert("Contact", {"FirstName": "no last name"})
    assert err.value.error_code == "REQUIRED_FIELD_MISSING" and err.value.fields == ["LastName"]
    with pytest.raises(StoreError) as err:
        store.get("Account", "not-an-id")
    assert err.value.error_code == "MALFORMED_ID"
    with pytest.raises(StoreError) as err:
        store.update("Account", idmod.make_id("001", 999), {"Name": "x"})
    assert err.value.error_code == "NOT_FOUND"
    with pytest.raises(StoreError) as err:
        store.get("Bogus", idmod.make_id("001", 1))
    assert err.value.error_code == "NOT_FOUND"


def test_person_name_and_types(store: OrgStore) -> None:
    cid = store.insert(
        "Contact",
        {"FirstName": "Ann", "LastName": "O'Neil", "Birthdate": "1980-02-03", "HasOptedOutOfEmail": "true"},
    )
    rec = store.get("Contact", cid, ["Name", "Birthdate", "HasOptedOutOfEmail", "DoNotCall"])
    assert rec is not None
    assert rec["Name"] == "Ann O'Neil" and str(rec["Birthdate"]) == "1980-02-03"
    assert rec["HasOptedOutOfEmail"] is True and rec["DoNotCall"] is False
    store.update("Contact", cid, {"LastName": "Smith"})
    assert store.get("Contact", cid, ["Name"]) == {"Name": "Ann Smith"}
    iid = store.insert(
        "Invoice__c",
        {
            "Name": "INV-1",
            "Paid_At__c": "2024-03-05T14:07:22.123+0000",
            "Reminder_Time__c": "14:07:22.000Z",
            "Tags__c": ["A", "B"],
        },
    )
    inv = store.get("Invoice__c", iid, ["Paid_At__c", "Reminder_Time__c", "Tags__c"])
    assert inv is not None
    assert inv["Paid_At__c"] == datetime(2024, 3, 5, 14, 7, 22, 123000, tzinfo=UTC)
    assert str(inv["Reminder_Time__c"]) == "14:07:22" and inv["Tags__c"] == "A;B"


def test_blobs_set_explicitly(store: OrgStore) -> None:
    acc = store.insert("Account", {"Name": "A"})
    body = bytes(range(256)) * 10
    aid = store.insert("Attachment", {"Name": "f.bin", "ParentId": acc, "Body": body})
    assert store.blob("Attachment", aid) == body
    assert store.blob_length("Attachment", aid) == len(body)
    assert b"".join(store.blob_stream("Attachment", aid, chunk_size=100)) == body
    rec = store.get("Attachment", aid, ["Body", "BodyLength"])
    assert rec == {"Body": f"/services/data/v59.0/sobjects/Attachment/{aid}/Body", "BodyLength": len(body)}
    store.update("Attachment", aid, {"Body": "aGVsbG8="})  # base64, as REST clients send it
    assert store.blob("Attachment", aid) == b"hello"
    store.purge("Attachment", aid)
    assert _one(store, "SELECT count(*) FROM _blobs") == 0


# -- change log ground truth -------------------------------------------------------------------------


def test_change_log_nets_out_changes(store: OrgStore) -> None:
    a = store.insert("Account", {"Name": "kept"})
    b = store.insert("Account", {"Name": "edited"})
    c = store.insert("Account", {"Name": "deleted"})
    d = store.insert("Account", {"Name": "bounced"})
    store.clock.advance(10)
    since = store.clock.now()
    store.update("Account", b, {"Name": "edited!"})
    store.delete("Account", c)
    store.delete("Account", d)
    store.undelete("Account", d)
    e = store.insert("Account", {"Name": "new"})
    f = store.insert("Account", {"Name": "short-lived"})
    store.purge("Account", f)
    store.update_many("Account", [a], system_only=True)  # SystemModstamp only: not a data change
    log = store.change_log(since)
    assert log == {"Account": {"added": [e], "changed": sorted([b, d]), "removed": [c]}}
    assert store.updated_ids("Account", since, since + timedelta(seconds=1)) == sorted([a, b, d, e])
    deleted = store.deleted_records("Account", since, since + timedelta(seconds=1))
    # the delete log lists soft deletes and hard deletes of live rows (f), not undeleted rows (d)
    assert [r["id"] for r in deleted] == [c, f]
    assert store.change_log(since + timedelta(seconds=1)) == {}


OPS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "update", "delete", "undelete", "purge", "tick"]), st.integers(0, 50)
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=OPS, after=OPS)
def test_change_log_matches_a_model(before: list[tuple[str, int]], after: list[tuple[str, int]]) -> None:
    """Random operations; change_log(t) must equal the diff of the live sets at t and now."""
    s = _store()
    live: dict[str, str] = {}  # id -> name
    binned: set[str] = set()
    counter = 0

    def apply(ops: list[tuple[str, int]]) -> None:
        nonlocal counter
        for op, k in ops:
            if op == "tick":
                s.clock.advance(1)
            elif op == "insert":
                counter += 1
                live[s.insert("Lead", {"LastName": f"L{counter}", "Company": "C"})] = f"L{counter}"
            elif op == "update" and live:
                rid = sorted(live)[k % len(live)]
                counter += 1
                s.update("Lead", rid, {"LastName": f"L{counter}"})
                live[rid] = f"L{counter}"
            elif op == "delete" and live:
                rid = sorted(live)[k % len(live)]
                s.delete("Lead", rid)
                binned.add(rid)
                del live[rid]
            elif op == "undelete" and binned:
                rid = sorted(binned)[k % len(binned)]
                s.undelete("Lead", rid)
                binned.discard(rid)
                live[rid] = "?"
            elif op == "purge" and (binned or live):
                pool = sorted(binned | set(live))
                rid = pool[k % len(pool)]
                s.purge("Lead", rid)
                binned.discard(rid)
                live.pop(rid, None)

    try:
        apply(before)
        s.clock.advance(5)
        since = s.clock.now()
        snapshot = set(live)
        apply(after)
        log = s.change_log(since).get("Lead", {"added": [], "changed": [], "removed": []})
        assert set(log["added"]) == set(live) - snapshot
        assert set(log["removed"]) == snapshot - set(live)
        assert set(log["changed"]) <= snapshot & set(live)
        assert s.counts()["Lead"] == len(live)
        assert s.counts(include_deleted=True)["Lead"] == len(live) + len(binned)
    finally:
        s.close()


# -- persistence -------------------------------------------------------------------------------------


def test_org_survives_a_restart(tmp_path: Path) -> None:
    s = _store(tmp_path / "org")
    generate(s, 500, seed=3)
    digest, org_id, counts = s.digest(), s.org_id, s.counts()
    rid = s.insert("Account", {"Name": "after"})
    s.close()
    s2 = _store(tmp_path / "org")
    try:
        assert s2.org_id == org_id and s2.get("Account", rid) is not None
        assert s2.counts()["Account"] == counts["Account"] + 1
        s2.purge("Account", rid)
        assert s2.digest() == digest  # back to the generated rows (the digest ignores the change log)
        rid2 = s2.insert("Account", {"Name": "again"})
        assert rid2 > rid  # ids are never reused
    finally:
        s2.close()


# -- generator ---------------------------------------------------------------------------------------


def test_same_seed_same_digest_different_seed_different() -> None:
    digests = []
    for seed in (1, 1, 2):
        s = _store()
        generate(s, 800, seed=seed, file_body_bytes=256)
        digests.append(s.digest())
        s.close()
    assert digests[0] == digests[1] != digests[2]


def test_generated_ids_and_references_resolve(generated: OrgStore) -> None:
    s = generated
    for obj in s.schema.values():
        table = s.table_name(obj)
        ids = [r[0] for r in s.cursor().execute(f"SELECT Id FROM {table}").fetchall()]
        assert all(
            idmod.is_valid_id(i) and len(i) == 18 and i.startswith(obj.key_prefix or "") for i in ids
        ), obj
        assert len(ids) == len(set(ids))
        for f in obj.column_fields:
            if f.type != "reference" or not ids:
                continue
            targets = [s.schema[t] for t in f.reference_to if t in s.schema]
            union = " UNION ALL ".join(f"SELECT Id FROM {s.table_name(t)}" for t in targets)
            dangling = _one(
                s,
                f'SELECT count(*) FROM {table} WHERE "{f.name}" IS NOT NULL AND "{f.name}" NOT IN ({union})',
            )
            assert dangling == 0, (obj.name, f.name)


def test_generated_timestamps(generated: OrgStore) -> None:
    s = generated
    for name in ("Account", "Contact", "Task", "Invoice__c", "Attachment"):
        t = s.table_name(s.schema[name])
        bad = _one(
            s,
            f"SELECT count(*) FROM {t} WHERE NOT (CreatedDate <= LastModifiedDate AND "
            "LastModifiedDate <= SystemModstamp AND SystemModstamp <= ?)",
            [NOW.replace(tzinfo=None)],
        )
        assert bad == 0, name
        dup = _one(s, f"SELECT count(*) FROM (SELECT SystemModstamp FROM {t} GROUP BY 1 HAVING count(*) > 1)")
        assert dup > 0 or name == "Attachment", name
        ms = _one(s, f"SELECT count(*) FROM {t} WHERE microsecond(SystemModstamp) % 1000 <> 0")
        assert ms == 0
        # ids grow with CreatedDate (within the generated batch)
        inversions = _one(
            s,
            f"SELECT count(*) FROM (SELECT CreatedDate, lag(CreatedDate) OVER (ORDER BY Id) p "
            f"FROM {t}) WHERE date_trunc('day', CreatedDate) < date_trunc('day', p) - INTERVAL 2 DAY",
        )
        assert inversions == 0, name


def test_generated_hard_text_cases(generated: OrgStore) -> None:
    s = generated
    text = (
        "SELECT Name FROM sf_account UNION ALL SELECT Description FROM sf_account"
        " UNION ALL SELECT Subject FROM sf_task"
    )
    values = [r[0] for r in s.cursor().execute(text).fetchall() if r[0] is not None]
    for needle in ('"', ",", "\n", "\r\n", "\\", "😀", "\t"):
        assert any(needle in v for v in values), repr(needle)
    assert any(any(ord(ch) > 0xFFFF for ch in v) for v in values)  # non-BMP
    assert _one(s, "SELECT count(*) FROM sf_invoice__c WHERE Summary__c = ''") > 0
    assert _one(s, "SELECT count(*) FROM sf_invoice__c WHERE Summary__c IS NULL") > 0


def test_generated_skew_and_setup(generated: OrgStore) -> None:
    s = generated
    counts = s.counts(include_deleted=True)
    big = sorted(counts, key=lambda k: counts[k], reverse=True)[:4]
    assert "Task" in big and "Contact" in big
    assert counts["Organization"] == 1
    org = (
        s.cursor()
        .execute("SELECT Id, IsSandbox, OrganizationType, TimeZoneSidKey FROM sf_organization")
        .fetchone()
    )
    assert org == (s.org_id, False, "Enterprise Edition", "America/Los_Angeles")
    active = _one(s, "SELECT count(*) FROM sf_user WHERE IsActive")
    assert 0 < active < counts["User"]
    assert _one(s, "SELECT count(DISTINCT UserType) FROM sf_user") > 1
    # the integration user's effective permissions, the way an engine asks for them
    soql = (
        "SELECT PermissionSet.PermissionsApiEnabled, PermissionSet.PermissionsViewAllData, "
        "PermissionSet.PermissionsQueryAllFiles, PermissionSet.IsOwnedByProfile FROM PermissionSetAssignment "
        f"WHERE AssigneeId = '{s.integration_user_id}'"
    )
    t = translate(soql, s.schema, include_deleted=False)
    rows = s.cursor().execute(t.sql, t.params).fetchall()
    assert any(r[0] for r in rows) and any(r[1] for r in rows) and any(r[2] for r in rows)
    assert any(r[3] for r in rows) and not all(r[3] for r in rows)
    hidden = (
        s.cursor()
        .execute("SELECT DISTINCT PermissionsRead FROM sf_fieldpermissions WHERE Field = 'Account.Tax_Id__c'")
        .fetchall()
    )
    assert hidden == [(False,)]
    assert (
        _one(s, "SELECT count(*) FROM sf_fieldpermissions WHERE Field = 'Account.Phone' AND PermissionsRead")
        > 0
    )
    user = s.get(
        "User",
        s.integration_user_id,
        ["Username", "IsActive", "UserType", "ProfileId"],
    )
    assert user is not None and user["IsActive"] and user["UserType"] == "Standard"


def test_generated_file_bodies(generated: OrgStore) -> None:
    s = generated
    for name, length_field in (
        ("Attachment", "BodyLength"),
        ("Document", "BodyLength"),
        ("ContentVersion", "ContentSize"),
        ("StaticResource", "BodyLength"),
    ):
        rid, length = (
            s.cursor()
            .execute(f"SELECT Id, {length_field} FROM {s.table_name(s.schema[name])} ORDER BY Id LIMIT 1")
            .fetchone()
        )  # type: ignore[misc]
        body = s.blob(name, rid)
        assert body is not None and len(body) == length and 500 <= length <= 1500
        assert s.blob(name, rid) == body
    # exactly one latest version per document, and the document points at it
    bad = _one(
        s,
        "SELECT count(*) FROM (SELECT ContentDocumentId FROM sf_contentversion WHERE IsLatest "
        "GROUP BY 1 HAVING count(*) <> 1)",
    )
    assert bad == 0
    mismatch = _one(
        s,
        "SELECT count(*) FROM sf_contentdocument d JOIN sf_contentversion v ON "
        "v.Id = d.LatestPublishedVersionId WHERE NOT v.IsLatest OR v.ContentDocumentId <> d.Id "
        "OR v.ContentSize <> d.ContentSize",
    )
    assert mismatch == 0
    elf, size = s.cursor().execute("SELECT Id, LogFileLength FROM sf_eventlogfile LIMIT 1").fetchone()  # type: ignore[misc]
    log = s.blob("EventLogFile", elf)
    assert log is not None and len(log) == size
    parsed = list(csv.reader(io.StringIO(log.decode())))
    assert parsed[0][0] == "EVENT_TYPE" and len(parsed) > 2


# -- churn -------------------------------------------------------------------------------------------


def test_churn_ground_truth_and_determinism() -> None:
    results = []
    for _ in range(2):
        s = _store()
        generate(s, 1500, seed=5, file_body_bytes=128)
        s.clock.advance(3600)
        since = s.clock.now()
        snapshot = {name: set(_ids(s, name)) for name in s.schema}
        modstamps = {
            r[0]: r[1] for r in s.cursor().execute("SELECT Id, SystemModstamp FROM sf_contact").fetchall()
        }
        before = s.counts()
        summary = churn(s, 5.0, seed=9)
        assert summary.total > 0 and summary.inserted["Contact"] > 0 and summary.deleted["Contact"] > 0
        log = s.change_log(since)
        after = s.counts()
        for name in s.schema:
            now_ids = set(_ids(s, name))
            entry = log.get(name, {"added": [], "changed": [], "removed": []})
            assert set(entry["added"]) == now_ids - snapshot[name], name
            assert set(entry["removed"]) == snapshot[name] - now_ids, name
            assert before[name] + len(entry["added"]) - len(entry["removed"]) == after[name]
        # every changed Contact has a newer SystemModstamp; touched rows too
        new_stamps = dict(s.cursor().execute("SELECT Id, SystemModstamp FROM sf_contact").fetchall())
        for rid in log["Contact"]["changed"]:
            assert new_stamps[rid] > modstamps[rid]
        assert sum(1 for rid, ts in new_stamps.items() if rid in modstamps and ts > modstamps[rid]) > len(
            log["Contact"]["changed"]
        )  # touches
        # optional lookups of the new rows point at existing parents
        dangling = _one(
            s,
            "SELECT count(*) FROM sf_contact WHERE AccountId IS NOT NULL AND AccountId NOT IN "
            "(SELECT Id FROM sf_account)",
        )
        assert dangling == 0
        results.append((s.digest(), summary))
        s.close()
    assert results[0][0] == results[1][0]
    assert results[0][1] == results[1][1]


def _ids(s: OrgStore, name: str) -> list[str]:
    obj = s.schema[name]
    where = " WHERE NOT IsDeleted" if obj.has_is_deleted else ""
    if name in ("Task", "Event"):
        where += " AND NOT IsArchived"
    return [r[0] for r in s.cursor().execute(f"SELECT Id FROM {s.table_name(obj)}{where}").fetchall()]
