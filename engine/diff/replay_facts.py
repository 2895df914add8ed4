"""What a recovery point holds of the change events (decision 0033): per object, the events in the
replay window ``[start, at]``, their replay id range and commit time range, and the count per
change type, computed by DuckDB over the same change row files :func:`engine.diff.replay.replay`
replays (one row per record per event: an event is counted once by its replay id)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from engine.diff.recovery import lit


def window_facts(con: duckdb.DuckDBPyConnection, segments: list[Path], *, start: datetime,
                 at: datetime) -> dict[str, Any]:  # fmt: skip
    """``events_applied``, ``change_rows``, ``first_replay_id`` / ``last_replay_id`` (hex),
    ``first_commit`` / ``last_commit`` (ISO 8601) and ``change_types`` ({type: events}) of the
    change events committed in ``[start, at]`` (nulls and zeros when there are none)."""
    empty: dict[str, Any] = {"events_applied": 0, "change_rows": 0, "first_replay_id": None,
                             "last_replay_id": None, "first_commit": None, "last_commit": None,
                             "change_types": {}}  # fmt: skip
    if not segments:
        return empty
    files = "[" + ", ".join(lit(str(p)) for p in segments) + "]"
    window = (f"__commit_ts >= {lit(start.isoformat())}::TIMESTAMPTZ "
              f"AND __commit_ts <= {lit(at.isoformat())}::TIMESTAMPTZ")  # fmt: skip
    cols = "__replay_id, __change_type, __commit_ts"
    src = f"(SELECT {cols} FROM read_parquet({files}, union_by_name = true) WHERE {window})"
    row = con.execute(
        f"SELECT count(DISTINCT __replay_id), count(*), lower(hex(min(__replay_id))), "
        f"lower(hex(max(__replay_id))), min(__commit_ts), max(__commit_ts) FROM {src}"
    ).fetchone()
    if row is None or not row[1]:
        return empty
    types = con.execute(
        f"SELECT __change_type, count(DISTINCT __replay_id) FROM {src} GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {
        "events_applied": int(row[0]), "change_rows": int(row[1]), "first_replay_id": row[2],
        "last_replay_id": row[3], "first_commit": _iso(row[4]), "last_commit": _iso(row[5]),
        "change_types": {str(t): int(n) for t, n in types},
    }  # fmt: skip


def _iso(v: Any) -> str | None:
    return v.isoformat() if isinstance(v, datetime) else (str(v) if v is not None else None)
