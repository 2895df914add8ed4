"""The ``eventbus.v1.PubSub`` gRPC service of the emulated org (Subscribe, GetTopic, GetSchema).

Auth is call metadata, as on ``api.pubsub.salesforce.com:7443``: ``accesstoken`` (a live session
of the org), ``instanceurl`` (the org's instance URL) and ``tenantid`` (the org id). Failures end
the call with the status Salesforce uses and an ``error-code`` trailer in its
``sfdc.platform.eventbus.grpc.*`` style. Publish, PublishStream and ManagedSubscribe are not
served (UNIMPLEMENTED): change events are published by the org itself.

Subscribe honours flow control: the first FetchRequest names the topic, the replay preset (and
replay id for CUSTOM) and ``num_requested``; later requests add to what the server still owes.
The server sends at most what is owed (``pending_num_requested`` says what is left), and when it
has nothing to send for ``keepalive_s`` (270 s by default) an empty FetchResponse with the latest
replay id.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from emulator.pubsub.bus import EventBus, ReplayIdError, Topic, TopicError, encode_replay
from salesforce_pubsub import pubsub_api_pb2 as pb
from salesforce_pubsub import pubsub_api_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from emulator.context import Org

MAX_BATCH = 100
"""Most events in one FetchResponse (and most a single FetchRequest may ask for)."""
AUTH_ERROR = "sfdc.platform.eventbus.grpc.service.auth.error"
REPLAY_ERROR = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
TOPIC_ERROR = "sfdc.platform.eventbus.grpc.service.topic.not.found"
SCHEMA_ERROR = "sfdc.platform.eventbus.grpc.schema.not.found"
TOPIC_MISMATCH = "sfdc.platform.eventbus.grpc.subscription.topic.mismatch"
LIMIT_ERROR = "sfdc.platform.eventbus.grpc.subscription.limit.exceeded"
STREAM_DROPPED = "sfdc.platform.eventbus.grpc.service.unavailable"


def _fail(
    context: grpc.ServicerContext, status: grpc.StatusCode, code: str, message: str, rpc_id: str
) -> Any:
    context.set_trailing_metadata((("error-code", code), ("rpc-id", rpc_id)))
    context.abort(status, f"{message} rpcId: {rpc_id}")


@dataclass
class _Owed:
    """What a subscriber has asked for and not yet received; filled by the request reader."""

    pending: int = 0
    topic_mismatch: str | None = None
    closed: bool = False


class PubSubService(pb_grpc.PubSubServicer):
    def __init__(self, org: Org, bus: EventBus) -> None:
        self.org = org
        self.bus = bus

    # -- auth -----------------------------------------------------------------------------------

    def _authenticate(self, context: grpc.ServicerContext, rpc_id: str) -> None:
        md = {k.lower(): v for k, v in context.invocation_metadata()}
        token = md.get("accesstoken")
        instance = str(md.get("instanceurl", "")).rstrip("/").lower()
        tenant = str(md.get("tenantid", ""))
        ok = (
            isinstance(token, str)
            and self.org.sessions.check(token) is not None
            and instance == self.org.instance_url.rstrip("/").lower()
            and tenant in (self.org.org_id, self.org.org_id[:15])
        )
        if not ok:
            _fail(context, grpc.StatusCode.UNAUTHENTICATED, AUTH_ERROR, "Authentication exception.", rpc_id)

    # -- unary ----------------------------------------------------------------------------------

    def GetTopic(self, request: pb.TopicRequest, context: grpc.ServicerContext) -> pb.TopicInfo:
        rpc_id = str(uuid.uuid4())
        self._authenticate(context, rpc_id)
        topic = self._topic(request.topic_name, context, rpc_id)
        schema_id = self.bus.schemas[topic.entity].schema_id if topic.entity else ""
        return pb.TopicInfo(
            topic_name=topic.name,
            tenant_guid=self.org.org_id,
            can_publish=False,
            can_subscribe=True,
            schema_id=schema_id,
            rpc_id=rpc_id,
        )

    def GetSchema(self, request: pb.SchemaRequest, context: grpc.ServicerContext) -> pb.SchemaInfo:
        rpc_id = str(uuid.uuid4())
        self._authenticate(context, rpc_id)
        es = self.bus.by_schema_id.get(request.schema_id)
        if es is None:
            _fail(
                context,
                grpc.StatusCode.NOT_FOUND,
                SCHEMA_ERROR,
                f"Schema {request.schema_id} not found.",
                rpc_id,
            )
            raise AssertionError("unreachable")
        return pb.SchemaInfo(schema_json=es.schema_json, schema_id=es.schema_id, rpc_id=rpc_id)

    def _topic(self, name: str, context: grpc.ServicerContext, rpc_id: str) -> Topic:
        try:
            return self.bus.topic(name)
        except TopicError as exc:
            _fail(context, grpc.StatusCode.NOT_FOUND, TOPIC_ERROR, str(exc), rpc_id)
            raise AssertionError("unreachable") from exc

    # -- Subscribe ------------------------------------------------------------------------------

    def Subscribe(
        self, request_iterator: Iterator[pb.FetchRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.FetchResponse]:
        rpc_id = str(uuid.uuid4())
        self._authenticate(context, rpc_id)
        first = next(request_iterator, None)
        if first is None:
            return
        topic = self._topic(first.topic_name, context, rpc_id)
        try:
            position = self.bus.start_after(int(first.replay_preset), bytes(first.replay_id))
        except ReplayIdError:
            _fail(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                REPLAY_ERROR,
                "The Replay ID validation failed. Ensure that the replay_id field value in FetchRequest"
                " is valid and refers to an event that is within the retention window.",
                rpc_id,
            )
            return
        bus = self.bus
        owed = _Owed(pending=max(0, min(first.num_requested, MAX_BATCH)))
        generation = bus.drop_generation
        threading.Thread(
            target=self._read_requests, args=(request_iterator, first.topic_name, owed), daemon=True,
            name="pubsub-fetch-requests",
        ).start()  # fmt: skip
        context.add_callback(lambda: self._close(owed))
        while context.is_active():
            with bus.cond:
                batch = self._wait_for_batch(topic, position, owed, generation)
                dropped = bus.drop_generation != generation
                caught_up = not bus.read(topic, position, 1)
                tip = bus.last_replay
                exhausted = bool(batch) and not bus.consume_delivery(len(batch))
                if exhausted:
                    batch = []
                elif batch:
                    owed.pending -= len(batch)
                    position = batch[-1].replay
            if owed.closed:
                return
            if owed.topic_mismatch is not None:
                _fail(context, grpc.StatusCode.INVALID_ARGUMENT, TOPIC_MISMATCH, owed.topic_mismatch, rpc_id)
            if dropped:
                _fail(
                    context,
                    grpc.StatusCode.UNAVAILABLE,
                    STREAM_DROPPED,
                    "The stream was closed by the server.",
                    rpc_id,
                )
            if exhausted:
                _fail(
                    context,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    LIMIT_ERROR,
                    "The daily event delivery allocation is exceeded.",
                    rpc_id,
                )
            if batch:
                yield pb.FetchResponse(
                    events=[
                        pb.ConsumerEvent(
                            event=pb.ProducerEvent(
                                id=ev.event_id, schema_id=ev.schema_id, payload=ev.payload
                            ),
                            replay_id=encode_replay(ev.replay),
                        )
                        for ev in batch
                    ],
                    latest_replay_id=encode_replay(position),
                    rpc_id=rpc_id,
                    pending_num_requested=owed.pending,
                )
            else:
                if caught_up:
                    position = max(position, tip)
                yield pb.FetchResponse(
                    latest_replay_id=encode_replay(position),
                    rpc_id=rpc_id,
                    pending_num_requested=owed.pending,
                )

    def _wait_for_batch(self, topic: Topic, position: int, owed: _Owed, generation: int) -> list[Any]:
        """Events owed to the subscriber, waiting up to the keep-alive interval. Holds ``bus.cond``."""
        bus = self.bus
        deadline = time.monotonic() + bus.keepalive_s
        while True:
            batch = bus.read(topic, position, min(owed.pending, MAX_BATCH)) if owed.pending > 0 else []
            remaining = deadline - time.monotonic()
            stop = owed.closed or owed.topic_mismatch is not None or bus.drop_generation != generation
            if batch or stop or remaining <= 0:
                return batch
            bus.cond.wait(remaining)

    def _read_requests(self, requests: Iterator[pb.FetchRequest], topic_name: str, owed: _Owed) -> None:
        try:
            for req in requests:
                with self.bus.cond:
                    if req.topic_name and req.topic_name != topic_name:
                        owed.topic_mismatch = (
                            f"Topic {req.topic_name} does not match the subscription's topic."
                        )
                    owed.pending += max(0, min(req.num_requested, MAX_BATCH))
                    self.bus.cond.notify_all()
        except grpc.RpcError:
            pass  # the call ended (cancelled by the client or closed by the server)
        self._close(owed)

    def _close(self, owed: _Owed) -> None:
        with self.bus.cond:
            owed.closed = True
            self.bus.cond.notify_all()


@dataclass
class PubSubServer:
    server: grpc.Server
    port: int
    bus: EventBus

    def stop(self, grace: float = 1.0) -> None:
        self.server.stop(grace).wait()


def start_pubsub(
    org: Org,
    bus: EventBus,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: tuple[bytes, bytes] | None = None,
    max_workers: int = 64,
) -> PubSubServer:
    """Serve ``eventbus.v1.PubSub`` on ``host:port`` (0 = any free port); TLS with (key, cert) PEMs."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="pubsub"))
    pb_grpc.add_PubSubServicer_to_server(PubSubService(org, bus), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if tls is not None:
        bound = server.add_secure_port(address, grpc.ssl_server_credentials([tls]))
    else:
        bound = server.add_insecure_port(address)
    server.start()
    return PubSubServer(server=server, port=bound, bus=bus)
