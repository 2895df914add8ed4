"""Crash test: a writer process killed between its chunks and its manifest (STYLE rules 6, 19).

The child writes its chunks under the org lock, reports "CHUNKS_WRITTEN" on stdout and waits on
stdin; the parent reads that line (no sleeps), kills the child with SIGKILL and reaps it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from engine.model import Manifest, ObjectEntry
from engine.sink.backend import Kind
from engine.sink.backends.local import LocalBackend
from engine.sink.keys import LocalKeyFile
from engine.sink.prune import prune
from engine.sink.repository import Repository
from engine.sink.verify import verify

ORG = "00D0000000000CRASH"
ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import pyarrow as pa
    from engine.sink.backends.local import LocalBackend
    from engine.sink.keys import LocalKeyFile
    from engine.sink.repository import Repository

    repo = Repository.open(LocalBackend(sys.argv[1]), LocalKeyFile.load(Path(sys.argv[2])))
    lock = repo.lock(sys.argv[3], "crash-writer").acquire()
    with repo.chunk_writer("Contact", lock=lock, target_bytes=20_000) as w:
        for k in range(5):
            ids = [f"003{k:05d}{i:010d}" for i in range(2000)]
            w.write_batch(pa.table({"Id": ids, "LastName": [f"name {i}" for i in range(2000)]}))
    print("CHUNKS_WRITTEN", len(w.refs), flush=True)
    sys.stdin.readline()  # the parent kills us here, before the manifest
    raise SystemExit("not killed")
    """
)


def test_a_writer_killed_before_its_manifest_leaves_only_garbage(tmp_path: Path) -> None:
    key = tmp_path / "repo.key"
    repo = Repository.init(LocalBackend(tmp_path / "repo"), LocalKeyFile.create(key))
    kept = repo.write_chunk(pa.table({"Id": ["001000000000000001"], "Name": ["kept"]}), "Account")
    repo.commit(
        Manifest(
            org=ORG,
            job_id="job-1",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            kind="full",
            cycle_id="c1",
            objects={"Account": ObjectEntry(chunks=[kept], rows=1)},
        )
    )

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "repo"), str(key), ORG],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert child.stdout is not None
    line = child.stdout.readline().decode()
    child.kill()
    child.wait(30)
    assert line.startswith("CHUNKS_WRITTEN"), child.stderr.read().decode() if child.stderr else line
    written = int(line.split()[1])
    assert written >= 3

    assert [s.job_id for s in repo.snapshots()] == ["job-1"]  # the interrupted job is no snapshot
    report = verify(repo, read_data=True)
    assert report.errors == []
    assert len(report.warnings) == written  # its chunks are unreferenced garbage
    assert len(list(repo.backend.list(Kind.LOCK))) == 1  # its lock is left behind ...

    result = prune(repo)  # ... and is stale: its process is gone
    assert result.objects_removed == written
    assert {o.handle.name for o in repo.backend.list(Kind.CHUNK)} == {kept.name}
    assert list(repo.backend.list(Kind.LOCK)) == []
    assert verify(repo, read_data=True).problems == []
