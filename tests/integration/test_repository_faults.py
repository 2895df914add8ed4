"""The fault campaign of issue 15 over a real repository (local disk and Azurite).

Each kind of damage (a flipped bit in a chunk, in a manifest, in the index; truncation; deletion
of a chunk or of a manifest; two same-size chunks swapped; the wrong key) is run through every
mode (``verify``, ``verify --no-key``, ``verify --read-data``, ``repair``), and the table of what
each mode found is compared with the expected one: every case is found by the cheapest mode that
can see it. Then ``repair --apply`` sets the damage aside, every check comes back clean, a new
commit (the next backup) goes through, and every object that was not damaged still reads back.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pyarrow as pa
import pytest

from devkit.azurite import Azurite
from engine.errors import SfvaultError, WrongKey
from engine.model import ChunkRef, Manifest, ObjectEntry
from engine.sink import index
from engine.sink.backend import Backend, Handle, Kind
from engine.sink.backends.azure import AzureBackend
from engine.sink.backends.local import LocalBackend
from engine.sink.crypto import HEADER_SIZE
from engine.sink.keys import LocalKeyFile
from engine.sink.manifest import manifest_handle
from engine.sink.prune import prune
from engine.sink.repair import repair
from engine.sink.repository import Repository
from engine.sink.verify import verify, verify_keyless
from tests.helpers import corrupt

ORG = "00D000000000077AAA"
MODES = ("verify", "verify --no-key", "verify --read-data", "repair")


def table(n: int, start: int) -> pa.Table:
    return pa.table(
        {
            "Id": [f"001{i:015d}" for i in range(start, start + n)],
            "Digest": [hashlib.sha256(str(i).encode()).digest() for i in range(start, start + n)],
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
    return AzureBackend("faults", uuid4().hex, connection_string=az.connection_string)


def _manifest(job: str, objects: dict[str, ObjectEntry], *, kind: str, at: datetime) -> Manifest:
    return Manifest(org=ORG, job_id=job, created_at=at, kind=kind, cycle_id="job-1", objects=objects)  # type: ignore[arg-type]


@pytest.fixture
def repo(backend: Backend, tmp_path: Path) -> Repository:
    """Two snapshots: a full (Account in 3 same-size chunks, Contact in 1) and an incremental (Lead)."""
    repo = Repository.init(backend, LocalKeyFile.create(tmp_path / "repo.key"), segment_size=4096)
    accounts = [repo.write_chunk(table(200, i * 1000), "Account") for i in range(3)]
    contact = repo.write_chunk(table(50, 50_000), "Contact")
    lead = repo.write_chunk(table(30, 90_000), "Lead")
    bodies = [repo.put_blob(bytes([i]) * 5000) for i in (1, 2)]  # two same-size file bodies
    day = datetime(2026, 3, 2, tzinfo=UTC)
    repo.commit(
        _manifest("job-1", {"Account": ObjectEntry(chunks=accounts, rows=600, blobs=bodies),
                            "Contact": ObjectEntry(chunks=[contact], rows=50)}, kind="full", at=day)
    )  # fmt: skip
    repo.commit(
        _manifest(
            "job-2",
            {"Lead": ObjectEntry(chunks=[lead], rows=30)},
            kind="incremental",
            at=day + timedelta(days=1),
        )
    )
    assert verify(repo, read_data=True).problems == []
    assert verify_keyless(repo.backend).problems == []
    return repo


def _chunks(repo: Repository, obj: str) -> list[ChunkRef]:
    return repo.load_manifest(ORG, "job-1").objects[obj].chunks


def _h(ref: ChunkRef) -> Handle:
    return Handle(Kind.CHUNK, ref.name)


def flip_chunk(repo: Repository) -> str:
    h = _h(_chunks(repo, "Account")[1])
    corrupt.flip_bit(repo.backend, h, HEADER_SIZE + (repo.backend.stat(h).size - HEADER_SIZE) // 2, bit=3)
    return h.path


def flip_manifest(repo: Repository) -> str:
    h = manifest_handle(ORG, "job-2")
    corrupt.flip_bit(repo.backend, h, -20, bit=6)
    return h.path


def flip_index(repo: Repository) -> str:
    h = index.record_handle(ORG, "job-1")
    body = corrupt.read_all(repo.backend, h)
    corrupt.flip_bit(repo.backend, h, body.index(b'"objects"') + 90, bit=0)  # inside a digest
    return h.path


def truncate_chunk(repo: Repository) -> str:
    h = _h(_chunks(repo, "Contact")[0])
    corrupt.truncate(repo.backend, h, repo.backend.stat(h).size - 7)
    return h.path


def delete_chunk(repo: Repository) -> str:
    h = _h(_chunks(repo, "Contact")[0])
    corrupt.delete(repo.backend, h)
    return h.path


def delete_manifest(repo: Repository) -> str:
    h = manifest_handle(ORG, "job-2")
    corrupt.delete(repo.backend, h)
    return h.path


def swap_chunks(repo: Repository) -> str:
    blobs = repo.load_manifest(ORG, "job-1").objects["Account"].blobs
    a, b = (Handle(Kind.CHUNK, r.name) for r in blobs)
    assert repo.backend.stat(a).size == repo.backend.stat(b).size, "the swap needs two same-size chunks"
    body_a, body_b = corrupt.read_all(repo.backend, a), corrupt.read_all(repo.backend, b)
    for h, body in ((a, body_b), (b, body_a)):
        repo.backend.delete(h)
        repo.backend.put(h, io.BytesIO(body), len(body))
    return a.path


# case → (damage, {mode: code the mode reports for the damaged object, "" = not seen})
CASES: dict[str, tuple[Callable[[Repository], str], dict[str, str]]] = {
    "flipped bit in a chunk": (flip_chunk, {"verify": "", "verify --no-key": "SFV-315",
                                            "verify --read-data": "SFV-311", "repair": "SFV-311"}),
    "flipped bit in a manifest": (flip_manifest, {"verify": "SFV-311", "verify --no-key": "SFV-315",
                                                  "verify --read-data": "SFV-311", "repair": "SFV-311"}),
    "flipped bit in the index": (flip_index, {"verify": "SFV-311", "verify --no-key": "SFV-311",
                                              "verify --read-data": "SFV-311", "repair": "SFV-311"}),
    "truncated chunk": (truncate_chunk, {"verify": "SFV-312", "verify --no-key": "SFV-312",
                                         "verify --read-data": "SFV-312", "repair": "SFV-312"}),
    "deleted chunk": (delete_chunk, {"verify": "SFV-314", "verify --no-key": "SFV-314",
                                     "verify --read-data": "SFV-314", "repair": "SFV-314"}),
    "deleted manifest": (delete_manifest, {"verify": "SFV-314", "verify --no-key": "SFV-314",
                                           "verify --read-data": "SFV-314", "repair": "SFV-314"}),
    "same-size swap": (swap_chunks, {"verify": "SFV-313", "verify --no-key": "SFV-313",
                                     "verify --read-data": "SFV-313", "repair": "SFV-313"}),
}  # fmt: skip


def _seen(repo: Repository, mode: str, name: str) -> str:
    if mode == "verify --no-key":
        report = verify_keyless(repo.backend)
    elif mode == "repair":
        found = [a for a in repair(repo, apply=False, read_data=True).actions if a.name == name]
        return found[0].code if found else ""
    else:
        report = verify(repo, read_data=mode == "verify --read-data")
    return next((p.code for p in report.errors if p.name == name), "")


def _readable(repo: Repository) -> dict[str, int]:
    """Rows (and file body bytes) per object readable through the current snapshots."""
    rows: dict[str, int] = {}
    for info in repo.snapshots(ORG):
        for obj, entry in repo.load_manifest(ORG, info.job_id).objects.items():
            for ref in entry.chunks:
                rows[obj] = rows.get(obj, 0) + repo.read_chunk(ref).num_rows
            for blob in entry.blobs:
                with repo.open_blob(blob) as fh:
                    rows[obj] = rows.get(obj, 0) + len(fh.read())
    return rows


@pytest.mark.parametrize("case", list(CASES))
def test_fault_campaign(repo: Repository, case: str) -> None:
    damage, expected = CASES[case]
    before = _readable(repo)
    name = damage(repo)
    table_row = {mode: _seen(repo, mode, name) for mode in MODES}
    assert table_row == expected, f"{case}: {table_row}"

    done = repair(repo, apply=True, read_data=True)
    assert done.actions, "repair found nothing to do"
    assert verify(repo, read_data=True).errors == []
    assert verify_keyless(repo.backend).errors == []
    # every object that was not damaged still reads back in full; nothing was deleted
    after = _readable(repo)
    damaged_objects = {o for o in before if after.get(o) != before[o]}
    assert len(damaged_objects) <= 1, f"{case}: repair lost good data of {damaged_objects}"
    assert list(repo.backend.list(Kind.QUARANTINE)) or case in ("deleted chunk", "deleted manifest")
    # the next backup commits, and prune keeps what a set-aside manifest still references
    fresh = repo.write_chunk(table(10, 200_000), "Opportunity")
    repo.commit(_manifest("job-3", {"Opportunity": ObjectEntry(chunks=[fresh], rows=10)}, kind="incremental",
                          at=datetime(2026, 3, 5, tzinfo=UTC)))  # fmt: skip
    prune(repo)
    assert verify(repo, read_data=True).errors == []
    assert verify_keyless(repo.backend).errors == []
    assert _readable(repo) == {**after, "Opportunity": 10}


def test_wrong_key_is_named_by_every_keyed_mode_and_the_keyless_pass_is_clean(
    repo: Repository, tmp_path: Path
) -> None:
    other = LocalKeyFile.create(tmp_path / "other.key")
    with pytest.raises(WrongKey):
        Repository.open(repo.backend, other)
    assert verify_keyless(repo.backend).problems == []  # nothing is damaged: the key is not stored


def test_a_flipped_bit_in_a_manifest_no_longer_blocks_the_org(repo: Repository) -> None:
    """Finding 2: a damaged manifest made every list of the org's manifests (backup, prune) fail
    with SFV-311 and no command set it aside; after ``repair --apply`` both work again, the
    damaged manifest is kept under quarantine/, and the org's next job redoes every object."""
    from engine.jobs.planning import needed_manifests
    from engine.sink.repair import redo_after_repair

    flip_manifest(repo)
    with pytest.raises(SfvaultError) as err:
        needed_manifests(repo.manifests(ORG, newest_first=True), ["Account", "Lead"])
    assert err.value.code == "SFV-311"
    with pytest.raises(SfvaultError):
        prune(repo, dry_run=True)
    dry = repair(repo)
    assert [a.what for a in dry.actions] == ["set aside snapshot"]
    assert [s.job_id for s in repo.snapshots(ORG)] == ["job-1", "job-2"], "a dry run changed something"
    repair(repo, apply=True)
    manifests = needed_manifests(repo.manifests(ORG, newest_first=True), ["Account", "Lead"])
    assert [m.job_id for m in manifests] == ["job-1"]
    assert [o.handle.name for o in repo.backend.list(Kind.QUARANTINE)] == [f"snapshots/{ORG}/job-2.json.enc"]
    assert redo_after_repair(repo, ORG, manifests, ["Account", "Lead"]) == ["Account", "Lead"]
    prune(repo)
    # once a job captured them after the repair, nothing is redone any more
    redone = repo.write_chunk(table(5, 300_000), "Lead")
    acc = repo.write_chunk(table(5, 400_000), "Account")
    repo.commit(_manifest("job-3", {"Lead": ObjectEntry(chunks=[redone], rows=5, mode="full"),
                                    "Account": ObjectEntry(chunks=[acc], rows=5, mode="full")},
                          kind="incremental", at=datetime.now(UTC) + timedelta(seconds=1)))  # fmt: skip
    manifests = needed_manifests(repo.manifests(ORG, newest_first=True), ["Account", "Lead"])
    assert redo_after_repair(repo, ORG, manifests, ["Account", "Lead"]) == []


def test_a_repository_without_the_index_gets_it_from_repair_or_the_next_commit(repo: Repository) -> None:
    """Repositories written before the index: ``verify`` warns, ``repair`` lists the records it
    would write, and the next commit (or ``repair --apply``) writes them."""
    for job in ("job-1", "job-2"):
        repo.backend.delete(index.record_handle(ORG, job))
    warned = [p for p in verify(repo).warnings if p.error == "NotIndexed"]
    assert [p.name for p in warned] == [manifest_handle(ORG, j).path for j in ("job-1", "job-2")]
    assert [a.what for a in repair(repo).actions] == ["write index record", "write index record"]
    fresh = repo.write_chunk(table(10, 500_000), "Task")
    repo.commit(_manifest("job-3", {"Task": ObjectEntry(chunks=[fresh], rows=10)}, kind="incremental",
                          at=datetime(2026, 3, 6, tzinfo=UTC)))  # fmt: skip
    assert set(index.read_index(repo.backend, ORG).records) == {(ORG, j) for j in ("job-1", "job-2", "job-3")}
    assert verify(repo).problems == [] and verify_keyless(repo.backend).problems == []
