"""Read one query as typed Arrow record batches, through Bulk 2.0 or REST: the one stream
interface the Dask tasks of ``engine.jobs`` call.

Both paths give batches of the object's fixed schema (:func:`csv_arrow.arrow_schema` of the
query's fields), with the same values for the same records:

* **Bulk 2.0**: CSV result pages parsed by :meth:`CsvPageParser.iter_batches`;
* **REST**: query pages (JSON, numbers kept as their exact decimal text) converted by
  :meth:`CsvPageParser.records_to_batch`, with no CSV text in between (a bare ``\\r`` in a value
  does not survive a CSV round trip through a writer that does not quote it: SFV-411).

That both paths type a record identically is hypothesis-tested in
``tests/unit/test_extract_stream_paths.py``. Memory is bounded by one result page (``max_records``
rows for Bulk, ~2,000 for REST) times ``streams``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

from engine.extract.bulk1 import Bulk1Api
from engine.extract.bulk2 import (
    DEFAULT_MAX_RECORDS,
    Bulk2Api,
    JobInfo,
    JobPace,
    Pacing,
    PageSize,
    PollPolicy,
    ReadGate,
)
from engine.extract.client import SalesforceClient
from engine.extract.csv_arrow import CsvPageParser
from engine.extract.job_board import JobBoard
from engine.extract.model import FieldSpec
from engine.extract.rest import RestApi
from engine.extract.soql import Soql

Path = Literal["bulk2", "bulk1", "rest"]


@dataclass(frozen=True)
class Read:
    """One query to read.

    Attributes:
        sobject: the object (for errors and usage accounting).
        fields: the SELECT list as describe fields, in ``soql``'s order; they type the batches.
        soql: the query; REST reads it in ``Id`` order (so a lost locator resumes by Id).
        path: ``bulk2`` (a query job), ``bulk1`` (a Bulk API 1.0 job, PK-chunked; every chunk's
            result file is a page) or ``rest`` (query paging).
        all_rows: ``queryAll`` (deleted and archived rows too) instead of ``query``.
    """

    sobject: str
    fields: tuple[FieldSpec, ...]
    soql: Soql
    path: Path
    all_rows: bool = False

    def __post_init__(self) -> None:
        if [f.name for f in self.fields] != list(self.soql.fields):
            raise ValueError(f"{self.sobject}: the fields of a Read must be its SELECT list, in order")


@dataclass(frozen=True)
class BulkOptions:
    """How a Bulk read pages and polls (ignored by REST reads).

    ``on_complete`` is called once the job is complete, before its first page is fetched (a Dask
    task that left its worker's thread pool while Salesforce processed the job rejoins there).
    """

    max_records: int = DEFAULT_MAX_RECORDS
    streams: int = 1
    policy: PollPolicy = field(default_factory=PollPolicy)
    sleep: Callable[[float], None] = time.sleep
    on_complete: Callable[[], None] | None = None
    on_created: Callable[[JobInfo], None] | None = None
    """Gets the job's info once created (``created_date``: Salesforce's clock before the read)."""
    max_bytes: int | None = None
    """Bound each result page by bytes too (:class:`engine.extract.bulk2.PageSize`): fewer rows
    per page for wide rows."""
    row_widths: dict[str, float] | None = None
    """Row widths learnt by earlier reads (shared by a worker's tasks), keyed by object and SELECT."""
    pace: JobPace | None = None
    """Paces the status polls by the jobs of the read's API completed before (shared by a
    worker's tasks, one per API: a Bulk 1.0 job's pace is not a Bulk 2.0 job's); its ``sleep``
    replaces ``sleep`` (a waiting job looks again as soon as another one completes)."""
    expected_records: int | None = None
    """The records the job is expected to return (the partition's estimate), for ``pace``."""
    delete_jobs: bool = True
    """Delete a Bulk API 2.0 job once its results are read (``JobOptions.delete_bulk_jobs``)."""
    gate: ReadGate | None = None
    """The worker's :class:`~engine.extract.bulk2.ReadGate` (with ``pace``): a status call waits
    until the worker could read the job's results."""
    board: JobBoard | None = None
    """The worker's :class:`~engine.extract.job_board.JobBoard` (with ``pace``, Bulk API 2.0 only):
    one list call answers the status of all the worker's waiting jobs."""


def read_batches(
    client: SalesforceClient, read: Read, bulk: BulkOptions | None = None
) -> Iterator[pa.RecordBatch]:
    """Record batches of ``read``, in page order; empty pages yield nothing.

    Raises:
        SalesforceQueryTimeout: the Bulk job timed out; bisect the partition and retry.
        SalesforceBulkUnsupported: Bulk refused the object; plan it on the REST path.
        SalesforceDataError: a value does not fit its field's type.
    """
    parser = CsvPageParser(read.sobject, read.fields)
    if read.path == "rest":
        yield from rest_batches(RestApi(client), parser, read.soql.in_id_order(), all_rows=read.all_rows)
        return
    b = bulk or BulkOptions()
    board = b.board if read.path == "bulk2" else None
    pacing = Pacing(b.pace, b.expected_records, read.sobject, b.gate, board) if b.pace is not None else None
    sleep = b.pace.sleep if b.pace is not None and b.sleep is time.sleep else b.sleep
    if read.path == "bulk1":
        files = Bulk1Api(client).run_query(
            read.soql, operation="queryAll" if read.all_rows else "query", chunk_size=b.max_records,
            sleep=sleep, policy=b.policy, on_created=b.on_created, on_complete=b.on_complete,
            prefetch=b.streams,  # the next chunk's file downloads while this one is parsed
            pacing=pacing,
        )  # fmt: skip
        for data in files:
            yield from parser.iter_batches(data)
            del data
        return
    size = None
    if b.max_bytes:
        key = f"{read.sobject}:{','.join(read.soql.fields)}:{int(read.all_rows)}"
        size = PageSize(b.max_bytes, key, b.row_widths)
    pages = Bulk2Api(client).run_query(
        read.soql, operation="queryAll" if read.all_rows else "query", max_records=b.max_records,
        streams=b.streams, sleep=sleep, policy=b.policy, on_complete=b.on_complete,
        on_created=b.on_created, size=size, pacing=pacing, delete_after=b.delete_jobs,
    )  # fmt: skip
    for page in pages:
        data = page.data
        del page  # hold one reference to the page only, dropped before the next one downloads
        yield from parser.iter_batches(data)
        del data


def rest_batches(
    rest: RestApi,
    parser: CsvPageParser,
    soql: Soql,
    *,
    all_rows: bool = False,
) -> Iterator[pa.RecordBatch]:
    """REST query pages of ``soql`` as batches of ``parser``'s schema (one batch per non-empty page)."""
    for page in rest.query_pages(soql, include_deleted=all_rows, sobject=parser.sobject, exact_numbers=True):
        if page.records:
            yield parser.records_to_batch(page.records)


def field_subset(fields: Sequence[FieldSpec], names: Sequence[str]) -> tuple[FieldSpec, ...]:
    """The describe fields named ``names``, in that order (a SELECT of some of an object's fields)."""
    by_name = {f.name: f for f in fields}
    return tuple(by_name[n] for n in names)
