"""Extract one partition as Arrow record batches, through Bulk 2.0 or REST (the one entry point
the Dask tasks of ``engine.jobs`` call).

Memory is bounded by one result page (``max_records`` rows for Bulk, ~2,000 for REST) times
``streams``; batches have the object's fixed schema (:func:`csv_arrow.arrow_schema`) on both paths.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from engine.extract.bulk2 import DEFAULT_MAX_RECORDS, Bulk2Api, Operation, PollPolicy
from engine.extract.client import SalesforceClient
from engine.extract.csv_arrow import CsvPageParser
from engine.extract.model import ObjectPlan
from engine.extract.plan import Partition
from engine.extract.rest import RestApi
from engine.extract.soql import Soql


@dataclass(frozen=True)
class PartitionQuery:
    """What to read from one partition.

    Attributes:
        plan: the object's plan (fields, path).
        partition: the Id range.
        since: closed start of an incremental window on ``cursor_field`` (None = full).
        cursor_field: the window column (``SystemModstamp`` ...), required with ``since``.
        deleted_only: read deleted rows (``queryAll ... IsDeleted = true``) instead.
    """

    plan: ObjectPlan
    partition: Partition
    since: datetime | None = None
    cursor_field: str | None = None
    deleted_only: bool = False

    @property
    def operation(self) -> Operation:
        return "queryAll" if self.deleted_only else "query"

    def soql(self) -> Soql:
        q = self.partition.apply(Soql.select(self.plan.name, self.plan.field_names))
        if self.since is not None:
            if not self.cursor_field:
                raise ValueError(f"{self.plan.name}: an incremental window needs a cursor field")
            q = q.with_window(self.cursor_field, self.since)
        if self.deleted_only:
            q = q.with_deleted(True)
        return q


def iter_partition(
    client: SalesforceClient,
    query: PartitionQuery,
    *,
    max_records: int = DEFAULT_MAX_RECORDS,
    streams: int = 1,
    sleep: Callable[[float], None] = time.sleep,
    policy: PollPolicy = PollPolicy(),
) -> Iterator[pa.RecordBatch]:
    """Record batches of one partition, in page order.

    Raises:
        SalesforceQueryTimeout: the Bulk job timed out; bisect the partition and retry.
        SalesforceBulkUnsupported: Bulk refused the object; plan it on the REST path.
    """
    parser = CsvPageParser(query.plan.name, query.plan.fields)
    soql = query.soql()
    if query.plan.path == "rest":
        rest = RestApi(client)
        for page in rest.query_pages(soql.in_id_order(), include_deleted=query.operation == "queryAll"):
            if page.records:
                yield parser.records_to_batch(page.records)
        return
    bulk = Bulk2Api(client)
    for res in bulk.run_query(
        soql, operation=query.operation, max_records=max_records, streams=streams, sleep=sleep, policy=policy
    ):
        yield from parser.iter_batches(res.data)
