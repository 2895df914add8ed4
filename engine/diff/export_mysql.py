"""MySQL / MariaDB dump files: one ``.sql`` per object that the ``mysql`` client loads as is.

Each file: ``SET NAMES utf8mb4``, ``DROP TABLE IF EXISTS``, ``CREATE TABLE`` with the column types
of ``docs/MYSQL_TYPES.md`` (mapped from the Arrow schema of the chunks, which the extraction stage
derives from the Salesforce describe types), then ``INSERT`` statements of at most
``batch_bytes`` each. Values are escaped the way ``mysqldump`` does (NUL → ``\\0``, 0x1A → ``\\Z``,
backslash, both quotes, newline, carriage return), NULL stays ``NULL`` and the empty string ``''``.

The text of each row is built column-wise with Arrow compute kernels (no Python loop per value),
so the rate is bounded by the kernels and the disk, not by the interpreter.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.diff.recovery import BLOB_SUFFIX, RecoveryPoints
from engine.diff.selection import Selection

ESCAPES = (("\\", "\\\\"), ("\x00", "\\0"), ("'", "\\'"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"),
           ("\x1a", "\\Z"))  # fmt: skip
"""mysqldump's escaping, backslash first so later escapes are not doubled."""


def ident(name: str) -> str:
    """A MySQL identifier in backticks (names longer than 64 characters are refused by MySQL)."""
    return "`" + name.replace("`", "``") + "`"


def mysql_type(f: pa.Field) -> str:
    """The column type of one Arrow field (see docs/MYSQL_TYPES.md)."""
    t = f.type
    if f.name == "Id":
        return "VARCHAR(18) CHARACTER SET ascii COLLATE ascii_bin NOT NULL"
    if f.name.endswith(BLOB_SUFFIX):
        return "CHAR(64) CHARACTER SET ascii"
    if pa.types.is_boolean(t):
        return "TINYINT(1)"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_decimal(t):
        scale = min(t.scale, 30)
        return f"DECIMAL({min(max(t.precision, scale, 1), 65)},{scale})"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_timestamp(t):
        return {"s": "DATETIME", "ms": "DATETIME(3)"}.get(t.unit, "DATETIME(6)")
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "LONGBLOB"
    return "MEDIUMTEXT"


def create_table(table: str, schema: pa.Schema) -> str:
    cols = [f"  {ident(f.name)} {mysql_type(f)}" for f in schema]
    if "Id" in schema.names:
        cols.append("  PRIMARY KEY (`Id`)")
    return (f"DROP TABLE IF EXISTS {ident(table)};\nCREATE TABLE {ident(table)} (\n" + ",\n".join(cols)
            + "\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;\n")  # fmt: skip


def _quoted(arr: pa.Array) -> pa.Array:
    for old, new in ESCAPES:
        arr = pc.replace_substring(arr, old, new)
    return pc.binary_join_element_wise("'", arr, "'", "")


def literals(col: pa.Array) -> pa.Array:
    """SQL literals (text) of one column; NULL for nulls (and for NaN/inf, which MySQL cannot store)."""
    t = col.type
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_boolean(t):
        out = pc.if_else(col, "1", "0")
    elif pa.types.is_integer(t) or pa.types.is_decimal(t):
        out = pc.cast(col, pa.string())
    elif pa.types.is_floating(t):
        finite = pc.is_finite(col)
        out = pc.if_else(finite, pc.cast(col, pa.string()), pa.scalar(None, pa.string()))
    elif pa.types.is_timestamp(t):
        utc = col.cast(pa.timestamp(t.unit, "UTC"))
        out = _quoted(pc.strftime(utc, format="%Y-%m-%d %H:%M:%S", locale="C"))
    elif pa.types.is_date(t):
        out = _quoted(pc.strftime(col, format="%Y-%m-%d"))
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
        hexed = pa.array([None if v is None else "0x" + v.hex() if v else "''" for v in col.to_pylist()],
                         pa.string())  # fmt: skip
        out = hexed
    else:
        out = _quoted(pc.cast(col, pa.string()))
    return pc.fill_null(out, "NULL")


def write_mysql(rp: RecoveryPoints, sel: Selection, dest: Path | str, *, table: str | None = None,
                batch_bytes: int = 1 << 20, batch_rows: int = 20_000) -> int:  # fmt: skip
    """Write the selection as one ``.sql`` file; returns the bytes written."""
    name = table or sel.object
    head = (f"-- sfvault export of {name} at job {sel.job}\n"
            "SET NAMES utf8mb4;\nSET time_zone = '+00:00';\nSET FOREIGN_KEY_CHECKS = 0;\n"
            "SET UNIQUE_CHECKS = 0;\n" + create_table(name, sel.schema))  # fmt: skip
    cols = ", ".join(ident(f.name) for f in sel.schema)
    prefix = f"INSERT INTO {ident(name)} ({cols}) VALUES\n".encode()
    written = 0
    with Path(dest).open("wb") as out:
        written += out.write(head.encode())
        for batch in sel.batches(rp, batch_rows=batch_rows):
            written += _write_batch(out, batch, prefix, batch_bytes)
        written += out.write(b"SET UNIQUE_CHECKS = 1;\nSET FOREIGN_KEY_CHECKS = 1;\n")
    return written


def _write_batch(out: BinaryIO, batch: pa.RecordBatch, prefix: bytes, batch_bytes: int) -> int:
    """Write the batch as INSERT statements of at most ``batch_bytes`` (a longer row goes alone)."""
    if batch.num_rows == 0:
        return 0
    parts = [literals(batch.column(i)) for i in range(batch.num_columns)]
    rows = pc.binary_join_element_wise("(", pc.binary_join_element_wise(*parts, ","), ")", "")
    rows = rows.cast(pa.large_string())
    sizes = np.cumsum(pc.binary_length(rows).to_numpy(zero_copy_only=False).astype(np.int64) + 2)
    bounds = [0]
    while bounds[-1] < len(rows):
        start = bounds[-1]
        base = sizes[start - 1] if start else 0
        end = int(np.searchsorted(sizes, base + batch_bytes, side="right"))
        bounds.append(max(end, start + 1))
    lists = pa.LargeListArray.from_arrays(pa.array(bounds, pa.int64()), rows)
    written = 0
    for stmt in pc.binary_join(lists, pa.scalar(",\n", pa.large_string())):
        written += out.write(prefix + stmt.as_buffer().to_pybytes() + b";\n")
    return written
