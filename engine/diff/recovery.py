"""Recovery points out of core: an object's state at a job, computed by DuckDB over scratch files.

This is the one implementation of the recovery-point semantics (DESIGN.md "Recovery points");
:func:`engine.jobs.state.object_state` is a convenience over it, and the tests check it against an
independent in-memory oracle (``tests/helpers/reference_state.py``):

* the chain is the target job's cycle in commit order (``created_at``, then ``job_id``) up to the
  target; the base is the newest job of the chain that captured the object in full;
* over the base and the later jobs that captured the object, every row of a data chunk and every
  Id of a deletion chunk is an *event* ``(Id, timestamp, job, deletion)``; the timestamp of a data
  row is its cursor field (``m.objects[obj].cursor.field``, the newest one seen so far in the
  chain), the timestamp of a deletion is the deletion chunk's first non-``Id`` column;
* per Id the newest event wins, ordered by (timestamp desc nulls last, job desc, deletion first);
  Ids whose winner is a deletion are gone;
* an object that a job did not capture (it failed there: ``ObjectEntry.errors``; or the job did
  not include it) is, in that job's recovery point, as of the newest job of the chain that
  captured it, or absent when no job did (:func:`object_as_of`, which exports and the Data view
  report per object);
* an Id sweep (a job whose entry of ``obj`` is ``swept``, whose ``<obj>#ids`` chunks are in
  ``deleted_ids_chunks``) at a job ≥ the winner's job that did not see the Id removes it (hard delete).

How it stays out of core (STYLE rule 14): each chunk needed is streamed (authenticated segment by
segment by the repository) into one Parquet file of a per-task scratch folder whose total size is
capped (:class:`ScratchFull`); DuckDB runs with ``memory_limit``, ``threads`` and a
``temp_directory`` inside the scratch folder, extension auto-install/auto-load off, and reads only
the ``Id`` and timestamp columns to pick the winners, then joins the winners back to the files by
``(file, file_row_number)``. Results stream as Arrow record batches or are written as Parquet.

This module is a stage (``engine.diff``): it imports no other stage. It takes any object with the
:class:`ChunkSource` methods (an opened ``engine.sink.Repository`` has them).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import JobPruned, ObjectNotInBackup, ScratchFull, UnknownJob, UnknownOrg
from engine.model import BlobRef, ChunkRef, Manifest, ObjectAsOf

IDS_SUFFIX = "#ids"
"""Sweep chunks list ``<Object>#ids`` as their object (mirrors ``engine.jobs.tasks.IDS_SUFFIX``)."""
BLOB_SUFFIX = "__sfvault_blob"
"""``<Field>__sfvault_blob`` holds the blob name of ``<Field>``'s body (mirrors ``engine.jobs.tasks``)."""
TS = pa.timestamp("ms", "UTC")
READ_BYTES = 1 << 20


class ChunkSource(Protocol):
    """What recovery points need from a repository (``engine.sink.Repository`` fits)."""

    def manifests(self, org: str | None = None) -> Iterable[Manifest]: ...

    def open_chunk(self, ref: ChunkRef) -> AbstractContextManager[BinaryIO]: ...

    def open_blob(self, ref: BlobRef) -> AbstractContextManager[BinaryIO]: ...


# --- the chain (mirrors engine.jobs.planning: ordered, captured, object_mode) ---------------


def ordered(manifests: Iterable[Manifest]) -> list[Manifest]:
    """Manifests in commit order (creation time, then job id)."""
    return sorted(manifests, key=lambda m: (m.created_at, m.job_id))


def captured(manifest: Manifest, obj: str) -> bool:
    """True when ``manifest`` holds good data for ``obj`` (present, without errors)."""
    entry = manifest.objects.get(obj)
    return entry is not None and entry.captured


def object_mode(manifest: Manifest, obj: str) -> str:
    entry = manifest.objects.get(obj)
    if entry is not None and entry.mode is not None:
        return entry.mode
    return "full" if manifest.kind == "full" else "incremental"


def base_index(chain: Sequence[Manifest], obj: str) -> int | None:
    """Index in ``chain`` of the newest job that captured ``obj`` in full (None: not in the backup)."""
    base = None
    for i, m in enumerate(chain):
        if captured(m, obj) and object_mode(m, obj) == "full":
            base = i
    return base


def failure_code(manifest: Manifest, obj: str) -> str | None:
    """The error code ``obj`` failed with in ``manifest``'s job (None: it did not fail there)."""
    entry = manifest.objects.get(obj)
    if entry is None or not entry.errors:
        return None
    return entry.errors[0].code or "unknown"


def object_as_of(chain: Sequence[Manifest], obj: str) -> ObjectAsOf:
    """Which job of ``chain`` the data of ``obj`` in the recovery point of ``chain[-1]`` is as of.

    The newest job at or after the base (:func:`base_index`) that captured the object; ``absent``
    when no job of the chain captured it in full.
    """
    target = chain[-1]
    code = failure_code(target, obj)
    base = base_index(chain, obj)
    if base is None:
        return ObjectAsOf(obj, "absent", None, code)
    newest = max(j for j in range(base, len(chain)) if captured(chain[j], obj))
    if newest == len(chain) - 1:
        return ObjectAsOf(obj, "this_job", target.job_id)
    return ObjectAsOf(obj, "earlier_job", chain[newest].job_id, code)


_GONE_WORDS = {"pruned": "removed by prune", "quarantined": "set aside by repair", "lost": "lost (repair)"}


def _tombstones(source: ChunkSource, org: str) -> dict[str, tuple[str, str]]:
    """Why and when each snapshot of ``org`` left, when ``source`` knows it (a repository's
    ``gone_snapshots``, read from its index tombstones)."""
    gone = getattr(source, "gone_snapshots", None)
    if gone is None:
        return {}
    return {
        job: (_GONE_WORDS[reason], at) for job, (reason, at) in gone(org).items() if reason in _GONE_WORDS
    }


@dataclass
class Snapshots:
    """The committed manifests of one org, in commit order, with job and cycle look-ups."""

    org: str
    manifests: list[Manifest]
    gone: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Job id → (why, when) of the org's snapshots that prune removed or repair set aside (the
    repository's index tombstones), so that such a job is refused with :class:`JobPruned`."""

    @classmethod
    def load(cls, source: ChunkSource, org: str) -> Snapshots:
        ms = ordered(source.manifests(org))
        if not ms:
            raise UnknownOrg(org=org)
        return cls(org, ms, _tombstones(source, org))

    def job(self, job_id: str | None) -> Manifest:
        """The manifest of ``job_id`` (the newest when None); :class:`UnknownJob` otherwise."""
        if job_id is None:  # the newest backup job (a recovery point is the state of a past instant)
            backups = [m for m in self.manifests if m.kind != "recovery_point"]
            return (backups or self.manifests)[-1]
        for m in self.manifests:
            if m.job_id == job_id:
                return m
        if job_id in self.gone:
            why, at = self.gone[job_id]
            raise JobPruned(org=self.org, job=job_id, reason=why, at=at, newest=self.manifests[-1].job_id)
        raise UnknownJob(org=self.org, job=job_id)

    def chain(self, job_id: str | None) -> list[Manifest]:
        """The target job's cycle in commit order, up to and including the target."""
        target = self.job(job_id)
        out = [m for m in self.manifests if m.cycle_id == target.cycle_id]
        return out[: out.index(target) + 1]

    def previous(self, job_id: str | None) -> Manifest | None:
        """The job before ``job_id`` in the same cycle (None for the cycle's first job)."""
        chain = self.chain(job_id)
        return chain[-2] if len(chain) >= 2 else None

    def as_of(self, job_id: str | None, objects: Iterable[str] | None = None) -> list[ObjectAsOf]:
        """Per object, which job its data in the recovery point of ``job_id`` is as of, by name.

        ``objects=None``: every object a manifest of the chain names (objects that failed
        everywhere in the cycle are ``absent``); otherwise the given objects.
        """
        chain = self.chain(job_id)
        names = sorted({n for m in chain for n in m.objects} if objects is None else set(objects))
        return [object_as_of(chain, n) for n in names]

    def objects(self, job_id: str | None) -> list[str]:
        """Objects that have a recovery point at ``job_id`` (captured in full somewhere in the chain)."""
        chain = self.chain(job_id)
        names = {n for m in chain for n in m.objects}
        return sorted(n for n in names if base_index(chain, n) is not None)


# --- the scratch folder ---------------------------------------------------------------------


class Scratch:
    """A per-task folder of decrypted chunk files, capped at ``max_bytes`` in total.

    Each chunk is written once, named by its content id, so two recovery points of one cycle
    share the files of the chunks they have in common. :meth:`close` removes the folder.
    """

    def __init__(self, root: Path | str, *, max_bytes: int = 8 << 30) -> None:
        Path(root).mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix="sfv-diff-", dir=root))
        (self.path / "chunks").mkdir()
        self.max_bytes = max_bytes
        self.used = 0
        self._files: dict[str, Path] = {}

    def reserve(self, n: int) -> None:
        if self.used + n > self.max_bytes:
            raise ScratchFull(path=str(self.path), limit=self.max_bytes)
        self.used += n

    def chunk(self, source: ChunkSource, ref: ChunkRef) -> Path:
        """The plaintext Parquet file of ``ref`` (streamed from the repository on first use)."""
        done = self._files.get(ref.name)
        if done is not None:
            return done
        path = self.path / "chunks" / f"{ref.name}.parquet"
        part = path.with_suffix(".part")
        self.reserve(ref.plain_bytes)
        written = 0
        with source.open_chunk(ref) as reader, part.open("wb") as out:
            while piece := reader.read(READ_BYTES):
                written += len(piece)
                if written > ref.plain_bytes:
                    self.reserve(len(piece))
                out.write(piece)
        part.rename(path)
        self._files[ref.name] = path
        return path

    def file(self, name: str) -> Path:
        """A path for an intermediate file inside the folder (callers account for its size)."""
        return self.path / name

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(scratch: Scratch, *, memory_limit: str = "1GB", threads: int = 2) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for one task: bounded memory, spill files in the scratch folder, offline."""
    tmp = scratch.path / "duckdb-tmp"
    tmp.mkdir(exist_ok=True)
    con = duckdb.connect(
        config={
            "memory_limit": memory_limit,
            "threads": threads,
            "temp_directory": str(tmp),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "preserve_insertion_order": False,
        }
    )
    run(con, "SET TimeZone = 'UTC'")
    run(con, "SET enable_progress_bar = false")  # never draw on the caller's terminal
    return con


def run(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    """Execute and fetch to the end (DuckDB 2 refuses new work while a result is unfinished)."""
    return con.execute(sql).fetchall()


def q(name: str) -> str:
    """A quoted DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    """A DuckDB string literal."""
    return "'" + value.replace("'", "''") + "'"


def _file_list(paths: Iterable[Path]) -> str:
    return "[" + ", ".join(lit(str(p)) for p in paths) + "]"


@dataclass
class _Plan:
    """The files and events of one object's recovery point."""

    data: list[tuple[Path, int, str | None]] = field(default_factory=list)  # file, job, ts field
    deletions: list[tuple[Path, int]] = field(default_factory=list)
    sweep_ids: list[tuple[Path, int]] = field(default_factory=list)
    sweep_jobs: list[int] = field(default_factory=list)

    def files(self) -> list[Path]:
        """The distinct data files (a chunk shared by two jobs is read once)."""
        return list(dict.fromkeys(p for p, _, _ in self.data))


class RecoveryPoints:
    """States of the objects of one org at any job of a cycle, out of core.

    Use as a context manager: it owns a scratch folder and a DuckDB connection.

    Args:
        source: the repository (anything with the :class:`ChunkSource` methods).
        org: the org's name in the repository.
        scratch_root: where the per-task scratch folder is created.
        max_scratch_bytes: cap on decrypted chunk files plus materialised states.
        memory_limit, threads: DuckDB's limits.
    """

    def __init__(
        self,
        source: ChunkSource,
        org: str,
        *,
        scratch_root: Path | str,
        max_scratch_bytes: int = 8 << 30,
        memory_limit: str = "1GB",
        threads: int = 2,
        snapshots: Snapshots | None = None,
    ) -> None:
        self.source = source
        self.org = org
        self.snapshots = snapshots or Snapshots.load(source, org)
        self.scratch = Scratch(scratch_root, max_bytes=max_scratch_bytes)
        self.con = connect(self.scratch, memory_limit=memory_limit, threads=threads)
        self._states: dict[tuple[str, str, str], Path] = {}
        self._plans: dict[tuple[str, str], _Plan] = {}

    def close(self) -> None:
        self.con.close()
        self.scratch.close()

    def __enter__(self) -> RecoveryPoints:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- planning ------------------------------------------------------------------------

    def _plan(self, obj: str, job_id: str) -> _Plan:
        key = (obj, job_id)
        if key not in self._plans:
            self._plans[key] = self._make_plan(obj, job_id)
        return self._plans[key]

    def _make_plan(self, obj: str, job_id: str) -> _Plan:
        chain = self.snapshots.chain(job_id)
        base = base_index(chain, obj)
        if base is None:
            raise ObjectNotInBackup(object=obj, org=self.org, job=job_id)
        plan = _Plan()
        ts_field: str | None = None
        for j in range(base, len(chain)):
            m = chain[j]
            if not captured(m, obj):
                continue
            entry = m.objects[obj]
            if entry.cursor is not None:
                ts_field = entry.cursor.field
            for ref in entry.chunks:
                plan.data.append((self.scratch.chunk(self.source, ref), j, ts_field))
            for ref in entry.deleted_ids_chunks:
                path = self.scratch.chunk(self.source, ref)
                if ref.object == obj + IDS_SUFFIX:
                    plan.sweep_ids.append((path, j))
                else:
                    plan.deletions.append((path, j))
            if entry.swept:
                plan.sweep_jobs.append(j)
        return plan

    def schema(self, obj: str, job_id: str | None = None) -> pa.Schema:
        """The unified Arrow schema of the object's data chunks in the chain (the state's schema)."""
        plan = self._plan(obj, self.snapshots.job(job_id).job_id)
        if not plan.data:
            return pa.schema([pa.field("Id", pa.string())])
        schemas = [pq.read_schema(p) for p in plan.files()]
        schema = pa.unify_schemas(schemas, promote_options="permissive").remove_metadata()
        # field metadata (the describe facts, ``sf_type`` …): the newest chunk that has them wins
        fields = []
        for f in schema:
            md = next((s.field(f.name).metadata for s in reversed(schemas)
                       if f.name in s.names and s.field(f.name).metadata), None)  # fmt: skip
            fields.append(f.with_metadata(md) if md else f.remove_metadata())
        return pa.schema(fields)

    # --- the state -----------------------------------------------------------------------

    def _events_sql(self, plan: _Plan, ids: Path | None = None) -> str:
        parts: list[str] = []
        only = f" WHERE Id IN (SELECT Id FROM read_parquet({lit(str(ids))}))" if ids is not None else ""
        files = plan.files()
        for path, job, ts_field in plan.data:
            i = files.index(path)
            cols = pq.read_schema(path).names
            ts = (
                f"CAST({q(ts_field)} AS TIMESTAMPTZ)"
                if ts_field and ts_field in cols
                else "NULL::TIMESTAMPTZ"
            )
            parts.append(
                f"SELECT Id, {ts} AS _ts, {job} AS _job, false AS _del, {i} AS _f, file_row_number AS _r "
                f"FROM read_parquet({lit(str(path))}, file_row_number = true){only}"
            )
        for path, job in plan.deletions:
            cols = [c for c in pq.read_schema(path).names if c != "Id"]
            ts = f"CAST({q(cols[0])} AS TIMESTAMPTZ)" if cols else "NULL::TIMESTAMPTZ"
            parts.append(
                f"SELECT Id, {ts} AS _ts, {job} AS _job, true AS _del, -1 AS _f, -1::BIGINT AS _r "
                f"FROM read_parquet({lit(str(path))}){only}"
            )
        return "\nUNION ALL ".join(parts)

    def _winners_sql(self, plan: _Plan, ids: Path | None = None) -> str:
        """``(_f, _r)`` of each live Id's winning row version (only the Ids listed in ``ids`` if given)."""
        events = self._events_sql(plan, ids)
        sweep_jobs = ", ".join(str(j) for j in sorted(set(plan.sweep_jobs)))
        sweep_filter = ""
        if sweep_jobs:
            if plan.sweep_ids:
                ids_union = "\nUNION ALL ".join(
                    f"SELECT Id, {job} AS _job FROM read_parquet({lit(str(p))})" for p, job in plan.sweep_ids
                )
            else:
                ids_union = "SELECT NULL::VARCHAR AS Id, NULL::INTEGER AS _job WHERE false"
            # a sweep at a job ≥ the winner's job that did not see the Id: hard-deleted
            sweep_filter = f"""
                AND NOT EXISTS (
                    SELECT 1 FROM (SELECT unnest([{sweep_jobs}]) AS _job) sw
                    WHERE sw._job >= w._job AND NOT EXISTS (
                        SELECT 1 FROM ({ids_union}) ids WHERE ids._job = sw._job AND ids.Id = w.Id))"""
        return f"""
            WITH w AS (
                SELECT * FROM ({events}) ev
                QUALIFY row_number() OVER (
                    PARTITION BY Id ORDER BY _ts DESC NULLS LAST, _job DESC, _del DESC, _f DESC, _r DESC) = 1
            )
            SELECT _f, _r FROM w WHERE NOT _del {sweep_filter}
        """

    def state_file(self, obj: str, job_id: str | None = None, *, ids: Path | None = None) -> Path:
        """Materialise the state of ``obj`` at ``job_id`` as one Parquet file sorted by Id (cached).

        With ``ids`` (a Parquet file with an ``Id`` column), only those Ids of the state: what
        compare uses to look at the few records that can differ between two jobs.
        """
        job = self.snapshots.job(job_id).job_id
        key = (obj, job, str(ids or ""))
        done = self._states.get(key)
        if done is not None:
            return done
        plan = self._plan(obj, job)
        out = self.scratch.file(f"state-{uuid.uuid4().hex}.parquet")
        schema = self.schema(obj, job)
        if not plan.data:
            pq.write_table(schema.empty_table(), out)
        else:
            files = plan.files()
            index = "\nUNION ALL ".join(
                f"SELECT {i} AS _f, {lit(str(p))} AS _path" for i, p in enumerate(files)
            )
            cols = ", ".join(f"d.{q(n)}" for n in schema.names)
            only = f"WHERE d.Id IN (SELECT Id FROM read_parquet({lit(str(ids))}))" if ids is not None else ""
            sql = f"""
                COPY (
                    WITH win AS ({self._winners_sql(plan, ids)}),
                    idx AS ({index})
                    SELECT {cols}
                    FROM read_parquet({_file_list(files)}, filename = '_sfv_file', file_row_number = true,
                                      union_by_name = true) d
                    JOIN idx ON idx._path = d._sfv_file
                    JOIN win ON win._f = idx._f AND win._r = d.file_row_number
                    {only}
                    ORDER BY d.Id
                ) TO {lit(str(out))} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000)
            """
            run(self.con, sql)
        self.scratch.reserve(out.stat().st_size)
        self._states[key] = out
        return out

    def relation(self, obj: str, job_id: str | None = None, *, ids: Path | None = None) -> str:
        """A SQL table expression over the state (``read_parquet('…')``) for callers' queries."""
        return f"read_parquet({lit(str(self.state_file(obj, job_id, ids=ids)))})"

    def batches(
        self, obj: str, job_id: str | None = None, *, batch_rows: int = 65_536
    ) -> Iterator[pa.RecordBatch]:
        """The state of ``obj`` at ``job_id`` as Arrow record batches, sorted by Id, in the chunks' schema."""
        path = self.state_file(obj, job_id)
        schema = self.schema(obj, job_id)
        pf = pq.ParquetFile(path)
        try:
            for batch in pf.iter_batches(batch_size=batch_rows):
                yield _cast_batch(batch, schema)
        finally:
            pf.close()

    def reader(
        self, obj: str, job_id: str | None = None, *, batch_rows: int = 65_536
    ) -> pa.RecordBatchReader:
        """:meth:`batches` as a ``RecordBatchReader``."""
        return pa.RecordBatchReader.from_batches(
            self.schema(obj, job_id), self.batches(obj, job_id, batch_rows=batch_rows)
        )

    def table(self, obj: str, job_id: str | None = None) -> pa.Table:
        """The whole state in memory: for tests and small objects only (prefer :meth:`batches`)."""
        return pa.Table.from_batches(list(self.batches(obj, job_id)), schema=self.schema(obj, job_id))

    def count(self, obj: str, job_id: str | None = None) -> int:
        """Live records of ``obj`` at ``job_id`` (from the materialised state, else without the rows)."""
        job = self.snapshots.job(job_id).job_id
        done = self._states.get((obj, job, ""))
        if done is not None:
            return int(pq.ParquetFile(done).metadata.num_rows)
        plan = self._plan(obj, job)
        if not plan.data:
            return 0
        # live = distinct Ids with a row version, minus those whose newest event is a deletion or
        # that a sweep missed; only Ids named by a deletion or missed by a sweep need the window
        data = "\nUNION ALL ".join(f"SELECT Id FROM read_parquet({lit(str(p))})" for p in plan.files())
        suspects = [f"SELECT Id FROM read_parquet({lit(str(p))})" for p, _ in plan.deletions]
        for j in sorted(set(plan.sweep_jobs)):
            seen = [p for p, job in plan.sweep_ids if job == j]
            not_seen = f" WHERE Id NOT IN (SELECT Id FROM read_parquet({_file_list(seen)}))" if seen else ""
            suspects.append(f"SELECT Id FROM ({data}){not_seen}")
        distinct = int(run(self.con, f"SELECT count(DISTINCT Id) FROM ({data})")[0][0])
        if not suspects:
            return distinct
        cand = self.scratch.file(f"suspects-{uuid.uuid4().hex}.parquet")
        union = " UNION ALL ".join(suspects)
        run(
            self.con,
            f"COPY (SELECT DISTINCT Id FROM ({union}) WHERE Id IN (SELECT Id FROM ({data}))) "
            f"TO {lit(str(cand))} (FORMAT parquet)",
        )
        n_cand = int(pq.ParquetFile(cand).metadata.num_rows)
        live = int(run(self.con, f"SELECT count(*) FROM ({self._winners_sql(plan, cand)})")[0][0])
        cand.unlink()
        return distinct - n_cand + live

    def candidates(self, obj: str, job_a: str, job_b: str) -> Path | None:
        """Ids whose state can differ between two jobs of a cycle, as a Parquet file; None = all of them.

        With the same base (no new full capture of ``obj`` in between), an Id's state can change
        only through an event of a job in (older, newer], or through an Id sweep in that range
        that did not see it; every other Id has the same winner at both jobs.
        """
        chain = self.snapshots.chain(job_b)
        ids = [m.job_id for m in chain]
        if job_a not in ids:
            chain = self.snapshots.chain(job_a)
            ids = [m.job_id for m in chain]
            if job_b not in ids:
                return None
            job_a, job_b = job_b, job_a
        lo = ids.index(job_a)
        base_lo, base_hi = base_index(chain[: lo + 1], obj), base_index(chain, obj)
        if base_lo is None or base_hi is None or base_lo != base_hi:
            return None
        parts: list[str] = []
        for m in chain[lo + 1 :]:
            if not captured(m, obj):
                continue
            entry = m.objects[obj]
            for ref in [*entry.chunks, *entry.deleted_ids_chunks]:
                if ref.object == obj + IDS_SUFFIX:
                    continue
                parts.append(f"SELECT Id FROM read_parquet({lit(str(self.scratch.chunk(self.source, ref)))})")
            if entry.swept:
                seen = [self.scratch.chunk(self.source, r) for r in entry.deleted_ids_chunks
                        if r.object == obj + IDS_SUFFIX]  # fmt: skip
                old = self.relation(obj, job_a)
                if seen:
                    parts.append(f"SELECT Id FROM {old} WHERE Id NOT IN "
                                 f"(SELECT Id FROM read_parquet({_file_list(seen)}))")  # fmt: skip
                else:
                    parts.append(f"SELECT Id FROM {old}")
        out = self.scratch.file(f"cand-{uuid.uuid4().hex}.parquet")
        body = " UNION ".join(parts) if parts else "SELECT NULL::VARCHAR AS Id WHERE false"
        run(self.con, f"COPY (SELECT DISTINCT Id FROM ({body})) TO {lit(str(out))} (FORMAT parquet)")
        self.scratch.reserve(out.stat().st_size)
        return out

    def write_parquet(self, obj: str, job_id: str | None, dest: Path | str) -> int:
        """Copy the state to ``dest`` (Parquet, the chunks' schema); returns the row count."""
        n = 0
        with pq.ParquetWriter(dest, self.schema(obj, job_id), compression="zstd") as w:
            for b in self.batches(obj, job_id):
                w.write_batch(b)
                n += b.num_rows
        return n


def _cast_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """DuckDB writes timestamps in µs; give the batch back the chunks' exact types."""
    if batch.schema.equals(schema):
        return batch
    cols = []
    for f in schema:
        col = batch.column(f.name) if f.name in batch.schema.names else pa.nulls(batch.num_rows, f.type)
        cols.append(col if col.type == f.type else col.cast(f.type, safe=False))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def open_state_reader(source: ChunkSource, org: str, obj: str, job_id: str | None, *,
                      scratch_root: Path | str, **kw: Any) -> pa.Table:  # fmt: skip
    """One-shot helper: the state of ``obj`` at ``job_id`` as a table (tests, small objects)."""
    with RecoveryPoints(source, org, scratch_root=scratch_root, **kw) as rp:
        return rp.table(obj, job_id)
