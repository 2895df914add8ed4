"""The emulator's Pub/Sub API (``eventbus.v1.PubSub`` over gRPC with TLS), as a real client sees it.

A real emulator process, a real gRPC channel with the generated stubs, payloads decoded with
fastavro from the schema GetSchema returns, bitmaps expanded the way Salesforce's published Python
example does. Changes are made through REST (as any integration would) and churn; the test reads
the change events they produced. No sleeps: a short keep-alive interval proves a subscription is
in place, and every wait is a blocking read on the stream under a call deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest

from salesforce_pubsub import pubsub_api_pb2 as pb
from tests.helpers.emulator_proc import EmulatorProcess, start_emulator
from tests.helpers.pubsub_client import (
    PubSubClient,
    Subscription,
    events_until,
    named_types,
    process_bitmap,
    read_through,
    replay_bytes,
    replay_int,
)

pytestmark = pytest.mark.emulator

V = "/services/data/v62.0"
ACCOUNT_TOPIC = "/data/AccountChangeEvent"


@pytest.fixture(scope="module")
def em() -> Iterator[EmulatorProcess]:
    e = start_emulator(scale=1_000, seed=11, tls=True, timeout=300)
    try:
        e.admin("POST", "/pubsub/cdc", json={"entities": ["Account", "Invoice__c"]})
        e.admin("POST", "/pubsub/settings", json={"keepalive_s": 0.3})
        yield e
    finally:
        e.stop()


@pytest.fixture()
def client(em: EmulatorProcess) -> Iterator[PubSubClient]:
    c = PubSubClient.connect(em)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture()
def rest(em: EmulatorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=em.url, verify=em.verify, trust_env=False, timeout=60,
        headers={"Authorization": f"Bearer {em.token()}"},
    ) as c:  # fmt: skip
        yield c


def _account_ids(em: EmulatorProcess, n: int) -> list[str]:
    rows = em.sql("SELECT Id FROM sf_account WHERE NOT IsDeleted ORDER BY Id LIMIT ?", n)
    return [str(r[0]) for r in rows]


def _subscribed_latest(client: PubSubClient, topic: str, n: int) -> Subscription:
    """A LATEST subscription that is in place: its first keep-alive has arrived."""
    sub = client.subscribe(topic, n, pb.LATEST)
    first = sub.next()
    assert not first.events
    return sub


def _last_replay(em: EmulatorProcess) -> int:
    return int(em.admin("GET", "/pubsub")["last_replay_id"])


def test_topic_and_schema_are_salesforce_shaped(client: PubSubClient) -> None:
    topic = client.get_topic(ACCOUNT_TOPIC)
    assert topic.topic_name == ACCOUNT_TOPIC and topic.can_subscribe and not topic.can_publish
    assert topic.tenant_guid.startswith("00D") and len(topic.tenant_guid) == 18
    schema = client.schema(topic.schema_id)
    assert (schema["name"], schema["namespace"]) == ("AccountChangeEvent", "com.sforce.eventbus")
    fields = {f["name"]: f for f in schema["fields"]}
    assert schema["fields"][0]["name"] == "ChangeEventHeader"
    header = {f["name"] for f in schema["fields"][0]["type"]["fields"]}
    assert {
        "entityName",
        "recordIds",
        "changeType",
        "changeOrigin",
        "transactionKey",
        "sequenceNumber",
    } <= header
    assert {
        "commitTimestamp",
        "commitNumber",
        "commitUser",
        "nulledFields",
        "diffFields",
        "changedFields",
    } <= header
    # every record field nullable with default null; compounds nested; components and system fields absent
    for f in schema["fields"][1:]:
        assert f["type"][0] == "null" and f["default"] is None, f
    assert fields["CreatedDate"]["type"] == ["null", "long"]
    address = fields["BillingAddress"]["type"][1]
    assert address["type"] == "record" and "City" in [c["name"] for c in address["fields"]]
    assert fields["ShippingAddress"]["type"][1] == "com.sforce.eventbus.Address"
    assert not {"Id", "IsDeleted", "SystemModstamp", "BillingCity"} & set(fields)

    custom = client.get_topic("/data/Invoice__ChangeEvent")
    assert client.schema(custom.schema_id)["name"] == "Invoice__ChangeEvent"


def test_topic_of_an_object_without_cdc_is_refused(em: EmulatorProcess, client: PubSubClient) -> None:
    with pytest.raises(grpc.RpcError) as err:
        client.get_topic("/data/ContactChangeEvent")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # file, permission and history objects are not offered; five entities is the limit without the add-on
    for unsupported in ("ContentVersion", "Attachment", "PermissionSet", "AccountHistory"):
        with pytest.raises(httpx.HTTPStatusError):
            em.admin("POST", "/pubsub/cdc", json={"entities": [unsupported]})
    with pytest.raises(httpx.HTTPStatusError):
        em.admin("POST", "/pubsub/cdc", json={"entities": ["Contact", "Lead", "Case", "Opportunity"]})
    assert em.admin("GET", "/pubsub")["enabled"] == ["Account", "Invoice__c"]


def test_a_transaction_over_the_threshold_is_one_gap_overflow(
    em: EmulatorProcess, client: PubSubClient
) -> None:
    start = _last_replay(em)
    em.admin("POST", "/pubsub/settings", json={"overflow_threshold": 2})
    try:
        summary = em.admin("POST", "/churn", json={"percent": 10, "seed": 19})
    finally:
        em.admin("POST", "/pubsub/settings", json={"overflow_threshold": 100_000})
    assert summary["inserted"]["Account"] > 2
    tip = _last_replay(em)
    sub = client.subscribe(ACCOUNT_TOPIC, 100, pb.CUSTOM, replay_bytes(start))
    try:
        events = read_through(sub, tip)
    finally:
        sub.close()
    headers = [client.decode(e)["ChangeEventHeader"] for e in events]
    assert ("GAP_OVERFLOW", []) in [(h["changeType"], h["recordIds"]) for h in headers]
    assert not [h for h in headers if h["changeType"] == "CREATE"]  # the inserts became the overflow


def test_bad_token_is_unauthenticated(em: EmulatorProcess) -> None:
    bad = PubSubClient.connect(em, token="00D000000000001!AQbogus")
    try:
        with pytest.raises(grpc.RpcError) as err:
            bad.get_topic(ACCOUNT_TOPIC)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        trailers = dict(err.value.trailing_metadata() or ())
        assert trailers["error-code"] == "sfdc.platform.eventbus.grpc.service.auth.error"
        sub = bad.subscribe(ACCOUNT_TOPIC, 1)
        with pytest.raises(grpc.RpcError) as err2:
            sub.next()
        assert err2.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        bad.close()


def test_rest_update_gives_update_event_with_bitmaps(
    em: EmulatorProcess, client: PubSubClient, rest: httpx.Client
) -> None:
    [rid] = _account_ids(em, 1)
    sub = _subscribed_latest(client, ACCOUNT_TOPIC, 10)
    try:
        resp = rest.patch(
            f"{V}/sobjects/Account/{rid}",
            json={"Name": "Pubsub Co", "BillingCity": "Lyon", "Description": None},
        )
        assert resp.status_code == 204, resp.text
        [event] = events_until(sub, 1)
    finally:
        sub.close()
    data = client.decode(event)
    h = data["ChangeEventHeader"]
    assert (h["entityName"], h["recordIds"], h["changeType"]) == ("Account", [rid], "UPDATE")
    assert h["sequenceNumber"] == 1 and h["transactionKey"] and h["commitUser"].startswith("005")
    schema = client.schema(event.event.schema_id)
    named = named_types(schema)
    changed = process_bitmap(schema, h["changedFields"], named)
    assert set(changed) == {
        "Name",
        "BillingAddress.City",
        "Description",
        "LastModifiedDate",
        "LastModifiedById",
    }
    assert process_bitmap(schema, h["nulledFields"], named) == ["Description"]
    assert h["diffFields"] == []
    assert data["Name"] == "Pubsub Co"
    assert data["BillingAddress"]["City"] == "Lyon" and data["BillingAddress"]["Street"] is None
    assert data["Description"] is None and data["Phone"] is None  # nulled / unchanged
    [[modified]] = em.sql("SELECT LastModifiedDate FROM sf_account WHERE Id = ?", rid)
    expected_ms = int(datetime.fromisoformat(str(modified)).replace(tzinfo=UTC).timestamp() * 1000)
    assert data["LastModifiedDate"] == expected_ms == h["commitTimestamp"]


def test_create_delete_undelete_events(em: EmulatorProcess, client: PubSubClient, rest: httpx.Client) -> None:
    start = _last_replay(em)
    created = rest.post(f"{V}/sobjects/Account", json={"Name": "Fresh Co", "BillingCountry": "France"})
    assert created.status_code == 201, created.text
    new_id = created.json()["id"]
    victims = _account_ids(em, 6)[1:5]
    for rid in victims:
        assert rest.delete(f"{V}/sobjects/Account/{rid}").status_code == 204
    summary = em.admin("POST", "/churn", json={"percent": 0, "seed": 3})
    undeleted = summary["undeleted"].get("Account", 0)
    assert undeleted >= 1

    sub = client.subscribe(ACCOUNT_TOPIC, 100, pb.CUSTOM, replay_bytes(start))
    try:
        events = events_until(sub, 1 + len(victims) + 1)
    finally:
        sub.close()
    decoded = [client.decode(e) for e in events]
    kinds = [d["ChangeEventHeader"]["changeType"] for d in decoded]
    assert kinds[0] == "CREATE" and kinds[1 : 1 + len(victims)] == ["DELETE"] * len(victims)
    create = decoded[0]
    assert create["ChangeEventHeader"]["recordIds"] == [new_id]
    assert create["Name"] == "Fresh Co" and create["BillingAddress"]["Country"] == "France"
    assert isinstance(create["CreatedDate"], int) and create["ChangeEventHeader"]["changedFields"] == []
    deletes = decoded[1 : 1 + len(victims)]
    assert [d["ChangeEventHeader"]["recordIds"] for d in deletes] == [[v] for v in victims]
    assert all(d["Name"] is None for d in deletes)  # header only
    undelete = decoded[1 + len(victims)]
    assert undelete["ChangeEventHeader"]["changeType"] == "UNDELETE"
    ids = undelete["ChangeEventHeader"]["recordIds"]
    assert undelete["Name"] is not None
    live = {str(r[0]) for r in em.sql("SELECT Id FROM sf_account WHERE NOT IsDeleted")}
    assert set(ids) <= live
    replays = [replay_int(e.replay_id) for e in events]
    assert replays == sorted(replays) and replays[0] > start

    # purging what is already in the recycle bin is no change event (the records were deleted)
    held = em.admin("GET", "/pubsub")["events_by_entity"]["Account"]
    assert em.admin("POST", "/recycle-bin/empty", json={})["purged"] > 0
    assert em.admin("GET", "/pubsub")["events_by_entity"]["Account"] == held


def test_identical_changes_in_one_transaction_share_an_event(
    em: EmulatorProcess, client: PubSubClient
) -> None:
    start = _last_replay(em)
    summary = em.admin("POST", "/churn", json={"percent": 10, "seed": 7})
    deleted = summary["deleted"].get("Account", 0)
    assert deleted >= 2
    tip = _last_replay(em)
    sub = client.subscribe(ACCOUNT_TOPIC, 100, pb.CUSTOM, replay_bytes(start))
    try:
        events = read_through(sub, tip)
    finally:
        sub.close()
    headers = [client.decode(e)["ChangeEventHeader"] for e in events]
    soft = [h for h in headers if h["changeType"] == "DELETE" and len(h["recordIds"]) == deleted]
    assert len(soft) == 1  # churn's soft deletes: one transaction, one event, every record id in it
    live = {str(r[0]) for r in em.sql("SELECT Id FROM sf_account WHERE NOT IsDeleted")}
    assert not set(soft[0]["recordIds"]) & live
    creates = [h for h in headers if h["changeType"] == "CREATE"]
    assert sum(len(h["recordIds"]) for h in creates) == summary["inserted"]["Account"]
    # events of one transaction share its key and count up from 1
    by_txn: dict[str, list[int]] = {}
    for h in headers:
        by_txn.setdefault(h["transactionKey"], []).append(h["sequenceNumber"])
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in by_txn.values())


def test_earliest_latest_custom_presets(
    em: EmulatorProcess, client: PubSubClient, rest: httpx.Client
) -> None:
    [rid] = _account_ids(em, 1)
    for i in range(3):
        assert rest.patch(f"{V}/sobjects/Account/{rid}", json={"Phone": f"555-{i}"}).status_code == 204
    state = em.admin("GET", "/pubsub")
    tip = state["last_replay_id"]
    earliest = client.subscribe(ACCOUNT_TOPIC, 100, pb.EARLIEST)
    try:
        held = read_through(earliest, tip)
    finally:
        earliest.close()
    assert len(held) == state["events_by_entity"]["Account"]  # every retained Account event, in order
    replays = [replay_int(e.replay_id) for e in held]
    assert replays == sorted(set(replays)) and replays[-1] == tip
    custom = client.subscribe(ACCOUNT_TOPIC, 2, pb.CUSTOM, replay_bytes(tip - 2))
    try:
        events = events_until(custom, 2)
    finally:
        custom.close()
    assert [replay_int(e.replay_id) for e in events] == [tip - 1, tip]
    assert [client.decode(e)["Phone"] for e in events] == ["555-1", "555-2"]

    latest = _subscribed_latest(client, ACCOUNT_TOPIC, 5)
    try:
        assert rest.patch(f"{V}/sobjects/Account/{rid}", json={"Phone": "555-9"}).status_code == 204
        [new] = events_until(latest, 1)
    finally:
        latest.close()
    assert replay_int(new.replay_id) == tip + 1
    assert client.decode(new)["Phone"] == "555-9"


def test_flow_control_and_keepalives(em: EmulatorProcess, client: PubSubClient, rest: httpx.Client) -> None:
    start = _last_replay(em)
    [rid] = _account_ids(em, 1)
    for i in range(5):
        assert rest.patch(f"{V}/sobjects/Account/{rid}", json={"Fax": f"fax-{i}"}).status_code == 204
    sub = client.subscribe(ACCOUNT_TOPIC, 2, pb.CUSTOM, replay_bytes(start))
    try:
        got = events_until(sub, 2)
        assert len(got) == 2
        idle = sub.next()  # owed nothing: the next message is a keep-alive, not the third event
        assert not idle.events and idle.pending_num_requested == 0
        assert replay_int(idle.latest_replay_id) == replay_int(got[-1].replay_id)
        sub.request(3)
        more = events_until(sub, 3)
        assert len(more) == 3
        assert [client.decode(e)["Fax"] for e in got + more] == [f"fax-{i}" for i in range(5)]
        caught_up = sub.next()
        assert not caught_up.events and replay_int(caught_up.latest_replay_id) == _last_replay(em)
    finally:
        sub.close()


def test_a_request_for_another_topic_fails_the_stream(client: PubSubClient) -> None:
    sub = _subscribed_latest(client, ACCOUNT_TOPIC, 1)
    try:
        sub.request(1, topic="/data/Invoice__ChangeEvent")
        with pytest.raises(grpc.RpcError) as err:
            while True:
                sub.next()
    finally:
        sub.close()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_gap_events_and_dropped_streams(em: EmulatorProcess, client: PubSubClient) -> None:
    ids = _account_ids(em, 2)
    start = _last_replay(em)
    em.admin("POST", "/pubsub/gap", json={"entity": "Account", "changeType": "GAP_UPDATE", "recordIds": ids})
    em.admin("POST", "/pubsub/gap", json={"entity": "Account", "changeType": "GAP_OVERFLOW"})
    sub = client.subscribe(ACCOUNT_TOPIC, 10, pb.CUSTOM, replay_bytes(start))
    try:
        events = events_until(sub, 2)
        headers = [client.decode(e)["ChangeEventHeader"] for e in events]
        assert [(h["changeType"], h["recordIds"]) for h in headers] == [
            ("GAP_UPDATE", ids),
            ("GAP_OVERFLOW", []),
        ]
        assert all(h["changedFields"] == [] for h in headers)
        em.admin("POST", "/pubsub/streams/drop")
        with pytest.raises(grpc.RpcError) as err:
            while True:
                sub.next()
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        sub.close()


def test_delivery_allocation_is_counted_and_enforced(
    em: EmulatorProcess, client: PubSubClient, rest: httpx.Client
) -> None:
    def remaining() -> int:
        return int(rest.get(f"{V}/limits").json()["DailyDeliveredPlatformEvents"]["Remaining"])

    start = _last_replay(em)
    [rid] = _account_ids(em, 1)
    for i in range(3):
        assert (
            rest.patch(f"{V}/sobjects/Account/{rid}", json={"Website": f"https://x{i}.example"}).status_code
            == 204
        )
    before = remaining()
    sub = client.subscribe(ACCOUNT_TOPIC, 1, pb.CUSTOM, replay_bytes(start))
    try:
        events_until(sub, 1)
    finally:
        sub.close()
    assert remaining() == before - 1

    alloc = em.admin("GET", "/pubsub")["allocation"]
    em.admin("POST", "/pubsub/allocation", json={"used": alloc["max"]})
    try:
        assert remaining() == 0
        sub = client.subscribe(ACCOUNT_TOPIC, 5, pb.CUSTOM, replay_bytes(start))
        try:
            with pytest.raises(grpc.RpcError) as err:
                events_until(sub, 1)
        finally:
            sub.close()
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        em.admin("POST", "/pubsub/allocation", json={"used": 0})


def test_expired_and_malformed_replay_ids_fail_the_stream() -> None:
    em = start_emulator(scale=300, seed=2, tls=True, timeout=300)
    try:
        em.admin("POST", "/pubsub/cdc", json={"entities": ["Account"]})
        em.admin("POST", "/pubsub/settings", json={"keepalive_s": 0.3})
        [rid] = _account_ids(em, 1)
        token = em.token()
        with httpx.Client(
            base_url=em.url, verify=em.verify, trust_env=False, headers={"Authorization": f"Bearer {token}"}
        ) as rest:
            assert rest.patch(f"{V}/sobjects/Account/{rid}", json={"Phone": "1"}).status_code == 204
            first = _last_replay(em)
            em.admin("POST", "/clock", json={"advance": 71 * 3600})
            assert rest.patch(f"{V}/sobjects/Account/{rid}", json={"Phone": "2"}).status_code == 204
        client = PubSubClient.connect(em, token)
        try:
            within = client.subscribe(ACCOUNT_TOPIC, 1, pb.CUSTOM, replay_bytes(first - 1))
            try:
                [ev] = events_until(within, 1)  # 71 hours old: still retained
            finally:
                within.close()
            assert replay_int(ev.replay_id) == first
            em.admin("POST", "/clock", json={"advance": 2 * 3600})  # now 73 hours after the first change
            for bad in (replay_bytes(first - 1), b"\x01\x02"):
                sub = client.subscribe(ACCOUNT_TOPIC, 1, pb.CUSTOM, bad)
                with pytest.raises(grpc.RpcError) as err:
                    sub.next()
                sub.close()
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                trailers: dict[str, Any] = dict(err.value.trailing_metadata() or ())
                assert (
                    trailers["error-code"]
                    == "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
                )
            earliest = client.subscribe(ACCOUNT_TOPIC, 1, pb.EARLIEST)
            try:
                [kept] = events_until(earliest, 1)
            finally:
                earliest.close()
            assert replay_int(kept.replay_id) == first + 1  # the expired event is gone
        finally:
            client.close()
    finally:
        em.stop()


def test_churn_inserts_name_no_purged_parent_and_every_change_has_its_event(
    em: EmulatorProcess, client: PubSubClient
) -> None:
    """Churn picks a new Contact's Account by counter, so it may name a purged one; Salesforce never
    stores such a lookup. The lookup is dropped inside the insert's transaction, so the CREATE event
    carries what the row holds (regression: it was nulled afterwards with no change event, and the
    records folded from the bus disagreed with the emulator's own state)."""
    em.admin("POST", "/pubsub/cdc", json={"entities": ["Contact"]})
    try:
        start = _last_replay(em)
        purged = 0
        for seed in range(3):  # purges on: Accounts disappear, new Contacts may still pick them
            summary = em.admin("POST", "/churn", json={"percent": 30, "seed": 500 + seed})
            purged += summary["purged"].get("Account", 0)
        assert purged > 0
        tip = _last_replay(em)
        sub = client.subscribe("/data/ContactChangeEvent", 100, pb.CUSTOM, replay_bytes(start))
        try:
            events = read_through(sub, tip)
        finally:
            sub.close()
    finally:
        em.admin("POST", "/pubsub/cdc", json={"entities": ["Contact"], "enabled": False})
    parent: dict[str, Any] = {}  # AccountId of each record, folded from its events
    for event in events:
        data = client.decode(event)
        h = data["ChangeEventHeader"]
        if h["changeType"] in ("CREATE", "UNDELETE"):
            parent.update(dict.fromkeys(h["recordIds"], data["AccountId"]))
        elif h["changeType"] == "UPDATE":
            schema = client.schema(event.event.schema_id)
            if "AccountId" in process_bitmap(schema, h["changedFields"], named_types(schema)):
                parent.update(dict.fromkeys(h["recordIds"], data["AccountId"]))
    q = "SELECT Id, AccountId FROM sf_contact WHERE Id IN (SELECT unnest(?::VARCHAR[]))"
    rows = em.sql(q, list(parent))
    table = {str(r[0]): r[1] for r in rows}
    assert len(parent) > 10
    differ = {i: (p, table[i]) for i, p in parent.items() if i in table and table[i] != p}
    assert not differ, list(differ.items())[:5]  # the bus tells the emulator's own state
