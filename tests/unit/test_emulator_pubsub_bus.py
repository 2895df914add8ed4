"""The emulator's event bus: a stream of one object's topic reads that object's events only.

Before the per-entity index, ``read`` scanned every event after the stream's position: a stream
of Contact waiting while a churn published 50,000 Account events rescanned the growing run at each
notify (quadratic; one 100k-event churn call of the CDP cost benchmark ran for minutes).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, SupportsIndex

from hypothesis import given
from hypothesis import strategies as st

from emulator.clock import EmulatorClock
from emulator.limits import UsageLimits
from emulator.pubsub.bus import ALL_CHANGE_EVENTS, BusEvent, EventBus
from emulator.schema import build_schema
from emulator.store import OrgStore

T0 = datetime(2026, 12, 1, tzinfo=UTC)
ENTITIES = ("Account", "Contact")


class _CountingList(list[BusEvent]):
    """``bus.events`` that counts the events looked at."""

    looked = 0

    def __getitem__(self, i: SupportsIndex | slice) -> Any:
        _CountingList.looked += 1
        return super().__getitem__(i)


def _bus(clock: EmulatorClock | None = None) -> EventBus:
    store = OrgStore(None, schema=build_schema(2), clock=clock or EmulatorClock(T0))
    bus = EventBus(store, UsageLimits())
    bus.enable(list(ENTITIES))
    return bus


def _publish(bus: EventBus, entity: str, at: datetime = T0) -> None:
    bus._publish(bus.schemas[entity], [("DELETE", ["001000000000001AAA"], None, [], [])], at)


def test_a_stream_of_one_object_does_not_scan_the_other_objects_events() -> None:
    bus = _bus()
    _publish(bus, "Contact")
    for _ in range(5_000):
        _publish(bus, "Account")
    _publish(bus, "Contact")
    bus.events = _CountingList(bus.events)
    _CountingList.looked = 0
    got = bus.read(bus.topic("/data/ContactChangeEvent"), bus.events[0].replay, 10)
    assert [ev.entity for ev in got] == ["Contact"] and got[0].replay == bus.last_replay
    assert _CountingList.looked <= 3  # the events it returns (and the position), not 5,000


@given(
    entities=st.lists(st.sampled_from(ENTITIES), max_size=60),
    after=st.integers(min_value=0, max_value=70),
    limit=st.integers(min_value=1, max_value=20),
    expired=st.integers(min_value=0, max_value=60),
)
def test_read_equals_a_filter_of_every_event_after_the_position(
    entities: list[str], after: int, limit: int, expired: int
) -> None:
    clock = EmulatorClock(T0)
    bus = _bus(clock)
    for n, entity in enumerate(entities):
        _publish(bus, entity, T0 + timedelta(seconds=n))
    clock.set(T0 + bus.retention + timedelta(seconds=expired) - timedelta(microseconds=1))
    with bus.cond:
        bus.prune()  # the first `expired` events are past the retention
        for name in (ALL_CHANGE_EVENTS, "/data/AccountChangeEvent", "/data/ContactChangeEvent"):
            topic = bus.topic(name)
            later = [ev for ev in bus.events if ev.replay > after]
            want = [ev for ev in later if topic.entity in (None, ev.entity)][:limit]
            assert bus.read(topic, after, limit) == want
