"""Change events replayed on a snapshot's state with DuckDB: an object's state at an instant T.

Input: the object's state at a backup job (a Parquet file, :meth:`RecoveryPoints.state_file`), the
change rows of the committed segments (Parquet files, columns of :mod:`engine.cdc.decode`), and a
window ``[start, at]`` of commit timestamps, where ``start`` is no later than the moment the job
began to read the object. Per record, in commit order (``__commit_number``, ``__seq``):

* the last CREATE / UNDELETE / DELETE (or gap row: a GAP_* event's record re-read through REST,
  GAP_DELETE when it was gone) decides whether the record lives: a delete removes it; the others
  carry every field and give the row its values, every field they leave null is null; without
  one the record's row is the snapshot's;
* then every UPDATE after it sets, per field, the value of the last UPDATE that changed or nulled
  the field (``__touched``); fields no event touched keep their value.

Why replaying from ``start`` on top of a snapshot read after ``start`` is exact: a field that some
event in the window touched ends with the value of the last such event, which is its value at T; a
field no event touched did not change in the window, so the snapshot's value is its value at T.
Fields that change events never carry (formula fields, ``IsDeleted``, blob references) keep the
snapshot's value (null for rows created in the window); ``SystemModstamp`` becomes the commit time
of the record's last event. Datetimes arrive as epoch milliseconds, times as milliseconds after
midnight: they are cast to the snapshot's column types.

This module is a stage: it imports no other stage, and touches only files in the scratch folder.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from engine.diff.recovery import lit, q

META_PREFIX = "__"


def _cast(col: str, src: pa.DataType, dst: pa.DataType) -> str:
    """SQL turning the event column ``col`` (Avro type ``src``) into the snapshot's type ``dst``."""
    c = f"ev.{q(col)}"
    if pa.types.is_timestamp(dst) and pa.types.is_integer(src):
        return f"epoch_ms({c}::BIGINT)"
    if pa.types.is_time(dst) and pa.types.is_integer(src):
        return f"(TIME '00:00:00' + to_milliseconds({c}::BIGINT))"
    if pa.types.is_string(dst) or pa.types.is_large_string(dst):
        return f"CAST({c} AS VARCHAR)"
    return c


def _duck_type(con: duckdb.DuckDBPyConnection, t: pa.DataType) -> str:
    rel = con.from_arrow(pa.table({"x": pa.array([], t)}))
    return str(rel.types[0])


def replay(
    con: duckdb.DuckDBPyConnection,
    base: Path | None,
    schema: pa.Schema,
    segments: list[Path],
    *,
    start: datetime,
    at: datetime,
    out: Path,
) -> int:
    """Write the state at ``at`` to ``out`` (Parquet, sorted by Id, ``schema``); returns its rows.

    ``base`` is the snapshot's state (None: the object was empty); ``segments`` the change row
    files of the object (any may be absent of a column: read by name)."""
    base_sql = f"read_parquet({lit(str(base))})" if base is not None else _empty(schema)
    if not segments:
        con.execute(f"COPY (SELECT * FROM {base_sql} ORDER BY Id) TO {lit(str(out))} (FORMAT parquet)")
        return int(pq.ParquetFile(out).metadata.num_rows)
    files = "[" + ", ".join(lit(str(p)) for p in segments) + "]"
    ev_schema = pa.unify_schemas([pq.read_schema(p) for p in segments], promote_options="permissive")
    fields = [f for f in schema if f.name in ev_schema.names and not f.name.startswith(META_PREFIX)
              and f.name != "Id"]  # fmt: skip
    window = (f"__commit_ts >= {lit(start.isoformat())}::TIMESTAMPTZ "
              f"AND __commit_ts <= {lit(at.isoformat())}::TIMESTAMPTZ")  # fmt: skip
    casts = ", ".join(f"{_cast(f.name, ev_schema.field(f.name).type, f.type)} AS {q(f.name)}" for f in fields)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE ev AS
        SELECT Id, __change_type, __commit_ts, __commit_number, __seq,
               __touched{", " + casts if casts else ""}
        FROM read_parquet({files}, union_by_name = true) ev
        WHERE {window} AND __change_type IN ('CREATE', 'UPDATE', 'DELETE', 'UNDELETE', 'GAP_CREATE',
                                             'GAP_UPDATE', 'GAP_DELETE', 'GAP_UNDELETE', 'GAP_OVERFLOW')
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE life AS
        SELECT * FROM ev WHERE __change_type <> 'UPDATE'
        QUALIFY row_number() OVER (PARTITION BY Id ORDER BY __commit_number DESC, __seq DESC) = 1
    """)
    upd_cols = ", ".join(
        f"arg_max_null(ev.{q(f.name)}, ev.__commit_number * 1000000 + ev.__seq) FILTER "
        f"(WHERE list_contains(ev.__touched, {lit(f.name)})) AS {q(f.name)}, "
        f"bool_or(list_contains(ev.__touched, {lit(f.name)})) AS {q(f.name + '__t')}"
        for f in fields
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE upd AS
        SELECT ev.Id, max(ev.__commit_ts) AS __ts{", " + upd_cols if upd_cols else ""}
        FROM ev LEFT JOIN life ON life.Id = ev.Id
        WHERE ev.__change_type = 'UPDATE'
          AND (life.Id IS NULL OR (ev.__commit_number, ev.__seq) > (life.__commit_number, life.__seq))
        GROUP BY ev.Id
    """)
    return _final(con, base_sql, schema, fields, out)


def _empty(schema: pa.Schema) -> str:
    cols = ", ".join(f"NULL AS {q(f.name)}" for f in schema)
    return f"(SELECT {cols} WHERE false)"


def _final(con: duckdb.DuckDBPyConnection, base_sql: str, schema: pa.Schema, fields: list[pa.Field],
           out: Path) -> int:  # fmt: skip
    carried = {f.name for f in fields}
    row_cols = []
    for f in schema:
        if f.name == "Id":
            row_cols.append("b.Id")
        elif f.name in carried:
            row_cols.append(
                f"CASE WHEN l.Id IS NOT NULL THEN l.{q(f.name)} ELSE b.{q(f.name)} END AS {q(f.name)}"
            )
        elif f.name == "IsDeleted":
            row_cols.append("CASE WHEN l.Id IS NOT NULL THEN false ELSE b.IsDeleted END AS IsDeleted")
        elif f.name == "SystemModstamp":
            row_cols.append("coalesce(l.__commit_ts, b.SystemModstamp) AS SystemModstamp")
        else:
            row_cols.append(f"CASE WHEN l.Id IS NOT NULL THEN NULL ELSE b.{q(f.name)} END AS {q(f.name)}")
    final_cols = []
    for f in schema:
        name = q(f.name)
        if f.name in carried:
            final_cols.append(f"CASE WHEN u.{q(f.name + '__t')} THEN u.{name} ELSE r.{name} END AS {name}")
        elif f.name == "SystemModstamp":
            final_cols.append("greatest(r.SystemModstamp, u.__ts) AS SystemModstamp")
        else:
            final_cols.append(f"r.{name}")
    types = {f.name: _duck_type(con, f.type) for f in schema}
    cast_cols = ", ".join(f"CAST(x.{q(n)} AS {t}) AS {q(n)}" for n, t in types.items())
    con.execute(f"""
        COPY (
            WITH b AS (
                SELECT * FROM {base_sql}
                UNION ALL BY NAME
                SELECT l.Id FROM life l
                WHERE l.__change_type NOT IN ('DELETE', 'GAP_DELETE')
                  AND l.Id NOT IN (SELECT Id FROM {base_sql})
            ),
            r AS (
                SELECT {", ".join(row_cols)}
                FROM b LEFT JOIN (SELECT * FROM life WHERE __change_type NOT IN ('DELETE', 'GAP_DELETE')) l
                  ON l.Id = b.Id
                WHERE b.Id NOT IN (SELECT Id FROM life WHERE __change_type IN ('DELETE', 'GAP_DELETE'))
            ),
            x AS (SELECT {", ".join(final_cols)} FROM r LEFT JOIN upd u ON u.Id = r.Id)
            SELECT {cast_cols} FROM x ORDER BY Id
        ) TO {lit(str(out))} (FORMAT parquet, COMPRESSION zstd)
    """)
    return int(pq.ParquetFile(out).metadata.num_rows)
