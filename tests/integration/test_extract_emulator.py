"""The extract stage against the Salesforce emulator, over real HTTP.

Each test restores what it changes in the shared org (faults, limits, profile, sessions) in a
``finally`` or fixture teardown, so the order of tests does not matter.
"""

from __future__ import annotations

import io
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pyarrow as pa
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from engine.errors import (
    SalesforceApiLimit,
    SalesforceAuthError,
    SalesforceBulkUnsupported,
    SalesforceNotFound,
    SalesforceQueryError,
    SalesforceQueryTimeout,
    SalesforceRequestLimitExceeded,
)
from engine.extract import idmath
from engine.extract.auth import (
    ClientCredentialsGrant,
    Credentials,
    JwtBearerGrant,
    PasswordGrant,
    RefreshTokenGrant,
    SessionIdGrant,
)
from engine.extract.bulk2 import Bulk2Api, JobInfo, JobPace, Pacing, PollPolicy
from engine.extract.client import ClientOptions, SalesforceClient
from engine.extract.csv_arrow import CsvPageParser, arrow_schema
from engine.extract.cursor import Cursor, CursorTracker
from engine.extract.describe import discover, permission_hook
from engine.extract.job_board import JobBoard
from engine.extract.model import ObjectPlan, ObjectSpec
from engine.extract.plan import Partition, bisect, plan_partitions
from engine.extract.rest import RestApi
from engine.extract.scope import ScopeRules, plan_object, select_objects
from engine.extract.soql import Soql
from engine.extract.stream import BulkOptions, Read, read_batches

pytestmark = pytest.mark.emulator

FAST_POLL = PollPolicy(first=0.05, factor=1.5, max=0.5, timeout=120)


def info(emulator: Any, key: str) -> Any:
    """The fixture's connection info (``EmulatorProcess.info``, or a plain mapping)."""
    data = emulator if isinstance(emulator, dict) else emulator.info
    return data[key]


def options(emulator: Any, **kw: Any) -> ClientOptions:
    """Zero retry waits; trust the emulator's self-signed certificate, ignore the environment."""
    return ClientOptions(retry_wait_max=0, retry_max_attempts=5, ca_file=info(emulator, "ca_file"),
                         trust_env=False, **kw)  # fmt: skip


def password_grant(emulator: Any) -> PasswordGrant:
    return PasswordGrant(
        login_url=info(emulator, "login_url"),
        client_id=info(emulator, "client_id"),
        client_secret=SecretStr(info(emulator, "client_secret")),
        username=info(emulator, "username"),
        password=SecretStr(info(emulator, "password")),
        security_token=SecretStr(info(emulator, "security_token")),
    )


class Admin:
    """The emulator's admin API (``/__emulator``), for arranging faults and reading ground truth."""

    def __init__(self, emulator: Any) -> None:
        ca = info(emulator, "ca_file")
        self.http = httpx.Client(
            verify=ssl.create_default_context(cafile=ca) if ca else True,
            trust_env=False,
            base_url=info(emulator, "instance_url") + "/__emulator",
            headers={"X-Emulator-Admin-Secret": info(emulator, "admin_secret")},
            timeout=60,
        )

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        r = self.http.request(method, path, json=body)
        r.raise_for_status()
        return r.json() if r.content else None

    def fault(self, **body: Any) -> Any:
        return self.call("POST", "/faults", body)

    def faults(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.call("GET", "/faults")["faults"]
        return out

    def sql(self, sql: str, params: list[Any] | None = None) -> list[list[Any]]:
        out: list[list[Any]] = self.call("POST", "/sql", {"sql": sql, "params": params or []})["rows"]
        return out


@pytest.fixture
def admin(emulator: Any) -> Iterator[Admin]:
    a = Admin(emulator)
    profile = a.call("GET", "/profile")
    try:
        yield a
    finally:
        a.call("DELETE", "/faults")
        a.call(
            "PATCH", "/profile", {k: profile[k] for k in ("query_timeout_rows", "error_rate") if k in profile}
        )
        a.http.close()


@pytest.fixture
def client(emulator: Any) -> Iterator[SalesforceClient]:
    with SalesforceClient.connect(password_grant(emulator), options(emulator)) as c:
        yield c


def account_plan(rest: RestApi) -> ObjectPlan:
    return plan_object(ObjectSpec.from_describe(rest.describe("Account")), ScopeRules())


# --- auth ---------------------------------------------------------------------------------


def test_login_with_each_grant(emulator: Any) -> None:
    login = info(emulator, "login_url")
    grants: list[Credentials] = [
        password_grant(emulator),
        RefreshTokenGrant(login_url=login, client_id=info(emulator, "client_id"),
                          client_secret=SecretStr(info(emulator, "client_secret")),
                          refresh_token=SecretStr(info(emulator, "refresh_token"))),
        ClientCredentialsGrant(login_url=login, client_id=info(emulator, "client_id"),
                               client_secret=SecretStr(info(emulator, "client_secret"))),
    ]  # fmt: skip
    tokens = []
    for grant in grants:
        with SalesforceClient.connect(grant, options(emulator)) as c:
            assert c.instance_url == info(emulator, "instance_url")
            assert "sobjects" in RestApi(c).resources()
            tokens.append(c.session.token)
    # a given session id + instance URL works without any login
    sid = SessionIdGrant(instance_url=tokens[0].instance_url, session_id=tokens[0].access_token)
    with SalesforceClient(sid, options(emulator)) as c:
        assert RestApi(c).describe_global()["sobjects"]
        assert c.usage.calls.get("login", 0) == 0
    assert tokens[0].org_id is not None and tokens[0].org_id.startswith("00D")


def test_bad_password_is_an_auth_error_without_the_password(emulator: Any) -> None:
    bad = password_grant(emulator).model_copy(update={"password": SecretStr("wrong-Pa55")})
    with pytest.raises(SalesforceAuthError) as e:
        SalesforceClient.connect(bad, options(emulator))
    assert "invalid_grant" in str(e.value)
    assert "wrong-Pa55" not in str(e.value) + repr(e.value.details)


# --- discovery ----------------------------------------------------------------------------


def test_describe_and_scope(client: SalesforceClient) -> None:
    rest = RestApi(client)
    specs = [ObjectSpec.from_describe(d) for d in rest.describe_global()["sobjects"]]
    decisions = {d.name: d for d in select_objects(specs, ScopeRules())}
    assert decisions["Account"].included and decisions["Contact"].included
    assert not decisions["AccountShare"].included and not decisions["AccountFeed"].included
    assert all(not d.included for n, d in decisions.items() if n.endswith("ChangeEvent"))
    plan = account_plan(rest)
    assert plan.path == "bulk2" and plan.field_names[0] == "Id"
    assert "BillingAddress" not in plan.field_names and "BillingCity" in plan.field_names
    assert {s.name for s in plan.skipped} >= {"BillingAddress"}
    attachment = plan_object(ObjectSpec.from_describe(rest.describe("Attachment")), ScopeRules())
    assert attachment.path == "rest" and attachment.blob_fields == ("Body",)
    with pytest.raises(SalesforceNotFound):
        rest.describe("NoSuchObject__c")


# --- Bulk 2.0 to Arrow equals REST --------------------------------------------------------


def _rest_value(v: Any, t: pa.DataType) -> Any:
    """A REST JSON value in the Arrow type's Python form."""
    if v is None or v == "":
        return None
    if pa.types.is_timestamp(t):
        return datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)
    if pa.types.is_date32(t):
        return datetime.strptime(v, "%Y-%m-%d").date()
    if pa.types.is_decimal(t):
        return Decimal(str(v)).quantize(Decimal(1).scaleb(-t.scale))
    if pa.types.is_float64(t):
        return float(v)
    return v


def test_bulk_query_to_arrow_equals_rest(client: SalesforceClient) -> None:
    rest, bulk = RestApi(client), Bulk2Api(client)
    plan = account_plan(rest)
    query = Soql.select("Account", plan.field_names)
    parser = CsvPageParser("Account", plan.fields)
    batches = [
        b
        for page in bulk.run_query(query, max_records=500, policy=FAST_POLL)
        for b in parser.iter_batches(page.data)
    ]
    table = pa.Table.from_batches(batches, schema=arrow_schema(plan.fields))
    by_id = {r["Id"]: r for r in table.to_pylist()}
    rest_rows = list(rest.query_records(query))
    assert len(by_id) == table.num_rows == len(rest_rows) > 0
    schema = table.schema
    for rec in rest_rows:
        got = by_id[rec["Id"]]
        for name in plan.field_names:
            t = schema.field(name).type
            want = _rest_value(rec[name], t)
            assert got[name] == want, (rec["Id"], name)
    assert client.usage.calls["bulk2_results_page"] >= 2  # several locator pages


def test_resultpages_parallel_equals_serial_and_timing(
    client: SalesforceClient, capsys: pytest.CaptureFixture[str]
) -> None:
    bulk = Bulk2Api(client)
    query = Soql.select("Contact", account_fields(client, "Contact"))
    job = bulk.create_query_job(query)
    try:
        bulk.wait(job, policy=FAST_POLL)
        t0 = time.perf_counter()
        serial = [p.data for p in bulk.iter_pages(job.id, max_records=1000)]
        t1 = time.perf_counter()
        parallel = [p.data for p in bulk.iter_pages_parallel(job.id, max_records=1000, streams=4)]
        t2 = time.perf_counter()
    finally:
        bulk._cleanup(job.id)
    assert serial == parallel and len(serial) >= 2
    size = sum(map(len, serial)) / 1e6
    with capsys.disabled():
        print(
            f"\nresults {size:.1f} MB in {len(serial)} pages: "
            f"serial {t1 - t0:.3f}s, resultPages x4 {t2 - t1:.3f}s"
        )


def account_fields(client: SalesforceClient, name: str) -> list[str]:
    return plan_object(ObjectSpec.from_describe(RestApi(client).describe(name)), ScopeRules()).field_names


def test_bulk_unsupported_object_is_typed_and_rest_works(client: SalesforceClient, admin: Admin) -> None:
    bulk, rest = Bulk2Api(client), RestApi(client)
    with pytest.raises(SalesforceBulkUnsupported):
        bulk.create_query_job(Soql.select("Attachment", ["Id", "Name"]))
    with pytest.raises(SalesforceBulkUnsupported):  # compound fields are refused by Bulk
        bulk.create_query_job(Soql.select("Account", ["Id", "BillingAddress"]))
    rows = list(rest.query_records(Soql.select("Attachment", ["Id", "BodyLength"]), include_deleted=True))
    assert rows
    # a blob body streams in chunks, and its length is what the record says
    rec = next(r for r in rows if r["BodyLength"])
    buf = io.BytesIO()
    admin.fault(path_regex=r"/Attachment/[^/]+/Body$", status=503, count=1)
    n = rest.download_blob_to("Attachment", rec["Id"], "Body", buf, chunk_size=1024)
    assert n == len(buf.getvalue()) == rec["BodyLength"]
    assert client.usage.calls["blob"] == 2  # one 503, retried


def test_describe_many_is_one_composite_call(client: SalesforceClient) -> None:
    c = client.derive()
    got = RestApi(c).describe_many(["Account", "Contact", "NoSuchObject__c"])
    assert c.usage.calls == {"rest": 1}
    assert got["Account"] == RestApi(client).describe("Account")
    assert isinstance(got["Contact"], dict) and got["Contact"]["name"] == "Contact"
    assert isinstance(got["NoSuchObject__c"], SalesforceNotFound)
    with pytest.raises(ValueError):
        RestApi(c).describe_many([f"Obj{i}__c" for i in range(26)])


def test_query_errors_are_typed(client: SalesforceClient) -> None:
    rest = RestApi(client)
    with pytest.raises(SalesforceQueryError) as e:
        list(rest.query_records("SELECT Id FROM Account WHERE"))
    assert e.value.details["sf_code"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceQueryError) as e:
        list(rest.query_records("SELECT NoSuchField__c FROM Account"))
    assert e.value.details["sf_code"] == "INVALID_FIELD"
    with pytest.raises(SalesforceQueryError) as e:
        list(rest.query_records("SELECT Id FROM NoSuchObject__c"))
    assert e.value.details["sf_code"] == "INVALID_TYPE"


# --- faults ---------------------------------------------------------------------------------


def _evict_cursors(rest: RestApi) -> None:
    """Open 11 new query cursors: Salesforce keeps 10 per user and drops the oldest."""
    for _ in range(11):
        next(rest.query_pages("SELECT Id FROM Contact", batch_size=200))


def test_lost_query_locator_resumes_by_id_in_id_order(client: SalesforceClient) -> None:
    rest = RestApi(client)
    q = Soql.select("Contact", ["Id", "LastName"]).in_id_order()
    pages = rest.query_pages(q, batch_size=200)
    first = next(pages)
    assert first.done is False and first.total_size > 600
    _evict_cursors(rest)
    ids = [r["Id"] for r in first.records] + [r["Id"] for page in pages for r in page.records]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == first.total_size
    unordered = rest.query_pages(Soql.select("Contact", ["Id"]), batch_size=200)
    next(unordered)
    _evict_cursors(rest)
    with pytest.raises(SalesforceQueryError) as e:
        list(unordered)
    assert e.value.details["sf_code"] == "INVALID_QUERY_LOCATOR"


def test_composite_first_pages_continue_as_their_own_queries(client: SalesforceClient) -> None:
    """Window probes share a composite request: each subrequest keeps its page size, and paging
    goes on from the subrequest's page (``query_pages(first=...)``), even when its cursor was lost
    (resumed by Id). Every query reads exactly the rows it reads on its own."""
    rest = RestApi(client)
    contacts = Soql.select("Contact", ["Id", "LastName"]).in_id_order()
    accounts = Soql.select("Account", ["Id", "Name"]).in_id_order()
    firsts = rest.first_pages([(contacts, False), (accounts, True)], batch_sizes=[200, None])
    assert all(isinstance(f, dict) for f in firsts), firsts
    first_contacts, first_accounts = firsts
    assert isinstance(first_contacts, dict) and isinstance(first_accounts, dict)
    assert len(first_contacts["records"]) == 200 and first_contacts["done"] is False
    assert len(first_accounts["records"]) > 200  # the server's default page size
    _evict_cursors(rest)
    got = list(rest.query_records(contacts, batch_size=200, first=first_contacts))
    assert got == list(rest.query_records(contacts)) and len(got) == first_contacts["totalSize"]
    got_accounts = list(rest.query_records(accounts, include_deleted=True, first=first_accounts))
    assert got_accounts == list(rest.query_records(accounts, include_deleted=True))


def test_session_expiry_mid_stream_is_refreshed_once(client: SalesforceClient, admin: Admin) -> None:
    bulk = Bulk2Api(client)
    plan = account_plan(RestApi(client))
    parser = CsvPageParser("Account", plan.fields)
    rows = 0
    expired = False
    for page in bulk.run_query(Soql.select("Account", plan.field_names), max_records=300, policy=FAST_POLL):
        rows += sum(b.num_rows for b in parser.iter_batches(page.data))
        if not expired:
            assert admin.call("POST", "/sessions/expire")["expired"] >= 1
            expired = True
    assert rows == RestApi(client).count(Soql.count("Account"))
    assert client.session.generation == 2 and client.usage.calls["login"] == 2


def test_requests_salesforce_refused_are_not_api_calls(client: SalesforceClient, admin: Admin) -> None:
    """A request refused for an expired session (then resent) or for a spent allowance did not count
    against DailyApiRequests; the job's "API calls" leave it out (decision 0027)."""
    rest = RestApi(client)

    def org_used() -> int:
        return int(admin.call("GET", "/limits")["used"].get("DailyApiRequests", 0))

    used, calls, refused = org_used(), client.usage.api_calls, client.usage.calls.get("refused", 0)
    assert admin.call("POST", "/sessions/expire")["expired"] >= 1
    assert rest.count(Soql.count("Account")) > 0  # 401 INVALID_SESSION_ID, a login, the same request again
    assert org_used() - used == client.usage.api_calls - calls == 1
    assert client.usage.calls["refused"] - refused == 1
    state = admin.call("GET", "/limits")
    admin.call("POST", "/limits", {"name": "DailyApiRequests", "used": state["max"]["DailyApiRequests"]})
    try:
        with pytest.raises(SalesforceRequestLimitExceeded):
            rest.count(Soql.count("Account"))
        assert client.usage.api_calls - calls == 1 and client.usage.calls["refused"] - refused == 2
    finally:
        admin.call("POST", "/limits", {"name": "DailyApiRequests", "used": state["used"]["DailyApiRequests"]})


def test_injected_5xx_and_cut_streams_are_retried(client: SalesforceClient, admin: Admin) -> None:
    rest, bulk = RestApi(client), Bulk2Api(client)
    admin.fault(path_regex=r"/query$", status=503, error_code="SERVER_UNAVAILABLE", count=2)
    admin.fault(path_regex=r"/query$", status=500, error_code="UNKNOWN_EXCEPTION", count=1)
    before = client.usage.calls.get("rest", 0)
    n = rest.count(Soql.count("Account"))
    assert n > 0 and client.usage.calls["rest"] - before == 4
    # a results page whose connection drops halfway is fetched again, whole
    admin.fault(path_regex=r"/results$", kind="cut", count=1)
    admin.fault(path_regex=r"/jobs/query/[^/]+$", method="GET", status=503, count=1)
    plan = account_plan(rest)
    parser = CsvPageParser("Account", plan.fields)
    rows = sum(
        b.num_rows
        for page in bulk.run_query(
            Soql.select("Account", plan.field_names), max_records=400, policy=FAST_POLL
        )
        for b in parser.iter_batches(page.data)
    )
    assert rows == n
    assert all(f["remaining"] == 0 for f in admin.faults())  # every armed fault fired


def test_request_limit_exceeded_is_typed(client: SalesforceClient, admin: Admin) -> None:
    rest = RestApi(client)
    state = admin.call("GET", "/limits")
    limit, used = state["max"]["DailyApiRequests"], state["used"].get("DailyApiRequests", 0)
    try:
        admin.call("POST", "/limits", {"name": "DailyApiRequests", "used": limit - 50})
        with pytest.raises(SalesforceApiLimit) as reserve:  # the reserve stops new work first
            client.check_reserve(refresh=True)
        assert type(reserve.value) is SalesforceApiLimit and reserve.value.details["remaining"] <= 50
        admin.call("POST", "/limits", {"name": "DailyApiRequests", "used": limit})
        before, refused = client.usage.calls["rest"], client.usage.calls.get("refused", 0)
        with pytest.raises(SalesforceRequestLimitExceeded) as e:
            rest.count(Soql.count("Account"))
        assert e.value.details["sf_code"] == "REQUEST_LIMIT_EXCEEDED"
        # sent once (not retried), and refused: not an API call (decision 0027)
        assert (client.usage.calls["rest"], client.usage.calls["refused"]) == (before, refused + 1)
    finally:
        admin.call("POST", "/limits", {"name": "DailyApiRequests", "used": used})


# --- planning on real data ------------------------------------------------------------------


def _count(rest: RestApi, sobject: str) -> Any:
    return lambda lo, hi: rest.count(Soql.count(sobject).with_id_range(lo, hi))


def test_count_based_planning_covers_every_row(client: SalesforceClient) -> None:
    rest, bulk = RestApi(client), Bulk2Api(client)
    total = rest.count(Soql.count("Contact"))
    lo, hi = rest.id_bounds(Soql.count("Contact"))
    target = max(1, total // 5)
    parts = plan_partitions("Contact", lo, hi, _count(rest, "Contact"), target, total=total)
    assert len(parts) >= 5 and all(p.estimated_rows <= target for p in parts)
    seen: list[str] = []
    for p in parts:
        q = p.apply(Soql.select("Contact", ["Id"]))
        ids = [
            line.strip('"')
            for page in bulk.run_query(q, policy=FAST_POLL)
            for line in page.data.decode().splitlines()[1:]
        ]
        assert len(ids) == p.estimated_rows
        assert all(p.contains(i) for i in ids)
        seen.extend(ids)
    assert len(seen) == len(set(seen)) == total
    assert sorted(idmath.to15(i) for i in seen)[0] == idmath.to15(lo or "")


def test_query_timeout_is_bisected(client: SalesforceClient, admin: Admin) -> None:
    rest, bulk = RestApi(client), Bulk2Api(client)
    total = rest.count(Soql.count("Contact"))
    lo, hi = rest.id_bounds(Soql.count("Contact"))
    admin.call("PATCH", "/profile", {"query_timeout_rows": total // 3})
    todo: list[Partition] = plan_partitions("Contact", lo, hi, _count(rest, "Contact"), total, total=total)
    assert len(todo) == 1
    done_rows, timeouts = 0, 0
    while todo:
        p = todo.pop()
        try:
            pages = list(bulk.run_query(p.apply(Soql.select("Contact", ["Id"])), policy=FAST_POLL))
        except SalesforceQueryTimeout:
            timeouts += 1
            todo.extend(bisect(p))
            continue
        done_rows += sum(len(pg.data.decode().splitlines()) - 1 for pg in pages)
    assert timeouts >= 1 and done_rows == total


def test_limits_and_usage(client: SalesforceClient) -> None:
    body = client.limits()
    assert body["DailyApiRequests"]["Max"] > 0
    assert client.usage.limit("DailyBulkV2QueryJobs") is not None
    assert client.usage.remaining is not None
    client.check_reserve(bulk_jobs=1)


# --- discovery with permissions, partitions on both paths, incremental windows ---------------


def test_discovery_reports_fields_hidden_by_field_level_security(client: SalesforceClient) -> None:
    rest = RestApi(client)
    user_id = client.session.token.user_id
    assert user_id is not None
    found = discover(rest, ScopeRules(), field_permissions=permission_hook(rest, user_id))
    account = found.plan("Account")
    assert account is not None
    assert "Tax_Id__c" not in account.field_names
    assert any(s.name == "Tax_Id__c" and "permission" in s.reason for s in account.skipped)
    assert found.plan("AccountShare") is None
    assert {d.name for d in found.decisions if d.included} == {p.name for p in found.plans}


def _one_partition(rest: RestApi, name: str) -> Partition:
    lo, hi = rest.id_bounds(Soql.count(name))
    return plan_partitions(name, lo, hi, _count(rest, name), 10**9)[0]


def _read(plan: ObjectPlan, part: Partition, since: datetime | None = None, *, deleted: bool = False) -> Read:
    soql = part.apply(Soql.select(plan.name, plan.field_names))
    if since is not None:
        soql = soql.with_window("SystemModstamp", since)
    if deleted:
        soql = soql.with_deleted(True)
    return Read(plan.name, tuple(plan.fields), soql, plan.path, all_rows=deleted)


def test_rest_path_partition_matches_count(client: SalesforceClient) -> None:
    rest = RestApi(client)
    plan = plan_object(ObjectSpec.from_describe(rest.describe("Attachment")), ScopeRules())
    assert plan.path == "rest"
    batches = list(read_batches(client, _read(plan, _one_partition(rest, "Attachment"))))
    table = pa.Table.from_batches(batches, schema=arrow_schema(plan.fields))
    assert table.num_rows == rest.count(Soql.count("Attachment")) > 0
    assert table.schema.field("CreatedDate").type == pa.timestamp("ms", tz="UTC")


def test_incremental_window_with_lag_and_dedup(client: SalesforceClient) -> None:
    rest = RestApi(client)
    plan = plan_object(ObjectSpec.from_describe(rest.describe("Invoice__c")), ScopeRules())
    part = _one_partition(rest, "Invoice__c")
    lag = timedelta(seconds=30)
    full = CursorTracker(Cursor("SystemModstamp"), lag)
    rows = 0
    for batch in read_batches(client, _read(plan, part), BulkOptions(max_records=2000, policy=FAST_POLL)):
        full.observe_batch(batch)
        rows += batch.num_rows
    cursor = full.result()
    assert rows == rest.count(Soql.count("Invoice__c")) and cursor.last is not None

    # change three records and create one; then one of the new ones goes to the recycle bin
    ids = [r["Id"] for r in rest.query_records(Soql.select("Invoice__c", ["Id"]).with_limit(3))]
    for i in ids:
        client.request("PATCH", f"sobjects/Invoice__c/{i}", json={"Summary__c": "changed by sfvault test"})
    owner = client.session.token.user_id
    created = client.request(
        "POST", "sobjects/Invoice__c", json={"Name": "sfvault-inc", "OwnerId": owner}
    ).json()["id"]
    gone = client.request(
        "POST", "sobjects/Invoice__c", json={"Name": "sfvault-del", "OwnerId": owner}
    ).json()["id"]
    client.request("DELETE", f"sobjects/Invoice__c/{gone}")

    inc = CursorTracker(cursor, lag)
    query = _read(plan, part, cursor.window_start(lag))
    kept = [inc.keep_batch(b) for b in read_batches(client, query, BulkOptions(policy=FAST_POLL))]
    new_ids = {i for b in kept for i in b.column("Id").to_pylist()}
    assert new_ids == {*ids, created}  # nothing lost, nothing already captured comes back
    deleted = _read(plan, part, deleted=True)
    deleted_ids = {
        i
        for b in read_batches(client, deleted, BulkOptions(policy=FAST_POLL))
        for i in b.column("Id").to_pylist()
    }
    assert gone in deleted_ids and created not in deleted_ids
    # a second incremental right away returns nothing new
    again = CursorTracker(inc.result(), lag)
    query2 = _read(plan, part, inc.result().window_start(lag))
    again_rows = read_batches(client, query2, BulkOptions(policy=FAST_POLL))
    assert sum(again.keep_batch(b).num_rows for b in again_rows) == 0


def test_jwt_bearer_assertion_reaches_the_token_endpoint(emulator: Any) -> None:
    """The emulator has no way yet to register the connected app's public key, so the signed
    assertion is refused; this checks the grant's wire format and the typed, secret-free error."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    grant = JwtBearerGrant(
        login_url=info(emulator, "login_url"),
        client_id=info(emulator, "client_id"),
        username=info(emulator, "username"),
        private_key=SecretStr(pem),
    )
    with pytest.raises(SalesforceAuthError) as e:
        SalesforceClient.connect(grant, options(emulator))
    assert e.value.details["sf_code"] == "invalid_grant"
    assert "PRIVATE KEY" not in str(e.value) + repr(e.value.details)


def test_threads_share_one_client_and_refresh_once(client: SalesforceClient, admin: Admin) -> None:
    rest = RestApi(client)
    expected = rest.count(Soql.count("Contact"))
    logins = client.usage.calls["login"]
    start = threading.Barrier(8)

    def work(k: int) -> int:
        start.wait(timeout=30)
        return rest.count(Soql.count("Contact"))

    assert admin.call("POST", "/sessions/expire")["expired"] >= 1
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(8)))
    assert results == [expected] * 8
    assert client.usage.calls["login"] == logins + 1  # eight 401s, one login


class _Stop(Exception):
    """Raised by a test's sleep: the caller gives up while the job runs."""


def test_a_read_job_is_deleted_only_when_asked_and_one_stopped_early_is_aborted(
    client: SalesforceClient, admin: Admin
) -> None:
    """Decision 0037: a job whose results were read is left to Salesforce's 7-day retention unless
    ``delete_after`` (``JobOptions.delete_bulk_jobs``); a job the caller stops before it ended is
    aborted either way, so it does not go on reading the org."""
    bulk = Bulk2Api(client)
    query = Soql.select("Account", ["Id"])
    kept: list[JobInfo] = []
    assert sum(p.records for p in bulk.run_query(query, policy=FAST_POLL, delete_after=False,
                                                 on_created=kept.append)) > 0  # fmt: skip
    assert bulk.get_job(kept[0].id).state == "JobComplete"  # read, and still there
    deleted: list[JobInfo] = []
    assert sum(p.records for p in bulk.run_query(query, policy=FAST_POLL, on_created=deleted.append)) > 0
    with pytest.raises(SalesforceNotFound):
        bulk.get_job(deleted[0].id)  # NOT_FOUND: deleted once read
    admin.fault(path_regex=r"/jobs/query$", method="POST", kind="hold_job")
    stopped: list[JobInfo] = []

    def give_up(seconds: float) -> None:
        raise _Stop

    with pytest.raises(_Stop):
        list(bulk.run_query(query, policy=FAST_POLL, delete_after=False, on_created=stopped.append,
                            sleep=give_up))  # fmt: skip
    assert bulk.get_job(stopped[0].id).state == "Aborted"


def test_jobs_waiting_together_are_answered_by_one_list_call(client: SalesforceClient, admin: Admin) -> None:
    """Decision 0045: the Bulk API 2.0 jobs a worker waits for share a :class:`JobBoard`, so their
    status comes from ``GET /jobs/query`` (one call for all of them) and a job the list shows ended
    is not asked about again. Four jobs are held ``UploadComplete`` by a ``hold_job`` fault until
    all four wait; from the release on, no job is asked about on its own except, at most, the last
    one left (a job waiting alone costs one call either way). Before, each asked on its own."""
    bulk = Bulk2Api(client)
    kept = admin.call("GET", "/jobs")["jobs"]
    if len(kept) > 2_000:  # the session's emulator kept more jobs than a list call reads pages of
        for job in kept:
            if job["state"] in ("JobComplete", "Failed", "Aborted"):
                bulk.delete_job(job["id"])
    pace = JobPace()
    board = JobBoard(fresh=0.05, on_change=pace.wake)
    objects = ["Account", "Contact", "Opportunity", "Lead"]
    hold = admin.fault(path_regex=r"/jobs/query$", method="POST", kind="hold_job", remaining=len(objects))
    created = threading.Semaphore(0)

    def read(sobject: str) -> int:
        pacing = Pacing(pace, None, sobject, None, board)
        pages = Bulk2Api(client).run_query(Soql.select(sobject, ["Id"]), policy=FAST_POLL, sleep=pace.sleep,
                                           pacing=pacing, on_created=lambda _: created.release())  # fmt: skip
        return sum(p.records for p in pages)

    with ThreadPoolExecutor(max_workers=len(objects)) as pool:
        futures = [pool.submit(read, o) for o in objects]
        for _ in objects:
            assert created.acquire(timeout=120)
        since = int(admin.call("GET", "/requests?limit=1")["last_seq"])
        # a list call that fails is retried as any other call
        unavailable = admin.fault(path_regex=r"/jobs/query$", method="GET", status=503, remaining=1)
        admin.call("POST", f"/faults/{hold['id']}/release")
        counts = [f.result(timeout=300) for f in futures]
    for sobject, n in zip(objects, counts, strict=True):
        assert n == admin.sql(f"SELECT count(*) FROM sf_{sobject.lower()} WHERE NOT IsDeleted")[0][0]
    calls = admin.call("GET", f"/requests?since={since}")["requests"]
    reads = ("/results", "/resultPages")
    status = [r["path"] for r in calls if r["method"] == "GET" and "/jobs/query" in r["path"]
              and r.get("category") != "admin"]  # fmt: skip
    status = [p for p in status if not p.endswith(reads)]
    listed = [p for p in status if p.endswith("/jobs/query")]
    assert listed and len(status) - len(listed) <= 1, status
    assert board.calls == len(listed) - 1  # the 503 was retried
    assert next(f for f in admin.faults() if f["id"] == unavailable["id"])["fired"] == 1
