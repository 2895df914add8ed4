"""Bulk API 1.0 query jobs with PK chunking (SALESFORCE_API.md §4b): the ``bulk1`` strategy.

One read is one job: ``POST job`` (XML, ``contentType`` CSV, ``Sforce-Enable-PKChunking:
chunkSize=N``), one batch with the read's SOQL, ``close``; Salesforce splits the batch into one
batch per range of ``N`` Ids (the submitted batch ends ``NotProcessed``). The batch list is polled
(:func:`engine.extract.bulk2.next_poll`'s backoff, clock and sleep injected) until no batch is
``Queued``/``InProgress``; a ``Failed`` chunk is typed by :func:`classify_failed_job` (a query
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
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from engine.errors import SalesforceQueryTimeout, SfvaultError
from engine.extract.bulk2 import JobInfo, PollPolicy, next_poll
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


def _fields(elem: ElementTree.Element) -> dict[str, str]:
    return {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in elem}


def _batch(fields: dict[str, str]) -> BatchInfo:
    n = fields.get("numberRecordsProcessed", "0")
    return BatchInfo(fields["id"], fields["state"], fields.get("stateMessage") or None, int(n or 0))


def _created(text: str) -> datetime | None:
    """``2024-03-05T14:07:22.000Z`` (XML jobInfo) as an aware datetime."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


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
        self, job: JobInfo, submitted: str, *, sleep: Callable[[float], None], policy: PollPolicy
    ) -> list[BatchInfo]:
        """Poll the batch list until no batch is pending; the chunk batches (the submitted one
        too when PK chunking did not split it), in the order Salesforce lists them.

        Raises:
            SalesforceQueryTimeout: still pending after ``policy.timeout`` (the job is aborted),
                or a chunk timed out.
            SalesforceJobFailed / SalesforceBulkUnsupported: a batch Failed.
        """
        listed: list[BatchInfo] = []
        try:
            return self._wait(job, submitted, sleep=sleep, policy=policy, listed=listed)
        finally:  # the PK chunks Salesforce added beside the submitted batch count as batches too
            self.client.usage.add_batches(sum(1 for b in listed if b.id != submitted))

    def _wait(
        self, job: JobInfo, submitted: str, *, sleep: Callable[[float], None], policy: PollPolicy,
        listed: list[BatchInfo],
    ) -> list[BatchInfo]:  # fmt: skip
        """:meth:`wait`'s loop; ``listed`` is left holding the last batch list read."""
        clock = self.client.clock
        started = clock.monotonic()
        attempt = 0
        while True:
            listed[:] = self.batches(job.id)
            chunks = [b for b in listed if b.id != submitted] or [b for b in listed if b.id == submitted]
            pending = any(b.state in PENDING for b in listed) or not chunks
            at = next_poll("InProgress" if pending else "JobComplete", attempt, clock.now(), policy)
            if at is None:
                break
            if clock.monotonic() - started > policy.timeout:
                self.set_state(job.id, "Aborted")
                raise SalesforceQueryTimeout(
                    object=job.object, what=f"batches still pending after {policy.timeout:.0f}s"
                )
            sleep(max(0.0, (at - clock.now()).total_seconds()))
            attempt += 1
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
    ) -> Iterator[bytes]:
        """Create the job, run ``soql`` as one PK-chunked batch, yield every result file (CSV
        with its header row); files of ``Records not found for this query`` are skipped.

        ``prefetch`` result files download while the caller parses the one yielded (one job
        read by one task: its downloads and Salesforce's answers overlap the parsing); memory
        holds up to ``prefetch + 1`` files of at most ``chunk_size`` rows."""
        job = self.create_job(soql.sobject, operation, chunk_size)
        if on_created is not None:
            on_created(job)
        done = False
        try:
            submitted = self.add_batch(job.id, str(soql), soql.sobject)
            self.set_state(job.id, "Closed")
            chunks = self.wait(job, submitted.id, sleep=sleep, policy=policy)
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
