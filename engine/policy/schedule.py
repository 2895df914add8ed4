"""When scheduled backup jobs run: pure functions of the settings and ``now``.

Rules (PRODUCT.md "Organizations", "Backup settings"):

* **Slots.** An org runs ``jobs_per_day`` (1..24) jobs per local day. Slot ``i`` is at the
  local wall time ``first_start_time + floor(i * 1440 / N)`` minutes, taken modulo 24 hours,
  so every local day has the same wall-clock times (the ones :func:`slot_times` lists and the
  settings API shows) and they are at least one hour apart. The default is one job at 00:00.
* **Start.** Only slots strictly after ``connected_at`` run: with the defaults the first
  backup is at the next local midnight after the org is connected.
* **Time zone.** Wall times are in the org's IANA zone (its ``TimeZoneSidKey``); the
  functions return aware datetimes in that zone, ordered by the instant they denote.
* **Daylight saving (the rule we chose).**

  - *Spring forward* (a gap: 02:00-03:00 does not exist in New York on the second Sunday of
    March): a slot whose wall time falls in the gap runs at the first valid instant after
    it, the end of the gap (03:00 local). If another slot already sits at that instant the
    two are one run, so that day has one run fewer: the day is one hour shorter.
  - *Fall back* (a repeated hour: 01:00-02:00 happens twice on the first Sunday of November):
    a slot whose wall time is repeated runs once, at its first occurrence (``fold=0``,
    still on summer time). The second pass of the hour has no slot.

  The same rule resolves the local end of a quota window (:mod:`engine.policy.entitlements`),
  so a daily job never runs twice or not at all on a change day.
* **Catch-up.** :func:`due_runs` reports at most ``limit`` (default 1) missed slots, the
  newest ones: after downtime one incremental job catches up every change, so replaying each
  missed slot would only queue jobs that the "one job at a time" rule then skips.

All comparisons are made on UTC instants: Python compares two datetimes of the *same* zone by
wall time and ignores ``fold``, which is wrong inside a repeated hour.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from engine.policy.facts import BackupSettings, OrgFacts, require_aware, utc

MINUTES_PER_DAY = 24 * 60


def resolve_local(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a local wall time denotes, under the daylight-saving rule above.

    Args:
        wall: a naive local date and time.
        zone: the org's zone.

    Returns:
        An aware datetime in ``zone``: the only instant with that wall time; the first of two
        in a repeated hour; the end of the gap for a wall time that does not exist.
    """
    if wall.tzinfo is not None:
        raise ValueError("resolve_local takes a naive local wall time")
    first = wall.replace(tzinfo=zone, fold=0)
    if _wall_of(first.astimezone(UTC), zone) == wall:
        return first.astimezone(UTC).astimezone(zone)
    # fold=0 round-trips for every wall time that exists (the first of two in a repeated
    # hour), so this is a gap: fold=0 maps past the gap (offset before the change), fold=1 before it (offset
    # after). The first instant whose wall time is >= ``wall`` is the end of the gap.
    second = wall.replace(tzinfo=zone, fold=1)
    lo = min(first.astimezone(UTC), second.astimezone(UTC))
    hi = max(first.astimezone(UTC), second.astimezone(UTC))
    step = timedelta(microseconds=1)
    while hi - lo > step:
        mid = lo + (hi - lo) // 2
        if _wall_of(mid, zone) >= wall:
            hi = mid
        else:
            lo = mid
    return hi.astimezone(zone)


def _wall_of(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    """The org-local calendar date of an instant."""
    return require_aware(instant, "instant").astimezone(zone).date()


def slot_times(settings: BackupSettings) -> list[time]:
    """The local wall times of the day's slots, sorted (what the settings API echoes)."""
    start = settings.first_start_time
    base_us = ((start.hour * 60 + start.minute) * 60 + start.second) * 1_000_000 + start.microsecond
    day_us = MINUTES_PER_DAY * 60 * 1_000_000
    n = settings.jobs_per_day
    out: set[time] = set()
    for i in range(n):
        offset_us = (i * MINUTES_PER_DAY // n) * 60 * 1_000_000
        us = (base_us + offset_us) % day_us
        seconds, micro = divmod(us, 1_000_000)
        minutes, sec = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        out.add(time(hour, minute, sec, micro))
    return sorted(out)


def daily_schedule(settings: BackupSettings, day: date) -> list[datetime]:
    """The instants of the scheduled jobs of one local day, sorted, without duplicates.

    The schedule ignores ``connected_at`` and ``backup_enabled``: it is what the settings
    API shows. On a spring-forward day a slot inside the gap may coincide with the slot at
    the end of the gap and then counts once (see the module docstring).

    Returns:
        Aware datetimes in the org's zone, each on local date ``day``.
    """
    zone = settings.zone
    seen: dict[datetime, datetime] = {}
    for t in slot_times(settings):
        at = resolve_local(datetime.combine(day, t), zone)
        seen.setdefault(at.astimezone(UTC), at)
    return [seen[k] for k in sorted(seen)]


def next_slot(settings: BackupSettings, after: datetime) -> datetime:
    """The first slot strictly after both ``after`` and ``connected_at`` (ignores every policy)."""
    ref = max(utc(after), utc(settings.connected_at))
    day = local_date(ref, settings.zone) - timedelta(days=1)
    for _ in range(4):  # every local day has at least one slot
        for at in daily_schedule(settings, day):
            if utc(at) > ref:
                return at
        day += timedelta(days=1)
    raise AssertionError("unreachable: every local day has a slot")  # pragma: no cover


def next_run(settings: BackupSettings, facts: OrgFacts, now: datetime) -> datetime | None:
    """Start of the org's next scheduled job, or None while the schedule is stopped.

    The schedule is stopped when backup is disabled, the subscription has expired (or will
    have by the next slot), no storage location is configured, or the billable users exceed
    the seats (:func:`engine.policy.decision.schedule_stop_reason`). A running job or a used-up
    quota does not stop the schedule: the next slot is shown and decided when it comes.

    Returns:
        An aware datetime in the org's zone, strictly after ``now`` and ``connected_at``.
    """
    from engine.policy.decision import schedule_stop_reason

    if schedule_stop_reason(settings, facts, now) is not None:
        return None
    at = next_slot(settings, now)
    if facts.subscription.expired(at):
        return None
    return at


def due_runs(
    settings: BackupSettings, last_tick: datetime, now: datetime, *, limit: int = 1
) -> list[datetime]:
    """Slots that came due since the scheduler's previous tick, for a scheduler loop.

    A slot is due when ``last_tick < slot <= now`` and ``slot > connected_at``. Each slot is
    reported by exactly one tick when the loop passes each tick's ``now`` as the next call's
    ``last_tick``. Only the newest ``limit`` slots are returned (see "Catch-up" above), so
    the answer is bounded however long the scheduler was down.

    Returns:
        Aware datetimes in the org's zone, oldest first; each then goes through
        :func:`engine.policy.decision.decide_scheduled_run`.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    lower = max(utc(last_tick), utc(settings.connected_at))
    upper = utc(now)
    if upper <= lower:
        return []
    zone = settings.zone
    first_day = local_date(lower, zone)
    day = local_date(upper, zone)
    found: list[datetime] = []
    while day >= first_day and len(found) < limit:
        for at in reversed(daily_schedule(settings, day)):
            if lower < utc(at) <= upper:
                found.append(at)
                if len(found) == limit:
                    break
        day -= timedelta(days=1)
    found.reverse()
    return found
