"""Record exports: MySQL dumps load into a real MariaDB and read back equal; CSV reads back equal."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from engine.diff.archive import open_archive
from engine.diff.export import export_records
from engine.diff.export_csv import read_csv
from engine.diff.recovery import RecoveryPoints
from engine.errors import WrongZipPassword
from tests.helpers.diff_snapshots import ChainWriter, ObjectChange, new_repository
from tests.helpers.mariadb import MariaDB

ORG = "acme"
TS = pa.timestamp("ms", "UTC")
T0 = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)

HARD_TEXT = [
    "plain",
    "",  # empty string, not NULL
    None,
    "emoji 🎉 and non-BMP 𝄞 𠜎, accents éàü, CJK 漢字",
    "quotes ' and \" and backslash \\ and \\' mixed",
    "line1\nline2\r\nline3\ttab",
    "NUL \x00 and SUB \x1a inside",
    "x" * 70_000 + "🎉" * 20_000,  # very long text (long text area is 131,072 characters)
    'comma, "quoted", field',
    "\\N is not null",
]


def hard_table(n_extra: int = 0) -> pa.Table:
    n = len(HARD_TEXT) + n_extra
    texts = HARD_TEXT + [f"row {i}" for i in range(n_extra)]
    return pa.table(
        {
            "Id": pa.array([f"001{i:012d}AAA" for i in range(n)], pa.string()),
            "Name": pa.array(texts, pa.string()),
            "Amount__c": pa.array(
                [None if i % 4 == 2 else Decimal(i * 1234567) / 100 - 50 for i in range(n)],
                pa.decimal128(18, 2),
            ),
            "Rate__c": pa.array([None if i == 3 else i * 0.1 for i in range(n)], pa.float64()),
            "Count__c": pa.array([None if i == 4 else i * 10**12 for i in range(n)], pa.int64()),
            "Active__c": pa.array([None if i == 5 else i % 2 == 0 for i in range(n)], pa.bool_()),
            "Birthdate": pa.array(
                [None if i == 6 else date(1950, 1, 1) + timedelta(days=i * 400) for i in range(n)],
                pa.date32(),
            ),
            "Colors__c": pa.array([None if i == 7 else "red;green;blue" if i % 2 else "" for i in range(n)]),
            "SystemModstamp": pa.array([T0 + timedelta(seconds=i, milliseconds=i) for i in range(n)], TS),
        }
    )


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Any, list[str], pa.Table]:
    repo = new_repository(tmp_path)
    w = ChainWriter(repo, ORG)
    full = hard_table(5)
    j1 = w.commit("full", {"Account": ObjectChange(rows=full, mode="full", chunk_rows=4)}).job_id
    upd = full.slice(10, 3)
    upd = upd.set_column(1, "Name", pa.array(["changed ' \\ 🎉", "", None]))
    upd = upd.set_column(8, "SystemModstamp", pa.array([T0 + timedelta(hours=1)] * 3, TS))
    j2 = w.commit("incremental", {"Account": ObjectChange(rows=upd)}).job_id
    return repo, [j1, j2], full


def _mysql_value(raw: str, t: pa.DataType) -> Any:
    if raw == "NULL":
        return None
    s = bytes.fromhex(raw).decode("utf-8")
    if pa.types.is_decimal(t):
        return Decimal(s)
    if pa.types.is_floating(t):
        return float(s)
    if pa.types.is_integer(t):
        return int(s)
    if pa.types.is_boolean(t):
        return s == "1"
    if pa.types.is_timestamp(t):
        return datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    if pa.types.is_date(t):
        return date.fromisoformat(s)
    return s


@pytest.mark.mysql
@pytest.mark.parametrize("scope", ["cycle", "changed"])
def test_mysql_export_loads_into_mariadb_and_reads_back_equal(
    tmp_path: Path, mariadb: MariaDB, chain: tuple[Any, list[str], pa.Table], scope: str
) -> None:
    repo, jobs, _ = chain
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s") as rp:
        res = export_records(rp, tmp_path / "out.zip", fmt="mysql", scope=scope, objects=["Account"])  # type: ignore[arg-type]
        expected = rp.table("Account", jobs[1])
        schema = rp.schema("Account")
    if scope == "changed":
        expected = expected.filter(pa.array([i in {f"001{k:012d}AAA" for k in (10, 11, 12)}
                                             for i in expected["Id"].to_pylist()]))  # fmt: skip
    assert res.rows == {"Account": expected.num_rows}
    with open_archive(res.path, res.password) as zf:
        assert sorted(zf.namelist()) == sorted(
            ["Account.sql", "manifest.csv", *(["removed.csv"] if scope == "changed" else [])]
        )
        dump = tmp_path / "Account.sql"
        dump.write_bytes(zf.read("Account.sql"))
    db = f"exp_{scope}"
    mariadb.run_sql(f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} CHARACTER SET utf8mb4;")
    mariadb.load_file(dump, db)
    cols = ", ".join(f"HEX(CAST(`{c}` AS CHAR))" for c in schema.names)
    out = mariadb.run_sql(f"SELECT {cols} FROM `Account` ORDER BY `Id`;", db)
    lines = out.splitlines()[1:]
    got = [
        {f.name: _mysql_value(v, f.type) for f, v in zip(schema, line.split("\t"), strict=True)}
        for line in lines
    ]
    assert got == expected.to_pylist()
    ddl = mariadb.run_sql("SHOW CREATE TABLE `Account`;", db)
    assert "decimal(18,2)" in ddl and "datetime(3)" in ddl and "tinyint(1)" in ddl and "PRIMARY KEY" in ddl


def test_csv_export_reads_back_equal_with_pyarrow(
    tmp_path: Path, chain: tuple[Any, list[str], pa.Table]
) -> None:
    repo, jobs, _ = chain
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s") as rp:
        res = export_records(rp, tmp_path / "out.zip", fmt="csv", scope="cycle", job=jobs[1])
        expected = rp.table("Account", jobs[1])
        schema = rp.schema("Account")
    with open_archive(res.path, res.password) as zf:
        raw = zf.read("Account.csv")
    assert raw.startswith(b"Id,Name,Amount__c") and b"\r\n" in raw
    (tmp_path / "Account.csv").write_bytes(raw)
    back = read_csv(tmp_path / "Account.csv", schema)
    assert back.to_pylist() == expected.to_pylist()


def test_wrong_zip_password_is_refused(tmp_path: Path, chain: tuple[Any, list[str], pa.Table]) -> None:
    repo, _, _ = chain
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s") as rp:
        res = export_records(rp, tmp_path / "out.zip", fmt="csv", scope="cycle")
    assert len(res.password) >= 20
    with pytest.raises(WrongZipPassword) as err, open_archive(res.path, "not-the-password"):
        pass
    assert err.value.code == "SFV-708"


@pytest.mark.parametrize("scope", ["cycle", "changed"])
def test_manifest_csv_says_which_job_each_object_is_as_of(tmp_path: Path, scope: str) -> None:
    """Issue 14 defect 5: in the export of a partial job, the failed object is as of the earlier
    job that captured it (its rows are that job's), and one no job captured is listed as absent."""
    repo = new_repository(tmp_path)
    w = ChainWriter(repo, ORG)
    full_rows = hard_table(5)
    full = w.commit("full", {"Account": ObjectChange(rows=full_rows, mode="full"),
                             "Contact": ObjectChange(rows=full_rows, mode="full"),
                             "Lead": ObjectChange(failed=True)}).job_id  # fmt: skip
    upd = full_rows.slice(0, 2).set_column(8, "SystemModstamp", pa.array([T0 + timedelta(hours=1)] * 2, TS))
    inc = w.commit("incremental", {"Account": ObjectChange(rows=upd), "Contact": ObjectChange(failed=True),
                                   "Lead": ObjectChange(failed=True)}).job_id  # fmt: skip
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s") as rp:
        res = export_records(rp, tmp_path / "out.zip", fmt="csv", scope=scope, job=inc)  # type: ignore[arg-type]
        contact_before = rp.count("Contact", full)
    assert [(a.object, a.as_of, a.as_of_job) for a in res.stale] == [
        ("Contact", "earlier_job", full), ("Lead", "absent", None)
    ]  # fmt: skip
    with open_archive(res.path, res.password) as zf:
        rows = list(csv.reader(io.StringIO(zf.read("manifest.csv").decode())))
        assert "Lead.csv" not in zf.namelist()
    assert rows[0] == ["object", "rows", "file", "bytes", "as_of", "as_of_job"]
    by_object = {r[0]: r for r in rows[1:]}
    assert [by_object["Account"][i] for i in (4, 5)] == ["this_job", inc]
    assert [by_object["Contact"][i] for i in (4, 5)] == ["earlier_job", full]
    # a cycle export holds Contact as the full captured it; nothing of it changed since
    assert by_object["Contact"][1] == (str(contact_before) if scope == "cycle" else "0")
    assert by_object["Lead"] == ["Lead", "", "", "", "absent", ""]
