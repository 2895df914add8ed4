"""Property tests for incremental cursors: closed window start, lag, boundary dedup.

The model: rows get new versions over time; a version with timestamp ``ts`` becomes visible
(commits) at ``ts + delay`` with ``0 <= delay <= lag`` (late commits). Windows run at given
times; each selects the current version of every row with ``ts >= cursor.window_start(lag)``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.extract.cursor import SETTLED, Cursor, CursorTracker, dedup
from engine.extract.digest import row_digests

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LAG_MS = 5


def ms(n: int) -> datetime:
    return T0 + timedelta(milliseconds=n)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[tuple[str, int, int]], list[int]]:
    """Versions ``(id, ts, visible_at)`` with increasing ts per id, and window times."""
    n_ids = draw(st.integers(1, 6))
    versions: list[tuple[str, int, int]] = []
    for k in range(n_ids):
        stamps = sorted(set(draw(st.lists(st.integers(0, 40), min_size=1, max_size=5))))
        last_visible = -1
        for ts in stamps:
            visible = max(ts + draw(st.integers(0, LAG_MS)), last_visible + 1)
            if visible - ts > LAG_MS:
                break  # would commit later than the lag allows, or out of order
            versions.append((f"id{k}", ts, visible))
            last_visible = visible
    windows = sorted(set(draw(st.lists(st.integers(0, 50), min_size=1, max_size=8))))
    windows.append(60)  # a final window after everything committed
    return versions, windows


def state_at(versions: list[tuple[str, int, int]], t: int) -> dict[str, int]:
    cur: dict[str, int] = {}
    for i, ts, vis in versions:
        if vis <= t and ts >= cur.get(i, -1):
            cur[i] = ts
    return cur


@settings(max_examples=300, deadline=None)
@given(histories())
def test_no_loss_and_no_duplicates(h: tuple[list[tuple[str, int, int]], list[int]]) -> None:
    versions, windows = h
    lag = timedelta(milliseconds=LAG_MS)
    cursor = Cursor("SystemModstamp")
    emitted: list[tuple[str, datetime]] = []
    restored: dict[str, datetime] = {}
    for w in windows:
        start = cursor.window_start(lag)
        rows = [(i, ms(ts)) for i, ts in state_at(versions, w).items() if start is None or ms(ts) >= start]
        kept, cursor = dedup(cursor, lag, rows)
        emitted.extend(kept)
        for i, ts in kept:
            restored[i] = max(ts, restored.get(i, ts))
        # the snapshot chain equals the true state at every window: nothing lost
        assert restored == {i: ms(ts) for i, ts in state_at(versions, w).items()}
    # nothing captured twice
    assert not cursor.truncated
    assert len(emitted) == len(set(emitted))


def test_strict_greater_than_would_lose_rows_sharing_the_boundary() -> None:
    lag = timedelta(0)
    kept, cur = dedup(Cursor("SystemModstamp"), lag, [("a", ms(10)), ("b", ms(10))])
    assert cur.last == ms(10) and cur.seen == {("a", ms(10)), ("b", ms(10))}
    # "c" commits later with the same timestamp: the closed start selects it, dedup drops a and b
    kept, cur = dedup(cur, lag, [("a", ms(10)), ("b", ms(10)), ("c", ms(10))])
    assert kept == [("c", ms(10))]


def test_round_trip_to_dict() -> None:
    _, cur = dedup(Cursor("SystemModstamp"), timedelta(seconds=1), [("a", ms(1)), ("b", ms(900))])
    assert Cursor.from_dict(cur.to_dict()) == cur


def test_seen_is_capped_without_losing_the_maximum() -> None:
    t = CursorTracker(Cursor("SystemModstamp"), timedelta(seconds=10), max_seen=10)
    for n in range(100):
        assert t.keep(f"id{n}", ms(n))
    out = t.result()
    assert out.truncated and out.last == ms(99) and len(out.seen) <= 10


def test_batch_helpers_match_row_helpers() -> None:
    lag = timedelta(milliseconds=3)
    _, cur = dedup(Cursor("SystemModstamp"), lag, [("a", ms(10)), ("b", ms(8)), ("z", ms(1))])
    batch = pa.record_batch(
        {
            "Id": ["a", "b", "c", "d"],
            "SystemModstamp": pa.array([ms(10), ms(8), ms(9), None], type=pa.timestamp("ms", tz="UTC")),
        }
    )
    t = CursorTracker(cur, lag)
    kept = t.keep_batch(batch, digests=False)
    assert kept.column("Id").to_pylist() == ["c", "d"]
    assert t.result().last == ms(10)
    # with digests, a cursor whose pairs carry none (written before digests) captures them again
    assert CursorTracker(cur, lag).keep_batch(batch).column("Id").to_pylist() == ["a", "b", "c", "d"]

    full = CursorTracker(Cursor("SystemModstamp"), lag)
    full.observe_batch(batch, digests=False)
    assert full.result().last == ms(10)
    assert full.result().seen == {("a", ms(10)), ("b", ms(8)), ("c", ms(9))}


def _batch(rows: list[tuple[str, datetime]], values: list[str] | None = None) -> pa.RecordBatch:
    cols = {
        "Id": pa.array([i for i, _ in rows], pa.string()),
        "SystemModstamp": pa.array([t for _, t in rows], type=pa.timestamp("ms", tz="UTC")),
    }
    if values is not None:
        cols["Name"] = pa.array(values, pa.string())
    return pa.record_batch(cols)


def _digest(row: tuple[str, datetime], value: str) -> str:
    """The digest keep_batch computes for ``row`` (the batch of :func:`_batch` with a value)."""
    return row_digests(_batch([row], [value]))[0]


@settings(max_examples=300, deadline=None)
@given(histories(), st.integers(1, 4), st.randoms(use_true_random=False), st.booleans())
def test_keep_batch_keeps_and_remembers_what_keep_does_row_by_row(
    h: tuple[list[tuple[str, int, int]], list[int]], n_batches: int, rnd: Any, digests: bool
) -> None:
    """keep_batch sends only the rows near either cursor's boundary through Python; in any row
    order and batch split it keeps the same rows and closes on the same cursor as keep()
    (rows compared by Id and timestamp, or with the digest of their values)."""
    versions, windows = h
    lag = timedelta(milliseconds=LAG_MS)
    cursor = Cursor("SystemModstamp")
    for w in windows:
        start = cursor.window_start(lag)
        rows = [(i, ms(ts)) for i, ts in state_at(versions, w).items() if start is None or ms(ts) >= start]
        rnd.shuffle(rows)
        values = [f"{i} at {t.isoformat()}" for i, t in rows]
        if digests:
            kept_by_row, by_row = dedup(
                cursor, lag, [(i, t, _digest((i, t), v)) for (i, t), v in zip(rows, values, strict=True)]
            )
            kept_by_row = [(i, t) for i, t, _ in kept_by_row]
        else:
            kept_by_row, by_row = dedup(cursor, lag, rows)
        tracker = CursorTracker(cursor, lag)
        cuts = sorted(rnd.sample(range(len(rows) + 1), min(n_batches - 1, len(rows) + 1)))
        kept_by_batch: list[tuple[str, datetime]] = []
        for lo, hi in zip([0, *cuts], [*cuts, len(rows)], strict=True):
            batch = _batch(rows[lo:hi], values[lo:hi] if digests else None)
            kept = tracker.keep_batch(batch, digests=digests)
            kept_by_batch += zip(
                kept.column("Id").to_pylist(), kept.column("SystemModstamp").to_pylist(), strict=True
            )
        assert sorted(kept_by_batch) == sorted(kept_by_row)
        assert tracker.result() == by_row
        cursor = by_row


@st.composite
def same_ms_histories(draw: st.DrawFn) -> tuple[list[tuple[str, int, int, str]], list[int]]:
    """Versions ``(id, ts, visible_at, value)``; a record may get a second version with the same
    timestamp (another value) that becomes visible later, still within the lag."""
    n_ids = draw(st.integers(1, 5))
    versions: list[tuple[str, int, int, str]] = []
    for k in range(n_ids):
        stamps = sorted(set(draw(st.lists(st.integers(0, 40), min_size=1, max_size=4))))
        last_visible = -1
        for n, ts in enumerate(stamps):
            for again in range(draw(st.integers(1, 2))):  # one or two versions at this timestamp
                visible = max(ts + draw(st.integers(0, LAG_MS)), last_visible + 1)
                if visible - ts > LAG_MS:
                    break
                versions.append((f"id{k}", ts, visible, f"v{n}.{again}"))
                last_visible = visible
    windows = sorted(set(draw(st.lists(st.integers(0, 50), min_size=1, max_size=8))))
    windows.append(60)
    return versions, windows


def latest_at(versions: list[tuple[str, int, int, str]], t: int) -> dict[str, tuple[int, str]]:
    """Each record's version visible at ``t`` (versions of one record become visible in order)."""
    cur: dict[str, tuple[int, str]] = {}
    for i, ts, vis, value in versions:
        if vis <= t:
            cur[i] = (ts, value)
    return cur


@settings(max_examples=300, deadline=None)
@given(same_ms_histories(), st.booleans(), st.booleans())
def test_a_second_version_in_the_same_millisecond_is_not_dropped(
    h: tuple[list[tuple[str, int, int, str]], list[int]], through_json: bool, settle: bool
) -> None:
    """With digests, a window keeps a version that shares Id and timestamp with one captured
    before but has other values; the chain (newest timestamp, then the later job) equals the
    true state at every window, and no version is captured twice. With ``settle``, each window
    settles what it read at least ``lag`` before it ran (no other version of those can appear)."""
    versions, windows = h
    lag = timedelta(milliseconds=LAG_MS)
    cursor = Cursor("SystemModstamp")
    restored: dict[str, tuple[datetime, str]] = {}
    emitted: list[tuple[str, datetime, str]] = []
    for w in windows:
        start = cursor.window_start(lag)
        state = latest_at(versions, w)
        rows = [(i, ms(ts)) for i, (ts, _) in state.items() if start is None or ms(ts) >= start]
        values = [state[i][1] for i, _ in rows]
        tracker = CursorTracker(cursor, lag)
        kept = tracker.keep_batch(_batch(rows, values))
        for i, t, v in zip(
            *(kept.column(c).to_pylist() for c in ("Id", "SystemModstamp", "Name")), strict=True
        ):
            emitted.append((i, t, v))
            if i not in restored or t >= restored[i][0]:  # a tie goes to the later job
                restored[i] = (t, v)
        cursor = tracker.result(ms(w) - lag if settle else None)
        if through_json:  # the cursor as a manifest stores it
            cursor = Cursor.from_dict(cursor.to_dict())
        assert restored == {i: (ms(ts), v) for i, (ts, v) in state.items()}
    assert len(emitted) == len(set(emitted))


def test_a_cursor_without_digests_still_loads_and_recaptures_its_boundary_once() -> None:
    lag = timedelta(milliseconds=LAG_MS)
    row = ("a", ms(10))
    old = {"field": "SystemModstamp", "last": ms(10).isoformat(), "seen": [["a", ms(10).isoformat()]],
           "truncated": False}  # fmt: skip
    cur = Cursor.from_dict(old)
    assert cur.seen == {row} and cur.digests == frozenset()
    assert cur.captured("a", ms(10), None)  # a caller without values compares the pair
    assert not cur.captured("a", ms(10), _digest(row, "x"))  # one with values captures it again
    t = CursorTracker(cur, lag)
    assert t.keep_batch(_batch([row], ["x"])).num_rows == 1
    again = CursorTracker(t.result(), lag)
    assert again.keep_batch(_batch([row], ["x"])).num_rows == 0  # once
    assert again.keep_batch(_batch([row], ["y"])).num_rows == 1  # another version at the same ms


def test_to_dict_keeps_every_digest_of_a_pair() -> None:
    lag = timedelta(milliseconds=LAG_MS)
    row = ("a", ms(10))
    t = CursorTracker(Cursor("SystemModstamp"), lag)
    t.keep_batch(_batch([row], ["x"]))
    t.keep_batch(_batch([row], ["y"]))
    cur = t.result()
    assert len(cur.digests) == 2 and Cursor.from_dict(cur.to_dict()) == cur
    assert cur.to_dict()["seen"] == [["a", ms(10).isoformat()]] * 2  # old readers still see pairs


def test_settled_versions_are_compared_by_id_and_timestamp() -> None:
    lag = timedelta(milliseconds=LAG_MS)
    t = CursorTracker(Cursor("SystemModstamp"), lag)
    t.keep_batch(_batch([("a", ms(10)), ("b", ms(12))], ["x", "y"]))
    cur = t.result(settled_before=ms(10))  # the window ran at ms(10) + lag: "a" is settled, "b" not
    assert cur.digests >= {("a", ms(10), SETTLED)} and ("b", ms(12), SETTLED) not in cur.digests
    assert not cur.settled
    assert cur.captured("a", ms(10), _digest(("a", ms(10)), "other"))  # settled: the pair decides
    assert not cur.captured("b", ms(12), _digest(("b", ms(12)), "other"))
    assert Cursor.from_dict(cur.to_dict()) == cur
    # a later window settles "b" too; what it only inherited from the cursor is not re-settled
    again = CursorTracker(cur, lag)
    again.keep_batch(_batch([("b", ms(12))], ["y"]))
    assert again.result(settled_before=ms(20)).settled
    inherited = CursorTracker(cur, lag)
    assert not inherited.result(settled_before=ms(20)).settled
