"""Bulk API 1.0 (classic) query jobs under ``/services/async/{version}/`` (SALESFORCE_API.md §4b).

Jobs and batches speak XML or JSON: job calls answer in the format of the request's
``Content-Type``, batch calls in the format of the job's ``contentType`` (a ``CSV`` job answers
XML, a ``JSON`` job JSON), and JSON answers carry ``Content-Type: application/json`` exactly
(salesforce-bulk compares the header with ``==``). Errors are the async API's own
``<error><exceptionCode>..</exceptionCode><exceptionMessage>..</exceptionMessage></error>`` (or
the JSON object with the same keys), never the REST error list.

A batch runs in a worker thread: the SOQL goes through the emulator's one SOQL translator and
DuckDB store, and a CSV job's result is written by the Bulk 2.0 CSV writer
(:func:`emulator.bulk2.write_csv_result`, so the bytes are the Bulk CSV the rest of the emulator
writes); a JSON job's result is the REST record shape with datetimes and dates as epoch
milliseconds, as Salesforce's Bulk 1.0 JSON results have them. An empty CSV result is the text
``Records not found for this query``, as Salesforce sends it.

PK chunking (``Sforce-Enable-PKChunking`` on job create): the submitted batch is split by Id
ranges of ``chunkSize`` records of the whole table (deleted rows included, as the Id index has
them), one new batch per range with ``Id >= lo AND Id < hi`` (the last open-ended) added to the
query's WHERE, and the submitted batch ends ``NotProcessed``. ``parent=X`` ranges over X's Ids
and filters the object's reference field to X (``AccountId`` of ``AccountHistory``).

Status calls (job, batch, batch list, result list) answer at once with the state so far, as
Salesforce does, under every profile: a client polls until its batches are done. ``fast`` adds no
shaping; ``realistic`` adds the queue delay, the cap on
running work (``max_running_jobs`` batches at once), processing time proportional to the result
size, the ``QUERY_TIMEOUT`` failure above ``query_timeout_rows`` and the bandwidth cap of every
result download; latency and random 5xx come from the app middleware as for every API call.
Every request counts against ``DailyApiRequests``; every batch, each PK chunk included, against
``DailyBulkApiBatches``.
"""

from __future__ import annotations

import calendar
import json
import logging
import os
import shutil
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import numpy as np
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from emulator import auth
from emulator import ids as idmod
from emulator.asyncjobs import AsyncJobManager, result_failure
from emulator.context import MAX_API_VERSION, MIN_API_VERSION
from emulator.limits import categorize
from emulator.profiles import HOLD_MAX_S, Fault, Throttle

if TYPE_CHECKING:
    from emulator.context import Org
    from emulator.schema import FieldDef, ObjectDef
    from emulator.soql import Translated

log = logging.getLogger("emulator.bulk1")

NS = "http://www.force.com/2009/06/asyncapi/dataload"
XML_TYPE = "application/xml"
JSON_TYPE = "application/json"
CSV_TYPE = "text/csv"
BATCH_TERMINAL = ("Completed", "Failed", "NotProcessed")
"""``NotProcessed`` as the async API's BatchStateEnum spells it (salesforce-bulk, simple-salesforce
and Salesforce's own WSC compare with this spelling; the docs' prose writes "Not Processed")."""
OPERATIONS = ("query", "queryAll", "insert", "update", "upsert", "delete", "hardDelete")
CONTENT_TYPES = ("CSV", "JSON", "XML", "ZIP_CSV", "ZIP_JSON", "ZIP_XML")
PK_DEFAULT_CHUNK = 100_000
PK_MAX_CHUNK = 250_000
RESULT_FILE_BYTES = 1_000_000_000
"""Salesforce splits a batch's query result into files of at most 1 GB."""
NO_RECORDS = b"Records not found for this query"
READ_CHUNK = 1 << 20
ARROW_BATCH_ROWS = 64 * 1024
BATCH_QUOTA = "Exceeded max number of batches allowed in 24 hour period"
QUERY_FAILED = "InvalidBatch : Failed to process query"
QUERY_TIMEOUT = (
    f"{QUERY_FAILED}: QUERY_TIMEOUT: Your query request was running for too long."
    " (Retried more than 15 times)"
)


class AsyncApiError(Exception):
    """A Bulk API 1.0 error: ``exceptionCode`` and ``exceptionMessage``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message


def invalid_job(job_id: str) -> AsyncApiError:
    return AsyncApiError(400, "InvalidJob", f"Invalid job id: {job_id}")


def invalid_batch(batch_id: str) -> AsyncApiError:
    return AsyncApiError(400, "InvalidBatch", f"Invalid batch id: {batch_id}")


# --- formats ------------------------------------------------------------------------------------


def xml_time(dt: datetime) -> str:
    """``2024-03-05T14:07:22.000Z`` (xsd:dateTime, as the XML answers carry it)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def json_time(dt: datetime) -> str:
    """``2024-03-05T14:07:22.000+0000`` (as the JSON answers carry it)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


def _xml_items(items: list[tuple[str, Any]]) -> str:
    return "".join(f"<{k}>{escape(_xml_text(v))}</{k}>" for k, v in items)


def _xml_wrap(root: str, inner: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><{root} xmlns="{NS}">{inner}</{root}>'


def _xml_doc(root: str, items: list[tuple[str, Any]]) -> str:
    return _xml_wrap(root, _xml_items(items))


def _xml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def xml_response(body: str, status: int = 200) -> Response:
    return Response(body.encode(), status_code=status, headers={"Content-Type": XML_TYPE})


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body).encode(), status_code=status, headers={"Content-Type": JSON_TYPE})


def error_response(exc: AsyncApiError, as_json: bool) -> Response:
    if as_json:
        return json_response({"exceptionCode": exc.code, "exceptionMessage": exc.message}, exc.status)
    body = _xml_doc("error", [("exceptionCode", exc.code), ("exceptionMessage", exc.message)])
    return xml_response(body, exc.status)


def request_is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == JSON_TYPE


# --- PK chunking --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PkChunking:
    chunk_size: int = PK_DEFAULT_CHUNK
    parent: str | None = None
    start_row: str | None = None


def parse_pk_chunking(value: str | None) -> PkChunking | None:
    """The ``Sforce-Enable-PKChunking`` header: ``true``, ``false`` or ``key=value`` items.

    ``chunkSize=50000; parent=Account; startRow=001...`` (``;`` or ``,`` separated; ``true``
    may lead). Raises :class:`AsyncApiError` for a bad value.
    """
    if value is None or not value.strip() or value.strip().lower() == "false":
        return None
    chunk, parent, start = PK_DEFAULT_CHUNK, None, None
    for raw in value.replace(",", ";").split(";"):
        item = raw.strip()
        if not item or item.lower() == "true":
            continue
        key, sep, val = item.partition("=")
        key, val = key.strip().lower(), val.strip()
        if not sep or not val:
            raise AsyncApiError(400, "InvalidJob", f"Invalid value for Sforce-Enable-PKChunking: {value}")
        if key == "chunksize":
            if not val.isdigit() or not 1 <= int(val) <= PK_MAX_CHUNK:
                raise AsyncApiError(
                    400,
                    "InvalidJob",
                    f"Invalid value for chunkSize: {val}. The chunk size must be between 1 and"
                    f" {PK_MAX_CHUNK}",
                )
            chunk = int(val)
        elif key == "parent":
            parent = val
        elif key == "startrow":
            if not idmod.is_valid_id(val):
                raise AsyncApiError(400, "InvalidJob", f"Invalid value for startRow: {val}")
            start = idmod.to18(val)
        else:
            raise AsyncApiError(400, "InvalidJob", f"Invalid option for Sforce-Enable-PKChunking: {key}")
    return PkChunking(chunk, parent, start)


def with_id_range(soql: str, field_name: str, lo: str, hi: str | None) -> str:
    """``soql`` with ``field >= 'lo' [AND field < 'hi']`` ANDed to its top-level WHERE."""
    from emulator.soql import tokenize

    tokens = tokenize(soql)
    depth = 0
    seen_from = False
    where_at: int | None = None
    tail_at = len(soql)
    for tok in tokens:
        if tok.kind == "punct" and tok.text == "(":
            depth += 1
        elif tok.kind == "punct" and tok.text == ")":
            depth -= 1
        elif tok.kind == "ident" and depth == 0:
            word = tok.text.lower()
            if word == "from":
                seen_from = True
            elif seen_from and word == "where" and where_at is None:
                where_at = tok.pos
            elif seen_from and word in ("group", "order", "limit", "offset"):
                tail_at = tok.pos
                break
    cond = f"{field_name} >= '{lo}'" + (f" AND {field_name} < '{hi}'" if hi is not None else "")
    tail = soql[tail_at:].strip()
    if where_at is None:
        head = soql[:tail_at].rstrip()
        return f"{head} WHERE {cond}" + (f" {tail}" if tail else "")
    head = soql[:where_at].rstrip()
    clause = soql[where_at + len("where") : tail_at].strip()
    return f"{head} WHERE ({clause}) AND {cond}" + (f" {tail}" if tail else "")


def parent_reference(obj: ObjectDef, parent: ObjectDef) -> FieldDef | None:
    """The reference field of ``obj`` that points at ``parent`` (``AccountId``, else ``ParentId``)."""
    refs = [f for f in obj.fields if f.type == "reference" and parent.name in f.reference_to]
    for preferred in (f"{parent.name}Id", "ParentId"):
        for f in refs:
            if f.name.lower() == preferred.lower():
                return f
    return refs[0] if refs else None


# --- jobs and batches ---------------------------------------------------------------------------


@dataclass
class ResultFile:
    id: str
    start: int
    end: int


@dataclass
class Batch:
    id: str
    job_id: str
    soql: str
    created: datetime
    modstamp: datetime
    state: str = "Queued"
    state_message: str | None = None
    rows: int = 0
    processing_ms: int = 0
    directory: Path | None = None
    header: bytes = b""
    offsets: np.ndarray | None = None
    results: list[ResultFile] = field(default_factory=list)
    forced_error: str | None = None
    hold: Fault | None = None
    """A ``hold_job`` fault armed on the batch's create: the batch stays Queued until it is released."""
    pk_split: bool = False
    """True for a batch that PK chunking splits (it ends NotProcessed), False for a chunk."""
    done: threading.Event = field(default_factory=threading.Event)

    def info(self, as_json: bool) -> dict[str, Any]:
        fmt = json_time if as_json else xml_time
        body: dict[str, Any] = {"id": self.id, "jobId": self.job_id, "state": self.state}
        if self.state_message:
            body["stateMessage"] = self.state_message
        body.update(
            {
                "createdDate": fmt(self.created),
                "systemModstamp": fmt(self.modstamp),
                "numberRecordsProcessed": self.rows if self.state == "Completed" else 0,
                "numberRecordsFailed": 0,
                "totalProcessingTime": self.processing_ms,
                "apiActiveProcessingTime": self.processing_ms,
                "apexProcessingTime": 0,
            }
        )
        return dict(sorted(body.items())) if as_json else body


@dataclass
class Job:
    id: str
    operation: str
    object: str
    content_type: str
    concurrency_mode: str
    created_by: str
    created: datetime
    api_version: str
    pk: PkChunking | None
    modstamp: datetime
    state: str = "Open"
    batches: dict[str, Batch] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    abort: threading.Event = field(default_factory=threading.Event)

    @property
    def json(self) -> bool:
        return self.content_type == "JSON"

    def batch_list(self) -> list[Batch]:
        with self.lock:
            return list(self.batches.values())

    def info(self, as_json: bool) -> dict[str, Any]:
        batches = self.batch_list()
        states = [b.state for b in batches]
        fmt = json_time if as_json else xml_time
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": fmt(self.created),
            "systemModstamp": fmt(self.modstamp),
            "state": self.state,
            "concurrencyMode": self.concurrency_mode,
            "contentType": self.content_type,
            "numberBatchesQueued": states.count("Queued"),
            "numberBatchesInProgress": states.count("InProgress"),
            "numberBatchesCompleted": states.count("Completed"),
            "numberBatchesFailed": states.count("Failed"),
            "numberBatchesTotal": len(batches),
            "numberRecordsProcessed": sum(b.rows for b in batches if b.state == "Completed"),
            "numberRetries": 0,
            "apiVersion": float(self.api_version) if as_json else self.api_version,
            "numberRecordsFailed": 0,
            "totalProcessingTime": sum(b.processing_ms for b in batches),
            "apiActiveProcessingTime": sum(b.processing_ms for b in batches),
            "apexProcessingTime": 0,
        }
        return dict(sorted(body.items())) if as_json else body


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_job_body(raw: bytes, as_json: bool) -> dict[str, Any]:
    """A jobInfo request body (XML or JSON) as a dict of its top-level fields."""
    if as_json:
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            raise AsyncApiError(400, "InvalidJob", "Unable to parse Job") from None
        if not isinstance(payload, dict):
            raise AsyncApiError(400, "InvalidJob", "Unable to parse Job")
        return payload
    try:
        root = ElementTree.fromstring(raw)
    except ElementTree.ParseError:
        raise AsyncApiError(400, "InvalidXML", "Unable to parse Job") from None
    if _local(root.tag) != "jobInfo":
        raise AsyncApiError(400, "InvalidXML", f"Unexpected element {{{NS}}}{_local(root.tag)}")
    return {_local(child.tag): (child.text or "").strip() for child in root}


def _concurrency(value: Any) -> str:
    if value in (None, "", 0, "0", "Parallel"):
        return "Parallel"
    if value in (1, "1", "Serial"):
        return "Serial"
    raise AsyncApiError(400, "InvalidJob", f"Invalid value for concurrencyMode: {value}")


def _epoch_ms(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(aware.timestamp() * 1000)
    if isinstance(value, date):
        return calendar.timegm(value.timetuple()) * 1000
    return value


def split_result_files(offsets: np.ndarray, rows: int, limit: int) -> list[tuple[int, int]]:
    """Row ranges ``[start, end)`` of at most ``limit`` bytes each (at least one row each)."""
    if rows == 0:
        return [(0, 0)]
    out: list[tuple[int, int]] = []
    start = 0
    while start < rows:
        end = int(np.searchsorted(offsets, int(offsets[start]) + limit, side="right")) - 1
        end = min(max(end, start + 1), rows)
        out.append((start, end))
        start = end
    return out


class Bulk1Manager(AsyncJobManager[Job]):
    """Bulk API 1.0 jobs of one org: create, batches (run in a thread pool), results, close, abort."""

    def __init__(self, org: Org, directory: Path) -> None:
        # Bulk 2.0 numbers its 750 ids from the same clock base; start half a million higher
        super().__init__(org, directory, workers=32, thread_prefix="bulk1-batch", id_offset=500_000)
        self.result_file_bytes = RESULT_FILE_BYTES
        self.batches_created = 0

    # -- jobs -------------------------------------------------------------------------------------

    def create_job(self, payload: dict[str, Any], version: str, user_id: str, pk_header: str | None) -> Job:
        from emulator.schema import find_object

        operation = payload.get("operation")
        if operation not in OPERATIONS:
            raise AsyncApiError(400, "InvalidJob", f"Invalid value for operation: {operation}")
        if operation not in ("query", "queryAll"):
            raise AsyncApiError(
                400,
                "InvalidOperation",
                f"Operation {operation} is not supported by this emulator: only query and queryAll",
            )
        if operation == "queryAll" and float(version) < 39.0:
            raise AsyncApiError(400, "InvalidJob", "queryAll is only supported from API version 39.0")
        name = payload.get("object")
        obj = find_object(self.org.schema, name) if isinstance(name, str) and name else None
        if obj is None:
            raise AsyncApiError(400, "InvalidJob", f"Unable to find object: {name}")
        if not obj.queryable or not obj.bulk_supported:
            raise AsyncApiError(400, "InvalidJob", f"Entity '{obj.name}' is not supported by the Bulk API.")
        content_type = payload.get("contentType") or "XML"
        if content_type not in CONTENT_TYPES:
            raise AsyncApiError(400, "InvalidJob", f"Invalid value for contentType: {content_type}")
        if content_type not in ("CSV", "JSON"):
            raise AsyncApiError(
                400,
                "FeatureNotEnabled",
                f"contentType {content_type} query results are not supported by this emulator: use CSV"
                " or JSON",
            )
        pk = parse_pk_chunking(pk_header)
        now = self.org.store.clock.now()
        job = Job(
            id=self._next_id("750"),
            operation=operation,
            object=obj.name,
            content_type=content_type,
            concurrency_mode=_concurrency(payload.get("concurrencyMode")),
            created_by=user_id,
            created=now,
            api_version=version,
            pk=pk,
            modstamp=now,
        )
        with self._lock:
            self._jobs[job.id] = job
        return job

    def job(self, job_id: str) -> Job:
        job = self._find(job_id)
        if job is None:
            raise invalid_job(job_id)
        return job

    def set_state(self, job: Job, state: str | None) -> Job:
        with job.lock:
            if state == "Closed":
                if job.state != "Open":
                    raise AsyncApiError(400, "InvalidJobState", f"Job {job.id} is not open")
            elif state == "Aborted":
                if job.state == "Aborted":
                    raise AsyncApiError(400, "InvalidJobState", f"Job {job.id} is already aborted")
            else:
                raise AsyncApiError(400, "InvalidJob", f"Invalid state: {state}")
            job.state = state
            job.modstamp = self.org.store.clock.now()
        if state == "Aborted":
            job.abort.set()
            for batch in job.batch_list():
                if batch.state == "Queued":
                    self._finish(batch, "NotProcessed")
        return job

    # -- batches ----------------------------------------------------------------------------------

    def add_batch(
        self, job: Job, soql: str, forced_error: str | None = None, hold: Fault | None = None
    ) -> Batch:
        if not soql.strip():
            raise AsyncApiError(400, "InvalidBatch", "Empty request: a query batch needs a SOQL statement")
        with job.lock:
            if job.state != "Open":
                raise AsyncApiError(400, "InvalidJobState", f"Job {job.id} is not open")
        if not self.org.limits.try_consume("DailyBulkApiBatches"):
            raise AsyncApiError(400, "ExceededQuota", BATCH_QUOTA)
        batch = self._new_batch(job, soql, pk_split=job.pk is not None, forced_error=forced_error)
        batch.hold = hold
        self._pool.submit(self._run, job, batch)
        return batch

    def _new_batch(self, job: Job, soql: str, *, pk_split: bool, forced_error: str | None = None) -> Batch:
        now = self.org.store.clock.now()
        batch_id = self._next_id("751")
        batch = Batch(
            id=batch_id,
            job_id=job.id,
            soql=soql,
            created=now,
            modstamp=now,
            directory=self.directory / job.id / batch_id,
            forced_error=forced_error,
            pk_split=pk_split,
        )
        with job.lock:
            job.batches[batch.id] = batch
        with self._lock:
            self.batches_created += 1
        return batch

    def batch(self, job: Job, batch_id: str) -> Batch:
        with job.lock:
            batch = job.batches.get(batch_id)
            if batch is None and len(batch_id) == 15:
                batch = next((b for k, b in job.batches.items() if k[:15] == batch_id), None)
        if batch is None:
            raise invalid_batch(batch_id)
        return batch

    def _set(self, batch: Batch, state: str, message: str | None = None) -> None:
        batch.state = state
        batch.state_message = message
        batch.modstamp = self.org.store.clock.now()

    def _finish(self, batch: Batch, state: str, message: str | None = None) -> None:
        if batch.done.is_set():
            return
        self._set(batch, state, message)
        batch.done.set()

    def _run(self, job: Job, batch: Batch) -> None:
        try:
            profile = self.org.profile
            if batch.hold is not None:
                batch.hold.released.wait(batch.hold.delay_s or HOLD_MAX_S)
            if profile.queue_delay_max_s > 0:
                delay = self.random.uniform(profile.queue_delay_min_s, profile.queue_delay_max_s)
                if job.abort.wait(delay):
                    self._finish(batch, "NotProcessed")
                    return
            if job.abort.is_set():
                self._finish(batch, "NotProcessed")
                return
            if batch.pk_split:
                self._split(job, batch)
                return
            self._acquire_slot(job)
            try:
                self._process(job, batch)
            finally:
                self._release_slot()
        except Exception as exc:  # a failed batch is data for the client, not a crash of the server
            log.exception("bulk 1.0 batch %s failed", batch.id)
            self._finish(batch, "Failed", f"InternalServerError : {type(exc).__name__}: {exc}")
        finally:
            batch.done.set()

    def _translate(self, job: Job, soql: str) -> Translated:
        """The batch's SOQL, checked as Bulk API checks it; raises ``_BatchFailed``."""
        from emulator.files import hidden_files_user
        from emulator.soql import SoqlError, translate

        try:
            t = translate(
                soql,
                self.org.schema,  # field-level security applied (emulator.fls), as on Bulk 2.0
                include_deleted=job.operation == "queryAll",
                api_version=job.api_version,
                now=self.org.store.clock.now(),
                files_visible_to=hidden_files_user(self.org.store, job.created_by),
            )
        except SoqlError as exc:
            raise _BatchFailed(f"{QUERY_FAILED}: {exc.error_code}: {exc.message}") from None
        if t.object.name != job.object:
            raise _BatchFailed(
                f"InvalidBatch : The object in the query ({t.object.name}) does not match the job's object"
                f" ({job.object})"
            )
        if t.selects_compound:
            raise _BatchFailed(
                f"{QUERY_FAILED}: FUNCTIONALITY_NOT_ENABLED: Selecting compound data"
                " not supported in Bulk Query"
            )
        if t.selects_blob:
            raise _BatchFailed(f"{QUERY_FAILED}: Binary field not supported in Bulk Query")
        if t.is_count or t.has_aggregate or t.has_group_by:
            raise _BatchFailed(
                f"{QUERY_FAILED}: FUNCTIONALITY_NOT_ENABLED: Aggregate queries are"
                " not supported in Bulk Query"
            )
        return t

    def _split(self, job: Job, batch: Batch) -> None:
        """PK chunking: one new batch per Id range; ``batch`` itself ends NotProcessed."""
        from emulator.schema import find_object

        assert job.pk is not None
        try:
            t = self._translate(job, batch.soql)
            range_obj, range_field = t.object, "Id"
            if job.pk.parent and job.pk.parent.lower() != t.object.name.lower():
                parent = find_object(self.org.store.schema, job.pk.parent)
                ref = parent_reference(t.object, parent) if parent is not None else None
                if parent is None or ref is None:
                    raise _BatchFailed(
                        f"{QUERY_FAILED}: PK chunking parent {job.pk.parent} is not a"
                        f" parent of {t.object.name}"
                    )
                range_obj, range_field = parent, ref.name
        except _BatchFailed as exc:
            self._finish(batch, "Failed", str(exc))
            return
        starts = self._chunk_starts(range_obj, job.pk.chunk_size, job.pk.start_row)
        ranges: list[tuple[str, str | None]] = [
            (lo, starts[i + 1] if i + 1 < len(starts) else None) for i, lo in enumerate(starts)
        ]
        queries = [with_id_range(batch.soql, range_field, lo, hi) for lo, hi in ranges] or [batch.soql]
        if not self.org.limits.try_consume("DailyBulkApiBatches", len(queries)):
            self._finish(batch, "Failed", f"ExceededQuota : {BATCH_QUOTA}")
            return
        chunks = [self._new_batch(job, soql, pk_split=False) for soql in queries]
        self._finish(batch, "NotProcessed")
        for chunk in chunks:
            self._pool.submit(self._run, job, chunk)

    def _chunk_starts(self, obj: ObjectDef, size: int, start_row: str | None) -> list[str]:
        """The first Id of every run of ``size`` Ids of ``obj``'s table (deleted rows included)."""
        table = self.org.store.table_name(obj)
        where, params = ("WHERE Id >= ?", [start_row]) if start_row else ("", [])
        sql = (
            f"SELECT Id FROM (SELECT Id, row_number() OVER (ORDER BY Id) - 1 AS rn FROM {table} {where})"
            f" WHERE rn % {int(size)} = 0 ORDER BY Id"
        )
        with self.org.store.cursor() as cur:
            return [str(r[0]) for r in cur.execute(sql, params).fetchall()]

    def _process(self, job: Job, batch: Batch) -> None:
        profile = self.org.profile
        started = time.monotonic()
        if job.abort.is_set():
            self._finish(batch, "NotProcessed")
            return
        self._set(batch, "InProgress")
        try:
            t = self._translate(job, batch.soql)
        except _BatchFailed as exc:
            self._finish(batch, "Failed", str(exc))
            return
        with self._materialise:
            if job.json:
                self._write_json(job, batch, t)
            else:
                self._write_csv(batch, t)
        failure = result_failure(batch.forced_error, batch.rows, profile.query_timeout_rows, QUERY_TIMEOUT)
        if failure is not None:
            self._drop(batch)
            self._finish(batch, "Failed", failure)
            return
        if profile.job_bytes_per_s > 0:
            size = self._result_bytes(batch)
            remaining = size / profile.job_bytes_per_s - (time.monotonic() - started)
            if remaining > 0:
                time.sleep(remaining)
        batch.processing_ms = int((time.monotonic() - started) * 1000)
        self._finish(batch, "Completed")

    def _write_csv(self, batch: Batch, t: Translated) -> None:
        from emulator.bulk2 import write_csv_result

        assert batch.directory is not None
        with self.org.store.cursor() as cur:
            reader = cur.sql(t.csv_sql, params=list(t.params)).to_arrow_reader(ARROW_BATCH_ROWS)
            assert reader is not None
            header, offsets, rows = write_csv_result(reader, list(t.columns), batch.directory, ",", "\n")
        batch.header, batch.offsets, batch.rows = header, offsets, rows
        batch.results = [
            ResultFile(self._next_id("752"), a, b)
            for a, b in split_result_files(offsets, rows, self.result_file_bytes)
        ]

    def _write_json(self, job: Job, batch: Batch, t: Translated) -> None:
        from emulator.rest import build_shape, render_rows

        assert batch.directory is not None
        batch.directory.mkdir(parents=True, exist_ok=True)
        shape = build_shape(self.org.schema, t, with_ids=True)
        rows = 0
        path = batch.directory / "result.json"
        with self.org.store.cursor() as cur, open(path, "w", encoding="utf-8") as out:
            reader = cur.sql(t.rest_sql, params=list(t.params)).to_arrow_reader(ARROW_BATCH_ROWS)
            assert reader is not None
            out.write("[")
            for rb in reader:
                cols = [c.to_pylist() for c in rb.columns]
                tuples = [tuple(_epoch_ms(v) for v in row) for row in zip(*cols, strict=True)]
                for rec in render_rows(shape, tuples, job.api_version):
                    out.write(("," if rows else "") + json.dumps(rec))
                    rows += 1
            out.write("]")
        batch.rows = rows
        batch.results = [ResultFile(self._next_id("752"), 0, rows)]

    def _result_bytes(self, batch: Batch) -> int:
        if batch.offsets is not None:
            return int(batch.offsets[-1]) + len(batch.header)
        path = batch.directory / "result.json" if batch.directory is not None else None
        return path.stat().st_size if path is not None and path.exists() else 0

    def _drop(self, batch: Batch) -> None:
        batch.offsets = None
        batch.results = []
        if batch.directory is not None:
            shutil.rmtree(batch.directory, ignore_errors=True)

    def counts(self) -> dict[str, int]:
        """Batches by state over every job (for the admin API and tests)."""
        out: dict[str, int] = {}
        for job in self.all():
            for b in job.batch_list():
                out[b.state] = out.get(b.state, 0) + 1
        return out


class _BatchFailed(Exception):
    """A batch that ends Failed; the message is its stateMessage."""


def stream_result(
    batch: Batch, result: ResultFile, as_json: bool, throttle: Throttle, *, gzip: bool, cut: bool
) -> Iterator[bytes]:
    """One result file: the CSV header and its rows (or ``Records not found for this query``), or
    the JSON array, in ``READ_CHUNK`` pieces paced by ``throttle``. ``cut`` drops the connection
    half way (an injected fault)."""
    assert batch.directory is not None
    pieces: list[tuple[int, int]]  # byte ranges of the file to send, after a literal prefix
    if as_json:
        prefix = b""
        path = batch.directory / "result.json"
        pieces = [(0, path.stat().st_size)]
    elif batch.rows == 0:
        prefix, path, pieces = NO_RECORDS, batch.directory / "body.csv", []
    else:
        assert batch.offsets is not None
        prefix, path = batch.header, batch.directory / "body.csv"
        pieces = [(int(batch.offsets[result.start]), int(batch.offsets[result.end]))]
    total = len(prefix) + sum(b - a for a, b in pieces)
    limit = total // 2 if cut else total
    comp = zlib.compressobj(1, zlib.DEFLATED, 31) if gzip else None
    sent = 0

    def emit(chunk: bytes) -> Iterator[bytes]:
        out = comp.compress(chunk) if comp is not None else chunk
        wait = throttle.delay_for(len(out))
        if wait > 0:
            time.sleep(wait)
        if out:
            yield out

    head = prefix[:limit]
    sent += len(head)
    yield from emit(head)
    fd = os.open(path, os.O_RDONLY) if pieces else -1
    try:
        for lo, hi in pieces:
            pos = lo
            while pos < hi and sent < limit:
                chunk = os.pread(fd, min(READ_CHUNK, hi - pos, limit - sent), pos)
                if not chunk:
                    break
                pos += len(chunk)
                sent += len(chunk)
                yield from emit(chunk)
    finally:
        if fd >= 0:
            os.close(fd)
    if cut:
        raise ConnectionAbortedError("result download cut by an injected fault")
    if comp is not None:
        yield comp.flush()


# --- HTTP ---------------------------------------------------------------------------------------


def _version(version: str) -> str:
    try:
        major = float(version)
    except ValueError:
        major = -1.0
    if version != f"{major:.1f}" or major != int(major) or not MIN_API_VERSION <= major <= MAX_API_VERSION:
        raise AsyncApiError(404, "InvalidUrl", f"Invalid api version specified on URL: {version}")
    return version


JobAnswer = Callable[[Job, bool], Awaitable[Response]]
"""What a call on one job answers, given the job and whether to answer in JSON."""


def make_router(org: Org) -> APIRouter:
    router = APIRouter()
    base = "/services/async/{version}"
    manager = org.bulk1
    assert manager is not None

    def enter(request: Request, version: str) -> auth.Session:
        """Session check and API request counting, as the middleware does for ``/services/data``."""
        session = org.sessions.check(auth.bearer_token(request.headers))
        if session is None:
            raise AsyncApiError(401, "InvalidSessionId", "Invalid session id")
        if not org.limits.try_consume_api(categorize(request.method, request.url.path)):
            raise AsyncApiError(403, "ExceededQuota", "TotalRequests Limit exceeded.")
        _version(version)
        return session

    def render(body: dict[str, Any], root: str, as_json: bool, status: int = 200) -> Response:
        if as_json:
            return json_response(body, status)
        return xml_response(_xml_doc(root, list(body.items())), status)

    @router.post(base + "/job")
    async def create_job(request: Request, version: str) -> Response:
        as_json = request_is_json(request)
        try:
            session = enter(request, version)
            payload = parse_job_body(await request.body(), as_json)
            job = manager.create_job(
                payload, version, session.user_id, request.headers.get("sforce-enable-pkchunking")
            )
            return render(job.info(as_json), "jobInfo", as_json, 201)
        except AsyncApiError as exc:
            return error_response(exc, as_json)

    async def on_job(
        request: Request, version: str, job_id: str, answer: JobAnswer, *, in_job_format: bool = True
    ) -> Response:
        """A call on one job: session and version checked, the job found, then ``answer(job,
        as_json)``. Job calls answer in the request's format, batch calls (``in_job_format``) in the
        job's once it is found; an :class:`AsyncApiError` becomes the error in that format."""
        as_json = request_is_json(request)
        try:
            enter(request, version)
            job = manager.job(job_id)
            if in_job_format:
                as_json = job.json
            return await answer(job, as_json)
        except AsyncApiError as exc:
            return error_response(exc, as_json)

    @router.get(base + "/job/{job_id}")
    async def get_job(request: Request, version: str, job_id: str) -> Response:
        async def answer(job: Job, as_json: bool) -> Response:
            return render(job.info(as_json), "jobInfo", as_json)

        return await on_job(request, version, job_id, answer, in_job_format=False)

    @router.post(base + "/job/{job_id}")
    async def update_job(request: Request, version: str, job_id: str) -> Response:
        async def answer(job: Job, as_json: bool) -> Response:
            payload = parse_job_body(await request.body(), as_json)
            manager.set_state(job, payload.get("state"))
            return render(job.info(as_json), "jobInfo", as_json)

        return await on_job(request, version, job_id, answer, in_job_format=False)

    @router.post(base + "/job/{job_id}/batch")
    async def create_batch(request: Request, version: str, job_id: str) -> Response:
        async def answer(job: Job, as_json: bool) -> Response:
            fault = org.faults.take("POST", request.url.path, ("fail_job",))
            hold = org.faults.take("POST", request.url.path, ("hold_job",))
            soql = (await request.body()).decode("utf-8", "replace")
            batch = manager.add_batch(job, soql, None if fault is None else fault.message, hold)
            return render(batch.info(as_json), "batchInfo", as_json, 201)

        return await on_job(request, version, job_id, answer)

    @router.get(base + "/job/{job_id}/batch")
    async def list_batches(request: Request, version: str, job_id: str) -> Response:
        async def answer(job: Job, as_json: bool) -> Response:
            infos = [b.info(as_json) for b in job.batch_list()]
            if as_json:
                return json_response({"batchInfo": infos})
            inner = "".join(f"<batchInfo>{_xml_items(list(i.items()))}</batchInfo>" for i in infos)
            return xml_response(_xml_wrap("batchInfoList", inner))

        return await on_job(request, version, job_id, answer)

    @router.get(base + "/job/{job_id}/batch/{batch_id}")
    async def get_batch(request: Request, version: str, job_id: str, batch_id: str) -> Response:
        async def answer(job: Job, as_json: bool) -> Response:
            batch = manager.batch(job, batch_id)
            return render(batch.info(as_json), "batchInfo", as_json)

        return await on_job(request, version, job_id, answer)

    @router.get(base + "/job/{job_id}/batch/{batch_id}/request")
    async def batch_request(request: Request, version: str, job_id: str, batch_id: str) -> Response:
        async def answer(job: Job, as_json: bool) -> Response:
            batch = manager.batch(job, batch_id)
            return Response(batch.soql.encode(), headers={"Content-Type": "text/plain; charset=UTF-8"})

        return await on_job(request, version, job_id, answer)

    @router.get(base + "/job/{job_id}/batch/{batch_id}/result")
    async def result_list(request: Request, version: str, job_id: str, batch_id: str) -> Response:
        async def answer(job: Job, as_json: bool) -> Response:
            batch = manager.batch(job, batch_id)
            if batch.state != "Completed":
                raise AsyncApiError(400, "InvalidBatch", "Batch not completed")
            ids = [r.id for r in batch.results]
            if as_json:
                return json_response(ids)
            inner = "".join(f"<result>{i}</result>" for i in ids)
            return xml_response(_xml_wrap("result-list", inner))

        return await on_job(request, version, job_id, answer)

    @router.get(base + "/job/{job_id}/batch/{batch_id}/result/{result_id}")
    async def result(request: Request, version: str, job_id: str, batch_id: str, result_id: str) -> Response:
        async def answer(job: Job, as_json: bool) -> Response:
            batch = manager.batch(job, batch_id)
            if batch.state != "Completed":
                raise AsyncApiError(400, "InvalidBatch", "Batch not completed")
            found = next((r for r in batch.results if r.id == result_id or r.id[:15] == result_id), None)
            if found is None:
                raise AsyncApiError(400, "InvalidBatch", f"Invalid result id: {result_id}")
            gzip = "gzip" in request.headers.get("accept-encoding", "").lower()
            cut = org.faults.take("GET", request.url.path, ("cut",)) is not None
            headers = {"Content-Type": JSON_TYPE if job.json else CSV_TYPE}
            if gzip:
                headers["Content-Encoding"] = "gzip"
                headers["Vary"] = "Accept-Encoding"
            body = stream_result(
                batch, found, job.json, Throttle(org.profile.stream_bytes_per_s), gzip=gzip, cut=cut
            )
            return StreamingResponse(body, headers=headers)

        return await on_job(request, version, job_id, answer)

    @router.api_route(
        "/services/async/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    )
    async def unknown(request: Request, rest: str) -> Response:
        as_json = request_is_json(request)
        if org.sessions.check(auth.bearer_token(request.headers)) is None:
            return error_response(AsyncApiError(401, "InvalidSessionId", "Invalid session id"), as_json)
        return error_response(
            AsyncApiError(404, "InvalidUrl", f"Unknown resource: {request.url.path}"), as_json
        )

    return router


def install(app: FastAPI, org: Org) -> None:
    """Give ``org`` its Bulk 1.0 manager and mount the ``/services/async`` routes on ``app``."""
    org.bulk1 = Bulk1Manager(org, org.config.resolved_work_dir() / "bulk1")
    app.include_router(make_router(org))
