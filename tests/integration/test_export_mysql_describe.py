"""The describe's lengths and types reach MariaDB's CREATE TABLE; the dump loads and reads back equal."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from engine.diff.archive import open_archive
from engine.diff.export import export_records
from engine.diff.recovery import RecoveryPoints
from engine.extract.csv_arrow import arrow_schema
from engine.extract.model import FieldSpec
from tests.helpers.diff_snapshots import ChainWriter, ObjectChange, new_repository
from tests.helpers.mariadb import MariaDB

ORG = "acme"
T0 = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
FIELDS = [
    FieldSpec("Id", "id", length=18),
    FieldSpec("Name", "string", length=20),
    FieldSpec("OwnerId", "reference", length=18),
    FieldSpec("Stage", "picklist", length=40),
    FieldSpec("Description", "textarea", length=131_072),
    FieldSpec("Colors__c", "multipicklist", length=4099),
    FieldSpec("Amount", "currency", precision=18, scale=2),
    FieldSpec("Employees", "int", digits=8),
    FieldSpec("Active__c", "boolean"),
    FieldSpec("Birthdate", "date"),
    FieldSpec("SystemModstamp", "datetime"),
]
NAMES = [
    "plain",
    "",
    None,
    "emoji 🎉 𝄞 éà 漢字",
    "q ' \" \\ mix",
    "nl\nline",
    "x" * 20,
    "longer than twenty chars!",
]


def _table() -> pa.Table:
    n = len(NAMES)
    return pa.Table.from_pydict(
        {
            "Id": [f"001{i:012d}AAA" for i in range(n)],
            "Name": NAMES,
            "OwnerId": [None if i == 2 else "005000000000001AAA" for i in range(n)],
            "Stage": ["Closed Won" if i % 2 else "" for i in range(n)],
            "Description": [None if i == 1 else ("long " * 30_000 if i == 7 else f"d{i}") for i in range(n)],
            "Colors__c": ["red;green" if i % 3 else None for i in range(n)],
            "Amount": [None if i == 3 else Decimal(i * 12345) / 100 for i in range(n)],
            "Employees": [None if i == 4 else i * 1000 for i in range(n)],
            "Active__c": [None if i == 5 else i % 2 == 0 for i in range(n)],
            "Birthdate": [None if i == 6 else date(1960, 1, 1) + timedelta(days=i * 999) for i in range(n)],
            "SystemModstamp": [T0 + timedelta(seconds=i) for i in range(n)],
        },
        schema=arrow_schema(FIELDS),
    )


@pytest.mark.mysql
def test_describe_length_reaches_create_table(tmp_path: Path, mariadb: MariaDB) -> None:
    repo = new_repository(tmp_path)
    ChainWriter(repo, ORG).commit("full", {"Account": ObjectChange(rows=_table(), mode="full")})
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s") as rp:
        schema = rp.schema("Account")
        assert schema.field("Name").metadata[b"sf_length"] == b"20"
        expected = rp.table("Account")
        res = export_records(rp, tmp_path / "out.zip", fmt="mysql", scope="cycle")
    with open_archive(res.path, res.password) as zf:
        dump = tmp_path / "Account.sql"
        dump.write_bytes(zf.read("Account.sql"))
    text = dump.read_text(encoding="utf-8")
    # the describe's 20 is widened to the longest exported value (25 characters), never truncated
    assert "`Name` VARCHAR(25)" in text and "`Stage` VARCHAR(40)" in text
    mariadb.run_sql(
        "DROP DATABASE IF EXISTS describe_types; CREATE DATABASE describe_types CHARACTER SET utf8mb4;"
    )
    mariadb.load_file(dump, "describe_types")
    ddl = mariadb.run_sql("SHOW CREATE TABLE `Account`;", "describe_types")
    for want in ("`Name` varchar(25)", "`Stage` varchar(40)", "`OwnerId` varchar(18) CHARACTER SET ascii",
                 "`Description` mediumtext", "`Colors__c` text", "`Amount` decimal(18,2)",
                 "`Employees` int(11)", "`Active__c` tinyint(1)", "`Birthdate` date",
                 "`SystemModstamp` datetime(3)"):  # fmt: skip
        assert want in ddl, (want, ddl)
    cols = ", ".join(f"HEX(CAST(`{c}` AS CHAR))" for c in ("Id", "Name", "Stage", "Description"))
    out = mariadb.run_sql(f"SELECT {cols} FROM `Account` ORDER BY `Id`;", "describe_types")
    got = [[None if v == "NULL" else bytes.fromhex(v).decode() for v in line.split("\t")]
           for line in out.splitlines()[1:]]  # fmt: skip
    want_rows = [[r["Id"], r["Name"], r["Stage"], r["Description"]] for r in expected.to_pylist()]
    assert got == want_rows


@pytest.mark.mysql
def test_a_wide_object_still_creates_and_loads(tmp_path: Path, mariadb: MariaDB) -> None:
    """Hundreds of string(255) and short phone fields: the row-size fitting keeps CREATE TABLE valid."""
    fields = [FieldSpec("Id", "id", length=18), FieldSpec("SystemModstamp", "datetime")]
    fields += [FieldSpec(f"S{i}__c", "string", length=255) for i in range(300)]
    fields += [FieldSpec(f"P{i}__c", "phone", length=40) for i in range(300)]
    data: dict[str, list[object]] = {
        "Id": ["001000000000001AAA", "001000000000002AAA"],
        "SystemModstamp": [T0, T0],
    }
    for f in fields[2:]:  # sparse, as wide objects are: one row fills the long fields, one only two
        data[f.name] = [
            "y" * 100 if f.name[0] == "S" else None,
            "x" * 40 if f.name in ("S0__c", "P299__c") else None,
        ]
    repo = new_repository(tmp_path)
    table = pa.Table.from_pydict(data, schema=arrow_schema(fields))
    ChainWriter(repo, ORG).commit("full", {"Wide__c": ObjectChange(rows=table, mode="full")})
    with RecoveryPoints(repo, ORG, scratch_root=tmp_path / "s") as rp:
        res = export_records(rp, tmp_path / "out.zip", fmt="mysql", scope="cycle")
    with open_archive(res.path, res.password) as zf:
        dump = tmp_path / "Wide__c.sql"
        dump.write_bytes(zf.read("Wide__c.sql"))
    mariadb.run_sql("DROP DATABASE IF EXISTS wide_types; CREATE DATABASE wide_types CHARACTER SET utf8mb4;")
    mariadb.load_file(dump, "wide_types")
    ddl = mariadb.run_sql("SHOW CREATE TABLE `Wide__c`;", "wide_types")
    assert "`S0__c` text" in ddl and "`Id` varchar(18)" in ddl
    out = mariadb.run_sql("SELECT `Id`, `S0__c`, `P299__c` FROM `Wide__c` ORDER BY `Id`;", "wide_types")
    assert out.splitlines()[1:] == [
        "001000000000001AAA\t" + "y" * 100 + "\tNULL",
        "001000000000002AAA\t" + "x" * 40 + "\t" + "x" * 40,
    ]
