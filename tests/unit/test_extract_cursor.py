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

from engine.extract.cursor import Cursor, CursorTracker, dedup

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
    kept = t.keep_batch(batch)
    assert kept.column("Id").to_pylist() == ["c", "d"]
    assert t.result().last == ms(10)

    full = CursorTracker(Cursor("SystemModstamp"), lag)
    full.observe_batch(batch)
    assert full.result().last == ms(10)
    assert full.result().seen == {("a", ms(10)), ("b", ms(8)), ("c", ms(9))}


def _batch(rows: list[tuple[str, datetime]]) -> pa.RecordBatch:
    return pa.record_batch(
        {
            "Id": pa.array([i for i, _ in rows], pa.string()),
            "SystemModstamp": pa.array([t for _, t in rows], type=pa.timestamp("ms", tz="UTC")),
        }
    )


@settings(max_examples=300, deadline=None)
@given(histories(), st.integers(1, 4), st.randoms(use_true_random=False))
def test_keep_batch_keeps_and_remembers_what_keep_does_row_by_row(
    h: tuple[list[tuple[str, int, int]], list[int]], n_batches: int, rnd: Any
) -> None:
    """keep_batch sends only the rows near either cursor's boundary through Python; in any row
    order and batch split it keeps the same rows and closes on the same cursor as keep()."""
    versions, windows = h
    lag = timedelta(milliseconds=LAG_MS)
    cursor = Cursor("SystemModstamp")
    for w in windows:
        start = cursor.window_start(lag)
        rows = [(i, ms(ts)) for i, ts in state_at(versions, w).items() if start is None or ms(ts) >= start]
        rnd.shuffle(rows)
        kept_by_row, by_row = dedup(cursor, lag, rows)
        tracker = CursorTracker(cursor, lag)
        cuts = sorted(rnd.sample(range(len(rows) + 1), min(n_batches - 1, len(rows) + 1)))
        kept_by_batch: list[tuple[str, datetime]] = []
        for lo, hi in zip([0, *cuts], [*cuts, len(rows)], strict=True):
            kept = tracker.keep_batch(_batch(rows[lo:hi]))
            kept_by_batch += zip(
                kept.column("Id").to_pylist(), kept.column("SystemModstamp").to_pylist(), strict=True
            )
        assert sorted(kept_by_batch) == sorted(kept_by_row)
        assert tracker.result() == by_row
        cursor = by_row
