"""The org's in-memory event bus for Change Data Capture, fed by every write of the store.

:class:`EventBus` is installed as the store's ``capture`` hook: each change-log write (insert,
update, delete, undelete, purge; from REST, Bulk, churn or the generator) becomes change events
for the objects that have Change Data Capture enabled, one transaction per store call, each event
with a replay id (a counter, sent as 8 bytes big-endian). Records whose change is identical share
one event (several ``recordIds``); a transaction over more records than ``overflow_threshold``
becomes one ``GAP_OVERFLOW`` event, as Salesforce does past 100,000. Events older than the
retention (72 hours on the emulator's clock) are dropped; a replay id from before them is refused.
Each delivered event consumes the org's daily delivery allocation (``DailyDeliveredPlatformEvents``
in ``/limits``).
"""

from __future__ import annotations

import bisect
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from emulator.pubsub.avro import CHANGE_TYPES, EventSchema, bitmap, build_event_schema, encode, payload_record
from emulator.pubsub.avro import topic_entity_suffix as entity_suffix

if TYPE_CHECKING:
    import duckdb

    from emulator.limits import UsageLimits
    from emulator.schema import ObjectDef
    from emulator.store import OrgStore

ALL_CHANGE_EVENTS = "/data/ChangeEvents"
RETENTION = timedelta(hours=72)
OVERFLOW_THRESHOLD = 100_000
MAX_ENTITIES = 5
DELIVERY_LIMIT = "DailyDeliveredPlatformEvents"
# standard objects of the emulator that Salesforce offers for Change Data Capture (custom objects
# all are); file objects, setup and permission objects, Feed, Share and History objects are not
CDC_STANDARD_OBJECTS = frozenset(
    {"Account", "Contact", "Lead", "Opportunity", "Case", "Task", "Event", "User"}
)
KINDS = {
    "insert": "CREATE",
    "update": "UPDATE",
    "delete": "DELETE",
    "undelete": "UNDELETE",
    "purge": "DELETE",
}


class TopicError(Exception):
    """The topic does not exist for this org, or its entity is not enabled."""


class ReplayIdError(Exception):
    """A CUSTOM replay id that is malformed, from the future, or older than the retention."""


def encode_replay(replay: int) -> bytes:
    return replay.to_bytes(8, "big")


def decode_replay(raw: bytes) -> int:
    if len(raw) != 8:
        raise ReplayIdError(f"replay id must be 8 bytes, got {len(raw)}")
    return int.from_bytes(raw, "big")


@dataclass(frozen=True)
class BusEvent:
    replay: int
    entity: str
    event_id: str
    schema_id: str
    payload: bytes
    committed: datetime
    change_type: str
    record_ids: tuple[str, ...]


@dataclass(frozen=True)
class Topic:
    name: str
    entity: str | None
    """None for ``/data/ChangeEvents`` (every enabled entity)."""


class EventBus:
    """Events, replay ids, enablement, retention and the delivery allocation of one org."""

    def __init__(
        self, store: OrgStore, limits: UsageLimits, *, change_origin: str = "com/salesforce/api/rest/59.0"
    ):
        self.store = store
        self.limits = limits
        self.change_origin = change_origin
        self.cond = threading.Condition()
        self.events: list[BusEvent] = []
        self._replays: list[int] = []
        self._entity_replays: dict[str, list[int]] = {}
        """Each entity's replay ids in order: a stream of one object's topic finds its next events
        by bisection instead of scanning every other object's events after its position (with one
        stream waiting on each of two objects, a churn that published 50,000 events of one object
        rescanned the growing run at every notify: quadratic, a 100k-event churn call took minutes)."""
        self.last_replay = 0
        self.expired_upto = 0
        """Replay ids up to here were dropped by retention."""
        self.commit_number = 0
        self.enabled: set[str] = set()
        self.max_entities = MAX_ENTITIES
        """Entities selectable at once (5 without the Change Data Capture add-on license)."""
        self.retention = RETENTION
        self.keepalive_s = 270.0
        self.overflow_threshold = OVERFLOW_THRESHOLD
        self.drop_generation = 0
        self.schemas: dict[str, EventSchema] = {}
        self.by_schema_id: dict[str, EventSchema] = {}
        for name, obj in store.schema.items():
            if obj.key_prefix and (obj.custom or name in CDC_STANDARD_OBJECTS):
                es = build_event_schema(obj)
                self.schemas[name] = es
                self.by_schema_id[es.schema_id] = es
        self._topics = {f"/data/{entity_suffix(n)}".lower(): n for n in self.schemas}

    # -- topics and enablement ------------------------------------------------------------------

    def enable(self, entities: Sequence[str], on: bool = True) -> list[str]:
        """Select (or deselect) objects for Change Data Capture; returns the enabled list."""
        with self.cond:
            names: list[str] = []
            for raw in entities:
                name = next((n for n in self.schemas if n.lower() == raw.lower()), None)
                if name is None:
                    raise TopicError(f"{raw} is not available for Change Data Capture")
                names.append(name)
            wanted = self.enabled | set(names) if on else self.enabled - set(names)
            if len(wanted) > self.max_entities:
                raise TopicError(
                    f"You can select up to {self.max_entities} entities for Change Data Capture"
                    " (more need the Change Data Capture add-on)"
                )
            self.enabled = wanted
            return sorted(self.enabled)

    def topic(self, name: str) -> Topic:
        """The topic called ``name``; TopicError for unknown or disabled entities."""
        if name == ALL_CHANGE_EVENTS:
            return Topic(name, None)
        entity = self._topics.get(name.lower())
        if entity is None or entity not in self.enabled or not name.startswith("/data/"):
            raise TopicError(f"Topic {name} not found")
        return Topic(f"/data/{entity_suffix(entity)}", entity)

    # -- writing --------------------------------------------------------------------------------

    def capture(
        self,
        cur: duckdb.DuckDBPyConnection,
        obj: ObjectDef,
        ids_sql: str,
        params: Sequence[Any],
        kind: str,
        live_before: str,
        ts: datetime,
        fields: Sequence[str] | None,
    ) -> None:
        """The store's hook: turn one logged change into events (called inside its transaction)."""
        change = KINDS.get(kind)
        if change is None or obj.name not in self.enabled:
            return  # system-only touches emit nothing, like SystemModstamp-only changes
        es = self.schemas[obj.name]
        rows = cur.execute(
            f"SELECT Id, {live_before} FROM ({ids_sql}) AS _src ORDER BY Id", list(params)
        ).fetchall()
        ids = [str(r[0]) for r in rows if kind != "purge" or r[1]]
        if not ids:
            return
        if len(ids) > self.overflow_threshold:
            self._publish(es, [("GAP_OVERFLOW", [], None, [], [])], ts)
            return
        groups: list[tuple[str, list[str], dict[str, Any] | None, list[str], list[str]]] = []
        if change == "DELETE":
            groups.append((change, ids, None, [], []))
        else:
            only = None if change in ("CREATE", "UNDELETE") else set(fields or ())
            cols = es.column_names
            data = cur.execute(
                f"SELECT Id, {', '.join(_q(c) for c in cols)} FROM {self.store.table_name(obj)}"
                " WHERE Id IN (SELECT unnest(?::VARCHAR[])) ORDER BY Id",
                [ids],
            ).fetchall()
            by_key: dict[Any, tuple[str, list[str], dict[str, Any] | None, list[str], list[str]]] = {}
            for row in data:
                values = dict(zip(cols, row[1:], strict=True))
                record = payload_record(es, values, only)
                if only is None:
                    changed = [c for c in cols if values.get(c) is not None]
                    nulled: list[str] = []
                else:
                    changed = [c for c in cols if c in only]
                    nulled = [c for c in changed if values.get(c) is None]
                key = repr(sorted(record.items()))
                if key in by_key:
                    by_key[key][1].append(str(row[0]))
                else:
                    by_key[key] = (change, [str(row[0])], record, changed, nulled)
            groups.extend(by_key.values())
        self._publish(es, groups, ts)

    def _publish(
        self,
        es: EventSchema,
        groups: Sequence[tuple[str, list[str], dict[str, Any] | None, list[str], list[str]]],
        ts: datetime,
    ) -> None:
        ts = _aware(ts)
        with self.cond:
            self.commit_number += 1
            txn = str(uuid.uuid4())
            for seq, (change, ids, record, changed, nulled) in enumerate(groups, start=1):
                header = {
                    "entityName": es.obj.name,
                    "recordIds": list(ids),
                    "changeType": change,
                    "changeOrigin": self.change_origin if not change.startswith("GAP_") else "",
                    "transactionKey": txn,
                    "sequenceNumber": seq,
                    "commitTimestamp": _ms(ts),
                    "commitNumber": self.commit_number,
                    "commitUser": self.store.integration_user_id,
                    "nulledFields": bitmap(es, nulled),
                    "diffFields": [],
                    "changedFields": bitmap(es, changed) if change == "UPDATE" else [],
                }
                payload = encode(es, header, record if record is not None else payload_record(es, None, None))
                self.last_replay += 1
                ev = BusEvent(
                    self.last_replay,
                    es.obj.name,
                    str(uuid.uuid4()),
                    es.schema_id,
                    payload,
                    ts,
                    change,
                    tuple(ids),
                )
                self.events.append(ev)
                self._replays.append(ev.replay)
                self._entity_replays.setdefault(ev.entity, []).append(ev.replay)
            self.cond.notify_all()

    def inject_gap(self, entity: str, change_type: str, record_ids: Sequence[str]) -> int:
        """Publish a ``GAP_*`` event (no field data) as Salesforce does when it cannot build one."""
        if change_type not in CHANGE_TYPES or not change_type.startswith("GAP_"):
            raise ValueError(f"not a gap change type: {change_type}")
        obj = self.store.object_def(entity)
        if obj.name not in self.schemas:
            raise TopicError(f"{entity} is not available for Change Data Capture")
        ids = [] if change_type == "GAP_OVERFLOW" else list(record_ids)
        self._publish(self.schemas[obj.name], [(change_type, ids, None, [], [])], self.store.clock.now())
        return self.last_replay

    # -- reading --------------------------------------------------------------------------------

    def prune(self) -> None:
        """Drop events older than the retention (by the org's clock). Caller holds ``cond``."""
        cutoff = _aware(self.store.clock.now()) - self.retention
        n = 0
        while n < len(self.events) and self.events[n].committed < cutoff:
            n += 1
        if n:
            self.expired_upto = self.events[n - 1].replay
            del self.events[:n]
            del self._replays[:n]
            for reps in self._entity_replays.values():
                del reps[: bisect.bisect_right(reps, self.expired_upto)]

    def start_after(self, preset: int, replay_id: bytes) -> int:
        """The replay id a new subscription starts after (presets: 0 LATEST, 1 EARLIEST, 2 CUSTOM)."""
        with self.cond:
            self.prune()
            if preset == 0:
                return self.last_replay
            if preset == 1:
                return self.expired_upto
            after = decode_replay(replay_id)
            if after > self.last_replay or after < self.expired_upto:
                raise ReplayIdError(f"replay id {after} is outside the retention window")
            return after

    def read(self, topic: Topic, after: int, limit: int) -> list[BusEvent]:
        """Up to ``limit`` events of ``topic`` after replay ``after``. Caller holds ``cond``."""
        out: list[BusEvent] = []
        if topic.entity is not None:
            reps = self._entity_replays.get(topic.entity, [])
            j = bisect.bisect_right(reps, after)
            return [self.events[bisect.bisect_left(self._replays, r)] for r in reps[j : j + limit]]
        i = bisect.bisect_right(self._replays, after)
        while i < len(self.events) and len(out) < limit:
            ev = self.events[i]
            if ev.entity in self.enabled:  # /data/ChangeEvents: every enabled entity
                out.append(ev)
            i += 1
        return out

    def drop_streams(self) -> int:
        """Make every open Subscribe stream fail (UNAVAILABLE) at its next step."""
        with self.cond:
            self.drop_generation += 1
            self.cond.notify_all()
            return self.drop_generation

    def state(self) -> dict[str, Any]:
        with self.cond:
            self.prune()
            return {
                "enabled": sorted(self.enabled),
                "events": len(self.events),
                "events_by_entity": dict(Counter(ev.entity for ev in self.events)),
                "last_replay_id": self.last_replay,
                "expired_upto": self.expired_upto,
                "keepalive_s": self.keepalive_s,
                "retention_s": self.retention.total_seconds(),
                "drop_generation": self.drop_generation,
                "overflow_threshold": self.overflow_threshold,
                "max_entities": self.max_entities,
            }

    def consume_delivery(self, n: int) -> bool:
        """Count ``n`` delivered events against the daily allocation; False when it is spent."""
        return self.limits.try_consume(DELIVERY_LIMIT, n)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _aware(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _ms(ts: datetime) -> int:
    return int(_aware(ts).timestamp() * 1000)
