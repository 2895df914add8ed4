"""Repository on the memory backend: chunks, blobs, manifests, commit, locks, prune."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from engine.clock import FrozenClock
from engine.config import Settings
from engine.errors import (
    ChunkIdMismatch,
    FormatVersionError,
    LockLost,
    MissingObject,
    ObjectExists,
    RepositoryExists,
    RepositoryLocked,
    RepositoryNotInitialized,
    WrongKey,
)
from engine.model import Cursor, Manifest, ObjectEntry, ObjectError
from engine.sink.backend import Handle, Kind
from engine.sink.backends.memory import MemoryBackend
from engine.sink.keys import LocalKeyFile
from engine.sink.manifest import MANIFEST_VERSION, manifest_handle, upgrade
from engine.sink.prune import prune
from engine.sink.repository import Repository
from tests.helpers.corrupt import read_all

ORG = "00D000000000001AAA"


def records(n: int, start: int = 0, reverse: bool = True) -> pa.Table:
    ids = [f"001{i:015d}" for i in range(start, start + n)]
    if reverse:
        ids.reverse()
    return pa.table(
        {
            "Id": ids,
            "Name": [f"Account {i} with a longer name to compress" for i in range(n)],
            "Amount": pa.array([i * 1.5 for i in range(n)]),
            "SystemModstamp": pa.array(
                [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i) for i in range(n)]
            ),
        }
    )


@pytest.fixture
def kek(tmp_path: Path) -> LocalKeyFile:
    return LocalKeyFile.create(tmp_path / "repo.key")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def repo(kek: LocalKeyFile, clock: FrozenClock) -> Repository:
    settings = Settings(chunk_target_bytes=64 * 1024, row_group_rows=1000)
    return Repository.init(MemoryBackend(), kek, settings=settings, clock=clock)


def manifest(
    job: str, refs: dict[str, ObjectEntry], *, cycle: str = "c1", at: datetime | None = None
) -> Manifest:
    return Manifest(
        org=ORG,
        job_id=job,
        created_at=at or datetime(2026, 1, 2, tzinfo=UTC),
        kind="full",
        cycle_id=cycle,
        objects=refs,
    )


def test_init_refuses_an_existing_repository_and_open_needs_the_right_key(
    repo: Repository, tmp_path: Path
) -> None:
    with pytest.raises(RepositoryExists):
        Repository.init(repo.backend, LocalKeyFile.create(tmp_path / "other.key"))
    with pytest.raises(WrongKey) as err:
        Repository.open(repo.backend, LocalKeyFile.load(tmp_path / "other.key"))
    assert repo.repo_id in str(err.value)
    with pytest.raises(RepositoryNotInitialized):
        Repository.open(MemoryBackend(), LocalKeyFile.load(tmp_path / "other.key"))


def test_chunk_writer_cuts_bounded_sorted_chunks(repo: Repository) -> None:
    table = records(20_000)
    with repo.chunk_writer("Account") as writer:
        for batch in table.to_batches(max_chunksize=1500):
            writer.write_batch(batch)
    refs = writer.refs
    assert len(refs) > 3
    assert sum(r.rows for r in refs) == 20_000
    assert all(r.plain_bytes < 3 * 64 * 1024 for r in refs)
    for ref in refs:
        got = repo.read_chunk(ref)
        ids = got["Id"].to_pylist()
        assert ids == sorted(ids) and ids[0] == ref.min_id and ids[-1] == ref.max_id
        assert ref.max_modstamp is not None and ref.object == "Account"
        import hashlib

        assert hashlib.sha256(read_all(repo.backend, Handle(Kind.CHUNK, ref.name))).hexdigest() == ref.sha256
    back = pa.concat_tables([repo.read_chunk(r) for r in refs]).sort_by("Id")
    assert back.equals(table.sort_by("Id"))


def test_equal_chunks_are_stored_once(repo: Repository) -> None:
    a = repo.write_chunk(records(500), "Account")
    b = repo.write_chunk(records(500).take(list(range(499, -1, -1))), "Account")  # other order, same rows
    assert a == b
    assert len(list(repo.backend.list(Kind.CHUNK))) == 1


def test_blobs_are_deduplicated_and_streamed(repo: Repository) -> None:
    body = b"%PDF-1.7 " + bytes(range(256)) * 20_000
    a = repo.put_blob(body)
    b = repo.put_blob(io.BytesIO(body))
    assert a == b and a.plain_bytes == len(body)
    with repo.open_blob(a) as fh:
        assert fh.read(9) == b"%PDF-1.7 "
        assert fh.read() == body[9:]


T99 = datetime(2026, 1, 1, 0, 1, 39, tzinfo=UTC)


def test_commit_round_trip_and_order(repo: Repository) -> None:
    ref = repo.write_chunk(records(100), "Account")
    blob = repo.put_blob(b"file body")
    entry = ObjectEntry(
        chunks=[ref],
        rows=100,
        bytes=ref.plain_bytes,
        api_calls={"bulk2": 3},
        cursor=Cursor("SystemModstamp", T99, frozenset({("001000000000000099", T99)})),
        blobs=[blob],
        errors=[ObjectError("SFV-404", "x")],
    )
    with repo.lock(ORG, "test") as lk:
        info = repo.commit(manifest("job-1", {"Account": entry}), lock=lk)
    assert info.job_id == "job-1" and [s.job_id for s in repo.snapshots(ORG)] == ["job-1"]
    assert repo.snapshots("00Dother") == []
    loaded = repo.load_manifest(ORG, "job-1")
    assert loaded.objects["Account"] == entry and loaded.kind == "full" and loaded.cycle_id == "c1"
    with pytest.raises(ObjectExists):
        repo.commit(manifest("job-1", {"Account": ObjectEntry()}))


def test_commit_refuses_a_manifest_that_points_at_missing_data(repo: Repository) -> None:
    ref = repo.write_chunk(records(10), "Account")
    repo.backend.delete(Handle(Kind.CHUNK, ref.name))
    with pytest.raises(MissingObject) as err:
        repo.commit(manifest("job-2", {"Account": ObjectEntry(chunks=[ref], rows=10)}))
    assert ref.name in str(err.value) and "job-2" in str(err.value)
    assert repo.snapshots() == []


def test_a_renamed_manifest_is_refused(repo: Repository) -> None:
    repo.commit(manifest("job-a", {}))
    sealed = read_all(repo.backend, manifest_handle(ORG, "job-a"))
    repo.backend.put(manifest_handle(ORG, "job-b"), io.BytesIO(sealed), len(sealed))
    with pytest.raises(ChunkIdMismatch):
        repo.load_manifest(ORG, "job-b")


def test_manifest_versions_newer_than_ours_are_refused() -> None:
    with pytest.raises(FormatVersionError):
        upgrade({"version": MANIFEST_VERSION + 1}, "snapshots/x")
    assert upgrade({"version": MANIFEST_VERSION}, "x")["version"] == MANIFEST_VERSION


def test_one_writer_per_org_with_stale_lock_detection(repo: Repository, clock: FrozenClock) -> None:
    first = repo.lock(ORG, "job-1 on worker-a").acquire()
    with pytest.raises(RepositoryLocked) as err:
        repo.lock(ORG, "job-2").acquire()
    assert "job-1 on worker-a" in str(err.value) and err.value.code == "SFV-330"
    # what an API answer may carry: no lock path, host or pid (issue 15, finding 22)
    import os
    import socket

    shown = f"{err.value} {err.value.details}"
    assert "locks/" not in shown and socket.gethostname() not in shown and f"pid {os.getpid()}" not in shown
    with repo.lock("00Danother", "other org"):  # other orgs are independent
        pass
    with pytest.raises(RepositoryLocked):  # prune needs the whole repository
        prune(repo)
    clock.advance(timedelta(minutes=6))
    first.refresh_if_due()
    assert first.seq == 1 and len(list(repo.backend.list(Kind.LOCK))) == 1
    clock.advance(timedelta(minutes=31))
    with repo.lock(ORG, "job-2"), pytest.raises(LockLost):  # the first writer went silent: stale
        first.check()
    first.release()
    assert list(repo.backend.list(Kind.LOCK)) == []


def test_prune_keeps_the_newest_cycles_and_what_they_reference(repo: Repository) -> None:
    shared = repo.write_chunk(records(10), "Account")
    old_only = repo.write_chunk(records(10, start=100), "Account")
    new_only = repo.write_chunk(records(10, start=200), "Account")
    orphan = repo.write_chunk(records(10, start=300), "Account")
    day = datetime(2026, 1, 1, tzinfo=UTC)
    repo.commit(manifest("j1", {"A": ObjectEntry(chunks=[shared, old_only])}, cycle="c1", at=day))
    repo.commit(manifest("j2", {"A": ObjectEntry(chunks=[shared])}, cycle="c1", at=day + timedelta(days=1)))
    repo.commit(
        manifest("j3", {"A": ObjectEntry(chunks=[shared, new_only])}, cycle="c2", at=day + timedelta(days=7))
    )
    dry = prune(repo, keep_cycles=1, dry_run=True)
    assert [s.job_id for s in dry.snapshots_removed] == ["j1", "j2"] and dry.objects_removed == 2
    assert len(repo.snapshots()) == 3
    report = prune(repo, keep_cycles=1)
    assert [s.job_id for s in repo.snapshots()] == ["j3"] and report.objects_removed == 2
    names = {o.handle.name for o in repo.backend.list(Kind.CHUNK)}
    assert names == {shared.name, new_only.name} and orphan.name not in names
    assert list(repo.backend.list(Kind.LOCK)) == []


def test_concurrent_writers_of_one_org_never_both_win(repo: Repository) -> None:
    import threading

    barrier = threading.Barrier(4)
    won: list[str] = []
    lost: list[str] = []

    def contender(n: int) -> None:
        barrier.wait(10)
        try:
            repo.lock(ORG, f"writer-{n}").acquire()
            won.append(f"writer-{n}")
        except RepositoryLocked:
            lost.append(f"writer-{n}")

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) <= 1 and len(won) + len(lost) == 4  # never two writers (all may back off)
    assert len(list(repo.backend.list(Kind.LOCK))) == len(won)


def test_commit_checks_many_references_with_one_listing(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.sink.repository as repository_module

    monkeypatch.setattr(repository_module, "LIST_INSTEAD_OF_STAT", 2)
    refs = [repo.write_chunk(records(5, start=i * 10), "Account") for i in range(4)]
    repo.commit(manifest("many", {"A": ObjectEntry(chunks=refs)}))
    repo.backend.delete(Handle(Kind.CHUNK, refs[2].name))
    with pytest.raises(MissingObject):
        repo.commit(manifest("many-2", {"A": ObjectEntry(chunks=refs)}))


def test_an_incremental_runs_beside_a_new_cycles_full_and_prune_conflicts_with_both(repo: Repository) -> None:
    """Decision 0016: the org's lock has two lanes; one job per lane, prune excludes both, and a
    version 1 lock (no lane) holds the whole org."""
    full = repo.lock(ORG, "new cycle's full", lane="full", job="20260101T000000Z-aaaa").acquire()
    with repo.lock(ORG, "incremental", lane="incremental", job="20260101T000001Z-bbbb") as inc:
        [holder] = inc.holders("full")
        assert (holder.lane, holder.job, holder.holder) == (
            "full",
            "20260101T000000Z-aaaa",
            "new cycle's full",
        )
        assert inc.holders("incremental") == []
        with pytest.raises(RepositoryLocked):
            repo.lock(ORG, "a second incremental", lane="incremental").acquire()
        with pytest.raises(RepositoryLocked):
            repo.lock(ORG, "a second full", lane="full").acquire()
        with pytest.raises(RepositoryLocked):
            repo.lock(ORG, "the whole org").acquire()
        with pytest.raises(RepositoryLocked):
            prune(repo)
    full.release()
    with repo.lock(ORG, "whole org (a version 1 writer)"):
        for lane in ("full", "incremental"):
            with pytest.raises(RepositoryLocked):
                repo.lock(ORG, lane, lane=lane).acquire()
    with pytest.raises(ValueError):
        repo.lock(ORG, "x", lane="sideways")
    assert list(repo.backend.list(Kind.LOCK)) == []


def test_prune_orders_cycles_by_their_full_not_by_a_late_incremental(repo: Repository) -> None:
    """An incremental of the old cycle that commits after the new cycle's full (it ran beside it)
    does not make the old cycle the newest one: keep_cycles=1 keeps the new cycle."""
    old = repo.write_chunk(records(10), "Account")
    late = repo.write_chunk(records(10, start=100), "Account")
    new = repo.write_chunk(records(10, start=200), "Account")
    day = datetime(2026, 1, 1, tzinfo=UTC)
    repo.commit(manifest("j1", {"A": ObjectEntry(chunks=[old])}, cycle="j1", at=day))
    repo.commit(manifest("j2", {"A": ObjectEntry(chunks=[new])}, cycle="j2", at=day + timedelta(days=2)))
    beside = manifest("j3", {"A": ObjectEntry(chunks=[late])}, cycle="j1", at=day + timedelta(days=3))
    beside.kind = "incremental"
    repo.commit(beside)
    prune(repo, keep_cycles=1)
    assert [s.job_id for s in repo.snapshots()] == ["j2"]
