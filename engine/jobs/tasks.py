"""One Dask task per partition: Bulk 2.0 (or REST) → Arrow → sealed chunks in the repository.

:func:`extract_partition` runs on a worker. Its argument is plain data (:class:`PartitionTask`:
object, fields, Id range, window, cursor) plus the name of the job's worker plugin; no token and
no key is ever in it (see :mod:`engine.jobs.worker`). It returns a :class:`PartitionResult`
(chunk refs, rows, bytes, API calls by kind, the partition's cursor part). Memory is bounded by
one result page (``page_bytes``, at most ``page_rows`` rows) plus one chunk being cut (at most
``chunk_buffer_bytes`` of Arrow data, ``chunk_target_bytes`` of Parquet), whatever the size of the
object or of the org (decision 0015).

Order inside a task (it matters for correctness, see ``docs/OPERATIONS.md``):

1. the data query (``query``; a full extract, or ``cursor >= last - lag`` for an incremental),
   rows already captured at the boundary dropped; for incrementals of objects with ``IsDeleted``
   it is one ``queryAll`` whose deleted rows (Id + timestamp) go to deletion chunks;
2. (objects whose ``IsDeleted`` the user cannot read) ``queryAll ... IsDeleted = true`` over the
   same window (Id + timestamp only) into deletion chunks;
3. when the job sweeps: ``SELECT Id`` over the partition's range (after 1, so an Id absent from
   the sweep but present in the data was deleted in between, never inserted in between).

Task and Event (``PartitionTask.archived``) read their live rows, in fulls and sweeps, with
``queryAll ... IsDeleted = false``: ``query`` hides the activities Salesforce has archived.

An org-wide ``distributed.Semaphore`` caps the Bulk jobs open at once across all workers; a task
waiting for its lease and for Salesforce to process its job leaves the worker's thread pool
(:class:`_PoolSlot`).

Both paths read through :func:`engine.extract.stream.read_batches`: typed Arrow batches of the
object's fixed schema, from Bulk CSV pages or straight from REST JSON records (no CSV text).

Small incremental windows (``rest_data``: the driver counted at most ``JobOptions.rest_limit`` rows)
run steps 1 and 2 through REST ``query``/``queryAll`` paging, and small objects (``rest_sweep``) their
sweep too: one or a few calls instead of a Bulk job to create, poll and page. The order is the same.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import SalesforceNotFound, SalesforceRequestFailed
from engine.extract.bulk2 import JobInfo, JobPace, PollPolicy, ReadGate
from engine.extract.client import SalesforceClient
from engine.extract.csv_arrow import CsvPageParser
from engine.extract.cursor import Cursor as ExtractCursor
from engine.extract.cursor import CursorTracker, utc_datetimes
from engine.extract.job_board import JobBoard
from engine.extract.model import FieldSpec
from engine.extract.plan import Partition
from engine.extract.rest import RestApi
from engine.extract.soql import Soql, id_literal
from engine.extract.stream import BulkOptions, Read, field_subset, read_batches
from engine.model import BlobRef, ChunkRef

if TYPE_CHECKING:
    from engine.sink.chunks import ChunkWriter
    from engine.sink.repository import Repository

ONE_MS = timedelta(milliseconds=1)
"""Salesforce's timestamp resolution: ``>= last + 1 ms`` is ``> last``."""

BLOB_SUFFIX = "__sfvault_blob"
"""Column ``<Field>__sfvault_blob`` holds the repository blob name of the record's ``<Field>`` body."""
IDS_SUFFIX = "#ids"
"""Sweep chunks (``Id`` only) are listed in ``deleted_ids_chunks`` with ``object = <Object>#ids``."""


@dataclass(frozen=True)
class PartitionTask:
    """Everything one partition needs, as plain picklable data (no secrets)."""

    org: str
    job_id: str
    plugin: str
    sobject: str
    fields: tuple[FieldSpec, ...]
    path: Literal["bulk2", "rest"]
    partition: Partition
    mode: Literal["full", "incremental"]
    cursor_field: str | None
    cursor: ExtractCursor | None
    lag: timedelta
    deletes: bool
    sweep: bool
    blob_fields: tuple[str, ...] = ()
    page_rows: int = 50_000
    result_streams: int = 1
    chunk_target_bytes: int | None = None
    chunk_buffer_bytes: int | None = None
    page_bytes: int | None = None
    semaphore: str = ""
    max_concurrent: int = 8
    cancel_event: str = ""
    poll_first: float = 0.2
    poll_max: float = 5.0
    delete_bulk_jobs: bool = False
    blob_threads: int = 8
    blob_timeout_s: float = 15.0
    rest_data: bool = False
    """Run the data and deletes queries through REST ``query``/``queryAll`` paging instead of a Bulk
    job (small incremental windows: one or a few calls, no job to create, poll and page)."""
    rest_sweep: bool = False
    """Run the Id sweep through REST paging (the object is small)."""
    window_records: tuple[dict[str, Any], ...] | None = None
    """The whole window's rows as the planner's probe read them (REST JSON records of the task's
    own data query, deleted rows included when the object keeps them): the data step writes these
    instead of querying again. Only on a task of a whole incremental window (``window="all"``)."""
    strategy: Literal["bulk2", "bulk1"] = "bulk2"
    """The Bulk API of the task's Bulk reads (``JobOptions.extraction_strategy``)."""
    archived: bool = False
    """The object's live rows include archived ones that ``query`` hides (Task, Event): live rows
    are read with ``queryAll ... IsDeleted = false`` (:meth:`_Extractor.live_batches`)."""
    window: Literal["all", "after_boundary", "boundary", "ids"] = "all"
    """Which part of an incremental window the task reads: all of it (``cursor - lag`` on), only
    what is newer than the cursor, or the cursor's boundary ``[last - lag, last]`` (a task of its
    own when the boundary is large, see :func:`_extract_boundary`). The two middle ones together
    read the same rows as the first. ``ids``: no window, the object's Id sweep over the partition's
    range only (``SELECT Id``; decision 0031), run after the object's data tasks."""

    @property
    def window_start(self) -> datetime | None:
        if self.mode == "full" or self.cursor is None:
            return None
        if self.window == "after_boundary" and self.cursor.last is not None:
            return self.cursor.last + ONE_MS  # strictly after the boundary
        return self.cursor.window_start(self.lag)

    @property
    def window_end(self) -> datetime | None:
        """The exclusive end of the window (None: open), set for the boundary task only."""
        if self.window == "boundary" and self.mode == "incremental" and self.cursor is not None:
            return None if self.cursor.last is None else self.cursor.last + ONE_MS
        return None

    @property
    def key(self) -> str:
        return f"{'ids' if self.window == 'ids' else self.mode}:{self.partition.key}"


@dataclass
class PartitionResult:
    sobject: str
    key: str
    mode: str
    chunks: list[ChunkRef] = field(default_factory=list)
    deleted_chunks: list[ChunkRef] = field(default_factory=list)
    sweep_chunks: list[ChunkRef] = field(default_factory=list)
    swept: bool = False
    blobs: list[BlobRef] = field(default_factory=list)
    rows: int = 0
    deleted_rows: int = 0
    swept_ids: int = 0
    dropped_at_boundary: int = 0
    sealed_bytes: int = 0
    cursor_last: datetime | None = None
    cursor_seen: list[tuple[str, datetime, str | None]] = field(default_factory=list)
    """The closing cursor's boundary as ``(Id, ts, digest)`` (:meth:`ExtractCursor.entries`)."""
    cursor_truncated: bool = False
    boundary_check: bool = False
    """The task checked the cursor boundary only (it never sweeps; the window's task does)."""
    usage: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    blobs_unavailable: int = 0
    bulk_jobs: int = 0
    worker: str = ""


class Cancelled(Exception):
    """Raised inside a task when the job's cancel event is set (the driver discards the result)."""


class _Extractor:
    """Runs the queries of one task with one client; yields typed Arrow batches
    (:func:`engine.extract.stream.read_batches`, the same interface on the Bulk and REST paths)."""

    def __init__(
        self, task: PartitionTask, client: SalesforceClient, blob_client: SalesforceClient | None = None
    ) -> None:
        self.task = task
        self.client = client
        self.blob_rest = RestApi(blob_client or client)
        self.bulk_jobs = 0
        self.read_from: datetime | None = None
        """The earliest ``createdDate`` of the Bulk jobs read since :meth:`start_window`."""
        self.rest_read = False
        """Whether a REST query was read since :meth:`start_window` (no Salesforce time known)."""
        self.row_widths: dict[str, float] | None = None
        """Result row widths learnt by the worker's earlier reads (set by :func:`extract_partition`)."""
        self.job_paces: dict[str, JobPace] = {}
        """The worker's pace of Bulk jobs by API, ``bulk2`` and ``bulk1`` (set by
        :func:`extract_partition`): paces status polls."""
        self.read_gate: ReadGate | None = None
        """The worker's :class:`ReadGate` (set by :func:`extract_partition`): a status call waits
        until the worker could read the job."""
        self.job_board: JobBoard | None = None
        """The worker's :class:`JobBoard` (set by :func:`extract_partition`): one list call answers
        the status of all the worker's waiting Bulk API 2.0 jobs."""
        self._cancel: Any = None
        if task.cancel_event:
            from distributed import Event

            self._cancel = Event(task.cancel_event)

    def check_cancel(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled(self.task.key)

    def start_window(self) -> None:
        self.read_from, self.rest_read = None, False

    def settled_before(self) -> datetime | None:
        """Versions read since :meth:`start_window` with a timestamp at or before this are settled
        (:data:`engine.extract.cursor.SETTLED`): every query ran ``lag`` after it, by Salesforce's
        clock. None when a REST read (no Salesforce time) was among them."""
        if self.rest_read or self.read_from is None:
            return None
        return self.read_from - self.task.lag

    def _created(self, job: JobInfo) -> None:
        created = job.created_date
        if created is not None:
            self.read_from = created if self.read_from is None else min(self.read_from, created)
        else:
            self.rest_read = True  # unknown time: settle nothing

    def given_batches(self, records: tuple[dict[str, Any], ...]) -> Iterator[pa.RecordBatch]:
        """``records`` (REST JSON records of the task's fields, read by the planner) as one batch,
        typed as a REST read types them. A REST read: no Salesforce time is known for them."""
        self.rest_read = True
        if records:
            yield CsvPageParser(self.task.sobject, self.task.fields).records_to_batch(list(records))

    def live_batches(self, soql: Soql, *, rest: bool = False) -> Iterator[pa.RecordBatch]:
        """Batches of ``soql`` over the object's live rows, archived activities included."""
        if self.task.archived:
            return self.batches(soql.with_deleted(False), all_rows=True, rest=rest)
        return self.batches(soql, all_rows=False, rest=rest)

    def batches(self, soql: Soql, *, all_rows: bool, rest: bool = False) -> Iterator[pa.RecordBatch]:
        """Batches of ``soql`` (some of the task's fields), typed by the object's describe."""
        t = self.task
        path: Literal["bulk2", "bulk1", "rest"] = "rest" if (t.path == "rest" or rest) else t.strategy
        read = Read(t.sobject, field_subset(t.fields, soql.fields), soql, path, all_rows)
        if path == "rest":
            self.client.check_reserve()
            self.rest_read = True
            for batch in read_batches(self.client, read):
                self.check_cancel()
                yield batch
            return
        if path == "bulk1":  # the submitted batch and at least one PK chunk
            self.client.check_reserve(bulk_batches=2)
        else:
            self.client.check_reserve(bulk_jobs=1)
        slot = _PoolSlot()
        slot.leave()
        reading = contextlib.ExitStack()
        gate = self.read_gate

        def completed() -> None:  # the job is done: counted as a read, then back in the pool
            if gate is not None:
                reading.enter_context(gate.reading())
            slot.rejoin()  # waits for a free thread: the read is counted while it waits

        try:
            sem = None
            if t.semaphore:
                from distributed import Semaphore

                sem = Semaphore(max_leases=t.max_concurrent, name=t.semaphore)
                sem.acquire()
            try:
                self.bulk_jobs += 1
                # the backoff of a job polled before anything is known (its worker's scout, or one
                # past its expected time): x1.6 a step, seen complete within ~60% of its age (x1.3
                # made 10-12 polls for a scout queued 10 s on a realistic full; decision 0044)
                options = BulkOptions(
                    max_records=t.page_rows, streams=t.result_streams, on_complete=completed,
                    on_created=self._created, max_bytes=t.page_bytes, row_widths=self.row_widths,
                    policy=PollPolicy(first=t.poll_first, factor=1.6, max=t.poll_max),
                    pace=self.job_paces.get(path), gate=gate, delete_jobs=t.delete_bulk_jobs,
                    board=self.job_board,  # read_batches uses it for Bulk API 2.0 only
                    # an Id-only job is paced from the quickest job seen, not at the wide rows' rate
                    expected_records=None if t.window == "ids" else (t.partition.estimated_rows or None),
                )  # fmt: skip
                for batch in read_batches(self.client, read, options):
                    self.check_cancel()
                    yield batch
            finally:
                reading.close()
                if sem is not None:
                    sem.release()
        finally:
            slot.rejoin()


class _PoolSlot:
    """This task's place in its worker's thread pool, given up while Salesforce works.

    A Bulk job spends most of its life queued and processing on the Salesforce side. While the
    task only waits for its lease of the org-wide cap and for the job, it leaves the pool
    (``distributed.secede``) so the worker starts the next partition, whose job then queues in
    the org too; it rejoins (``distributed.rejoin``, which waits for a free thread) to download
    and parse. So the org always has jobs to process while results are read, and downloads,
    which hold a page and a chunk in memory, stay at the worker's thread count.
    The lease is taken after leaving the pool: a task blocked on it never holds a thread that a
    lease holder needs to rejoin. Outside a Dask worker thread both calls do nothing.
    """

    def __init__(self) -> None:
        self.away = False

    def leave(self) -> None:
        from distributed import secede

        try:
            secede()
        except ValueError:  # not running in a Dask worker thread
            return
        self.away = True

    def rejoin(self) -> None:
        if self.away:
            from distributed import rejoin

            self.away = False
            rejoin()


def _download_blobs(
    ex: _Extractor,
    batch: pa.RecordBatch,
    blob_fields: tuple[str, ...],
    repo: Repository,
    result: PartitionResult,
) -> pa.RecordBatch:
    """Download each row's bodies in parallel, store them as blobs, add the ``__sfvault_blob`` columns."""
    ids = batch.column("Id").to_pylist()
    t = ex.task

    def one(args: tuple[str, str]) -> BlobRef | None:
        record_id, fname = args
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as fh:
            try:
                ex.blob_rest.download_blob_to(t.sobject, record_id, fname, fh)  # type: ignore[arg-type]
            except SalesforceNotFound:
                return None
            except SalesforceRequestFailed as err:
                if err.details.get("status") in (403, 404):
                    return None
                raise
            fh.seek(0)
            ref: BlobRef = repo.put_blob(fh)
            return ref

    out = batch
    with ThreadPoolExecutor(max_workers=t.blob_threads, thread_name_prefix="blob") as pool:
        for fname in blob_fields:
            refs = list(pool.map(one, [(i, fname) for i in ids]))
            names: list[str | None] = []
            for r in refs:
                if r is None:
                    result.blobs_unavailable += 1
                    names.append(None)
                else:
                    result.blobs.append(r)
                    names.append(r.name)
            out = out.append_column(pa.field(fname + BLOB_SUFFIX, pa.string()), pa.array(names, pa.string()))
    return out


def extract_partition(task: PartitionTask) -> PartitionResult:
    """The Dask task: extract one partition into sealed chunks; see the module docstring."""
    from distributed import get_worker

    from engine.jobs.worker import plugin_of

    started = time.monotonic()
    plugin = plugin_of(task.plugin)
    repo = plugin.repository()
    client = plugin.client()
    # a short read timeout for file bodies: a stalled body is retried instead of waited for
    blob_client = plugin.client(timeout_seconds=task.blob_timeout_s) if task.blob_fields else None
    result = PartitionResult(task.sobject, task.key, task.mode, worker=get_worker().address)
    ex: _Extractor | None = None
    try:
        ex = _Extractor(task, client, blob_client)
        ex.row_widths = plugin.row_widths
        ex.job_paces = plugin.job_paces
        ex.read_gate = plugin.read_gate()
        ex.job_board = plugin.job_board
        if task.window == "boundary":
            result.boundary_check = True
            _extract_boundary(ex, repo, result)
        elif task.window == "ids":
            _extract_sweep(ex, repo, result)
        else:
            _extract_data(ex, repo, result)
            if (
                task.mode == "incremental"
                and task.deletes
                and task.cursor_field
                and not _deletes_with_data(task)
            ):
                _extract_deletes(ex, repo, result)
        result.bulk_jobs = ex.bulk_jobs
    finally:
        if blob_client is not None:
            client.usage.merge(blob_client.usage)
            blob_client.close()
        plugin.spent(client.usage, bulk_jobs=ex.bulk_jobs if ex is not None else 0)
        result.usage = client.usage.snapshot()
        client.close()
    result.duration_s = time.monotonic() - started
    return result


def _writer(repo: Repository, name: str, task: PartitionTask) -> ChunkWriter:
    return repo.chunk_writer(
        name, target_bytes=task.chunk_target_bytes, max_buffer_bytes=task.chunk_buffer_bytes
    )


def _deletes_with_data(task: PartitionTask) -> bool:
    """Whether the window's deletes come with its data, from one ``queryAll`` (see
    :func:`_extract_data`), rather than from a second query (:func:`_extract_deletes`)."""
    return (
        task.mode == "incremental"
        and task.deletes
        and task.cursor_field is not None
        and task.cursor is not None
        and any(f.name == "IsDeleted" for f in task.fields)
    )


def _extract_data(ex: _Extractor, repo: Repository, result: PartitionResult) -> None:
    """The partition's rows (of the task's window) into data chunks.

    For an incremental of an object that keeps deleted rows, one ``queryAll`` over the window
    returns the changed rows and the deleted ones together: rows with ``IsDeleted`` go to the
    deletion chunks (``Id`` and the cursor field, as :func:`_extract_deletes` writes them), the
    others to the data chunks. One Bulk job instead of two, and both sides come from one read of
    the org, so a record deleted between two queries cannot fall between them.
    """
    t = ex.task
    ex.start_window()
    soql = t.partition.apply(Soql.select(t.sobject, [f.name for f in t.fields]))
    start = t.window_start
    if start is not None and t.cursor_field:
        soql = soql.with_window(t.cursor_field, start, t.window_end)
    tracker: CursorTracker | None = None
    if t.cursor_field:
        base = (
            t.cursor if (t.mode == "incremental" and t.cursor is not None) else ExtractCursor(t.cursor_field)
        )
        tracker = CursorTracker(base, t.lag)
    incremental = t.mode == "incremental" and t.cursor is not None
    with_deletes = _deletes_with_data(t)
    deleted_columns = _deleted_columns(t)
    writer = _writer(repo, t.sobject, t)
    deleted_writer = _writer(repo, t.sobject, t) if with_deletes else None
    rest = t.rest_data and t.window != "boundary"
    with writer, deleted_writer or contextlib.nullcontext():
        if t.window_records is not None and t.window == "all":
            batches = ex.given_batches(t.window_records)
        elif with_deletes:
            batches = ex.batches(soql, all_rows=True, rest=rest)
        else:
            batches = ex.live_batches(soql, rest=rest)
        for batch in batches:
            if deleted_writer is not None:
                batch = _split_deleted(batch, deleted_writer, deleted_columns, result)
            _keep(ex, repo, result, writer, tracker, batch, incremental=incremental)
    _finish(result, writer, deleted_writer, tracker, ex.settled_before())


def _deleted_columns(task: PartitionTask) -> list[str]:
    """The columns of a deletion chunk: ``Id`` and the cursor field, in the object's field order."""
    return [f.name for f in task.fields if f.name in ("Id", task.cursor_field)]


def _split_deleted(
    batch: pa.RecordBatch, deleted_writer: ChunkWriter, columns: list[str], result: PartitionResult
) -> pa.RecordBatch:
    """Write ``batch``'s deleted rows (``columns`` of them) to the deletion chunks; return the rest."""
    gone = pc.fill_null(batch.column("IsDeleted"), False)
    deleted = batch.filter(gone)
    if deleted.num_rows:
        deleted_writer.write_batch(deleted.select(columns))
        result.deleted_rows += deleted.num_rows
    return batch.filter(pc.invert(gone))


def _keep(
    ex: _Extractor,
    repo: Repository,
    result: PartitionResult,
    writer: ChunkWriter,
    tracker: CursorTracker | None,
    batch: pa.RecordBatch,
    *,
    incremental: bool,
) -> None:
    """Drop the rows the cursor already captured, fetch file bodies, write the rest."""
    t = ex.task
    if tracker is not None:
        if incremental:
            kept = tracker.keep_batch(batch)
            result.dropped_at_boundary += batch.num_rows - kept.num_rows
            batch = kept
        else:
            tracker.observe_batch(batch)
    if batch.num_rows == 0:
        return
    if t.blob_fields:
        batch = _download_blobs(ex, batch, t.blob_fields, repo, result)
    writer.write_batch(batch)
    result.rows += batch.num_rows


def _finish(
    result: PartitionResult,
    writer: ChunkWriter,
    deleted_writer: ChunkWriter | None,
    tracker: CursorTracker | None,
    settled_before: datetime | None = None,
) -> None:
    result.chunks = list(writer.refs)
    result.sealed_bytes += sum(c.sealed_bytes for c in result.chunks)
    if deleted_writer is not None:
        result.deleted_chunks = list(deleted_writer.refs)
        result.sealed_bytes += sum(c.sealed_bytes for c in result.deleted_chunks)
    if tracker is not None:
        cur = tracker.result(settled_before)
        result.cursor_last = cur.last
        result.cursor_seen = cur.entries()
        result.cursor_truncated = cur.truncated


LATE_IDS_PER_QUERY = 100
"""Ids per ``Id IN (...)`` query when a boundary check fetches rows it had not seen."""


def _extract_boundary(ex: _Extractor, repo: Repository, result: PartitionResult) -> None:
    """The cursor's boundary, ``[last - lag, last]``, checked by Id and timestamp when that is exact.

    An incremental window starts ``lag`` before the cursor so that rows committed late with an
    earlier timestamp are not lost; the rows already captured there are dropped again. When that
    boundary is large (a mass update just before the last job, all at one timestamp) reading it
    in full costs as much as the update itself. When every boundary entry is settled (read at
    least ``lag`` after its timestamp, :attr:`ExtractCursor.settled`), no other version of those
    pairs can appear, so this task reads only ``Id``, the cursor field (and ``IsDeleted``) of the
    boundary: deleted rows go to the deletion chunks as the window query would write them, pairs
    the cursor captured are skipped, and the others (late commits, almost always none) are fetched
    in full by Id. Otherwise (a version of an unsettled pair may have been written in the same
    millisecond after the previous job read it) the boundary is read in full and compared by
    digest (:func:`_extract_data`). Together with the task that reads what is newer than the
    cursor it writes exactly what one task over the whole window writes.
    """
    t = ex.task
    cur = t.cursor
    assert cur is not None and cur.last is not None and t.cursor_field is not None
    if not cur.settled:
        _extract_data(ex, repo, result)
        return
    deletes = _deletes_with_data(t)
    wanted = ["Id", t.cursor_field] + (["IsDeleted"] if deletes else [])
    soql = t.partition.apply(Soql.select(t.sobject, wanted)).with_window(
        t.cursor_field, cur.last - t.lag, cur.last + ONE_MS
    )
    late: list[str] = []
    tracker = CursorTracker(cur, t.lag)
    writer = _writer(repo, t.sobject, t)
    deleted_writer = _writer(repo, t.sobject, t) if deletes else None
    with writer, deleted_writer or contextlib.nullcontext():
        for batch in ex.batches(soql, all_rows=deletes):
            if deleted_writer is not None:
                batch = _split_deleted(batch, deleted_writer, _deleted_columns(t), result)
            ids = batch.column("Id").to_pylist()
            for i, stamp in zip(ids, utc_datetimes(batch.column(t.cursor_field)), strict=True):
                if stamp is not None and cur.captured(i, stamp, None):
                    result.dropped_at_boundary += 1
                else:
                    late.append(i)
        names = [f.name for f in t.fields]
        for at in range(0, len(late), LATE_IDS_PER_QUERY):
            in_list = ", ".join(id_literal(i) for i in late[at : at + LATE_IDS_PER_QUERY])
            fetch = Soql.select(t.sobject, names).and_where(f"Id IN ({in_list})")
            for batch in ex.live_batches(fetch, rest=True):
                _keep(ex, repo, result, writer, tracker, batch, incremental=True)
    _finish(result, writer, deleted_writer, tracker)


def _extract_deletes(ex: _Extractor, repo: Repository, result: PartitionResult) -> None:
    t = ex.task
    assert t.cursor_field is not None
    names = [f.name for f in t.fields if f.name in ("Id", t.cursor_field)]
    soql = t.partition.apply(Soql.select(t.sobject, names)).with_deleted(True)
    start = t.window_start
    if start is not None:
        soql = soql.with_window(t.cursor_field, start)
    writer = _writer(repo, t.sobject, t)
    with writer:
        for batch in ex.batches(soql, all_rows=True, rest=t.rest_data):
            writer.write_batch(batch)
            result.deleted_rows += batch.num_rows
    result.deleted_chunks = list(writer.refs)
    result.sealed_bytes += sum(c.sealed_bytes for c in result.deleted_chunks)


def _extract_sweep(ex: _Extractor, repo: Repository, result: PartitionResult) -> None:
    t = ex.task
    soql = t.partition.apply(Soql.select(t.sobject, ["Id"]))
    writer = _writer(repo, t.sobject + IDS_SUFFIX, t)
    with writer:
        for batch in ex.live_batches(soql, rest=t.rest_sweep):
            writer.write_batch(batch)
            result.swept_ids += batch.num_rows
    result.sweep_chunks = list(writer.refs)
    result.swept = True
    result.sealed_bytes += sum(c.sealed_bytes for c in result.sweep_chunks)
