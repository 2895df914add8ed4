"""Snapshot chains written through the real repository API, in the shape engine.jobs writes them.

``engine.jobs.commit.commit_job`` stores per object: data chunks (``chunks``), deletion chunks
(``Id`` + cursor field, object = the object) and Id-sweep chunks (``Id`` only, object =
``<Object>#ids``) both in ``deleted_ids_chunks``, and the typed job record:
``ObjectEntry.mode``, ``cursor`` (its ``field``), ``swept``; ``Manifest.job.usage``.
:class:`ChainWriter` writes exactly that, so tests of ``engine.diff`` run on real encrypted
repositories without a Salesforce org.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.clock import FrozenClock
from engine.config import Settings
from engine.model import BlobRef, ChunkRef, Cursor, JobRecord, JobUsage, Manifest, ObjectEntry, ObjectError
from engine.sink.backends.memory import MemoryBackend
from engine.sink.keys import LocalKeyFile
from engine.sink.repository import Repository

IDS_SUFFIX = "#ids"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def new_repository(tmp_path: Path, *, chunk_target_bytes: int = 64 * 1024 * 1024) -> Repository:
    kek = LocalKeyFile.create(tmp_path / "repo.key")
    settings = Settings(chunk_target_bytes=chunk_target_bytes, row_group_rows=1000)
    return Repository.init(MemoryBackend(), kek, settings=settings, clock=FrozenClock())


@dataclass
class ObjectChange:
    """What one job captured of one object."""

    rows: pa.Table | None = None
    deletions: pa.Table | None = None  # Id + cursor field
    sweep: list[str] | None = None  # live Ids seen by an Id sweep (None: no sweep)
    mode: str = "incremental"
    cursor_field: str | None = "SystemModstamp"
    chunk_rows: int = 0  # 0: one chunk; else rows per chunk
    api_calls: dict[str, int] = field(default_factory=dict)
    failed: bool = False
    blobs: list[BlobRef] = field(default_factory=list)


class ChainWriter:
    """Commits manifests of one org, one job at a time, ``minutes`` apart."""

    def __init__(self, repo: Repository, org: str) -> None:
        self.repo = repo
        self.org = org
        self.n = 0
        self.cycle: str | None = None

    def _chunks(self, table: pa.Table, name: str, chunk_rows: int) -> list[ChunkRef]:
        if table.num_rows == 0:
            return []
        if not chunk_rows:
            return [self.repo.write_chunk(table, name)]
        return [self.repo.write_chunk(table.slice(i, chunk_rows), name)
                for i in range(0, table.num_rows, chunk_rows)]  # fmt: skip

    def commit(self, kind: str, changes: dict[str, ObjectChange], *, at: datetime | None = None,
               usage: dict[str, Any] | None = None) -> Manifest:  # fmt: skip
        self.n += 1
        job_id = f"job-{self.n:04d}"
        if kind == "full" or self.cycle is None:
            self.cycle = job_id
        objects: dict[str, ObjectEntry] = {}
        for name, ch in changes.items():
            if ch.failed:
                objects[name] = ObjectEntry(errors=[ObjectError("SFV-404", "boom")])
                continue
            chunks = self._chunks(ch.rows, name, ch.chunk_rows) if ch.rows is not None else []
            dels = self._chunks(ch.deletions, name, 0) if ch.deletions is not None else []
            if ch.sweep is not None:
                ids = pa.table({"Id": pa.array(sorted(ch.sweep), pa.string())})
                dels += self._chunks(ids, name + IDS_SUFFIX, 0)
            objects[name] = ObjectEntry(
                chunks=chunks, rows=ch.rows.num_rows if ch.rows is not None else 0,
                bytes=sum(c.sealed_bytes for c in chunks + dels), api_calls=dict(ch.api_calls),
                blobs=list(ch.blobs), deleted_ids_chunks=dels, mode="full" if kind == "full" else ch.mode,
                cursor=Cursor(ch.cursor_field) if ch.cursor_field else None, swept=ch.sweep is not None,
            )  # fmt: skip
        m = Manifest(
            org=self.org, job_id=job_id, created_at=at or (T0 + timedelta(minutes=self.n)),
            kind="full" if kind == "full" else "incremental", cycle_id=self.cycle, objects=objects,
            job=JobRecord(trigger="manual", usage=JobUsage.from_dict(usage or {})),
        )  # fmt: skip
        self.repo.commit(m)
        return m


# --- a random org whose every state is known -------------------------------------------------


class RandomOrg:
    """A seeded object with Id, Name, Amount (decimal), Active (bool), SystemModstamp; ground truth kept."""

    def __init__(self, seed: int, obj: str = "Account", prefix: str = "001") -> None:
        self.rnd = random.Random(seed)
        self.obj = obj
        self.prefix = prefix
        self.live: dict[str, dict[str, Any]] = {}
        self.bin: dict[str, dict[str, Any]] = {}
        self.next = 1
        self.now = T0

    def _id(self) -> str:
        i = self.next
        self.next += 1
        return f"{self.prefix}{i:012d}AAA"

    def _row(self, rid: str, name: str) -> dict[str, Any]:
        from decimal import Decimal

        return {"Id": rid, "Name": name, "Amount": Decimal(self.rnd.randint(0, 10**6)) / 100,
                "Active": self.rnd.random() < 0.5, "SystemModstamp": self.now}  # fmt: skip

    def tick(self, seconds: int = 60) -> None:
        self.now += timedelta(seconds=seconds)

    def seed_rows(self, n: int) -> None:
        for _ in range(n):
            rid = self._id()
            self.live[rid] = self._row(rid, f"name {rid}")

    def churn(self, k: int, *, same_stamp: bool = True) -> dict[str, list[str]]:
        """Inserts, updates, touches, soft deletes, undeletes, hard deletes; returns the net change."""
        before = {i: dict(r) for i, r in self.live.items()}
        self.tick()
        ids = sorted(self.live)
        for rid in self.rnd.sample(ids, min(k, len(ids))):
            self.live[rid]["Name"] = f'upd {self.rnd.random():.6f} "q" \\ ü 🎉'
            self.live[rid]["SystemModstamp"] = self.now
        for rid in self.rnd.sample(sorted(self.live), min(k // 2, len(self.live))):
            self.live[rid]["SystemModstamp"] = self.now  # touch
        for rid in self.rnd.sample(sorted(self.live), min(k // 2, len(self.live))):
            r = self.live.pop(rid)
            r["SystemModstamp"] = self.now
            self.bin[rid] = r
        for rid in self.rnd.sample(sorted(self.bin), len(self.bin) // 3):
            r = self.bin.pop(rid)
            r["SystemModstamp"] = self.now
            self.live[rid] = r
        for rid in self.rnd.sample(sorted(self.live), min(max(1, k // 5), len(self.live))):
            self.live.pop(rid)  # hard delete: only a sweep can see it
        for _ in range(k):
            rid = self._id()
            self.live[rid] = self._row(rid, f"new {rid}")
        added = sorted(set(self.live) - set(before))
        removed = sorted(set(before) - set(self.live))
        changed = sorted(i for i in set(before) & set(self.live)
                         if {c: v for c, v in before[i].items() if c != "SystemModstamp"}
                         != {c: v for c, v in self.live[i].items() if c != "SystemModstamp"})  # fmt: skip
        return {"added": added, "changed": changed, "removed": removed}

    def schema(self) -> pa.Schema:
        return pa.schema([("Id", pa.string()), ("Name", pa.string()), ("Amount", pa.decimal128(18, 2)),
                          ("Active", pa.bool_()), ("SystemModstamp", pa.timestamp("ms", "UTC"))])  # fmt: skip

    def table(self, rows: list[dict[str, Any]]) -> pa.Table:
        rows = sorted(rows, key=lambda r: r["Id"])
        return pa.Table.from_pylist(rows, schema=self.schema())

    def full(self) -> ObjectChange:
        return ObjectChange(rows=self.table(list(self.live.values())), mode="full", chunk_rows=7)

    def incremental(self, since: datetime, *, sweep: bool = False) -> ObjectChange:
        rows = [r for r in self.live.values() if r["SystemModstamp"] >= since]
        dels = [{"Id": i, "SystemModstamp": r["SystemModstamp"]} for i, r in self.bin.items()
                if r["SystemModstamp"] >= since]  # fmt: skip
        del_schema = pa.schema([("Id", pa.string()), ("SystemModstamp", pa.timestamp("ms", "UTC"))])
        dt = pa.Table.from_pylist(sorted(dels, key=lambda r: r["Id"]), schema=del_schema)
        return ObjectChange(rows=self.table(rows), deletions=dt, sweep=sorted(self.live) if sweep else None,
                            chunk_rows=5)  # fmt: skip

    def truth(self) -> pa.Table:
        return self.table(list(self.live.values()))
