"""The delete-log window rules (pure), the cursor's ``deletes_through``, the group size (0010, 0031, 0041)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from math import ceil

from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ReplicationNotSupported, ReplicationWindowNotCovered
from engine.extract import replication
from engine.extract.cursor import Cursor
from engine.extract.model import FieldSpec, ObjectPlan, ObjectSpec
from engine.jobs.deletes import _why_not, group_size
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
    assert lo <= replication.minute(start) and lo <= start  # nothing between start and lo is lost
    assert hi - lo >= replication.MIN_SPAN  # more than a minute apart, as Salesforce wants
    assert hi >= now + replication.DATE_RESOLUTION  # every deletion before the job started
    assert lo.second == hi.second == 0 and lo.microsecond == hi.microsecond == 0


@given(instants, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)))
def test_the_window_ends_at_the_jobs_own_end_not_a_day_ahead(now: datetime, ahead: timedelta) -> None:
    """The end is the first whole minute after the job's start by the org's clock (read to the
    second from its ``Date``): exactly the job's window (weak point of session 7: a day ahead)."""
    lo, hi = replication.window(now - timedelta(hours=1), now) or (None, None)
    assert hi is not None and lo is not None
    assert hi == replication.ceil_minute(now + replication.DATE_RESOLUTION)
    assert now + replication.DATE_RESOLUTION <= hi < now + replication.DATE_RESOLUTION + timedelta(minutes=1)
    # a start recorded ahead of the org's clock never makes a window that starts after its end
    got = replication.window(now + ahead, now)
    assert got is not None and got[0] <= got[1] - replication.MIN_SPAN and got[1] == hi


@given(instants)
def test_no_recorded_start_is_no_window(now: datetime) -> None:
    assert replication.window(None, now) is None


@given(
    first=instants,
    gaps=st.lists(
        st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=30)), min_size=1, max_size=8
    ),
    deletions=st.lists(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=8)), max_size=30),
    lag=st.timedeltas(min_value=timedelta(0), max_value=timedelta(minutes=3)),
)
def test_jobs_chain_their_windows_without_a_hole(
    first: datetime, gaps: list[timedelta], deletions: list[timedelta], lag: timedelta
) -> None:
    """Jobs at random instants each ask :func:`window` from where the previous answer stopped; a
    log modelled on Salesforce's answers up to its present, read to the millisecond, and says it
    covered up to ``min(end, its current minute - lag)`` (deletions still in flight). Every
    deletion is listed by a job, and every deletion before a job's start whose minute the log had
    covered by then is listed by that job or an earlier one: the windows meet without a hole."""
    deleted = sorted({first + d for d in deletions})
    listed: set[datetime] = set()
    through = replication.minute(first) - timedelta(minutes=1)  # a full just before the first deletion
    at = first
    for gap in gaps:
        at += gap + timedelta(seconds=1)
        win = replication.window(through, at)
        if win is None:  # older than 15 days: the object is swept (everything before it is exact)
            listed |= {d for d in deleted if d < at}
            through = replication.minute(at) - timedelta(minutes=1)
            continue
        lo, hi = win
        listed |= {d for d in deleted if lo <= d < min(hi, at)}
        covered = min(hi, replication.minute(at) - lag)
        through = replication.next_start(lo, hi, covered)
        assert through <= at  # the next job never starts after this one's start
        assert all(d in listed for d in deleted if d < through), "a hole between two windows"
    assert all(d in listed for d in deleted if d < through)


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
    assert win == (datetime(2026, 1, 10, 11, 30, tzinfo=UTC), datetime(2026, 1, 10, 12, 31, tzinfo=UTC))


@given(st.integers(min_value=1, max_value=2_000))
def test_the_delete_log_is_asked_in_few_composite_calls(n: int) -> None:
    """Decision 0041: groups of 5 to 25 objects (one composite call each): at most 4 calls up to
    20 objects, about 4 up to 100, groups of 25 from there on."""
    size = group_size(n)
    assert 5 <= size <= 25
    calls = ceil(n / size)
    assert calls <= 4 if n <= 100 else size == 25
