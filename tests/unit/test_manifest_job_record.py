"""Manifest formats 1 and 2, read through the repository's real decode path.

The fixtures in ``tests/data/manifests`` are decrypted manifests of real jobs (emulator, Dask
LocalCluster, local repository), captured with ``tests/data/manifests/README.md``'s recipe:

* ``v1-partial.json``, ``v1-incremental.json.gz``: format 1, written by the code before the typed
  job record (the job's facts in an untyped ``extra``): an object-scoped job with one failed
  object, and a swept incremental of 24 objects;
* ``v2-partial.json``: format 2, the same kind of job written by the current code.

Each is sealed into a repository under its own name and loaded back with
``Repository.load_manifest``, so the upgrade from format 1 runs exactly as it does on a real
repository; the typed record must say what the old ``extra`` said, object by object.
"""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.config import Settings
from engine.jobs.planning import captured, cycle_position, last_cursor, object_mode
from engine.model import Cursor, CyclePosition, JobRecord, Manifest, ObjectError
from engine.sink.backends.memory import MemoryBackend
from engine.sink.crypto import ContentType, seal_bytes
from engine.sink.keys import LocalKeyFile
from engine.sink.manifest import MANIFEST_VERSION, manifest_handle
from engine.sink.repository import Repository

DATA = Path(__file__).resolve().parents[1] / "data" / "manifests"


def _doc(name: str) -> dict[str, Any]:
    raw = (DATA / name).read_bytes()
    return dict(json.loads(gzip.decompress(raw) if name.endswith(".gz") else raw))


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    settings = Settings(repository_url="memory://", key_file=tmp_path / "k")
    return Repository.init(MemoryBackend(), LocalKeyFile.create(tmp_path / "k"), settings=settings)


def _load(repo: Repository, doc: dict[str, Any]) -> Manifest:
    """Seal ``doc`` (a manifest's plaintext) at its own name, then read it as any manifest is read."""
    h = manifest_handle(doc["org"], doc["job_id"])
    plain = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    keys = repo._keys  # the test plays the writer of an older version of the code
    sealed = seal_bytes(
        keys, ContentType.MANIFEST, keys.name_id(h.path), plain, name=h.path, check_content=False
    )
    repo.backend.put(h, io.BytesIO(sealed), len(sealed))
    return repo.load_manifest(doc["org"], doc["job_id"])


def test_a_format_1_partial_job_reads_as_the_typed_record(repo: Repository) -> None:
    doc = _doc("v1-partial.json")
    assert doc["version"] == 1 and "extra" in doc
    extra = doc["extra"]
    m = _load(repo, doc)

    assert (m.kind, m.cycle_id) == (doc["kind"], doc["cycle_id"])
    cycle = CyclePosition(datetime.fromisoformat(extra["cycle"]["started_at"]), extra["cycle"]["index"])
    assert m.job.cycle == cycle and cycle_position(m) == (cycle.started_at, cycle.index) and cycle.index == 2
    # format 1 did not record these: they stay unknown, never invented
    assert (m.job.trigger, m.job.queued_at, m.job.started_at, m.job.requested_objects, m.job.org) == (
        None, None, None, None, None,
    )  # fmt: skip
    assert m.job.usage.api_calls == extra["usage"]["api_calls"] == 14
    assert m.job.usage.calls == extra["usage"]["calls"]

    assert sorted(m.objects) == ["Account", "Contact", "Opportunity"]
    (failed,) = [n for n in m.objects if n in extra["failed"]]
    assert m.objects[failed].errors == [ObjectError(**extra["failed"][failed])]
    assert not captured(m, failed) and m.objects[failed].mode is None
    for name, mode in extra["modes"].items():
        entry = m.objects[name]
        assert captured(m, name) and entry.mode == mode == object_mode(m, name) == "full"
        assert entry.cursor == Cursor.from_dict(extra["cursors"][name]) == last_cursor([m], name)
        assert entry.cursor is not None and len(entry.cursor.seen) > 1  # the exact state, not the summary
        assert not entry.swept and entry.warning is None and entry.files_unavailable == 0


def test_a_format_1_swept_incremental_reads_as_the_typed_record(repo: Repository) -> None:
    doc = _doc("v1-incremental.json.gz")
    extra = doc["extra"]
    m = _load(repo, doc)
    assert m.kind == "incremental" and m.job.cycle is not None and m.job.cycle.index == 1
    assert len(m.objects) == 24 and sorted(extra["sweeps"]) == sorted(m.objects)
    for name, entry in m.objects.items():
        assert entry.captured and entry.swept and entry.mode == extra["modes"][name] == "incremental"
        assert entry.cursor == Cursor.from_dict(extra["cursors"][name])
        ids_chunks = [c for c in entry.deleted_ids_chunks if c.object == name + extra["ids_suffix"]]
        assert ids_chunks, f"{name}: swept, so its live Ids are in the manifest"


def test_a_format_1_manifest_without_the_exact_cursor_keeps_its_summary(repo: Repository) -> None:
    """Manifests older than ``extra.cursors`` kept only the cursor summary on each object."""
    doc = _doc("v1-partial.json")
    doc["extra"] = {}
    account = doc["objects"]["Account"]
    m = _load(repo, doc)
    summary = account["cursor"]
    last = datetime.fromisoformat(summary["last"])
    assert m.objects["Account"].cursor == Cursor(
        summary["field"], last, frozenset((i, last) for i in summary["ids_at_last"])
    )
    assert m.objects["Account"].mode is None and object_mode(m, "Account") == "incremental"  # the job's kind


def test_a_format_2_manifest_written_by_a_real_job(repo: Repository) -> None:
    doc = _doc("v2-partial.json")
    assert doc["version"] == MANIFEST_VERSION == 2 and "extra" not in doc
    m = _load(repo, doc)
    job = m.job
    assert job.trigger == "manual" and job.requested_objects == ("Account", "Contact", "Opportunity")
    assert job.queued_at is not None and job.started_at is not None and job.finished_at == m.created_at
    assert job.queued_at <= job.started_at <= m.created_at and m.created_at.tzinfo is not None
    assert job.cycle is not None and job.cycle.index == 2 and job.cycle.started_at < job.queued_at
    assert job.org is not None and job.org.instance_url and job.org.time_zone == "UTC"
    assert job.error is not None and job.error.code == "SFV-409" and job.usage.api_calls > 0
    (failed,) = [n for n, e in m.objects.items() if e.errors]
    assert job.error.message.startswith(f"1 object(s) failed; first: Bulk job on {failed} ended Failed")
    assert m.objects[failed].mode == "full" and not captured(m, failed)
    for name, entry in m.objects.items():
        assert entry.mode == "full" and entry.api_calls["bulk2_jobs_created"] >= 0
        if name != failed:
            assert entry.captured and entry.cursor is not None and entry.cursor.last is not None
            assert entry.rows > 0 and entry.chunks
    # what is read back is what is written: the typed record round-trips to the same document
    assert Manifest.from_dict(m.to_dict()) == m
    assert {k: v for k, v in doc.items() if k not in ("format", "version")} == json.loads(
        json.dumps(m.to_dict())
    )


def test_unknown_triggers_and_modes_are_refused() -> None:
    with pytest.raises(ValueError, match="trigger"):
        JobRecord.from_dict({"trigger": "cron"})
    at = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    bad = {"org": "o", "job_id": "j", "created_at": at, "kind": "full", "cycle_id": "j",
           "objects": {"A": {"mode": "partial"}}}  # fmt: skip
    with pytest.raises(ValueError, match="mode"):
        Manifest.from_dict(bad)
