"""The extract stage's Bulk API 1.0 path (``engine.extract.bulk1``) against the emulator, over HTTP.

A ``bulk1`` read (one job, PK-chunked, every chunk's result file a page) types exactly the rows a
``bulk2`` read of the same query types; an expired session is renewed from the async API's XML
``InvalidSessionId``; a chunk that times out is a :class:`SalesforceQueryTimeout` (the planner
bisects) and the job is aborted.
"""

# ruff: noqa: F811  (the shared fixtures are imported by name; tests take them as parameters)
from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
import pytest

from engine.errors import SalesforceApiLimit, SalesforceQueryTimeout, SalesforceRequestLimitExceeded
from engine.extract.bulk1 import Bulk1Api
from engine.extract.bulk2 import JobInfo
from engine.extract.client import SalesforceClient
from engine.extract.model import ObjectSpec
from engine.extract.rest import RestApi
from engine.extract.scope import ScopeRules, plan_object
from engine.extract.soql import Soql
from engine.extract.stream import BulkOptions, Read, read_batches
from tests.integration.test_extract_emulator import FAST_POLL, Admin, admin, client  # noqa: F401

pytestmark = pytest.mark.emulator


def _read(client: SalesforceClient, name: str, path: Any, *, all_rows: bool = False) -> Read:
    plan = plan_object(ObjectSpec.from_describe(RestApi(client).describe(name)), ScopeRules())
    soql = Soql.select(plan.name, plan.field_names)
    return Read(plan.name, tuple(plan.fields), soql.with_deleted(True) if all_rows else soql, path, all_rows)


def _table(client: SalesforceClient, read: Read, **kw: Any) -> pa.Table:
    batches = list(read_batches(client, read, BulkOptions(policy=FAST_POLL, **kw)))
    return pa.Table.from_batches(batches).sort_by("Id")


@pytest.mark.parametrize(("name", "all_rows"), [("Contact", False), ("Account", True)])
def test_a_bulk1_read_types_exactly_the_rows_of_a_bulk2_read(
    client: SalesforceClient, admin: Admin, name: str, all_rows: bool
) -> None:
    created: list[JobInfo] = []
    via1 = _table(
        client, _read(client, name, "bulk1", all_rows=all_rows), max_records=5_000, on_created=created.append
    )
    via2 = _table(client, _read(client, name, "bulk2", all_rows=all_rows))
    assert via1.num_rows == via2.num_rows > (0 if all_rows else 5_000)
    assert via1.equals(via2)
    [job] = created
    assert job.id.startswith("750") and isinstance(job.created_date, datetime)
    if all_rows:  # queryAll ... IsDeleted = true: the recycle bin
        deleted = admin.sql(f"SELECT count(*) FROM sf_{name.lower()} WHERE IsDeleted")[0][0]
        assert via1.column("IsDeleted").to_pylist().count(True) == via1.num_rows == deleted
    assert client.usage.calls.get("bulk1_job", 0) > 0 and client.usage.calls.get("bulk1_results", 0) >= 2


def test_an_expired_session_is_renewed_from_the_async_apis_xml_error(
    client: SalesforceClient, admin: Admin
) -> None:
    Bulk1Api(client).create_job("Account", "query", None)  # the session is live
    assert admin.call("POST", "/sessions/expire")["expired"] >= 1
    job = Bulk1Api(client).create_job("Account", "query", 1_000)
    assert job.state == "Open" and job.object == "Account"


def test_a_chunk_that_times_out_is_a_query_timeout(client: SalesforceClient, admin: Admin) -> None:
    admin.call("PATCH", "/profile", {"query_timeout_rows": 10})
    with pytest.raises(SalesforceQueryTimeout):
        list(
            read_batches(
                client, _read(client, "Contact", "bulk1"), BulkOptions(policy=FAST_POLL, max_records=5_000)
            )
        )


def test_the_daily_batch_allowance_is_kept_in_reserve(client: SalesforceClient, admin: Admin) -> None:
    """A bulk1 read is refused before it starts when DailyBulkApiBatches would fall below the
    reserve; and a batch Salesforce refuses for quota (``ExceededQuota``) is a limit error."""
    was = admin.call("GET", "/limits")["used"].get("DailyBulkApiBatches", 0)
    job = Bulk1Api(client).create_job("Account", "query", None)
    admin.call("POST", "/limits", {"name": "DailyBulkApiBatches", "used": 15_000 - 10})
    try:
        with pytest.raises(SalesforceApiLimit) as info:
            client.check_reserve(bulk_batches=2)
        assert info.value.details["what"] == "DailyBulkApiBatches" and info.value.details["remaining"] == 10
        admin.call("POST", "/limits", {"name": "DailyBulkApiBatches", "used": 15_000})
        with pytest.raises(SalesforceRequestLimitExceeded):
            Bulk1Api(client).add_batch(job.id, "SELECT Id FROM Account")
    finally:
        admin.call("POST", "/limits", {"name": "DailyBulkApiBatches", "used": was})


@pytest.mark.parametrize("prefetch", [1, 3])
def test_result_files_downloaded_ahead_come_in_chunk_order_and_equal_one_at_a_time(
    client: SalesforceClient, prefetch: int
) -> None:
    """One PK-chunked job read by one task downloads the next chunks' files while it parses
    (decision 0028); the files and their order are those of a read one file at a time."""
    soql = Soql.select("Contact", ["Id", "LastName"])
    api = Bulk1Api(client)
    one = list(api.run_query(soql, chunk_size=1_000, policy=FAST_POLL, prefetch=0))
    ahead = list(api.run_query(soql, chunk_size=1_000, policy=FAST_POLL, prefetch=prefetch))
    assert len(one) > prefetch + 1
    assert ahead == one
