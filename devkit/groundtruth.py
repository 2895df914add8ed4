"""Ground truth for backup tests: the emulator's current rows vs. the engine's reading of a snapshot.

Both sides reduce an object to ``(row count, SHA-256 over Id | SystemModstamp-ms | content fields
in Id order)`` with the same DuckDB expression; the emulator side runs through its read-only admin
SQL endpoint, the engine side over the Arrow table that :func:`engine.jobs.state.object_state`
rebuilt from the repository. On a mismatch :func:`explain` lists the differing Ids.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

# fields churn edits (emulator/churn.py UPDATE_FIELDS) plus Name: a wrong version changes them
CONTENT_FIELDS = ("Name", "Description", "Notes__c", "Subject", "Title")


def _expr(ts: str | None, cols: list[str]) -> str:
    parts = ['"Id"']
    if ts:
        parts.append(f"coalesce(CAST(epoch_ms(\"{ts}\") AS VARCHAR), '')")
    parts += [f"coalesce(CAST(\"{c}\" AS VARCHAR), '')" for c in cols]
    row = " || '|' || ".join(parts)
    return f"count(*), sha256(coalesce(string_agg({row}, ',' ORDER BY \"Id\"), ''))"


def _live_where(em: Any, obj: str) -> str:
    cols = {
        r[0]
        for r in em.sql(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", f"sf_{obj.lower()}"
        )
    }
    # archived activities (IsArchived) are live rows that only queryAll returns: the backup keeps them
    return ' WHERE NOT "IsDeleted"' if "IsDeleted" in cols else ""


def columns_for(table: pa.Table) -> list[str]:
    return [c for c in CONTENT_FIELDS if c in table.column_names]


def emulator_digest(em: Any, obj: str, ts: str | None, cols: list[str]) -> tuple[int, str]:
    rows = em.sql(f"SELECT {_expr(ts, cols)} FROM sf_{obj.lower()}{_live_where(em, obj)}")
    return int(rows[0][0]), str(rows[0][1])


def snapshot_digest(table: pa.Table, ts: str | None, cols: list[str]) -> tuple[int, str]:
    con = duckdb.connect()
    try:
        con.register("t", table)
        row = con.execute(f"SELECT {_expr(ts, cols)} FROM t").fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0]), str(row[1])


def explain(em: Any, obj: str, table: pa.Table, ts: str | None, limit: int = 10) -> str:
    """Which Ids differ (missing, extra, other version), for the assertion message."""
    ts_sql = f', epoch_ms("{ts}")' if ts else ""
    truth = {
        r[0]: (r[1] if ts else None)
        for r in em.sql(f'SELECT "Id"{ts_sql} FROM sf_{obj.lower()}{_live_where(em, obj)}')
    }
    ours: dict[str, Any] = {}
    ids = table["Id"].to_pylist()
    stamps = table[ts].to_pylist() if ts and ts in table.column_names else [None] * len(ids)
    for i, s in zip(ids, stamps, strict=True):
        ours[i] = int(s.timestamp() * 1000) if s is not None else None
    missing = sorted(set(truth) - set(ours))
    extra = sorted(set(ours) - set(truth))
    other = sorted(i for i in set(truth) & set(ours) if truth[i] != ours[i])
    return (
        f"{obj}: {len(missing)} missing {missing[:limit]}, {len(extra)} extra {extra[:limit]}, "
        f"{len(other)} other version {other[:limit]}"
    )


def compare_org(
    em: Any, repo: Any, org: str, objects: list[str], *, job_id: str | None = None
) -> dict[str, str]:
    """Per object, '' when equal, else an explanation. Objects the snapshot lacks are reported."""
    from engine.jobs.state import object_state

    manifests = list(repo.manifests(org))
    out: dict[str, str] = {}
    for obj in objects:
        table = object_state(repo, org, obj, job_id=job_id, manifests=manifests)
        if table is None:
            out[obj] = f"{obj}: not in the snapshot"
            continue
        ts = next(
            (c for c in ("SystemModstamp", "LastModifiedDate", "CreatedDate") if c in table.column_names),
            None,
        )
        cols = columns_for(table)
        if emulator_digest(em, obj, ts, cols) == snapshot_digest(table, ts, cols):
            out[obj] = ""
        else:
            out[obj] = explain(em, obj, table, ts)
    return out
