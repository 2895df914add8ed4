"""Each kind of damage, created on purpose, is named by verify with its error code (STYLE rule 19),
and reads fail with a typed error instead of returning bad data. Runs on local disk and Azurite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pyarrow as pa
import pytest

from devkit.azurite import Azurite
from engine.errors import (
    IntegrityError,
    MissingObject,
    ObjectCorrupt,
    ObjectTruncated,
    WrongKey,
)
from engine.model import Manifest, ObjectEntry
from engine.sink.backend import Backend, Handle, Kind
from engine.sink.backends.azure import AzureBackend
from engine.sink.backends.local import LocalBackend
from engine.sink.crypto import HEADER_SIZE
from engine.sink.keys import LocalKeyFile
from engine.sink.manifest import manifest_handle
from engine.sink.repository import Repository
from engine.sink.verify import verify, verify_keyless
from tests.helpers import corrupt

ORG = "00D000000000042AAA"


def table(n: int, start: int) -> pa.Table:
    return pa.table(
        {
            "Id": [f"001{i:015d}" for i in range(start, start + n)],
            "Description": [f"row {i} " * 20 for i in range(n)],
            "SystemModstamp": pa.array(
                [datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=i) for i in range(n)]
            ),
        }
    )


@pytest.fixture(params=["local", pytest.param("azurite", marks=pytest.mark.azurite)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return LocalBackend(tmp_path / "repo")
    az: Azurite = request.getfixturevalue("azurite")
    return AzureBackend("corruption", uuid4().hex, connection_string=az.connection_string)


@pytest.fixture
def repo(backend: Backend, tmp_path: Path) -> Repository:
    repo = Repository.init(backend, LocalKeyFile.create(tmp_path / "repo.key"), segment_size=4096)
    refs = [repo.write_chunk(table(300, i * 1000), "Account") for i in range(3)]
    blob = repo.put_blob(b"attachment body " * 2000)
    entry = ObjectEntry(chunks=refs, rows=900, blobs=[blob])
    repo.commit(
        Manifest(
            org=ORG,
            job_id="job-1",
            created_at=datetime(2026, 3, 2, tzinfo=UTC),
            kind="full",
            cycle_id="c1",
            objects={"Account": entry},
        )
    )
    assert verify(repo, read_data=True).problems == []
    return repo


def chunk(repo: Repository, i: int) -> tuple[Handle, object]:
    ref = repo.load_manifest(ORG, "job-1").objects["Account"].chunks[i]
    return Handle(Kind.CHUNK, ref.name), ref


def codes(repo: Repository, read_data: bool = True) -> dict[str, str]:
    report = verify(repo, read_data=read_data)
    return {p.name: p.code for p in report.errors}


def test_a_flipped_bit_in_a_chunk(repo: Repository) -> None:
    h, ref = chunk(repo, 1)
    size = repo.backend.stat(h).size
    corrupt.flip_bit(repo.backend, h, HEADER_SIZE + (size - HEADER_SIZE) // 2, bit=3)
    assert codes(repo, read_data=False) == {}  # the structure pass cannot see it
    assert codes(repo) == {h.path: ObjectCorrupt.code}
    with pytest.raises(ObjectCorrupt) as err:
        repo.read_chunk(ref)  # type: ignore[arg-type]
    assert h.path in str(err.value)


def test_a_flipped_bit_in_a_manifest(repo: Repository) -> None:
    h = manifest_handle(ORG, "job-1")
    corrupt.flip_bit(repo.backend, h, -20, bit=6)
    report = verify(repo)
    assert {p.name: p.code for p in report.errors} == {h.path: ObjectCorrupt.code}
    assert len(report.warnings) == 4  # its chunks and blob now look unreferenced
    with pytest.raises(ObjectCorrupt):
        repo.load_manifest(ORG, "job-1")


def test_a_truncated_chunk(repo: Repository) -> None:
    h, ref = chunk(repo, 0)
    corrupt.truncate(repo.backend, h, repo.backend.stat(h).size - 100)
    assert codes(repo, read_data=False) == {h.path: ObjectTruncated.code}
    with pytest.raises(ObjectTruncated):
        repo.read_chunk(ref)  # type: ignore[arg-type]


def test_a_deleted_chunk_that_a_snapshot_references(repo: Repository) -> None:
    h, ref = chunk(repo, 2)
    corrupt.delete(repo.backend, h)
    report = verify(repo, read_data=False)
    assert [(p.name, p.code) for p in report.errors] == [(h.path, MissingObject.code)]
    assert "snapshots/" + ORG + "/job-1.json.enc" in report.errors[0].message
    with pytest.raises(MissingObject):
        repo.read_chunk(ref)  # type: ignore[arg-type]


def test_the_problem_list_is_capped_and_says_so(repo: Repository) -> None:
    """``max_problems`` caps the list of every pass and marks the report truncated."""
    for i in range(3):
        corrupt.delete(repo.backend, chunk(repo, i)[0])
    full = verify(repo, read_data=False)
    assert [p.code for p in full.problems] == [MissingObject.code] * 3 and not full.truncated
    capped = verify(repo, read_data=False, max_problems=2)
    assert capped.problems == full.problems[:2] and capped.truncated
    keyless = verify_keyless(repo.backend, max_problems=1)
    assert len(keyless.problems) == 1 and keyless.truncated


def test_a_swapped_key(repo: Repository, tmp_path: Path) -> None:
    with pytest.raises(WrongKey) as err:
        Repository.open(repo.backend, LocalKeyFile.create(tmp_path / "another.key"))
    assert err.value.code == "SFV-302" and repo.repo_id in err.value.message


def test_a_swapped_object_fails_under_its_new_name(repo: Repository) -> None:
    (h0, _), (h1, ref1) = chunk(repo, 0), chunk(repo, 1)
    body = corrupt.read_all(repo.backend, h0)
    repo.backend.delete(h1)
    import io

    repo.backend.put(h1, io.BytesIO(body), len(body))
    report = verify(repo, read_data=True)
    assert [p.name for p in report.errors] == [h1.path]
    with pytest.raises(IntegrityError):
        repo.read_chunk(ref1)  # type: ignore[arg-type]


def test_the_keyless_pass_finds_swaps_and_truncation_but_needs_no_key(repo: Repository) -> None:
    assert verify_keyless(repo.backend).problems == []
    (h0, _), (h1, _), (h2, _) = chunk(repo, 0), chunk(repo, 1), chunk(repo, 2)
    import io

    body = corrupt.read_all(repo.backend, h0)
    repo.backend.delete(h1)
    repo.backend.put(h1, io.BytesIO(body), len(body))
    corrupt.truncate(repo.backend, h2, HEADER_SIZE + (4096 + 16) + 5)  # ends inside a tag
    corrupt.flip_bit(repo.backend, manifest_handle(ORG, "job-1"), 2)  # the magic
    report = verify_keyless(repo.backend)
    assert {p.name: p.code for p in report.errors} == {
        h1.path: "SFV-313",
        h2.path: "SFV-312",
        manifest_handle(ORG, "job-1").path: "SFV-311",
    }


def test_plain_verify_finds_two_same_size_objects_swapped(repo: Repository) -> None:
    """Issue 15, finding 6: plain ``verify`` checked sizes only, so two objects of one size
    swapped went unnoticed; it now reads each object's header (the id must be its name)."""
    import io

    blobs = [repo.put_blob(bytes([i]) * 9000) for i in (7, 8)]  # two file bodies of one size
    repo.commit(
        Manifest(
            org=ORG,
            job_id="job-2",
            created_at=datetime(2026, 3, 3, tzinfo=UTC),
            kind="incremental",
            cycle_id="c1",
            objects={"Attachment": ObjectEntry(blobs=blobs)},
        )
    )
    sizes = {r.name: r.sealed_bytes for r in blobs}
    a, b = (r.name for r in blobs)
    ha, hb = Handle(Kind.CHUNK, a), Handle(Kind.CHUNK, b)
    body_a, body_b = corrupt.read_all(repo.backend, ha), corrupt.read_all(repo.backend, hb)
    for h, body in ((ha, body_b), (hb, body_a)):
        repo.backend.delete(h)
        repo.backend.put(h, io.BytesIO(body), len(body))
    assert sizes[a] == sizes[b], "the fixture's chunks must include two of one size"
    assert codes(repo, read_data=False) == {ha.path: "SFV-313", hb.path: "SFV-313"}


def test_every_mode_finds_a_deleted_manifest(repo: Repository) -> None:
    """Issue 15, finding 6: a deleted manifest went unnoticed by every verify mode; the keyless
    index remembers every snapshot, so each mode names it (``MissingObject``)."""
    repo.commit(
        Manifest(
            org=ORG,
            job_id="job-2",
            created_at=datetime(2026, 3, 3, tzinfo=UTC),
            kind="incremental",
            cycle_id="c1",
            objects={},
        )
    )
    h = manifest_handle(ORG, "job-1")
    corrupt.delete(repo.backend, h)
    assert codes(repo, read_data=False) == {h.path: MissingObject.code}
    assert codes(repo, read_data=True) == {h.path: MissingObject.code}
    assert {p.name: p.code for p in verify_keyless(repo.backend).errors} == {h.path: MissingObject.code}
