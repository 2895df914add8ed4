"""MySQL literal escaping, type mapping and INSERT batching (loading is tested against MariaDB)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa

from engine.diff.export_mysql import _write_batch, create_table, literals, mysql_type


def test_literals_escape_like_mysqldump() -> None:
    arr = pa.array(["a'b", 'q"', "back\\slash", "nl\ncr\r", "nul\x00sub\x1a", "", None, "🎉"])
    assert literals(arr).to_pylist() == [
        "'a\\'b'",
        "'q\\\"'",
        "'back\\\\slash'",
        "'nl\\ncr\\r'",
        "'nul\\0sub\\Z'",
        "''",
        "NULL",
        "'🎉'",
    ]


def test_literals_of_typed_columns() -> None:
    assert literals(pa.array([True, False, None])).to_pylist() == ["1", "0", "NULL"]
    assert literals(pa.array([Decimal("1.50"), None], pa.decimal128(18, 2))).to_pylist() == ["1.50", "NULL"]
    assert literals(pa.array([float("nan"), 0.1, None])).to_pylist() == ["NULL", "0.1", "NULL"]
    ts = pa.array([datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)], pa.timestamp("ms", "UTC"))
    assert literals(ts).to_pylist() == ["'2026-01-02 03:04:05.006'"]
    assert literals(pa.array([date(1999, 12, 31)])).to_pylist() == ["'1999-12-31'"]


def test_types_and_ddl() -> None:
    schema = pa.schema(
        [
            ("Id", pa.string()),
            ("Amount", pa.decimal128(18, 2)),
            ("Body__sfvault_blob", pa.string()),
            ("When", pa.timestamp("ms", "UTC")),
            ("N", pa.int64()),
            ("Text", pa.string()),
        ]
    )
    assert [mysql_type(f) for f in schema][1:] == [
        "DECIMAL(18,2)",
        "CHAR(64) CHARACTER SET ascii",
        "DATETIME(3)",
        "BIGINT",
        "MEDIUMTEXT",
    ]
    ddl = create_table("We`ird", schema)
    assert "CREATE TABLE `We``ird`" in ddl and "PRIMARY KEY (`Id`)" in ddl and "utf8mb4" in ddl


def test_inserts_are_cut_at_the_byte_limit() -> None:
    batch = pa.record_batch({"Id": [f"{i:018d}" for i in range(100)], "T": ["x" * 50] * 100})
    out = io.BytesIO()
    n = _write_batch(out, batch, b"INSERT INTO t VALUES\n", 1000)
    text = out.getvalue().decode()
    assert n == len(out.getvalue())
    stmts = [s for s in text.split(";\n") if s]
    assert len(stmts) > 5 and all(len(s.encode()) <= 1000 + 30 for s in stmts)
    assert sum(s.count("('") for s in stmts) == 100
    one = io.BytesIO()
    _write_batch(one, batch.slice(0, 3), b"I\n", 1)  # a row longer than the limit goes alone
    assert one.getvalue().decode().count(";\n") == 3
