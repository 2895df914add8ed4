"""Bulk API 2.0 query jobs (SALESFORCE_API.md §3).

A job's result is materialised once, when the job runs: DuckDB streams the translator's
``csv_sql`` (every column a VARCHAR already formatted as Bulk CSV) in Arrow batches and pyarrow
writes them as CSV with every field quoted (null -> ``""``) into one body file per job, while the
byte offset of every row goes to an offsets file. A results page is then just the header plus the
byte range ``offsets[a]:offsets[b]`` of the body file, streamed in 1 MiB reads: no formatting per
request, bounded memory, and re-fetchable locators (a locator is the base64 of the row offset,
like Salesforce's own ``MTAwMDA``).

A status call (``GET /jobs/query/{id}``) answers at once with the job's state so far
(``UploadComplete``, ``InProgress``, ``JobComplete``, ``Failed``, ``Aborted``) under every
profile, as Salesforce does: a client polls until the job is terminal. ``fast`` adds no shaping;
the ``realistic`` profile adds a queue delay, a cap on running jobs (the rest stay
``UploadComplete``), processing time proportional to the result size, a bandwidth cap per result
stream and a ``QUERY_TIMEOUT``-style failure above a row count. A ``hold_job`` fault armed on the
create request keeps the job ``UploadComplete`` until it is released (tests see a running job
without sleeping).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import shutil
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from emulator.asyncjobs import AsyncJobManager, result_failure
from emulator.context import ApiError, not_found
from emulator.profiles import HOLD_MAX_S, Fault, Throttle

if TYPE_CHECKING:
    from emulator.context import Org
    from emulator.soql import Translated

log = logging.getLogger("emulator.bulk2")
JSON_UTF8 = "application/json;charset=UTF-8"
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
TERMINAL = ("JobComplete", "Failed", "Aborted")
READ_CHUNK = 1 << 20
ARROW_BATCH_ROWS = 64 * 1024
LIST_PAGE = 1000
RESULT_PAGES_PER_RESPONSE = 5
MIN_QUERY_VERSION = 47.0
JOB_RETENTION_S = 7 * 24 * 3600.0
"""Terminal jobs are deleted 7 days after they finished, as Salesforce does."""
RESULT_DISK_BUDGET = 50 * 1024**3
"""Result files beyond this total are dropped, oldest finished job first (its results then 404)."""
QUERY_TIMEOUT = "Your query request was running for too long. (QUERY_TIMEOUT: retried more than 15 times)"


def fmt_job_time(dt: datetime) -> str:
    """JobInfo datetimes: ``2024-03-05T14:07:22.000+0000``."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


def encode_locator(row: int) -> str:
    return base64.urlsafe_b64encode(str(row).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int:
    """The row offset of a locator; raises ``ValueError`` for anything that is not one of ours."""
    padded = locator + "=" * (-len(locator) % 4)
    try:
        text = base64.urlsafe_b64decode(padded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(locator) from None
    if not text.isdigit():
        raise ValueError(locator)
    return int(text)


@dataclass
class QueryJob:
    id: str
    operation: str
    object: str
    query: str
    api_version: str
    created_by: str
    created_date: datetime
    column_delimiter: str
    line_ending: str
    translated: Translated
    state: str = "UploadComplete"
    system_modstamp: datetime | None = None
    error_message: str | None = None
    rows: int = 0
    result_bytes: int = 0
    processing_ms: int = 0
    directory: Path | None = None
    header: bytes = b""
    offsets: np.ndarray | None = None
    finished_at: float | None = None
    forced_error: str | None = None
    hold: Fault | None = None
    """A ``hold_job`` fault armed on the job's create: the job stays UploadComplete until released."""
    done: threading.Event = field(default_factory=threading.Event)
    abort: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def info(self, *, full: bool, listed: bool = False) -> dict[str, Any]:
        """The job as ``GET /jobs/query/{id}`` (``full``) or the create call shows it; ``listed``:
        as the list of all jobs shows it, with ``jobType`` but no counts or times (Salesforce's
        list records stop at ``columnDelimiter``)."""
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": fmt_job_time(self.created_date),
            "systemModstamp": fmt_job_time(self.system_modstamp or self.created_date),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
        }
        if full or listed:
            body["jobType"] = "V2Query"
        body["lineEnding"] = self.line_ending
        body["columnDelimiter"] = self.column_delimiter
        if full:
            body["numberRecordsProcessed"] = self.rows if self.state == "JobComplete" else 0
            body["retries"] = 0
            body["totalProcessingTime"] = self.processing_ms
            body["isPkChunkingSupported"] = True
            if self.state == "Failed" and self.error_message:
                body["errorMessage"] = self.error_message
        return body


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def write_csv_result(
    reader: pa.RecordBatchReader,
    columns: list[str],
    directory: Path,
    delimiter: str,
    eol: str,
    abort: threading.Event | None = None,
) -> tuple[bytes, np.ndarray, int]:
    """Write ``reader``'s rows as Salesforce CSV into ``directory``; return (header, offsets, rows).

    ``offsets[i]`` is the byte offset of row ``i`` in ``body.csv`` and ``offsets[rows]`` its size.
    Every value is quoted (``"`` doubled); null is written as ``""``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    header = (delimiter.join(_quote(c) for c in columns) + eol).encode()
    fixed = len(columns) * 2 + (len(columns) - 1) + len(eol.encode())
    options = pacsv.WriteOptions(
        include_header=False, delimiter=delimiter, eol=eol, quoting_style="all_valid", batch_size=8192
    )
    string_schema = pa.schema([pa.field(f"c{i}", pa.string()) for i in range(len(columns))])
    offsets_path = directory / "offsets.i64"
    total = 0
    rows = 0
    with (
        open(directory / "body.csv", "wb") as body,
        open(offsets_path, "wb") as offs,
        pacsv.CSVWriter(body, string_schema, write_options=options) as writer,
    ):
        offs.write(np.zeros(1, dtype=np.int64).tobytes())
        for batch in reader:
            if abort is not None and abort.is_set():
                raise _Aborted
            if batch.num_rows == 0:
                continue
            arrays = []
            lengths = None
            for col in batch.columns:
                arr = col if col.type == pa.string() else pc.cast(col, pa.string())
                arr = pc.fill_null(arr, "")
                arrays.append(arr)
                ln = pc.add(pc.binary_length(arr), pc.count_substring(arr, '"'))
                lengths = ln if lengths is None else pc.add(lengths, ln)
            assert lengths is not None
            row_len = np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=np.int64) + fixed
            ends = np.cumsum(row_len) + total
            offs.write(ends.tobytes())
            total = int(ends[-1])
            rows += batch.num_rows
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=string_schema))
    size = (directory / "body.csv").stat().st_size
    if size != total:
        raise RuntimeError(f"CSV size {size} does not match computed row offsets {total}")
    offsets = np.memmap(offsets_path, dtype=np.int64, mode="r") if rows else np.zeros(1, dtype=np.int64)
    return header, offsets, rows


class _Aborted(Exception):
    pass


class JobManager(AsyncJobManager[QueryJob]):
    """Query jobs of one org: create, run (in a thread pool), page results, list, abort, delete."""

    def __init__(self, org: Org, directory: Path) -> None:
        super().__init__(org, directory, workers=64, thread_prefix="bulk2-job")
        self.created_total = 0

    # -- lifecycle --------------------------------------------------------------------------------

    def create(
        self, payload: dict[str, Any], version: str, user_id: str, *, forced_error: str | None = None,
        hold: Fault | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Create a job and start it; returns the create response (state ``UploadComplete``)."""
        from emulator.files import hidden_files_user
        from emulator.soql import SoqlError, translate

        operation = payload.get("operation")
        query = payload.get("query")
        if operation not in ("query", "queryAll"):
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid value for operation: {operation}")
        if not isinstance(query, str) or not query.strip():
            raise ApiError(400, "INVALIDJOB", "InvalidJob : Query is required for a query job")
        content_type = payload.get("contentType", "CSV")
        if content_type != "CSV":
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid value for contentType: {content_type}")
        delimiter = payload.get("columnDelimiter") or "COMMA"
        line_ending = payload.get("lineEnding") or "LF"
        if delimiter not in DELIMITERS:
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid value for columnDelimiter: {delimiter}")
        if line_ending not in LINE_ENDINGS:
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid value for lineEnding: {line_ending}")
        try:
            t = translate(
                query,
                self.org.schema,  # field-level security applied (emulator.fls)
                include_deleted=operation == "queryAll",
                api_version=version,
                now=self.org.store.clock.now(),
                files_visible_to=hidden_files_user(self.org.store, user_id),
            )
        except SoqlError as exc:
            raise ApiError(400, exc.error_code, exc.message) from None
        obj = t.object
        if not obj.queryable:
            raise ApiError(400, "INVALIDENTITY", f"sObject type '{obj.name}' does not support query")
        if not obj.bulk_supported:
            raise ApiError(400, "INVALIDENTITY", f"Entity '{obj.name}' is not supported by the Bulk API.")
        if t.selects_compound:
            raise ApiError(400, "API_ERROR", "Selecting compound data not supported in Bulk Query")
        if t.selects_blob:
            raise ApiError(400, "API_ERROR", "Binary field not supported in Bulk Query")
        if t.is_count or t.has_aggregate or t.has_group_by:
            raise ApiError(400, "API_ERROR", "Aggregate queries are not supported in Bulk Query")
        if not self.org.limits.try_consume("DailyBulkV2QueryJobs"):
            raise ApiError(
                400, "LIMIT_EXCEEDED", "Max number of concurrent or daily Bulk API 2.0 query jobs exceeded."
            )
        self._evict()
        now = self.org.store.clock.now()
        job_id = self._next_id("750")
        with self._lock:
            job = QueryJob(
                id=job_id,
                operation=operation,
                object=obj.name,
                query=query,
                api_version=version,
                created_by=user_id,
                created_date=now,
                column_delimiter=delimiter,
                line_ending=line_ending,
                translated=t,
                system_modstamp=now,
                directory=self.directory / job_id,
                forced_error=forced_error,
                hold=hold,
            )
            self._jobs[job_id] = job
            self.created_total += 1
            created = job.info(full=False)
        self._pool.submit(self._run, job)
        return created

    def _set_state(self, job: QueryJob, state: str, error: str | None = None) -> None:
        with job.lock:
            if job.state in TERMINAL:
                return
            job.state = state
            job.error_message = error
            job.system_modstamp = self.org.store.clock.now()
        if state in TERMINAL:
            job.finished_at = time.monotonic()
            job.done.set()

    def _run(self, job: QueryJob) -> None:
        profile = self.org.profile
        try:
            if job.hold is not None:
                job.hold.released.wait(job.hold.delay_s or HOLD_MAX_S)
            if profile.queue_delay_max_s > 0:
                delay = self.random.uniform(profile.queue_delay_min_s, profile.queue_delay_max_s)
                if job.abort.wait(delay):
                    return
            self._acquire_slot(job)
            try:
                if job.abort.is_set():
                    return
                # InProgress while it runs, as Salesforce reports it: a job waiting for one of the
                # materialisation slots is still queued (UploadComplete)
                with self._materialise:
                    self._set_state(job, "InProgress")
                    t0 = time.monotonic()
                    self._materialise_result(job)
                failure = result_failure(
                    job.forced_error, job.rows, profile.query_timeout_rows, QUERY_TIMEOUT
                )
                if failure is not None:
                    self._drop_files(job)
                    self._set_state(job, "Failed", failure)
                    return
                if profile.job_bytes_per_s > 0:
                    remaining = job.result_bytes / profile.job_bytes_per_s - (time.monotonic() - t0)
                    if remaining > 0 and job.abort.wait(remaining):
                        return
                job.processing_ms = int((time.monotonic() - t0) * 1000)
                self.org.limits.add_result_bytes(job.result_bytes)
                self._set_state(job, "JobComplete")
            finally:
                self._release_slot()
        except _Aborted:
            return
        except Exception as exc:  # a failed job is data for the client, not a crash of the server
            log.exception("query job %s failed", job.id)
            self._set_state(job, "Failed", f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            job.done.set()

    def _materialise_result(self, job: QueryJob) -> None:
        t = job.translated
        assert job.directory is not None
        with self.org.store.cursor() as cur:
            reader = cur.sql(t.csv_sql, params=list(t.params)).to_arrow_reader(ARROW_BATCH_ROWS)
            assert reader is not None
            header, offsets, rows = write_csv_result(
                reader,
                list(t.columns),
                job.directory,
                DELIMITERS[job.column_delimiter],
                LINE_ENDINGS[job.line_ending],
                job.abort,
            )
        job.header, job.offsets, job.rows = header, offsets, rows
        job.result_bytes = int(offsets[-1]) + len(header)

    # -- lookups ----------------------------------------------------------------------------------

    def get(self, job_id: str) -> QueryJob:
        job = self._find(job_id)
        if job is None:
            raise not_found()
        return job

    def abort(self, job_id: str) -> QueryJob:
        job = self.get(job_id)
        with job.lock:
            if job.state in TERMINAL:
                state = "Completed" if job.state == "JobComplete" else job.state
                raise ApiError(400, "INVALIDJOBSTATE", f"Aborting already {state} Job not allowed")
            job.state = "Aborted"
            job.system_modstamp = self.org.store.clock.now()
            job.finished_at = time.monotonic()
        job.abort.set()
        job.done.set()
        return job

    def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        with job.lock:
            if job.state not in TERMINAL:
                raise ApiError(
                    400, "INVALIDJOBSTATE", "Deleting a job that is not in a terminal state is not allowed"
                )
        with self._lock:
            self._jobs.pop(job.id, None)
        self._drop_files(job)

    def _evict(self) -> None:
        """Forget jobs past retention, then drop result files of the oldest finished jobs over budget."""
        now = time.monotonic()
        with self._lock:
            jobs = list(self._jobs.values())
        finished = sorted(
            (j for j in jobs if j.state in TERMINAL and j.finished_at is not None),
            key=lambda j: j.finished_at or 0,
        )
        total = sum(j.result_bytes for j in jobs if j.offsets is not None)
        for job in finished:
            expired = now - (job.finished_at or now) > JOB_RETENTION_S
            if expired or total > RESULT_DISK_BUDGET:
                if job.offsets is not None:
                    total -= job.result_bytes
                with self._lock:
                    self._jobs.pop(job.id, None)
                self._drop_files(job)

    def _drop_files(self, job: QueryJob) -> None:
        job.offsets = None
        if job.directory is not None:
            shutil.rmtree(job.directory, ignore_errors=True)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for job in self.all():
            out[job.state] = out.get(job.state, 0) + 1
        return out


# --- HTTP ----------------------------------------------------------------------------------------


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=JSON_UTF8)


def _version(ver: str) -> str:
    """``v59.0`` -> ``59.0``; Bulk API 2.0 query jobs exist from API 47.0 on."""
    if float(ver[1:]) < MIN_QUERY_VERSION:
        raise not_found()
    return ver[1:]


def _page_bytes(job: QueryJob, start: int, end: int) -> tuple[int, int]:
    assert job.offsets is not None
    return int(job.offsets[start]), int(job.offsets[end])


def stream_page(
    job: QueryJob, start: int, end: int, *, gzip: bool, throttle: Throttle, cut: bool, level: int = 1
) -> Iterator[bytes]:
    """Header + rows ``[start, end)`` of the job's body file, in ``READ_CHUNK`` pieces.

    ``cut``: stop after about half of the bytes and raise, which drops the connection mid-body.
    """
    assert job.directory is not None
    lo, hi = _page_bytes(job, start, end)
    total = len(job.header) + hi - lo
    limit = total // 2 if cut else total
    sent = 0
    comp = zlib.compressobj(level, zlib.DEFLATED, 31) if gzip else None
    fd = os.open(job.directory / "body.csv", os.O_RDONLY)
    try:
        pos = lo
        first = True
        while sent < limit:
            if first:
                chunk = job.header
                first = False
            else:
                n = min(READ_CHUNK, hi - pos)
                if n <= 0:
                    break
                chunk = os.pread(fd, n, pos)
                if not chunk:
                    break
                pos += len(chunk)
            if sent + len(chunk) > limit:
                chunk = chunk[: limit - sent]
            sent += len(chunk)
            out = comp.compress(chunk) if comp is not None else chunk
            wait = throttle.delay_for(len(out))
            if wait > 0:
                time.sleep(wait)
            if out:
                yield out
        if cut:
            raise ConnectionAbortedError("result download cut by an injected fault")
        if comp is not None:
            yield comp.flush()
    finally:
        os.close(fd)


def make_router(org: Org) -> APIRouter:
    router = APIRouter()
    base = "/services/data/{ver}/jobs/query"

    @router.post(base)
    @router.post(base + "/")
    async def create_job(request: Request, ver: str) -> Response:
        raw = await request.body()
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(400, "JSON_PARSER_ERROR", "Unexpected character in request body") from None
        if not isinstance(payload, dict):
            raise ApiError(
                400, "JSON_PARSER_ERROR", "Cannot deserialize instance of JobInfo from array value"
            )
        import anyio.to_thread

        session = request.state.sf_session
        fault = org.faults.take("POST", request.url.path, ("fail_job",))
        hold = org.faults.take("POST", request.url.path, ("hold_job",))
        created = await anyio.to_thread.run_sync(
            partial(
                org.jobs.create,
                payload,
                _version(ver),
                session.user_id,
                forced_error=None if fault is None else fault.message,
                hold=hold,
            )
        )
        return _json(created)

    @router.get(base)
    def list_jobs(request: Request, ver: str) -> Response:
        _version(ver)
        params = request.query_params
        jobs = sorted(org.jobs.all(), key=lambda j: j.id)
        job_type = params.get("jobType")
        if job_type and job_type != "V2Query":
            jobs = []
        if params.get("concurrencyMode") and params.get("concurrencyMode") != "Parallel":
            jobs = []
        if params.get("isPkChunkingEnabled", "").lower() == "true":
            jobs = []  # PK chunking is Bulk API 1.0's; no Bulk 2.0 job has it
        start = 0
        if params.get("queryLocator"):
            try:
                start = decode_locator(params["queryLocator"])
            except ValueError:
                raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator") from None
        page = jobs[start : start + LIST_PAGE]
        done = start + LIST_PAGE >= len(jobs)
        next_url = (
            None
            if done
            else f"/services/data/{ver}/jobs/query?queryLocator={encode_locator(start + LIST_PAGE)}"
        )
        records = [j.info(full=False, listed=True) for j in page]
        return _json({"done": done, "records": records, "nextRecordsUrl": next_url})

    @router.get(base + "/{job_id}")
    def get_job(ver: str, job_id: str) -> Response:
        _version(ver)
        return _json(org.jobs.get(job_id).info(full=True))  # the state so far: never waits

    @router.patch(base + "/{job_id}")
    async def patch_job(request: Request, ver: str, job_id: str) -> Response:
        _version(ver)
        try:
            payload = json.loads(await request.body() or b"{}")
        except ValueError:
            raise ApiError(400, "JSON_PARSER_ERROR", "Unexpected character in request body") from None
        state = payload.get("state") if isinstance(payload, dict) else None
        if state != "Aborted":
            org.jobs.get(job_id)
            raise ApiError(400, "INVALIDJOBSTATE", f"Invalid state transition for a query job: {state}")
        return _json(org.jobs.abort(job_id).info(full=True))

    @router.delete(base + "/{job_id}")
    def delete_job(ver: str, job_id: str) -> Response:
        _version(ver)
        org.jobs.delete(job_id)
        return Response(status_code=204)

    @router.get(base + "/{job_id}/results")
    def results(request: Request, ver: str, job_id: str) -> Response:
        job = org.jobs.get(job_id)
        if _version(ver) != job.api_version:
            raise ApiError(
                409,
                "CONFLICT",
                f"The API version of the request ({_version(ver)}) does not match the API version of the "
                f"job ({job.api_version}). Use the job's API version to get its results.",
            )
        if job.state != "JobComplete" or job.offsets is None:
            raise ApiError(
                400, "INVALIDJOBSTATE", f"Query job is not complete: the job state is {job.state}."
            )
        params = request.query_params
        start = 0
        locator = params.get("locator")
        if locator and locator != "null":
            try:
                start = decode_locator(locator)
            except ValueError:
                raise ApiError(400, "INVALID_LOCATOR", f"Invalid locator: {locator}") from None
            if start > job.rows:
                raise ApiError(400, "INVALID_LOCATOR", f"Invalid locator: {locator}")
        raw_max = params.get("maxRecords")
        max_records = org.config.bulk_default_page_rows
        if raw_max:
            if not raw_max.isdigit() or int(raw_max) <= 0:
                raise ApiError(
                    400, "INVALID_QUERY_PARAMETER_VALUE", f"Invalid value for maxRecords: {raw_max}"
                )
            max_records = int(raw_max)
        end = min(job.rows, start + max_records)
        next_locator = encode_locator(end) if end < job.rows else "null"
        gzip = "gzip" in request.headers.get("accept-encoding", "").lower()
        cut = org.faults.take("GET", request.url.path, ("cut",)) is not None
        headers = {
            "Sforce-NumberOfRecords": str(end - start),
            "Sforce-Locator": next_locator,
        }
        lo, hi = _page_bytes(job, start, end)
        if gzip:
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
        else:
            headers["Content-Length"] = str(len(job.header) + hi - lo)
        body = stream_page(
            job, start, end, gzip=gzip, throttle=Throttle(org.profile.stream_bytes_per_s), cut=cut
        )
        return StreamingResponse(body, headers=headers, media_type="text/csv")

    @router.get(base + "/{job_id}/resultPages")
    def result_pages(request: Request, ver: str, job_id: str) -> Response:
        version = _version(ver)
        if float(version) < 58.0:
            raise not_found()
        job = org.jobs.get(job_id)
        if version != job.api_version:
            raise ApiError(
                409, "CONFLICT", "The API version of the request does not match the API version of the job."
            )
        if job.state != "JobComplete":
            raise ApiError(
                400, "INVALIDJOBSTATE", f"Query job is not complete: the job state is {job.state}."
            )
        params = request.query_params
        page_rows = org.config.bulk_default_page_rows
        if params.get("maxRecords", "").isdigit() and int(params["maxRecords"]) > 0:
            page_rows = int(params["maxRecords"])
        start = 0
        if params.get("locator"):
            try:
                start = decode_locator(params["locator"])
            except ValueError:
                raise ApiError(400, "INVALID_LOCATOR", f"Invalid locator: {params['locator']}") from None
        pages: list[dict[str, str]] = []
        row = start
        prefix = f"/services/data/{ver}/jobs/query/{job.id}"
        while row < job.rows and len(pages) < RESULT_PAGES_PER_RESPONSE:
            loc = f"locator={encode_locator(row)}&" if row else ""
            pages.append({"resultUrl": f"{prefix}/results?{loc}maxRecords={page_rows}"})
            row += page_rows
        if job.rows == 0 and start == 0:
            pages.append({"resultUrl": f"{prefix}/results?maxRecords={page_rows}"})
        done = row >= job.rows
        next_url = (
            None if done else f"{prefix}/resultPages?locator={encode_locator(row)}&maxRecords={page_rows}"
        )
        return _json({"resultPages": pages, "nextRecordsUrl": next_url, "done": done})

    return router
