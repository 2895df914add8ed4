"""MySQL column types from the describe facts the extraction stage keeps as Arrow field metadata."""

from __future__ import annotations

import pyarrow as pa

from engine.diff.export_mysql import (
    ROW_DECLARED_LIMIT,
    ROW_INLINE_LIMIT,
    column_types,
    create_table,
    mysql_type,
)
from engine.extract.csv_arrow import arrow_schema
from engine.extract.model import FieldSpec

FIELDS = [
    FieldSpec("Id", "id", length=18),
    FieldSpec("Name", "string", length=80),
    FieldSpec("OwnerId", "reference", length=18),
    FieldSpec("Email__c", "email", length=80),
    FieldSpec("Stage", "picklist", length=255),
    FieldSpec("Notes", "textarea", length=255),
    FieldSpec("Description", "textarea", length=32_000),
    FieldSpec("Huge__c", "textarea", length=5_000_000),
    FieldSpec("Colors__c", "multipicklist", length=4099),
    FieldSpec("Amount", "currency", precision=18, scale=2),
    FieldSpec("Score__c", "double", precision=18, scale=4, calculated=True),
    FieldSpec("Employees", "int", digits=8),
    FieldSpec("Big__c", "long"),
    FieldSpec("Active__c", "boolean"),
    FieldSpec("Birthdate", "date"),
    FieldSpec("SystemModstamp", "datetime"),
    FieldSpec("Opens__c", "time"),
]


def test_describe_facts_are_field_metadata() -> None:
    s = arrow_schema(FIELDS)
    assert s.field("Name").metadata == {
        b"sf_type": b"string",
        b"sf_length": b"80",
        b"sf_precision": b"0",
        b"sf_scale": b"0",
    }
    assert s.field("Amount").metadata[b"sf_precision"] == b"18"


def test_types_from_the_describe() -> None:
    types = column_types(arrow_schema(FIELDS))
    assert types == {
        "Id": "VARCHAR(18) CHARACTER SET ascii COLLATE ascii_bin NOT NULL",
        "Name": "VARCHAR(80)",
        "OwnerId": "VARCHAR(18) CHARACTER SET ascii COLLATE ascii_bin",
        "Email__c": "VARCHAR(80)",
        "Stage": "VARCHAR(255)",
        "Notes": "TEXT",
        "Description": "MEDIUMTEXT",
        "Huge__c": "LONGTEXT",
        "Colors__c": "TEXT",
        "Amount": "DECIMAL(18,2)",
        "Score__c": "DOUBLE",
        "Employees": "INT",
        "Big__c": "BIGINT",
        "Active__c": "TINYINT(1)",
        "Birthdate": "DATE",
        "SystemModstamp": "DATETIME(3)",
        "Opens__c": "MEDIUMTEXT",
    }


def test_a_longer_value_than_the_describe_widens_the_column() -> None:
    f = arrow_schema([FieldSpec("Name", "string", length=10)]).field("Name")
    assert mysql_type(f) == "VARCHAR(10)"
    assert mysql_type(f, max_chars=25) == "VARCHAR(25)"
    assert mysql_type(f, max_chars=16_383) == "VARCHAR(16383)"
    assert mysql_type(f, max_chars=20_000) == "MEDIUMTEXT"


def test_without_metadata_the_arrow_type_decides() -> None:
    assert mysql_type(pa.field("Name", pa.string())) == "MEDIUMTEXT"
    assert mysql_type(pa.field("N", pa.int64())) == "BIGINT"


def test_wide_objects_fit_the_row_limits() -> None:
    wide = [FieldSpec("Id", "id", length=18)]
    wide += [FieldSpec(f"S{i}__c", "string", length=255) for i in range(100)]
    wide += [FieldSpec(f"P{i}__c", "phone", length=40) for i in range(300)]
    types = column_types(arrow_schema(wide))
    declared = inline = 0
    for t in types.values():
        if t.startswith("VARCHAR("):
            n = int(t[8 : t.index(")")]) * (1 if "ascii" in t else 4)
            declared += n + 2
            inline += n if n <= 255 else 40
        else:
            declared, inline = declared + 16, inline + 16
    assert declared <= ROW_DECLARED_LIMIT and inline <= ROW_INLINE_LIMIT
    assert types["Id"].startswith("VARCHAR(18)") and "TEXT" in types.values()
    assert "VARCHAR(40)" in types.values()  # only as many columns as needed change
    assert "CREATE TABLE `T`" in create_table("T", arrow_schema(wide))
