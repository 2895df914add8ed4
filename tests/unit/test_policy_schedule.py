"""Schedule policy: slots, first run after connection, time zones and daylight saving."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.clock import FrozenClock
from engine.errors import InvalidPolicySetting, UnknownTimeZone
from engine.policy import (
    BackupSettings,
    OrgFacts,
    Subscription,
    daily_schedule,
    due_runs,
    next_run,
    resolve_local,
    slot_times,
)

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
]
T0 = datetime(2025, 1, 1, tzinfo=UTC)
FACTS = OrgFacts("acme", storage_location="file:///repo")


def local(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone))


def cfg(
    zone: str = "UTC", n: int = 1, start: time = time(0, 0), connected: datetime = T0, enabled: bool = True
) -> BackupSettings:
    return BackupSettings(zone, connected, backup_enabled=enabled, jobs_per_day=n, first_start_time=start)


# --- slots -----------------------------------------------------------------------------------


def test_default_is_one_job_at_local_midnight() -> None:
    s = cfg("Asia/Kolkata")
    assert slot_times(s) == [time(0, 0)]
    (at,) = daily_schedule(s, date(2026, 6, 1))
    assert at == local("Asia/Kolkata", 2026, 6, 1)
    assert at.astimezone(UTC) == datetime(2026, 5, 31, 18, 30, tzinfo=UTC)
    assert at.tzinfo == ZoneInfo("Asia/Kolkata")  # shown in the org's zone


def test_n_jobs_are_spread_evenly_from_the_first_start_and_wrap_into_the_same_day() -> None:
    s = cfg("Europe/Berlin", n=4, start=time(18, 0))
    assert slot_times(s) == [time(0), time(6), time(12), time(18)]
    got = daily_schedule(s, date(2026, 6, 10))
    assert [a.hour for a in got] == [0, 6, 12, 18]
    assert all(a.date() == date(2026, 6, 10) for a in got)


def test_uneven_division_rounds_down_to_whole_minutes() -> None:
    s = cfg(n=7, start=time(1, 0))
    minutes = [t.hour * 60 + t.minute for t in slot_times(s)]
    assert minutes == sorted((60 + i * 1440 // 7) % 1440 for i in range(7))
    assert {t.second for t in slot_times(s)} == {0}


def test_24_jobs_a_day_is_every_hour() -> None:
    s = cfg(n=24, start=time(0, 15))
    assert slot_times(s) == [time(h, 15) for h in range(24)]


@pytest.mark.parametrize("n", [0, 25, -1])
def test_jobs_per_day_out_of_range_is_refused(n: int) -> None:
    with pytest.raises(InvalidPolicySetting) as exc:
        cfg(n=n)
    assert exc.value.code == "SFV-608"
    assert exc.value.details["field"] == "jobs_per_day"


def test_unknown_time_zone_and_naive_connection_time_are_refused() -> None:
    with pytest.raises(UnknownTimeZone) as exc:
        cfg("Mars/Olympus_Mons")
    assert exc.value.code == "SFV-609"
    with pytest.raises(InvalidPolicySetting):
        BackupSettings("UTC", datetime(2026, 1, 1))


# --- first run after connection ----------------------------------------------------------------


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/Berlin", "Asia/Kolkata", "Pacific/Chatham"])
def test_first_backup_is_the_next_local_midnight_after_connecting(zone: str) -> None:
    connected = local(zone, 2026, 2, 10, 15, 20)
    clock = FrozenClock(connected.astimezone(UTC))
    s = cfg(zone, connected=connected)
    assert next_run(s, FACTS, clock.now()) == local(zone, 2026, 2, 11)
    clock.advance(timedelta(hours=8, minutes=39))  # 23:59 local
    assert next_run(s, FACTS, clock.now()) == local(zone, 2026, 2, 11)
    clock.advance(timedelta(minutes=1))  # exactly midnight: that slot is now, the next is tomorrow
    assert next_run(s, FACTS, clock.now()) == local(zone, 2026, 2, 12)


def test_connecting_exactly_at_midnight_runs_the_next_midnight() -> None:
    connected = local("Europe/Berlin", 2026, 2, 10)
    s = cfg("Europe/Berlin", connected=connected)
    earlier = connected - timedelta(hours=3)
    assert next_run(s, FACTS, earlier) == local("Europe/Berlin", 2026, 2, 11)
    assert due_runs(s, earlier, connected + timedelta(minutes=1)) == []


def test_next_run_is_none_while_the_schedule_is_stopped() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert next_run(cfg(enabled=False), FACTS, now) is None
    assert next_run(cfg(), OrgFacts("acme"), now) is None  # no storage location
    seats = OrgFacts("acme", Subscription(purchased_seats=2), "file:///r", billable_users=3)
    assert next_run(cfg(), seats, now) is None
    expiring = OrgFacts("acme", Subscription(expires_at=datetime(2026, 3, 2, tzinfo=UTC)), "file:///r")
    assert next_run(cfg(), expiring, now) is None  # expires exactly at the next slot
    later = OrgFacts("acme", Subscription(expires_at=datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC)), "file:///r")
    assert next_run(cfg(), later, now) == datetime(2026, 3, 2, tzinfo=UTC)


# --- daylight saving ---------------------------------------------------------------------------


def test_resolve_local_rule() -> None:
    ny = ZoneInfo("America/New_York")
    # gap: 02:30 does not exist on 2026-03-08 -> the end of the gap, 03:00 EDT
    assert resolve_local(datetime(2026, 3, 8, 2, 30), ny).astimezone(UTC) == datetime(
        2026, 3, 8, 7, tzinfo=UTC
    )
    # repeated hour: 01:30 on 2026-11-01 -> the first pass, still EDT (-4)
    assert resolve_local(datetime(2026, 11, 1, 1, 30), ny).astimezone(UTC) == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )
    with pytest.raises(ValueError):
        resolve_local(datetime(2026, 1, 1, tzinfo=UTC), ny)


@pytest.mark.parametrize(
    ("zone", "day", "wall", "expect_utc"),
    [
        ("America/New_York", date(2026, 3, 8), time(2, 30), datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
        ("Europe/Berlin", date(2026, 3, 29), time(2, 0), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        # Chatham (+12:45 -> +13:45 at 02:45): the gap is 02:45-03:45
        ("Pacific/Chatham", date(2026, 9, 27), time(3, 0), datetime(2026, 9, 26, 14, 0, tzinfo=UTC)),
    ],
)
def test_spring_forward_gap_slot_runs_once_at_the_end_of_the_gap(
    zone: str, day: date, wall: time, expect_utc: datetime
) -> None:
    s = cfg(zone, start=wall)
    (at,) = daily_schedule(s, day)
    assert at.astimezone(UTC) == expect_utc
    day_start = local(zone, day.year, day.month, day.day)
    runs = due_runs(s, day_start, day_start + timedelta(days=1) - timedelta(microseconds=1), limit=24)
    assert runs == [at]


@pytest.mark.parametrize(
    ("zone", "day", "wall", "offset_hours"),
    [
        ("America/New_York", date(2026, 11, 1), time(1, 30), -4.0),
        ("Europe/Berlin", date(2026, 10, 25), time(2, 30), 2.0),
        ("Pacific/Chatham", date(2026, 4, 5), time(3, 0), 13.75),
    ],
)
def test_fall_back_repeated_hour_slot_runs_once_at_its_first_pass(
    zone: str, day: date, wall: time, offset_hours: float
) -> None:
    s = cfg(zone, start=wall)
    (at,) = daily_schedule(s, day)
    offset = at.utcoffset()
    assert offset is not None and offset.total_seconds() == offset_hours * 3600
    start = local(zone, day.year, day.month, day.day)
    # a scheduler ticking every minute through the 25-hour day sees the slot exactly once
    ticks = [start + timedelta(minutes=m) for m in range(0, 25 * 60 + 1)]
    seen = [r for a, b in itertools.pairwise(ticks) for r in due_runs(s, a, b, limit=5)]
    assert seen == [at]


def test_hourly_schedule_on_change_days() -> None:
    s = cfg("America/New_York", n=24)
    spring = daily_schedule(s, date(2026, 3, 8))
    assert len(spring) == 23  # 02:00 moves to 03:00 where a slot already is: one run
    assert [a.hour for a in spring][:3] == [0, 1, 3]
    fall = daily_schedule(s, date(2026, 11, 1))
    assert len(fall) == 24  # the repeated 01:00 hour has one slot, at its first pass
    utcs = [a.astimezone(UTC) for a in fall]
    assert utcs[2] - utcs[1] == timedelta(hours=2)


def test_every_six_hours_across_spring_forward_keeps_wall_times() -> None:
    s = cfg("Europe/Berlin", n=4)
    got = daily_schedule(s, date(2026, 3, 29))
    assert [a.strftime("%H:%M") for a in got] == ["00:00", "06:00", "12:00", "18:00"]
    assert got[1].astimezone(UTC) - got[0].astimezone(UTC) == timedelta(hours=5)


# --- due runs ----------------------------------------------------------------------------------


def test_due_runs_reports_each_slot_once_to_a_ticking_loop() -> None:
    s = cfg("Asia/Kolkata", n=3, start=time(1, 0))
    clock = FrozenClock(datetime(2026, 1, 5, tzinfo=UTC))
    last = clock.now()
    seen: list[datetime] = []
    for _ in range(3 * 24 * 6):  # three days, ticks of 10 minutes
        clock.advance(timedelta(minutes=10))
        seen += due_runs(s, last, clock.now())
        last = clock.now()
    assert len(seen) == 9
    assert len(set(seen)) == 9
    assert all(a.strftime("%H:%M") in {"01:00", "09:00", "17:00"} for a in seen)


def test_due_runs_after_downtime_returns_only_the_newest_slots() -> None:
    s = cfg(n=24)
    last = datetime(2026, 1, 1, tzinfo=UTC)
    now = datetime(2026, 1, 20, 5, 30, tzinfo=UTC)
    assert due_runs(s, last, now) == [datetime(2026, 1, 20, 5, tzinfo=UTC)]
    assert due_runs(s, last, now, limit=3) == [datetime(2026, 1, 20, h, tzinfo=UTC) for h in (3, 4, 5)]
    assert due_runs(s, now, now) == []
    with pytest.raises(ValueError):
        due_runs(s, last, now, limit=0)


def test_due_runs_window_is_open_at_last_tick_and_closed_at_now() -> None:
    s = cfg()
    midnight = datetime(2026, 1, 2, tzinfo=UTC)
    assert due_runs(s, midnight - timedelta(seconds=1), midnight) == [midnight]
    assert due_runs(s, midnight, midnight + timedelta(hours=1)) == []


# --- properties --------------------------------------------------------------------------------

zones = st.sampled_from(ZONES)
days = st.dates(date(2024, 1, 1), date(2030, 12, 31))
starts = st.times().map(lambda t: t.replace(tzinfo=None))
instants = st.datetimes(datetime(2024, 1, 1), datetime(2030, 12, 31), timezones=st.just(UTC))


def _is_change_day(zone: str, day: date) -> bool:
    z = ZoneInfo(zone)
    a = datetime.combine(day, time(0), tzinfo=z).utcoffset()
    b = datetime.combine(day + timedelta(days=1), time(0), tzinfo=z).utcoffset()
    return a != b or datetime.combine(day, time(12), tzinfo=z).utcoffset() != a


@settings(max_examples=300, deadline=None)
@given(zones, st.integers(1, 24), starts, days)
def test_property_n_jobs_are_n_distinct_sorted_instants_within_the_local_day(
    zone: str, n: int, start: time, day: date
) -> None:
    s = cfg(zone, n=n, start=start)
    got = daily_schedule(s, day)
    utcs = [a.astimezone(UTC) for a in got]
    assert utcs == sorted(utcs)
    assert len(set(utcs)) == len(utcs)
    assert all(a.date() == day for a in got)
    if _is_change_day(zone, day):
        assert n - 1 <= len(got) <= n  # a gap slot may merge with the slot at the gap's end
    else:
        assert len(got) == n
        gaps = {b - a for a, b in itertools.pairwise(utcs)}
        assert all(g >= timedelta(hours=1) for g in gaps)


@settings(max_examples=300, deadline=None)
@given(zones, st.integers(1, 24), starts, instants, st.timedeltas(timedelta(0), timedelta(days=400)))
def test_property_next_run_is_after_now_and_connection_and_is_a_slot(
    zone: str, n: int, start: time, connected: datetime, later: timedelta
) -> None:
    s = cfg(zone, n=n, start=start, connected=connected)
    now = connected + later
    at = next_run(s, FACTS, now)
    assert at is not None
    assert at > now and at > connected
    assert at in daily_schedule(s, at.date())
    # nothing of the schedule lies strictly between now and the next run
    assert due_runs(s, now, at - timedelta(microseconds=1), limit=24) == []
    assert due_runs(s, now, at) == [at]


@settings(max_examples=150, deadline=None)
@given(zones, st.integers(1, 24), starts, instants, st.lists(st.integers(1, 600), min_size=1, max_size=40))
def test_property_due_runs_over_consecutive_ticks_match_the_schedule(
    zone: str, n: int, start: time, t0: datetime, steps: list[int]
) -> None:
    s = cfg(zone, n=n, start=start, connected=t0 - timedelta(days=2))
    ticks = [t0]
    for m in steps:
        ticks.append(ticks[-1] + timedelta(minutes=m))
    assume(ticks[-1] - t0 < timedelta(days=3))
    seen = [r for a, b in itertools.pairwise(ticks) for r in due_runs(s, a, b, limit=100)]
    z = ZoneInfo(zone)
    expected = [
        a
        for d in range(-1, 4)
        for a in daily_schedule(s, t0.astimezone(z).date() + timedelta(days=d))
        if t0 < a <= ticks[-1]
    ]
    assert seen == expected
