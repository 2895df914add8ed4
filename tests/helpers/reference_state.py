"""An independent, in-memory reference for recovery points (a test oracle only).

This is the straightforward reading of DESIGN.md "Recovery points" that ``engine.jobs.state`` used
to carry: load every chunk of the chain, pick per Id the newest event with DuckDB over in-memory
tables, apply sweeps. The engine's one implementation is :mod:`engine.diff.recovery` (out of
core); tests compare it against this oracle so that a shared bug cannot hide.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from engine.jobs.planning import captured, object_mode, ordered
from engine.jobs.tasks import IDS_SUFFIX
from engine.model import Manifest


def chain_until(manifests: list[Manifest], job_id: str | None = None) -> list[Manifest]:
    """The manifests of the target job's cycle, in commit order, up to the target (newest if None)."""
    ms = ordered(manifests)
    if not ms:
        return []
    target = ms[-1] if job_id is None else next(m for m in ms if m.job_id == job_id)
    out = [m for m in ms if m.cycle_id == target.cycle_id]
    return out[: out.index(target) + 1]


def reference_state(repo: Any, org: str, obj: str, *, job_id: str | None = None,
                 manifests: list[Manifest] | None = None) -> pa.Table | None:  # fmt: skip
    """The live rows of ``obj`` at ``job_id`` (default: the newest snapshot), sorted by Id.

    None when no job of the cycle captured the object in full yet.
    """
    chain = chain_until(manifests if manifests is not None else list(repo.manifests(org)), job_id)
    base = None
    for i, m in enumerate(chain):
        if captured(m, obj) and object_mode(m, obj) == "full":
            base = i
    if base is None:
        return None
    data: list[pa.Table] = []
    events: list[pa.Table] = []
    sweep_jobs: list[int] = []
    sweep_ids: list[pa.Table] = []
    ts_field: str | None = None
    offset = 0
    for j in range(base, len(chain)):
        m = chain[j]
        if not captured(m, obj):
            continue
        entry = m.objects[obj]
        if entry.cursor is not None:
            ts_field = entry.cursor.field
        for ref in entry.chunks:
            t = repo.read_chunk(ref)
            n = t.num_rows
            ts = (
                t[ts_field]
                if ts_field and ts_field in t.column_names
                else pa.nulls(n, pa.timestamp("ms", "UTC"))
            )
            events.append(pa.table({
                "Id": t["Id"], "_ts": ts.cast(pa.timestamp("ms", "UTC")),
                "_job": pa.array([j] * n, pa.int32()), "_del": pa.array([False] * n),
                "_row": pa.array(range(offset, offset + n), pa.int64()),
            }))  # fmt: skip
            data.append(t)
            offset += n
        for ref in entry.deleted_ids_chunks:
            t = repo.read_chunk(ref)
            n = t.num_rows
            if ref.object == obj + IDS_SUFFIX:
                sweep_ids.append(pa.table({"Id": t["Id"], "_job": pa.array([j] * n, pa.int32())}))
                continue
            ts_col = [c for c in t.column_names if c != "Id"]
            ts = t[ts_col[0]] if ts_col else pa.nulls(n, pa.timestamp("ms", "UTC"))
            events.append(pa.table({
                "Id": t["Id"], "_ts": ts.cast(pa.timestamp("ms", "UTC")),
                "_job": pa.array([j] * n, pa.int32()), "_del": pa.array([True] * n),
                "_row": pa.array([-1] * n, pa.int64()),
            }))  # fmt: skip
        if entry.swept:
            sweep_jobs.append(j)
    if not data:
        return pa.table({"Id": pa.array([], pa.string())})
    table = pa.concat_tables(data, promote_options="permissive")
    ev = pa.concat_tables(events)
    sw = pa.table({"_job": pa.array(sweep_jobs, pa.int32())})
    ids = (
        pa.concat_tables(sweep_ids)
        if sweep_ids
        else pa.table({"Id": pa.array([], pa.string()), "_job": pa.array([], pa.int32())})
    )
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        con.register("ev", ev)
        con.register("sw", sw)
        con.register("ids", ids)
        rows = con.sql(
            """
            WITH w AS (
                SELECT * FROM ev
                QUALIFY row_number() OVER (
                    PARTITION BY Id ORDER BY _ts DESC NULLS LAST, _job DESC, _del DESC) = 1
            )
            SELECT _row FROM w
            WHERE NOT _del AND NOT EXISTS (
                SELECT 1 FROM sw WHERE sw._job >= w._job
                AND NOT EXISTS (SELECT 1 FROM ids WHERE ids._job = sw._job AND ids.Id = w.Id))
            ORDER BY Id
            """
        ).to_arrow_table()["_row"]
    finally:
        con.close()
    return table.take(rows)
