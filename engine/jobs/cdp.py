"""The change data capture subscriber: Pub/Sub API change events sealed into repository segments.

One :class:`TopicSubscriber` per protected object (topic ``/data/<Object>ChangeEvent``), each on its
own thread with its own Subscribe stream (decision 0026):

1. resume: the newest committed segment of the object is the checkpoint; subscribe ``CUSTOM``
   after its ``last_replay_id``, or ``LATEST`` when there is none (a new chain, complete from the
   instant the first response arrives: ``since``);
2. buffer decoded events and top ``num_requested`` up (100 at a time, as the published clients
   do); seal a segment (chunk, then manifest: the commit point) when the buffer holds
   ``segment_events`` events, or its oldest event waited ``segment_age_s`` (a watchdog thread), or
   a keep-alive arrives with events buffered, or the stop condition is met; a crash loses only
   uncommitted events, which the next run receives again;
3. transient stream failures (SFV-451) resubscribe from the last committed replay id with the
   tenacity backoff; an expired replay id stops with :class:`ReplayIdExpired` (SFV-452) after
   writing a *restart* segment at the current tip, so the next run starts a new chain, and the
   caller starts the catch-up incremental job (``sfvault cdp run`` does, through the job service).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pyarrow as pa
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from engine.cdc.decode import GAP_TYPES, ChangeEvent, EventLayout, decode_event, rows_table
from engine.cdc.stream import CUSTOM, LATEST, PubSubAuth, PubSubClient, ReplayRefused
from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.errors import CdcStreamTransient, LockLost, ReplayIdExpired, SfvaultError
from engine.sink.lock import cdp_lane
from engine.sink.segments import SegmentManifest, SegmentStore, replay_hex

log = logging.getLogger("sfvault.cdp")

BATCH = 100
"""``num_requested`` per top-up (Salesforce's maximum per request)."""


def topic_of(obj: str) -> str:
    """``Account`` -> ``/data/AccountChangeEvent``; ``Invoice__c`` -> ``/data/Invoice__ChangeEvent``."""
    return f"/data/{obj[:-3]}__ChangeEvent" if obj.endswith("__c") else f"/data/{obj}ChangeEvent"


@dataclass
class CdpOptions:
    """When to seal and when to stop.

    Attributes:
        segment_events: seal a segment when this many events are buffered.
        segment_age_s: seal a segment when its oldest buffered event waited this long (a watchdog
            thread does it, so a quiet stream does not hold events back until the next
            keep-alive): the bound on the recovery-point objective beyond delivery.
        until_idle: stop once no event arrived for this many seconds (measured at keep-alives).
        max_events: stop once this many events were committed (per object).
        heartbeat_s: in idle periods, write an event-less *heartbeat* segment at a keep-alive at
            most this often, so the covered instant (how late a recovery point may be) advances.
        retry_attempts / retry_wait_max: the reconnect backoff (tenacity).
        stop: an Event that stops every subscriber at its next response.
    """

    segment_events: int = 1000
    segment_age_s: float = 5.0
    until_idle: float | None = None
    max_events: int | None = None
    heartbeat_s: float = 60.0
    retry_attempts: int = 8
    retry_wait_max: float = 30.0
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class TopicResult:
    object: str
    events: int = 0
    segments: int = 0
    reconnects: int = 0
    last_replay_id: str | None = None
    error: BaseException | None = None
    gap_records: int = 0
    """Records of GAP_* events re-read through REST (one API call each)."""


class TopicSubscriber:
    """Subscribes to one object's change events and commits them in segments."""

    def __init__(self, org: str, obj: str, client: PubSubClient, store: SegmentStore, options: CdpOptions,
                 *, clock: Clock | None = None, rest: Any = None) -> None:  # fmt: skip
        self.rest = rest
        """A logged-in ``SalesforceClient``: GAP_* events re-read their records through it."""
        self.org, self.obj, self.topic = org, obj, topic_of(obj)
        self.client, self.store, self.options = client, store, options
        self.clock = clock or SystemClock()
        self.result = TopicResult(obj)
        self.checkpoint: SegmentManifest | None = store.checkpoint(org, obj)
        self.layouts: dict[str, EventLayout] = {}
        self.buffer: list[ChangeEvent] = []
        self.since: datetime | None = self.checkpoint.since if self.checkpoint else None
        self._last_event_at = time.monotonic()
        self._first_buffered = 0.0
        self._lock = threading.RLock()
        self._seal_error: BaseException | None = None

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> TopicResult:
        """Stream until the stop condition; reconnect on transient failures (tenacity)."""
        o = self.options
        retryer = Retrying(
            retry=retry_if_exception_type(CdcStreamTransient), reraise=True,
            wait=wait_random_exponential(multiplier=0.2, max=o.retry_wait_max),
            stop=stop_after_attempt(o.retry_attempts), before_sleep=self._before_retry,
        )  # fmt: skip
        done = threading.Event()
        watchdog = threading.Thread(target=self._seal_when_old, args=(done,), daemon=True,
                                    name=f"sfvault-cdp-age-{self.obj}")  # fmt: skip
        watchdog.start()
        try:
            retryer(self._stream_once)
        except BaseException as err:
            self.result.error = err
        finally:
            done.set()
            watchdog.join()
        return self.result

    def _seal_when_old(self, done: threading.Event) -> None:
        """Seal the buffer once its oldest event waited ``segment_age_s``; a failure stops the
        stream at its next response (the events stay uncommitted: the next run receives them)."""
        age = self.options.segment_age_s
        while not done.wait(max(age / 4, 0.01)):
            with self._lock:
                if (
                    self.buffer
                    and time.monotonic() - self._first_buffered >= age
                    and self._seal_error is None
                ):
                    try:
                        self.seal()
                    except BaseException as err:  # handed to the stream thread, which raises it
                        self._seal_error = err

    def _before_retry(self, state: Any) -> None:
        with self._lock:
            self.buffer.clear()  # uncommitted: received again after the last committed replay id
        self.result.reconnects += 1
        log.warning(
            "%s %s: stream failed, resubscribing: %s", self.org, self.topic, state.outcome.exception()
        )

    def _stream_once(self) -> None:
        cp = self.checkpoint
        preset, replay = (CUSTOM, cp.last_replay_bytes) if cp is not None else (LATEST, b"")
        sub = self.client.subscribe(self.topic, preset=preset, replay_id=replay, num_requested=BATCH)
        try:
            owed = BATCH
            for resp, arrived in arrivals(sub.responses(), self.clock, name=f"sfvault-cdp-read-{self.obj}"):
                if self.since is None:
                    self.since = arrived  # a new chain: complete from here
                owed -= len(resp.events)
                if owed <= 0 or (resp.pending_num_requested == 0 and resp.events):
                    sub.request(BATCH)
                    owed = BATCH
                with self._lock:
                    if self._seal_error is not None:
                        raise self._seal_error
                    self._take(resp, arrived)
                    if self._should_stop(resp):
                        self.seal()
                        if not resp.events:
                            self._keepalive(resp, arrived, force=True)
                        return
        except ReplayRefused:
            raise self._expired() from None
        finally:
            sub.close()

    def _take(self, resp: Any, arrived: datetime) -> None:
        """Buffer a response's events; seal at ``segment_events``, or at a keep-alive."""
        for ev in resp.events:
            if not self.buffer:
                self._first_buffered = time.monotonic()
            self.buffer.append(self._decode(ev))
            self._last_event_at = time.monotonic()
        if len(self.buffer) >= self.options.segment_events:
            self.seal()
        elif not resp.events:
            self._keepalive(resp, arrived)

    def _keepalive(self, resp: Any, arrived: datetime, *, force: bool = False) -> None:
        """A keep-alive: seal the buffer, covered up to ``arrived`` when the keep-alive proves the
        subscriber holds every event the bus had (it had requests outstanding and the server sent
        nothing); with an empty buffer, a heartbeat segment moves the covered
        instant forward (once after each size/age seal, then every ``heartbeat_s``; ``force``: at
        the stop condition)."""
        latest = bytes(resp.latest_replay_id)
        cp = self.checkpoint
        # requests outstanding and nothing sent: the bus held no further event of the topic (its
        # ``latest_replay_id`` may pass the last event received: other topics' events share ids)
        proven = bool(latest) and resp.pending_num_requested > 0
        if self.buffer:
            self.seal(covered_to=arrived if proven else None)
            return
        if not proven or self.since is None:
            return
        if cp is not None and cp.covered_to is not None:
            age = (arrived - cp.covered_to).total_seconds()
            if age < self.options.heartbeat_s and not (force and age > 0):
                return
        ts = cp.commit_ts_max if cp else arrived
        self.checkpoint = self.store.write(SegmentManifest(
            org=self.org, object=self.obj, topic=self.topic, first_replay_id=replay_hex(latest),
            last_replay_id=replay_hex(latest), events=0, rows=0, commit_ts_min=ts, commit_ts_max=ts,
            created_at=self.clock.now(), chunk=None, since=self.since, covered_to=arrived,
        ), None)  # fmt: skip

    def _should_stop(self, resp: Any) -> bool:
        o = self.options
        if o.stop.is_set():
            return True
        if o.max_events is not None and self.result.events + len(self.buffer) >= o.max_events:
            return True
        idle = time.monotonic() - self._last_event_at
        return o.until_idle is not None and not resp.events and idle >= o.until_idle

    def _decode(self, ev: Any) -> ChangeEvent:
        sid = ev.event.schema_id
        if sid not in self.layouts:
            self.layouts[sid] = EventLayout(self.client.schema(sid))
        event = decode_event(self.layouts[sid], ev.event.payload, bytes(ev.replay_id), sid)
        if event.change_type in GAP_TYPES and self.rest is not None:
            layout = self.layouts[sid]
            if event.change_type == "GAP_OVERFLOW":
                event.refetched = overflow_records(self.rest, self.obj, event.commit_ts, layout)
                log.warning("%s %s: GAP_OVERFLOW at %s: re-read the %d record(s) changed since", self.org,
                            self.topic, event.commit_ts.isoformat(), len(event.refetched))  # fmt: skip
            else:
                event.refetched = [refetch(self.rest, self.obj, rid, layout) for rid in event.record_ids]
            self.result.gap_records += len(event.refetched)
        return event

    # --- sealing ----------------------------------------------------------------------------

    def seal(self, covered_to: datetime | None = None) -> SegmentManifest | None:
        """Commit the buffered events as one segment (chunk, then manifest); the new checkpoint.
        ``covered_to``: the instant a keep-alive proved the chain complete up to (None: only the
        segment's newest commit time is proven)."""
        if not self.buffer:
            return None
        events, self.buffer = self.buffer, []
        gaps = [{"change_type": e.change_type,
                 "record_ids": e.record_ids or [str(r["Id"]) for r in e.refetched]}
                for e in events if e.change_type in GAP_TYPES]  # fmt: skip
        seg = SegmentManifest(
            org=self.org, object=self.obj, topic=self.topic,
            first_replay_id=replay_hex(events[0].replay_id), last_replay_id=replay_hex(events[-1].replay_id),
            events=len(events), rows=0, commit_ts_min=min(e.commit_ts for e in events),
            commit_ts_max=max(e.commit_ts for e in events), created_at=self.clock.now(), chunk=None,
            gaps=gaps, since=self.since, covered_to=covered_to,
        )  # fmt: skip
        table = rows_table(events, self.layouts)
        seg = self.store.write(seg, table if table.num_rows else None)
        self.checkpoint = seg
        self.result.events += seg.events
        self.result.segments += 1
        self.result.last_replay_id = seg.last_replay_id
        if gaps:
            log.warning("%s %s: %d gap event(s) in segment %s (records to re-read through REST)",
                        self.org, self.topic, len(gaps), seg.last_replay_id)  # fmt: skip
        return seg

    def _expired(self) -> ReplayIdExpired:
        """Start a new chain at the current tip (a restart segment), then the coded error."""
        cp = self.checkpoint
        assert cp is not None
        tip, since = self._tip()
        now = self.clock.now()
        self.store.write(SegmentManifest(
            org=self.org, object=self.obj, topic=self.topic, first_replay_id=tip, last_replay_id=tip,
            events=0, rows=0, commit_ts_min=now, commit_ts_max=now, created_at=now, chunk=None,
            since=since, restart=ReplayIdExpired.code,
        ), None)  # fmt: skip
        return ReplayIdExpired(
            org=self.org, topic=self.topic, replay_id=cp.last_replay_id, since=cp.commit_ts_max.isoformat(),
            action="a new chain of segments starts now; a catch-up incremental backup of the object "
                   "is needed before recovery points after this instant",
        )  # fmt: skip

    def _tip(self) -> tuple[str, datetime]:
        """The topic's current replay id (the first keep-alive of a LATEST subscription) and the
        instant from which a chain started there is complete."""
        sub = self.client.subscribe(self.topic, preset=LATEST, num_requested=1)
        try:
            first = next(iter(sub.responses()))
            return replay_hex(bytes(first.latest_replay_id)), self.clock.now()
        finally:
            sub.close()


def arrivals(responses: Iterator[Any], clock: Clock, *, name: str) -> Iterator[tuple[Any, datetime]]:
    """Each response with the instant it arrived, read by a thread that does nothing else.

    A keep-alive proves the stream complete up to its arrival (``_keepalive``), which holds only if
    it is stamped as it comes off the wire. Stamped when the subscriber got round to it, a keep-alive
    that waited in gRPC's buffer while a seal was slow (storage retrying through an outage) claimed
    an instant later than events still queued behind it: a recovery point at that instant would
    pass SFV-458 and miss them. Flow control bounds what waits here (keep-alives and at most one
    ``num_requested`` of events). A stream error is raised in the caller's thread."""
    box: queue.Queue[tuple[Any, datetime] | BaseException | None] = queue.Queue()

    def pump() -> None:
        try:
            for resp in responses:
                box.put((resp, clock.now()))
        except BaseException as err:  # raised below, in the subscriber's thread
            box.put(err)
        else:
            box.put(None)

    threading.Thread(target=pump, name=name, daemon=True).start()
    while (item := box.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item


# --- gap events --------------------------------------------------------------------------------


def _typed(value: Any, t: pa.DataType) -> Any:
    """A REST JSON value as the change row column of type ``t`` holds it (epoch ms for datetimes
    and times, like the Avro payloads)."""
    if value is None or isinstance(value, dict):
        return None
    if pa.types.is_integer(t) and isinstance(value, str):
        if "T" in value:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        h, m, rest = value.rstrip("Z").split(":")
        return (int(h) * 3600 + int(m) * 60) * 1000 + round(float(rest) * 1000)
    if pa.types.is_date(t):
        return date.fromisoformat(str(value)[:10])
    if pa.types.is_string(t):
        return str(value) if not isinstance(value, bool) else str(value).lower()
    return value


OVERFLOW_MARGIN_S = 2.0
"""How far before a GAP_OVERFLOW's commit time its window re-read starts (SOQL compares
``SystemModstamp`` at whole seconds; the overflowed transaction's rows carry its commit time)."""


def overflow_records(rest: Any, obj: str, commit_ts: datetime, layout: EventLayout) -> list[dict[str, Any]]:
    """The records of ``obj`` a GAP_OVERFLOW may stand for, re-read as one window query: every one
    (deleted ones included, ``queryAll``) whose ``SystemModstamp`` is at or after the overflowed
    transaction's commit time, less :data:`OVERFLOW_MARGIN_S`, with the layout's columns (a deleted
    record as its ``Id`` only, as :func:`refetch`). The overflow event names no record and carries
    no field; an overflow stands for more than 100,000 changes, so the window is read in query pages
    (one call per 2,000 records) plus one describe, not one call per record.

    Only the columns the backup user can see are selected (the describe's fields: an event schema
    is the org's, field-level security is the user's); the others read as null, as a record's
    ``GET`` leaves them out."""
    from datetime import UTC, timedelta

    from engine.extract.rest import RestApi

    api = RestApi(rest)
    visible = {str(f["name"]) for f in api.describe(obj).get("fields", [])}
    cols = [f for f in layout.columns if f.name in visible and f.name not in ("Id", "IsDeleted")]
    start = (commit_ts - timedelta(seconds=OVERFLOW_MARGIN_S)).astimezone(UTC)
    soql = (f"SELECT Id, IsDeleted{''.join(', ' + f.name for f in cols)} FROM {obj} "
            f"WHERE SystemModstamp >= {start:%Y-%m-%dT%H:%M:%SZ} ORDER BY Id")  # fmt: skip
    out: list[dict[str, Any]] = []
    for rec in api.query_records(soql, include_deleted=True, sobject=obj):
        if rec.get("IsDeleted"):
            out.append({"Id": str(rec["Id"])})
        else:
            values = {f.name: _typed(rec.get(f.name), f.type) for f in layout.columns}
            out.append({"Id": str(rec["Id"]), **values})
    return out


def refetch(rest: Any, obj: str, record_id: str, layout: EventLayout) -> dict[str, Any]:
    """Re-read one record of a GAP_* event through REST (``GET sobjects/<obj>/<id>``, counted in the
    client's usage as ``rest``): the layout's columns, or only ``Id`` when the record is gone."""
    from engine.errors import SalesforceNotFound

    try:
        rec = rest.get_json(f"{rest.data_path}/sobjects/{obj}/{record_id}")
    except SalesforceNotFound:
        return {"Id": record_id}
    if rec.get("IsDeleted"):
        return {"Id": record_id}
    return {"Id": record_id, **{f.name: _typed(rec.get(f.name), f.type) for f in layout.columns}}


# --- many objects ------------------------------------------------------------------------------


def connect_pubsub(settings: Settings, org: str, *, endpoint: str | None = None) -> tuple[PubSubClient, Any]:
    """Log in with the org's stored credentials and open a Pub/Sub channel. Returns the channel and
    the logged-in REST client (for gap re-reads and the caller to close)."""
    from engine.catalog import orgs as corgs
    from engine.catalog.db import make_engine, migrate, session_factory, transaction
    from engine.extract.client import SalesforceClient
    from engine.jobs.credentials import catalog_sealer, client_options, grant_from_record

    engine = make_engine(settings.catalog_url)
    try:
        migrate(engine)
        with transaction(session_factory(engine)) as s:
            row = corgs.get_org_by_name(s, org)
            record = corgs.read_credentials(row, catalog_sealer(settings))
            sf_org_id = row.sf_org_id
    finally:
        engine.dispose()
    copts = client_options(record, settings)
    rest = SalesforceClient.connect(grant_from_record(record), copts)
    token = rest.session.token
    tenant = token.org_id or sf_org_id or ""
    auth = PubSubAuth(token.access_token.get_secret_value(), token.instance_url, tenant)
    tls = not token.instance_url.startswith("http://")
    client = PubSubClient.open(
        endpoint or settings.pubsub_endpoint, auth, org=org, ca_file=copts.ca_file, tls=tls
    )
    return client, rest


def run_subscribers(
    repo: Any, org: str, objects: list[str], client: PubSubClient, options: CdpOptions,
    *, clock: Clock | None = None, on_start: Callable[[TopicSubscriber], None] | None = None,
    rest: Any = None,
) -> list[TopicResult]:  # fmt: skip
    """One thread per object; returns when every subscriber stopped (their errors in the results).
    ``rest``: the org's logged-in REST client, for re-reading the records of gap events."""
    store = SegmentStore(repo)
    subs = [TopicSubscriber(org, o, client, store, options, clock=clock, rest=rest) for o in objects]
    for s in subs:
        client.get_topic(s.topic)  # NOT_FOUND (CDC not enabled for the object) fails here, at once
    with SubscriberLocks(repo, org, objects, options.stop):
        threads = [threading.Thread(target=s.run, name=f"sfvault-cdp-{s.obj}", daemon=True) for s in subs]
        for s in subs:
            if on_start is not None:
                on_start(s)
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except KeyboardInterrupt:
            options.stop.set()
            for t in threads:
                t.join()
    return [s.result for s in subs]


class SubscriberLocks:
    """The ``cdp:<object>`` lanes of the org's repository lock, held while the objects' subscribers
    run (decision 0036): a second subscriber of one object (``sfvault cdp run`` beside the service)
    is refused with SFV-330 naming the holder instead of writing a second chain of the same events,
    and ``prune`` (exclusive) cannot delete a chunk whose segment manifest is not written yet.
    A thread refreshes the locks; a lock lost (not refreshed within the stale timeout) stops the
    subscribers, which seal what they hold."""

    def __init__(self, repo: Any, org: str, objects: list[str], stop: threading.Event,
                 *, wake: threading.Event | None = None) -> None:  # fmt: skip
        self.locks = [repo.lock(org, holder=f"sfvault cdp subscriber of {org} {o}", lane=cdp_lane(o))
                      for o in objects]  # fmt: skip
        self.stop = stop
        self.wake = wake
        """Also set when the lock is lost (the service's supervisor waits on it, not on ``stop``)."""
        self.done = threading.Event()
        self.refresher = threading.Thread(target=self._refresh, name=f"sfvault-cdp-lock-{org}", daemon=True)

    def __enter__(self) -> SubscriberLocks:
        try:
            for lock in self.locks:
                lock.acquire()
        except BaseException:
            self._release()
            raise
        self.refresher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.refresher.is_alive():
            self.refresher.join()
        self._release()

    def _refresh(self) -> None:
        every = min(lock.refresh_every for lock in self.locks).total_seconds()
        while not self.done.wait(every):
            try:
                for lock in self.locks:
                    lock.refresh()
            except LockLost as err:
                log.error("cdp subscriber lock lost; stopping: %s", err)
                self.stop.set()
                if self.wake is not None:
                    self.wake.set()
                return
            except SfvaultError as err:  # storage unreachable: the lock stays live until stale_after
                log.warning("cdp subscriber lock not refreshed, retrying: %s", err)

    def _release(self) -> None:
        for lock in self.locks:
            lock.release()


# --- settings ----------------------------------------------------------------------------------

FILE_OBJECTS = frozenset({
    "Attachment", "Document", "ContentVersion", "ContentDocument", "ContentDocumentLink", "ContentNote",
    "StaticResource", "MailMergeTemplate",
})  # fmt: skip
"""Objects whose bodies change events do not carry: refused for protection (SFV-621)."""


def set_protection(settings: Settings, org: str, objects: list[str] | None, *, endpoint: str | None = None,
                   clock: Clock | None = None, start_at: datetime | None = None,
                   interval_s: int | None = None) -> list[str]:  # fmt: skip
    """Turn continuous data protection of ``org`` on for ``objects`` (checked: no file object,
    SFV-621; Change Data Capture enabled for each in the org, SFV-622, asked through ``GetTopic``),
    or off (``objects=None``). ``start_at`` / ``interval_s`` (decision 0033, checked by
    :mod:`engine.jobs.cdp_settings`) replace the stored ones when given. Returns the protected
    objects."""
    from engine.jobs.cdp_settings import check_interval, check_start

    if start_at is not None:
        start_at = check_start(org, start_at)
    if interval_s is not None:
        check_interval(org, interval_s)
    from engine.catalog import orgs as corgs
    from engine.catalog.db import make_engine, migrate, session_factory, transaction
    from engine.errors import CdcTopicNotFound, CdpFileObjectRefused, CdpObjectNotEnabled, CdpSettingRefused

    names = list(dict.fromkeys(objects or []))
    if objects is not None:
        if not names:
            raise CdpSettingRefused(org=org, what="give at least one object")
        for o in names:
            if o in FILE_OBJECTS:
                raise CdpFileObjectRefused(org=org, object=o)
        client, rest = connect_pubsub(settings, org, endpoint=endpoint)
        try:
            for o in names:
                try:
                    client.get_topic(topic_of(o))
                except CdcTopicNotFound as err:
                    raise CdpObjectNotEnabled(org=org, object=o, what=err.message) from None
        finally:
            client.close()
            rest.close()
    engine = make_engine(settings.catalog_url)
    try:
        migrate(engine)
        with transaction(session_factory(engine)) as s:
            st = corgs.get_org_by_name(s, org).settings
            st.cdp_enabled = objects is not None
            st.cdp_objects = names if objects is not None else list(st.cdp_objects or [])
            if objects is not None and start_at is not None:
                st.cdp_start_at = start_at
            if objects is not None and interval_s is not None:
                st.cdp_interval_s = interval_s
            st.updated_at = (clock or SystemClock()).now()
            return list(st.cdp_objects) if st.cdp_enabled else []
    finally:
        engine.dispose()


def protected_objects(settings: Settings, org: str) -> list[str]:
    """The objects ``org`` protects; :class:`engine.errors.CdpDisabled` when protection is off."""
    from engine.catalog import orgs as corgs
    from engine.catalog.db import make_engine, migrate, session_factory, transaction
    from engine.errors import CdpDisabled

    engine = make_engine(settings.catalog_url)
    try:
        migrate(engine)
        with transaction(session_factory(engine)) as s:
            st = corgs.get_org_by_name(s, org).settings
            if not st.cdp_enabled or not st.cdp_objects:
                raise CdpDisabled(org=org)
            return list(st.cdp_objects)
    finally:
        engine.dispose()
