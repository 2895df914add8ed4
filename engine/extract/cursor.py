"""Incremental cursor maths (pure): closed windows, lag, and boundary deduplication.

STYLE rule 8. An incremental extract of an object selects ``field >= last - lag`` (a *closed*
start: a strict ``>`` loses rows that share the previous high-water timestamp or commit late)
and then drops the rows that were already captured. What "already captured" means is kept in
the cursor: the ``(Id, timestamp)`` pairs seen with a timestamp in ``[last - lag, last]``, each
with a short digest of the captured row's values (:func:`row_digests`). A row of a later window is
dropped only when its Id, timestamp *and* digest match: Salesforce stamps ``SystemModstamp`` to
the millisecond, so two versions of one record can share a timestamp, and a second version
written in the same millisecond after a job read the first must not be dropped (decision 0009).
A pair without a digest (a cursor written before digests) matches no row that has one: that
boundary row is captured again once, which is harmless, instead of possibly lost.

Invariants (hypothesis-tested in ``tests/unit/test_extract_cursor.py``):

* **No loss.** A row version whose timestamp is at or after ``last - lag`` when it becomes
  visible is selected by the next window. Rows that commit at most ``lag`` late are never lost.
* **No loss of same-millisecond versions.** A row version ``(Id, ts, digest)`` whose digest differs
  from every digest captured for ``(Id, ts)`` is kept.
* **No duplicates.** A row version ``(Id, ts)`` kept once is dropped by every later window, as
  long as the cursor's ``seen`` set was not truncated (``truncated`` false). Truncation (more than
  ``max_seen`` versions inside the lag window) can only cause duplicates, never loss: the
  snapshot merge keeps the newest version per Id anyway.
* The cursor is plain data (``to_dict``/``from_dict``) and lives only in the committed manifest
  (STYLE rule 7); nothing here writes it anywhere. The class itself is core data,
  :class:`engine.model.Cursor` (the manifest's one cursor type); it is re-exported here beside
  the trackers that produce it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from engine.extract.digest import row_digests
from engine.model import SETTLED, Cursor

__all__ = ["SETTLED", "Cursor", "CursorTracker", "dedup", "epoch_micros", "micros_of", "utc_datetimes"]

DEFAULT_MAX_SEEN = 100_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def epoch_micros(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A timestamp column as int64 microseconds since the epoch (nulls stay null)."""
    return pc.cast(pc.cast(values, pa.timestamp("us", tz=values.type.tz)), pa.int64())


def micros_of(ts: datetime) -> int:
    """``ts`` (aware, or naive UTC) as microseconds since the epoch."""
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _ONE_US


def utc_datetimes(values: pa.Array | pa.ChunkedArray) -> list[datetime | None]:
    """A timestamp column as UTC datetimes, one object per distinct value.

    ``to_pylist()`` builds a zoneinfo-aware datetime per row (~5 µs each); rows changed together
    share timestamps, so this is several times faster, and equal timestamps are one object (its
    hash is computed once when it keys a set).
    """
    cache: dict[int, datetime] = {}
    out: list[datetime | None] = []
    for us in epoch_micros(values).to_pylist():
        if us is None:
            out.append(None)
            continue
        ts = cache.get(us)
        if ts is None:
            ts = cache[us] = _EPOCH + timedelta(microseconds=us)
        out.append(ts)
    return out


@dataclass
class CursorTracker:
    """Streams one window's rows through dedup, then yields the next cursor.

    Use one tracker per object and window: ``keep(id, ts, digest)`` for each row returned by the
    query (in any order, across any number of partitions merged by the caller), then ``result()``.
    Memory is bounded by the rows inside the lag window (capped at ``max_seen``).
    """

    cursor: Cursor
    lag: timedelta
    max_seen: int = DEFAULT_MAX_SEEN
    _last: datetime | None = field(init=False, default=None)
    _recent: dict[tuple[str, datetime], None] = field(init=False, default_factory=dict)
    _digests: dict[tuple[str, datetime, str], None] = field(init=False, default_factory=dict)
    _truncated: bool = field(init=False, default=False)
    _read: set[tuple[str, datetime, str]] = field(init=False, default_factory=set)
    """The versions read in this window, kept or dropped (they may be settled by it, see
    :meth:`result`); bounded like ``_recent``: only rows near a boundary reach :meth:`keep`."""

    def __post_init__(self) -> None:
        self._last = self.cursor.last
        self._recent = dict.fromkeys(self.cursor.seen)
        self._digests = dict.fromkeys(self.cursor.digests)
        self._truncated = self.cursor.truncated

    def keep(self, id_: str, ts: datetime, digest: str | None = None) -> bool:
        """True if the row version is new (to be stored); records it either way.

        ``digest`` (:func:`row_digests` of the row) tells apart versions of equal timestamp;
        None compares by Id and timestamp only.
        """
        if digest is not None:
            self._read.add((id_, ts, digest))  # read in this window, new or not (see result())
        if self.cursor.captured(id_, ts, digest):
            return False
        key = (id_, ts)
        if key in self._recent and (digest is None or (id_, ts, digest) in self._digests):
            return False  # the same version twice inside one window (overlapping queries)
        self._observe(key, digest)
        return True

    def _observe(self, key: tuple[str, datetime], digest: str | None = None) -> None:
        ts = key[1]
        if self._last is None or ts > self._last:
            self._last = ts
            self._prune()
        if ts >= self._last - self.lag:
            self._recent[key] = None
            if digest is not None:
                self._digests[(key[0], ts, digest)] = None
            if len(self._recent) > self.max_seen:
                self._truncated = True
                self._shrink()

    def _prune(self) -> None:
        assert self._last is not None
        floor = self._last - self.lag
        if any(t < floor for _, t in self._recent):
            self._recent = {k: None for k in self._recent if k[1] >= floor}
            self._digests = {k: None for k in self._digests if k[1] >= floor}
            self._read = {k for k in self._read if k[1] >= floor}

    def _shrink(self) -> None:
        # Keep the newest versions; losing older ones only risks duplicates.
        keep = sorted(self._recent, key=lambda k: k[1], reverse=True)[: self.max_seen // 2]
        self._recent = dict.fromkeys(keep)
        self._digests = {k: None for k in self._digests if (k[0], k[1]) in self._recent}
        self._read = {k for k in self._read if (k[0], k[1]) in self._recent}

    def keep_batch(
        self,
        batch: pa.RecordBatch,
        id_column: str = "Id",
        ts_column: str | None = None,
        *,
        digests: bool = True,
    ) -> pa.RecordBatch:
        """The rows of ``batch`` that are new versions; the cursor column defaults to ``cursor.field``.

        Keeps the rows, and closes on the cursor, that :meth:`keep` row by row would (in any row
        order; hypothesis-tested), but only the rows that can matter reach Python: those the
        previous cursor may hold (``[last - lag, last]`` of ``cursor``) and those the next cursor
        keeps (within ``lag`` of the highest timestamp so far). Every other row is new and leaves
        no trace. Rows with a null timestamp are kept and do not move the cursor.
        ``digests``: compare (and record) the digest of each such row's values, over all of
        ``batch``'s columns (:func:`row_digests`); off, rows are compared by Id and timestamp.
        """
        col = ts_column or self.cursor.field
        stamps = batch.column(col)
        if batch.num_rows == 0 or stamps.null_count == batch.num_rows:
            return batch
        us = epoch_micros(stamps)
        top = _EPOCH + timedelta(microseconds=pc.max(us).as_py())
        if self._last is None or top > self._last:
            self._last = top
            self._prune()
        assert self._last is not None
        lag_us = self.lag // _ONE_US
        need = pc.greater_equal(us, micros_of(self._last) - lag_us)
        if self.cursor.last is not None:
            prev = micros_of(self.cursor.last)
            need = pc.or_(need, pc.and_(pc.greater_equal(us, prev - lag_us), pc.less_equal(us, prev)))
        rows = pc.indices_nonzero(pc.fill_null(need, False))
        if len(rows) == 0:
            return batch
        ids = batch.column(id_column).take(rows).to_pylist()
        hashes: list[str | None] = [*row_digests(batch.take(rows))] if digests else [None] * len(ids)
        mask: list[bool] | None = None
        stamps_py = utc_datetimes(stamps.take(rows))
        for r, i, t, h in zip(rows.to_pylist(), ids, stamps_py, hashes, strict=True):
            if t is not None and not self.keep(i, t, h):
                mask = mask or [True] * batch.num_rows
                mask[r] = False
        return batch if mask is None else batch.filter(pa.array(mask, type=pa.bool_()))

    def observe_batch(
        self,
        batch: pa.RecordBatch,
        id_column: str = "Id",
        ts_column: str | None = None,
        *,
        digests: bool = True,
    ) -> None:
        """Record the rows of a *full* extract (all kept) to build its closing cursor.

        Vectorised: only rows within ``lag`` of the running maximum reach Python (and are digested,
        over all of ``batch``'s columns, unless ``digests`` is off).
        """
        ts = batch.column(ts_column or self.cursor.field)
        if batch.num_rows == 0 or ts.null_count == batch.num_rows:
            return
        top = pc.max(ts).as_py()
        high = top if self._last is None or top > self._last else self._last
        near = batch.filter(
            pc.fill_null(pc.greater_equal(ts, pa.scalar(high - self.lag, type=ts.type)), False)
        )
        hashes: list[str | None] = [*row_digests(near)] if digests else [None] * near.num_rows
        for i, t, h in zip(
            near.column(id_column).to_pylist(),
            utc_datetimes(near.column(ts_column or self.cursor.field)),
            hashes,
            strict=True,
        ):
            if t is not None:
                if h is not None:
                    self._read.add((i, t, h))
                self._observe((i, t), h)

    def result(self, settled_before: datetime | None = None) -> Cursor:
        """The cursor after this window: ``last`` moved to the highest timestamp seen.

        ``settled_before``: the window was read after this time + ``lag`` by Salesforce's clock
        (the caller passes ``job created - lag``); the boundary pairs with a timestamp at or
        before it that this window read again (or whose record it read in a newer version) are
        :data:`SETTLED`.
        """
        if self._last is None:
            return self.cursor
        floor = self._last - self.lag
        seen = frozenset(k for k in self._recent if k[1] >= floor)
        digests = {k for k in self._digests if k[1] >= floor and (k[0], k[1]) in seen}
        if settled_before is not None:
            done = self._settled_pairs(seen, settled_before)
            digests = {k for k in digests if (k[0], k[1]) not in done} | {(i, t, SETTLED) for i, t in done}
        return Cursor(self.cursor.field, self._last, seen, self._truncated, frozenset(digests))

    def _settled_pairs(
        self, seen: frozenset[tuple[str, datetime]], settled_before: datetime
    ) -> set[tuple[str, datetime]]:
        """The pairs at or before ``settled_before`` that this window read again, or whose record it
        read in a newer version (an older version is never returned again)."""
        newest: dict[str, datetime] = {}
        for i, t, _ in self._read:
            if t > newest.get(i, t - _ONE_US):
                newest[i] = t
        reread = {(i, t) for i, t, _ in self._read}
        return {(i, t) for i, t in seen if t <= settled_before and ((i, t) in reread or newest.get(i, t) > t)}


def dedup(
    cursor: Cursor, lag: timedelta, rows: Iterable[tuple[str, datetime] | tuple[str, datetime, str]]
) -> tuple[list[Any], Cursor]:
    """Convenience for small inputs: the new rows (``(id, ts)`` or ``(id, ts, digest)``) and the
    next cursor."""
    t = CursorTracker(cursor, lag)
    kept = [r for r in rows if t.keep(*r)]
    return kept, t.result()
