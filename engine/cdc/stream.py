"""The Pub/Sub API client: a gRPC channel (TLS), auth in call metadata, GetTopic/GetSchema, and a
Subscribe stream fed by a queue of FetchRequests (flow control by ``num_requested``).

It does what Salesforce's published clients do (forcedotcom/pub-sub-api Python examples,
aiosfpubsub): metadata ``accesstoken``, ``instanceurl``, ``tenantid``; schemas cached by id.
gRPC failures are converted here, where they enter, into the typed errors of
:mod:`engine.errors` (SFV-451..455): transient statuses are :class:`CdcStreamTransient`, which the
subscriber retries with tenacity; the rest are permanent.

The generated stubs live in the top-level package ``salesforce_pubsub``, shared with the
emulator's server (one copy; the command that regenerates them is in its ``.proto``).
"""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from engine.errors import (
    CdcAllocationExhausted,
    CdcAuthError,
    CdcError,
    CdcStreamTransient,
    CdcTopicNotFound,
    SfvaultError,
)
from salesforce_pubsub import pubsub_api_pb2 as pb
from salesforce_pubsub import pubsub_api_pb2_grpc as pb_grpc

REPLAY_CODE = "replayid"
"""Salesforce's trailer ``error-code`` of a refused replay id contains this
(``sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted``)."""
TRANSIENT = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED,
     grpc.StatusCode.UNKNOWN, grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED}
)  # fmt: skip
LATEST, EARLIEST, CUSTOM = pb.LATEST, pb.EARLIEST, pb.CUSTOM


class ReplayRefused(CdcError):
    """INVALID_ARGUMENT naming the replay id (internal: the subscriber turns it into
    :class:`engine.errors.ReplayIdExpired` with the org's context)."""

    code = "SFV-457"
    template = "the replay id was refused: {what}"


@dataclass(frozen=True)
class PubSubAuth:
    """What the Pub/Sub API authenticates a call with (never logged)."""

    access_token: str
    instance_url: str
    tenant_id: str

    def __repr__(self) -> str:
        return f"PubSubAuth(instance_url={self.instance_url!r}, tenant_id={self.tenant_id!r})"

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("accesstoken", self.access_token), ("instanceurl", self.instance_url),
                ("tenantid", self.tenant_id))  # fmt: skip


def trailer_code(err: grpc.RpcError) -> str:
    """The ``error-code`` trailer Salesforce sets on a failed call ('' if none)."""
    trailers = getattr(err, "trailing_metadata", lambda: None)() or ()
    for key, value in trailers:
        if key == "error-code":
            return str(value)
    return ""


def convert(err: grpc.RpcError, *, org: str, topic: str) -> SfvaultError:
    """The typed error of a failed Pub/Sub call (plain arguments only: picklable, no secrets)."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = str(err.details() if hasattr(err, "details") else err)[:500]
    trailer = trailer_code(err)
    what = f"{details} ({trailer})" if trailer else details
    if code == grpc.StatusCode.INVALID_ARGUMENT and REPLAY_CODE in trailer:
        return ReplayRefused(what=what)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return CdcAllocationExhausted(org=org, topic=topic, what=what)
    if code == grpc.StatusCode.NOT_FOUND:
        return CdcTopicNotFound(org=org, topic=topic, what=what)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return CdcAuthError(org=org, what=what)
    if code in TRANSIENT:
        return CdcStreamTransient(topic=topic, status=code.name, what=what)
    return CdcError(what=f"{topic}: {code.name}: {what}")


@dataclass
class Subscription:
    """One Subscribe call: iterate :meth:`responses`; :meth:`request` tops up ``num_requested``."""

    call: Any
    requests: queue.Queue[pb.FetchRequest | None]
    org: str
    topic: str

    def request(self, n: int) -> None:
        self.requests.put(pb.FetchRequest(num_requested=n))

    def responses(self) -> Iterator[pb.FetchResponse]:
        try:
            yield from self.call
        except grpc.RpcError as err:
            raise convert(err, org=self.org, topic=self.topic) from None

    def close(self) -> None:
        self.requests.put(None)
        self.call.cancel()


@dataclass
class PubSubClient:
    """A channel to the Pub/Sub API of one org. Close it when done."""

    channel: grpc.Channel
    auth: PubSubAuth
    org: str
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    timeout_s: float = 60.0

    @classmethod
    def open(cls, endpoint: str, auth: PubSubAuth, *, org: str, ca_file: str | None = None,
             tls: bool = True) -> PubSubClient:  # fmt: skip
        """A channel to ``endpoint`` (``host:port``): TLS (the system roots, or ``ca_file``), or
        plain only when ``tls`` is False (an emulator served over http)."""
        if tls:
            roots = None
            if ca_file:
                with open(ca_file, "rb") as fh:
                    roots = fh.read()
            channel = grpc.secure_channel(endpoint, grpc.ssl_channel_credentials(root_certificates=roots))
        else:
            channel = grpc.insecure_channel(endpoint)
        return cls(channel, auth, org)

    @property
    def stub(self) -> pb_grpc.PubSubStub:
        return pb_grpc.PubSubStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def get_topic(self, topic: str) -> pb.TopicInfo:
        try:
            return self.stub.GetTopic(pb.TopicRequest(topic_name=topic), metadata=self.auth.metadata(),
                                      timeout=self.timeout_s)  # fmt: skip
        except grpc.RpcError as err:
            raise convert(err, org=self.org, topic=topic) from None

    def schema(self, schema_id: str) -> dict[str, Any]:
        """The Avro schema (parsed JSON) of ``schema_id``, cached as Salesforce's clients do."""
        if schema_id not in self.schemas:
            try:
                info = self.stub.GetSchema(pb.SchemaRequest(schema_id=schema_id),
                                           metadata=self.auth.metadata(), timeout=self.timeout_s)  # fmt: skip
            except grpc.RpcError as err:
                raise convert(err, org=self.org, topic=f"schema {schema_id}") from None
            self.schemas[schema_id] = json.loads(info.schema_json)
        return self.schemas[schema_id]

    def subscribe(self, topic: str, *, preset: Any, replay_id: bytes = b"", num_requested: int = 100,
                  deadline_s: float | None = None) -> Subscription:  # fmt: skip
        requests: queue.Queue[pb.FetchRequest | None] = queue.Queue()
        requests.put(pb.FetchRequest(topic_name=topic, replay_preset=preset, replay_id=replay_id,
                                     num_requested=num_requested))  # fmt: skip

        def feed() -> Iterator[pb.FetchRequest]:
            while (req := requests.get()) is not None:
                yield req

        call = self.stub.Subscribe(feed(), metadata=self.auth.metadata(), timeout=deadline_s)
        return Subscription(call, requests, self.org, topic)
