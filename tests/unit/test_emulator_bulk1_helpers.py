"""Pure helpers of the emulator's Bulk API 1.0: the PK chunking header, chunk SOQL, result files."""

from __future__ import annotations

import numpy as np
import pytest

from emulator.bulk1 import AsyncApiError, PkChunking, parse_pk_chunking, split_result_files, with_id_range
from emulator.soql import parse


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("false", None),
        ("true", PkChunking()),
        ("TRUE", PkChunking()),
        ("chunkSize=50000;", PkChunking(50_000)),
        ("true; chunkSize=250000; parent=Account", PkChunking(250_000, "Account")),
        ("chunkSize=10, startRow=001D000000IRFma", PkChunking(10, None, "001D000000IRFmaIAH")),
    ],
)
def test_pk_chunking_header(header: str | None, expected: PkChunking | None) -> None:
    assert parse_pk_chunking(header) == expected


@pytest.mark.parametrize(
    "header", ["chunkSize=250001", "chunkSize=0", "chunkSize=x", "startRow=nope", "size=5"]
)
def test_bad_pk_chunking_header_is_invalid_job(header: str) -> None:
    with pytest.raises(AsyncApiError) as info:
        parse_pk_chunking(header)
    assert info.value.code == "InvalidJob"


@pytest.mark.parametrize(
    ("soql", "expected"),
    [
        ("SELECT Id FROM Account", "SELECT Id FROM Account WHERE Id >= 'a' AND Id < 'b'"),
        (
            "SELECT Id FROM Account WHERE Name = 'x' OR Name = 'y' ORDER BY Name LIMIT 5",
            "SELECT Id FROM Account WHERE (Name = 'x' OR Name = 'y') AND Id >= 'a' AND Id < 'b'"
            " ORDER BY Name LIMIT 5",
        ),
        (
            "select Id from Account where (Name in ('where', 'order')) limit 3",
            "select Id from Account WHERE ((Name in ('where', 'order'))) AND Id >= 'a' AND Id < 'b' limit 3",
        ),
    ],
)
def test_chunk_soql_ands_the_id_range_to_the_where(soql: str, expected: str) -> None:
    got = with_id_range(soql, "Id", "a", "b")
    assert got == expected
    parse(got)  # still SOQL the emulator reads


def test_last_chunk_is_open_ended() -> None:
    assert with_id_range("SELECT Id FROM AccountHistory", "AccountId", "001", None) == (
        "SELECT Id FROM AccountHistory WHERE AccountId >= '001'"
    )


def test_result_files_split_by_bytes_with_at_least_one_row_each() -> None:
    offsets = np.array([0, 40, 80, 200, 210, 220], dtype=np.int64)  # 5 rows
    assert split_result_files(offsets, 5, 100) == [(0, 2), (2, 3), (3, 5)]
    assert split_result_files(offsets, 5, 10**9) == [(0, 5)]
    assert split_result_files(np.zeros(1, dtype=np.int64), 0, 100) == [(0, 0)]
