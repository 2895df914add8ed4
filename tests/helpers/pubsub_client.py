"""A plain Pub/Sub API client for tests: the generated ``eventbus.v1`` stubs, grpcio and fastavro.

It does what Salesforce's published examples do: a TLS channel, auth in call metadata
(``accesstoken``, ``instanceurl``, ``tenantid``), ``GetTopic`` -> ``GetSchema`` -> a Subscribe
stream fed by a queue of FetchRequests (so a test tops up ``num_requested`` when it wants), Avro
payloads decoded with the schema named by each event's ``schema_id``, and ``changedFields``
bitmaps expanded the way the published ``ChangeEventHeaderUtility.process_bitmap`` expands them.
"""

from __future__ import annotations

import io
import json
import queue
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fastavro
import grpc

from salesforce_pubsub import pubsub_api_pb2 as pb
from salesforce_pubsub import pubsub_api_pb2_grpc as pb_grpc
from tests.helpers.emulator_proc import EmulatorProcess

STREAM_DEADLINE_S = 120.0
"""Deadline of one Subscribe call: a test that waits for something that never comes fails."""


def replay_int(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def replay_bytes(n: int) -> bytes:
    return n.to_bytes(8, "big")


@dataclass
class Subscription:
    """One Subscribe call: ``responses`` yields FetchResponses, ``request(n)`` asks for more."""

    call: Any
    requests: queue.Queue[pb.FetchRequest | None]

    def request(self, n: int, topic: str = "") -> None:
        self.requests.put(pb.FetchRequest(topic_name=topic, num_requested=n))

    def next(self) -> pb.FetchResponse:
        return next(self.call)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.requests.put(None)
        self.call.cancel()


@dataclass
class PubSubClient:
    stub: pb_grpc.PubSubStub
    channel: grpc.Channel
    metadata: tuple[tuple[str, str], ...]
    schemas: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def connect(
        cls, em: EmulatorProcess, token: str | None = None, *, org_id: str | None = None
    ) -> PubSubClient:
        ca = em.info.get("ca_file")
        address = str(em.info["pubsub_url"])
        if ca:
            with open(ca, "rb") as fh:
                channel = grpc.secure_channel(
                    address, grpc.ssl_channel_credentials(root_certificates=fh.read())
                )
        else:
            channel = grpc.insecure_channel(address)
        tenant = org_id or str(em.admin("GET", "/info")["org_id"])
        metadata = (
            ("accesstoken", token if token is not None else em.token()),
            ("instanceurl", em.url),
            ("tenantid", tenant),
        )
        return cls(pb_grpc.PubSubStub(channel), channel, metadata)

    def close(self) -> None:
        self.channel.close()

    def get_topic(self, name: str) -> pb.TopicInfo:
        return self.stub.GetTopic(pb.TopicRequest(topic_name=name), metadata=self.metadata, timeout=30)

    def schema(self, schema_id: str) -> Any:
        """The parsed Avro schema (cached by id, as clients do)."""
        if schema_id not in self.schemas:
            info = self.stub.GetSchema(
                pb.SchemaRequest(schema_id=schema_id), metadata=self.metadata, timeout=30
            )
            self.schemas[schema_id] = json.loads(info.schema_json)
        return self.schemas[schema_id]

    def subscribe(
        self, topic: str, num_requested: int, preset: int = pb.LATEST, replay_id: bytes = b""
    ) -> Subscription:
        requests: queue.Queue[pb.FetchRequest | None] = queue.Queue()
        requests.put(
            pb.FetchRequest(
                topic_name=topic, replay_preset=preset, replay_id=replay_id, num_requested=num_requested
            )
        )

        def feed() -> Iterator[pb.FetchRequest]:
            while (req := requests.get()) is not None:
                yield req

        call = self.stub.Subscribe(feed(), metadata=self.metadata, timeout=STREAM_DEADLINE_S)
        return Subscription(call, requests)

    def decode(self, event: pb.ConsumerEvent) -> dict[str, Any]:
        schema = fastavro.parse_schema(self.schema(event.event.schema_id))
        return dict(fastavro.schemaless_reader(io.BytesIO(event.event.payload), schema, None))


def events_until(sub: Subscription, n: int) -> list[pb.ConsumerEvent]:
    """Read responses until ``n`` events arrived (keep-alives in between are skipped)."""
    out: list[pb.ConsumerEvent] = []
    while len(out) < n:
        out.extend(sub.next().events)
    return out


def read_through(sub: Subscription, replay: int) -> list[pb.ConsumerEvent]:
    """Read events until the one with replay id ``replay`` (asking for more as needed)."""
    out: list[pb.ConsumerEvent] = []
    while not out or replay_int(out[-1].replay_id) < replay:
        resp = sub.next()
        out.extend(resp.events)
        if resp.pending_num_requested == 0 and resp.events:
            sub.request(100)
        if not resp.events and replay_int(resp.latest_replay_id) >= replay:
            break
    return out


# -- the published example's bitmap decoding (ChangeEventHeaderUtility.process_bitmap) -------------


def _value_schema(t: Any) -> Any:
    if isinstance(t, list):
        if len(t) == 2 and t[0] in ("null", "string"):
            return t[1]
        if len(t) == 3 and t[0] == "null" and t[1] == "string":
            return t[2]
    return t


def _names_from_bitstring(bitmap: str, fields: list[dict[str, Any]]) -> list[str]:
    bits = bin(int(bitmap[2:], 16))[2:][::-1]  # hex -> bit string, least significant bit first
    return [fields[i]["name"] for i, b in enumerate(bits) if b == "1"]


def process_bitmap(schema: dict[str, Any], bitmap_fields: list[str], named: dict[str, Any]) -> list[str]:
    """Field names of a bitmap: top-level bits, then ``"n-0x.."`` nested bits as ``Parent.Child``.

    ``named`` maps full names of named types in ``schema`` to their definitions (for a nested
    record referenced by name).
    """
    fields: list[str] = []
    items = list(bitmap_fields)
    if items and items[0].startswith("0x"):
        fields += _names_from_bitstring(items.pop(0), schema["fields"])
    for item in items:
        if "-" not in item:
            continue
        pos, bits = item.split("-", 1)
        parent = schema["fields"][int(pos)]
        child = _value_schema(parent["type"])
        if isinstance(child, str):
            child = named[child]
        if isinstance(child, dict) and child.get("type") == "record":
            fields += [f"{parent['name']}.{n}" for n in _names_from_bitstring(bits, child["fields"])]
    return fields


def named_types(schema: Any, out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every named record/enum in a schema JSON, by full name."""
    out = {} if out is None else out
    if isinstance(schema, dict):
        if schema.get("type") in ("record", "enum") and "name" in schema:
            ns = schema.get("namespace")
            out[f"{ns}.{schema['name']}" if ns else schema["name"]] = schema
        for v in schema.values():
            named_types(v, out)
    elif isinstance(schema, list):
        for v in schema:
            named_types(v, out)
    return out
