"""Bulk API 1.0 query jobs with PK chunking (SALESFORCE_API.md §4b): the ``bulk1`` strategy.

One read is one job: ``POST job`` (XML, ``contentType`` CSV, ``Sforce-Enable-PKChunking:
chunkSize=N``), one batch with the read's SOQL, ``close``; Salesforce splits the batch into one
batch per range of ``N`` Ids (the submitted batch ends ``NotProcessed``). The batch list is polled
until no batch is ``Queued``/``InProgress`` by Bulk 2.0's loop (:func:`engine.extract.bulk2.wait_for_job`:
the job's batch list read as one job's status, so its polls are paced by the worker's
:class:`~engine.extract.bulk2.JobPace` of Bulk 1.0 jobs as Bulk 2.0's are, from what Salesforce
reports: the records of the completed chunks and the time from the first batch's ``createdDate``
to the last ``systemModstamp``); a ``Failed`` chunk is typed by :func:`classify_failed_job` (a query
timeout makes the planner bisect, as with Bulk 2.0), and the job is aborted. Then every result
file of every completed chunk, in chunk order, is one CSV page for
:meth:`engine.extract.csv_arrow.CsvPageParser.iter_batches`: the same parser, hence the same
typed rows, as the Bulk 2.0 path. A result file holds at most one chunk, so ``N`` bounds the
memory of a page (the caller passes its page size).

Calls are counted as ``bulk1_job`` (job, batch and result-list calls) and ``bulk1_results``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, Protocol
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from engine.errors import SfvaultError
from engine.extract.bulk2 import JobInfo, Pacing, PollPolicy, wait_for_job
from engine.extract.classify import classify_failed_job
from engine.extract.client import SalesforceClient
from engine.extract.soql import Soql

NS = "http://www.force.com/2009/06/asyncapi/dataload"
XML_HEADERS = {"Content-Type": "application/xml; charset=UTF-8"}
PK_MAX_CHUNK = 250_000
NO_RECORDS = b"Records not found for this query"
PENDING = frozenset({"Queued", "InProgress"})
Operation = Literal["query", "queryAll"]


@dataclass(frozen=True)
class BatchInfo:
    id: str
    state: str
    state_message: str | None = None
    records: int = 0
    created: datetime | None = None
    modstamp: datetime | None = None
    """``systemModstamp``: when the batch last changed state (for a finished batch, its end)."""


def _fields(elem: ElementTree.Element) -> dict[str, str]:
    return {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in elem}


def _batch(fields: dict[str, str]) -> BatchInfo:
    n = fields.get("numberRecordsProcessed", "0")
    return BatchInfo(
        fields["id"], fields["state"], fields.get("stateMessage") or None, int(n or 0),
        _created(fields.get("createdDate", "")), _created(fields.get("systemModstamp", "")),
    )  # fmt: skip


def _created(text: str) -> datetime | None:
    """``2024-03-05T14:07:22.000Z`` (XML jobInfo) as an aware datetime."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def job_time_ms(batches: list[BatchInfo]) -> int | None:
    """How long Salesforce took over the batches, by its own clock: the first ``createdDate`` to
    the last ``systemModstamp`` (the chunks run in parallel, so the sum of their processing
    times is not the job's time); None when unknown or not positive (a clock that stood still)."""
    starts = [b.created for b in batches if b.created is not None]
    ends = [b.modstamp for b in batches if b.modstamp is not None]
    if not starts or not ends:
        return None
    ms = int((max(ends) - min(starts)).total_seconds() * 1000)
    return ms if ms > 0 else None


class BatchLister(Protocol):
    def batches(self, job_id: str) -> list[BatchInfo]: ...

    def set_state(self, job_id: str, state: Literal["Closed", "Aborted"]) -> None: ...


@dataclass
class ChunkedJob:
    """A PK-chunked job's batch list as one job's status (a :class:`~engine.extract.bulk2.JobPoller`),
    so :func:`~engine.extract.bulk2.wait_for_job` paces its polls as Bulk 2.0's: ``UploadComplete``
    while no chunk has started (none is listed yet, or all are ``Queued``), ``InProgress`` while a
    batch is pending, then ``JobComplete`` with the chunks' records and :func:`job_time_ms`, or
    ``Failed`` when a chunk did not complete."""

    api: BatchLister
    job: JobInfo
    submitted: str
    listed: list[BatchInfo] = field(default_factory=list)
    """The batch list as last read."""

    def chunks(self) -> list[BatchInfo]:
        """The chunk batches (the submitted one too when PK chunking did not split it)."""
        split = [b for b in self.listed if b.id != self.submitted]
        return split or [b for b in self.listed if b.id == self.submitted]

    def get_job(self, job_id: str) -> JobInfo:
        self.listed = self.api.batches(job_id)
        chunks = self.chunks()
        if not chunks or all(b.state == "Queued" for b in chunks):  # the org has not started it
            return replace(self.job, state="UploadComplete")
        if any(b.state in PENDING for b in self.listed):
            return replace(self.job, state="InProgress")
        state = "JobComplete" if all(b.state == "Completed" for b in chunks) else "Failed"
        return replace(self.job, state=state, records_processed=sum(b.records for b in chunks),
                       processing_ms=job_time_ms(self.listed))  # fmt: skip

    def abort_job(self, job_id: str) -> JobInfo:
        self.api.set_state(job_id, "Aborted")
        return replace(self.job, state="Aborted")


class Bulk1Api:
    """Bulk API 1.0 query jobs of one client (XML job calls, CSV results)."""

    def __init__(self, client: SalesforceClient) -> None:
        self.client = client

    def _path(self, *parts: str) -> str:
        return f"/services/async/{self.client.api_version}/" + "/".join(parts)

    def _xml(
        self, method: str, path: str, body: bytes | None = None, *, headers: dict[str, str] | None = None,
        sobject: str = "",
    ) -> ElementTree.Element:  # fmt: skip
        resp = self.client.request(
            method,
            path,
            "bulk1_job",
            content=body,
            headers={**XML_HEADERS, **(headers or {})},
            sobject=sobject,
        )
        return ElementTree.fromstring(resp.content)

    def create_job(self, sobject: str, operation: Operation, chunk_size: int | None) -> JobInfo:
        """``POST job``; ``chunk_size`` turns PK chunking on (at most 250,000 Ids a chunk)."""
        doc = (
            f'<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="{NS}"><operation>{operation}</operation>'
            f"<object>{escape(sobject)}</object><contentType>CSV</contentType></jobInfo>"
        )
        headers: dict[str, str] = {}
        if chunk_size:
            headers["Sforce-Enable-PKChunking"] = f"chunkSize={min(PK_MAX_CHUNK, max(1, chunk_size))}"
        f = _fields(self._xml("POST", self._path("job"), doc.encode(), headers=headers, sobject=sobject))
        return JobInfo(
            id=f["id"],
            state=f["state"],
            object=f.get("object", sobject),
            operation=operation,
            api_version=f.get("apiVersion", ""),
            created_date=_created(f.get("createdDate", "")),
        )

    def add_batch(self, job_id: str, soql: str, sobject: str = "") -> BatchInfo:
        resp = self.client.request(
            "POST", self._path("job", job_id, "batch"), "bulk1_job", content=soql.encode(),
            headers={"Content-Type": "text/csv; charset=UTF-8"}, sobject=sobject,
        )  # fmt: skip
        self.client.usage.add_batches(1)  # DailyBulkApiBatches, whatever becomes of the batch
        return _batch(_fields(ElementTree.fromstring(resp.content)))

    def set_state(self, job_id: str, state: Literal["Closed", "Aborted"]) -> None:
        doc = f'<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="{NS}"><state>{state}</state></jobInfo>'
        self._xml("POST", self._path("job", job_id), doc.encode())

    def batches(self, job_id: str) -> list[BatchInfo]:
        root = self._xml("GET", self._path("job", job_id, "batch"))
        return [_batch(_fields(b)) for b in root]

    def result_ids(self, job_id: str, batch_id: str) -> list[str]:
        root = self._xml("GET", self._path("job", job_id, "batch", batch_id, "result"))
        return [r.text or "" for r in root]

    def result(self, job_id: str, batch_id: str, result_id: str) -> bytes:
        resp = self.client.request(
            "GET", self._path("job", job_id, "batch", batch_id, "result", result_id), "bulk1_results",
            headers={"Accept-Encoding": "gzip"},
        )  # fmt: skip
        self.client.usage.add_result_bytes(len(resp.content))
        return resp.content

    def wait(
        self, job: JobInfo, submitted: str, *, sleep: Callable[[float], None], policy: PollPolicy,
        pacing: Pacing | None = None,
    ) -> list[BatchInfo]:  # fmt: skip
        """Poll the batch list until no batch is pending (paced by ``pacing`` as Bulk 2.0's
        polls are); the chunk batches (the submitted one too when PK chunking did not split it),
        in the order Salesforce lists them.

        Raises:
            SalesforceQueryTimeout: still pending after ``policy.timeout`` (the job is aborted),
                or a chunk timed out.
            SalesforceJobFailed / SalesforceBulkUnsupported: a batch Failed.
        """
        status = ChunkedJob(self, job, submitted)
        try:
            wait_for_job(status, job, clock=self.client.clock, sleep=sleep, policy=policy, pacing=pacing)
        finally:  # the PK chunks Salesforce added beside the submitted batch count as batches too
            self.client.usage.add_batches(sum(1 for b in status.listed if b.id != submitted))
        chunks = status.chunks()
        failed = next((b for b in chunks if b.state != "Completed"), None)
        if failed is not None:
            raise classify_failed_job(job.object, "Failed", failed.state_message or failed.state)
        return chunks

    def _results(self, job_id: str, chunks: list[BatchInfo], prefetch: int) -> Iterator[bytes]:
        """The result files of ``chunks`` in order, ``prefetch`` of them downloading ahead."""

        def files_of(chunk: BatchInfo) -> list[bytes]:
            out = [self.result(job_id, chunk.id, rid) for rid in self.result_ids(job_id, chunk.id)]
            return [data for data in out if data.strip() != NO_RECORDS]

        if prefetch <= 0:
            for chunk in chunks:
                yield from files_of(chunk)
            return
        pool = ThreadPoolExecutor(max_workers=prefetch, thread_name_prefix="bulk1-results")
        try:
            ahead: deque[Future[list[bytes]]] = deque()
            pending = iter(chunks)
            for chunk in pending:
                ahead.append(pool.submit(files_of, chunk))
                if len(ahead) > prefetch:
                    break
            while ahead:
                files = ahead.popleft().result()
                nxt = next(pending, None)
                if nxt is not None:
                    ahead.append(pool.submit(files_of, nxt))
                while files:
                    yield files.pop(0)
        finally:
            for fut in ahead:
                fut.cancel()
            pool.shutdown(wait=True)

    def run_query(
        self,
        soql: Soql,
        *,
        operation: Operation = "query",
        chunk_size: int | None = 100_000,
        sleep: Callable[[float], None] = time.sleep,
        policy: PollPolicy = PollPolicy(),
        on_created: Callable[[JobInfo], None] | None = None,
        on_complete: Callable[[], None] | None = None,
        prefetch: int = 0,
        pacing: Pacing | None = None,
    ) -> Iterator[bytes]:
        """Create the job, run ``soql`` as one PK-chunked batch, yield every result file (CSV
        with its header row); files of ``Records not found for this query`` are skipped.

        ``prefetch`` result files download while the caller parses the one yielded (one job
        read by one task: its downloads and Salesforce's answers overlap the parsing); memory
        holds up to ``prefetch + 1`` files of at most ``chunk_size`` rows. ``pacing`` paces the
        status polls by the Bulk 1.0 jobs already completed (:class:`~engine.extract.bulk2.JobPace`)."""
        job = self.create_job(soql.sobject, operation, chunk_size)
        if on_created is not None:
            on_created(job)
        done = False
        try:
            submitted = self.add_batch(job.id, str(soql), soql.sobject)
            self.set_state(job.id, "Closed")
            chunks = self.wait(job, submitted.id, sleep=sleep, policy=policy, pacing=pacing)
            done = True
            if on_complete is not None:
                on_complete()
            yield from self._results(job.id, chunks, prefetch)
        finally:
            if not done:
                try:
                    self.set_state(job.id, "Aborted")
                except SfvaultError:
                    pass  # the read's own error is the one to report
