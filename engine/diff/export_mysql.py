"""MySQL / MariaDB dump files: one ``.sql`` per object that the ``mysql`` client loads as is.

Each file: ``SET NAMES utf8mb4``, ``DROP TABLE IF EXISTS``, ``CREATE TABLE`` with the column types
of ``docs/MYSQL_TYPES.md``, then ``INSERT`` statements of at most ``batch_bytes`` each. Values are
escaped the way ``mysqldump`` does (NUL → ``\\0``, 0x1A → ``\\Z``, backslash, both quotes, newline,
carriage return), NULL stays ``NULL`` and the empty string ``''``.

Column types come from the Salesforce describe when the chunks carry it: the extraction stage
stores ``sf_type``, ``sf_length``, ``sf_precision`` and ``sf_scale`` as Arrow field metadata
(:data:`SF_TYPE` …, mirrored from ``engine.extract.csv_arrow``), so a ``string(80)`` becomes
``VARCHAR(80)`` and a long text area ``MEDIUMTEXT``. Chunks written before that (no metadata) fall
back to the Arrow type alone (:func:`arrow_mysql_type`). A declared length is widened to the
longest value actually exported (so a load never fails on "data too long"), and when the
``VARCHAR`` columns of a wide object would pass MySQL's row-size limits the longest ones become
``TEXT`` (:func:`fit_row_size`).

The text of each row is built column-wise with Arrow compute kernels (no Python loop per value),
so the rate is bounded by the kernels and the disk, not by the interpreter.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.diff.recovery import BLOB_SUFFIX, RecoveryPoints, q, run
from engine.diff.selection import Selection

ESCAPES = (("\\", "\\\\"), ("\x00", "\\0"), ("'", "\\'"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"),
           ("\x1a", "\\Z"))  # fmt: skip
"""mysqldump's escaping, backslash first so later escapes are not doubled."""


def ident(name: str) -> str:
    """A MySQL identifier in backticks (names longer than 64 characters are refused by MySQL)."""
    return "`" + name.replace("`", "``") + "`"


SF_TYPE, SF_LENGTH, SF_PRECISION, SF_SCALE = b"sf_type", b"sf_length", b"sf_precision", b"sf_scale"
"""Arrow field metadata keys written by ``engine.extract.csv_arrow.arrow_schema`` (the describe)."""
VARCHAR_TYPES = frozenset({"string", "picklist", "combobox", "email", "phone", "url", "encryptedstring"})
"""Describe types stored as ``VARCHAR(length)`` (utf8mb4)."""
ID_TYPES = frozenset({"id", "reference"})
TEXT_TYPES = frozenset({"textarea", "multipicklist", "anyType"})
"""Describe types stored as ``TEXT`` / ``MEDIUMTEXT`` / ``LONGTEXT`` chosen by length."""
MAX_VARCHAR = 16_383
"""The longest utf8mb4 ``VARCHAR`` (65,535 bytes / 4)."""
ROW_DECLARED_LIMIT = 65_000
"""MySQL's 65,535-byte limit on the declared size of a row's non-BLOB columns, with a margin."""
ROW_INLINE_LIMIT = 8_000
"""InnoDB's ~8,126-byte limit on what a DYNAMIC row keeps in the page (strict mode), with a margin."""
ASCII_ID = "CHARACTER SET ascii COLLATE ascii_bin"


def describe_of(f: pa.Field) -> tuple[str | None, int, int, int]:
    """``(sf_type, length, precision, scale)`` from the field metadata (``None`` type: not recorded)."""
    md = f.metadata or {}
    raw = md.get(SF_TYPE)
    if raw is None:
        return None, 0, 0, 0

    def num(key: bytes) -> int:
        v = md.get(key)
        return int(v) if v else 0

    return raw.decode(), num(SF_LENGTH), num(SF_PRECISION), num(SF_SCALE)


def text_type(chars: int) -> str:
    """The smallest MySQL text type that holds ``chars`` characters of 4-byte utf8mb4."""
    need = 4 * chars
    if need <= 65_535:
        return "TEXT"
    if need <= 16_777_215:
        return "MEDIUMTEXT"
    return "LONGTEXT"


def arrow_mysql_type(t: pa.DataType) -> str:
    """The column type from the Arrow type alone (chunks without describe metadata)."""
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


def mysql_type(f: pa.Field, *, max_chars: int | None = None) -> str:
    """The column type of one Arrow field (see docs/MYSQL_TYPES.md).

    ``max_chars`` is the longest value the dump writes into the column (characters); a describe
    length shorter than that is widened so that the load never truncates or fails.
    """
    t = f.type
    if f.name == "Id":
        return f"VARCHAR({max(18, max_chars or 0)}) {ASCII_ID} NOT NULL"
    if f.name.endswith(BLOB_SUFFIX):
        return "CHAR(64) CHARACTER SET ascii"
    sf_type, length, _, _ = describe_of(f)
    is_text = pa.types.is_string(t) or pa.types.is_large_string(t)
    if sf_type is None or not is_text:
        if sf_type == "int" and pa.types.is_integer(t):
            return "INT"  # xsd:int, 32 bits (``long`` stays BIGINT)
        return arrow_mysql_type(t)
    n = max(length, max_chars or 0)
    if sf_type in ID_TYPES:
        return f"VARCHAR({max(18, n)}) {ASCII_ID}"
    if sf_type in VARCHAR_TYPES and 0 < n <= MAX_VARCHAR:
        return f"VARCHAR({n})"
    if sf_type in VARCHAR_TYPES or sf_type in TEXT_TYPES:
        return text_type(n) if n > 0 else "MEDIUMTEXT"
    return "MEDIUMTEXT"  # time (text with a zone marker), and types this mapping does not know


def _varchar_bytes(decl: str) -> tuple[int, int] | None:
    """(declared bytes, bytes kept in the InnoDB page) of a ``VARCHAR(n)`` declaration, else None."""
    if not decl.startswith("VARCHAR("):
        return None
    n = int(decl[len("VARCHAR(") : decl.index(")")])
    width = 1 if "ascii" in decl else 4
    declared = n * width + (1 if n * width < 256 else 2)
    return declared, (declared if n * width <= 255 else 40)


def fit_row_size(types: dict[str, str]) -> dict[str, str]:
    """Turn the longest ``VARCHAR`` columns into ``TEXT`` until the row fits MySQL's limits.

    MySQL refuses a table whose declared non-BLOB columns exceed 65,535 bytes, and InnoDB (strict
    mode) one whose in-page part can exceed ~8 KB; wide Salesforce objects (hundreds of
    ``string(255)`` fields) would hit both. ``TEXT`` columns cost a pointer instead. The ``Id``
    (the primary key) is never changed.
    """
    out = dict(types)
    other = 16  # a generous per-column cost for non-VARCHAR columns (pointers, numbers, dates)

    def cost(i: int) -> int:
        return sum((vb[i] if (vb := _varchar_bytes(d)) else other) for d in out.values())

    def demote(name: str) -> None:
        out[name] = "TEXT" + (" " + ASCII_ID if "ascii" in out[name] else "")

    varchars = [n for n, d in out.items() if n != "Id" and _varchar_bytes(d) is not None]
    by_size = sorted(varchars, key=lambda n: -(_varchar_bytes(out[n]) or (0, 0))[0])
    for name in by_size:  # the declared limit: the longest columns go first
        if cost(0) <= ROW_DECLARED_LIMIT:
            break
        demote(name)
    inline = [n for n in by_size if (vb := _varchar_bytes(out[n])) is not None and vb[1] == vb[0]]
    for name in inline:  # the in-page limit: only short columns live in the page
        if cost(1) <= ROW_INLINE_LIMIT:
            break
        demote(name)
    return out


def varchar_candidates(schema: pa.Schema) -> list[str]:
    """Columns whose type depends on the longest value (text fields with a describe type, and Id)."""
    out = []
    for f in schema:
        if f.name.endswith(BLOB_SUFFIX) or not (
            pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
        ):
            continue
        sf_type = describe_of(f)[0]
        if f.name == "Id" or sf_type in ID_TYPES or sf_type in VARCHAR_TYPES or sf_type in TEXT_TYPES:
            out.append(f.name)
    return out


def column_types(schema: pa.Schema, max_chars: dict[str, int] | None = None) -> dict[str, str]:
    """Column name → MySQL type for a whole table, after :func:`fit_row_size`."""
    longest = max_chars or {}
    return fit_row_size({f.name: mysql_type(f, max_chars=longest.get(f.name)) for f in schema})


def create_table(table: str, schema: pa.Schema, max_chars: dict[str, int] | None = None) -> str:
    types = column_types(schema, max_chars)
    cols = [f"  {ident(f.name)} {types[f.name]}" for f in schema]
    if "Id" in schema.names:
        cols.append("  PRIMARY KEY (`Id`)")
    return (f"DROP TABLE IF EXISTS {ident(table)};\nCREATE TABLE {ident(table)} (\n" + ",\n".join(cols)
            + "\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;\n")  # fmt: skip


NEEDS_ESCAPE = r"[\\\x00'\"\n\r\x1a]"
"""An RE2 class of the characters :data:`ESCAPES` rewrites."""


def _quoted(arr: pa.Array) -> pa.Array:
    """Quoted, escaped literals; only the values that hold a special character go through the
    escape kernels (most names, e-mails and Ids have none), the rest are quoted as they are."""
    mask = pc.fill_null(pc.match_substring_regex(arr, NEEDS_ESCAPE), False)
    if pc.any(mask).as_py():
        sub = pc.filter(arr, mask)
        for old, new in ESCAPES:
            if pc.any(pc.match_substring(sub, old)).as_py():
                sub = pc.replace_substring(sub, old, new)
        arr = pc.replace_with_mask(arr, mask, sub)
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
        # UTC wall clock: a tz-aware value cast to a naive timestamp keeps its UTC instant, and the
        # string cast prints ``YYYY-MM-DD HH:MM:SS[.fff]`` (15x faster than strftime)
        naive = col.cast(pa.timestamp(t.unit, "UTC")).cast(pa.timestamp(t.unit))
        out = pc.binary_join_element_wise("'", pc.cast(naive, pa.string()), "'", "")
    elif pa.types.is_date(t):
        out = pc.binary_join_element_wise("'", pc.cast(col, pa.string()), "'", "")
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
            "SET UNIQUE_CHECKS = 0;\nSET SESSION innodb_strict_mode = 0;\n"
            + create_table(name, sel.schema, longest_values(rp, sel)))  # fmt: skip
    cols = ", ".join(ident(f.name) for f in sel.schema)
    prefix = f"INSERT INTO {ident(name)} ({cols}) VALUES\n".encode()
    written = 0
    with Path(dest).open("wb") as out:
        written += out.write(head.encode())
        for batch in sel.batches(rp, batch_rows=batch_rows):
            written += _write_batch(out, batch, prefix, batch_bytes)
        written += out.write(b"SET UNIQUE_CHECKS = 1;\nSET FOREIGN_KEY_CHECKS = 1;\n")
    return written


def longest_values(rp: RecoveryPoints, sel: Selection) -> dict[str, int]:
    """The longest value (in characters) of each :func:`varchar_candidates` column of the selection."""
    cols = varchar_candidates(sel.schema)
    if not cols:
        return {}
    aggs = ", ".join(f"coalesce(max(length({q(c)})), 0)" for c in cols)
    row = run(rp.con, f"SELECT {aggs} FROM {sel.sql}")[0]
    return {c: int(v) for c, v in zip(cols, row, strict=True)}


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
