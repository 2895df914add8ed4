"""The delete-log window rules (pure) and the cursor's ``deletes_through`` (decision 0010)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ReplicationNotSupported, ReplicationWindowNotCovered
from engine.extract import replication
from engine.extract.cursor import Cursor
from engine.extract.model import FieldSpec, ObjectPlan, ObjectSpec
from engine.jobs.deletes import _why_not
from engine.jobs.planning import ObjectWork

instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
spans = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20))


@given(instants)
def test_minute_drops_the_seconds_only(ts: datetime) -> None:
    m = replication.minute(ts)
    assert m.second == 0 and m.microsecond == 0 and m.tzinfo == UTC
    assert timedelta(0) <= ts - m < timedelta(minutes=1)
    assert replication.minute(m) == m
    assert replication.minute(ts.replace(tzinfo=None)) == m  # naive = UTC


@given(instants, spans)
def test_a_window_covers_every_instant_from_its_start_to_now(now: datetime, back: timedelta) -> None:
    start = now - back
    win = replication.window(start, now)
    if back > timedelta(days=15, minutes=1):
        assert win is None  # older than the log keeps
        return
    if win is None:
        assert replication.minute(start) < replication.minute(now) - replication.RETENTION
        return
    lo, hi = win
    assert lo == replication.minute(start) and lo <= start  # nothing between start and lo is lost
    assert lo < hi and hi > now  # deletions up to now, in its current minute too, are asked for
    assert hi - now <= replication.END_AHEAD
    assert lo.second == hi.second == 0


@given(instants)
def test_no_recorded_start_or_a_start_in_the_future_is_no_window(now: datetime) -> None:
    assert replication.window(None, now) is None
    assert replication.window(now + replication.END_AHEAD + timedelta(minutes=1), now) is None


@given(instants, spans, st.one_of(st.none(), instants))
def test_the_next_window_starts_inside_the_window_asked(start: datetime, span: timedelta,
                                                        covered: datetime | None) -> None:  # fmt: skip
    end = start + span
    nxt = replication.next_start(start, end, covered)
    assert start <= nxt <= end
    if covered is not None and start <= covered <= end:
        assert nxt == covered


@given(instants, st.one_of(st.none(), instants))
def test_covers_means_the_log_reaches_back_to_the_start(start: datetime, earliest: datetime | None) -> None:
    assert replication.covers(start, earliest) == (earliest is None or earliest <= start)


@given(instants)
def test_salesforce_datetimes_parse_back(ts: datetime) -> None:
    ms = ts.replace(microsecond=ts.microsecond // 1000 * 1000)
    text = ms.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms.microsecond // 1000:03d}+0000"
    assert replication.parse(text) == ms
    assert replication.parse(text[:-5] + "Z") == ms
    assert replication.parse(replication.fmt(ts)) == replication.minute(ts)


@given(st.one_of(st.none(), instants))
def test_cursor_keeps_deletes_through(through: datetime | None) -> None:
    cur = Cursor("SystemModstamp", datetime(2026, 1, 1, tzinfo=UTC), deletes_through=through)
    d = cur.to_dict()
    assert ("deletes_through" in d) == (through is not None)
    assert Cursor.from_dict(d) == cur


def test_a_cursor_written_before_the_field_reads_as_not_recorded() -> None:
    old = {"field": "SystemModstamp", "last": "2026-01-01T00:00:00+00:00", "seen": [], "truncated": False}
    assert Cursor.from_dict(old).deletes_through is None


def _plan(replicateable: bool = True) -> ObjectPlan:
    spec = ObjectSpec(
        "Lead", key_prefix="00Q", replicateable=replicateable,
        fields=(FieldSpec("Id", "id"), FieldSpec("SystemModstamp", "datetime")),
    )  # fmt: skip
    return ObjectPlan(spec=spec, fields=spec.fields, path="bulk2")


def _work(through: datetime | None) -> ObjectWork:
    cur = Cursor("SystemModstamp", datetime(2026, 1, 1, tzinfo=UTC), deletes_through=through)
    return ObjectWork("Lead", "incremental", cursor=cur)


def test_objects_the_log_cannot_serve_are_swept_without_a_call() -> None:
    now = datetime(2026, 1, 10, 12, 30, 15, tzinfo=UTC)
    assert isinstance(_why_not(_plan(False), _work(now), now), ReplicationNotSupported)
    assert isinstance(_why_not(_plan(), _work(None), now), ReplicationWindowNotCovered)
    assert isinstance(_why_not(_plan(), _work(now - timedelta(days=16)), now), ReplicationWindowNotCovered)
    win = _why_not(_plan(), _work(now - timedelta(hours=1)), now)
    assert win == (datetime(2026, 1, 10, 11, 30, tzinfo=UTC), datetime(2026, 1, 11, 12, 30, tzinfo=UTC))
