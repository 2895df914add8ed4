"""Bulk API 2.0 query jobs: lifecycle, CSV format, locators, gzip, resultPages and errors."""

from __future__ import annotations

import csv
import gzip
import io
import re
from typing import Any

import httpx
import pytest

from tests.helpers.emulator_proc import EmulatorProcess, wait_bulk2_job

pytestmark = pytest.mark.emulator

V = "/services/data/v59.0"
JOBS = f"{V}/jobs/query"


def _err(resp: httpx.Response) -> tuple[int, str, str]:
    body = resp.json()
    assert isinstance(body, list) and len(body) == 1, body
    return resp.status_code, body[0]["errorCode"], body[0]["message"]


def _create(api: httpx.Client, soql: str, operation: str = "query", **extra: Any) -> dict[str, Any]:
    resp = api.post(
        JOBS, json={"operation": operation, "query": soql, **extra}, headers={"Accept": "text/csv"}
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _complete(api: httpx.Client, job_id: str, base: str = JOBS) -> dict[str, Any]:
    """Poll the job until it is terminal (a status call answers at once); it must be JobComplete."""
    info = wait_bulk2_job(api, f"{base}/{job_id}")
    assert info["state"] == "JobComplete", info
    return info


def test_job_lifecycle(emulator: EmulatorProcess, api: httpx.Client) -> None:
    created = _create(api, "SELECT Id, Name FROM Account")
    assert list(created) == [
        "id", "operation", "object", "createdById", "createdDate", "systemModstamp", "state",
        "concurrencyMode", "contentType", "apiVersion", "lineEnding", "columnDelimiter",
    ]  # fmt: skip
    assert created["id"].startswith("750") and len(created["id"]) == 18
    assert created["state"] == "UploadComplete" and created["object"] == "Account"
    assert created["apiVersion"] == 59.0 and isinstance(created["apiVersion"], float)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$", created["createdDate"])
    info = _complete(api, created["id"])
    live = emulator.sql("SELECT count(*) FROM sf_account WHERE NOT IsDeleted")[0][0]
    assert info["numberRecordsProcessed"] == live and info["jobType"] == "V2Query"
    listed = api.get(JOBS).json()
    assert listed["done"] is True and listed["nextRecordsUrl"] is None
    assert created["id"] in [j["id"] for j in listed["records"]]
    # a listed job as Salesforce lists it: its state and times, no counts (decision 0045)
    records = api.get(JOBS, params={"jobType": "V2Query"}).json()["records"]
    record = next(j for j in records if j["id"] == created["id"])
    assert list(record) == [
        "id", "operation", "object", "createdById", "createdDate", "systemModstamp", "state",
        "concurrencyMode", "contentType", "apiVersion", "jobType", "lineEnding", "columnDelimiter",
    ]  # fmt: skip
    assert record["state"] == "JobComplete" and record["jobType"] == "V2Query"
    assert api.get(JOBS, params={"jobType": "Classic"}).json()["records"] == []
    assert api.get(JOBS, params={"isPkChunkingEnabled": "true"}).json()["records"] == []
    aborted = api.patch(f"{JOBS}/{created['id']}", json={"state": "Aborted"})
    assert _err(aborted)[:2] == (400, "INVALIDJOBSTATE")
    deleted = api.delete(f"{JOBS}/{created['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert _err(api.get(f"{JOBS}/{created['id']}")) == (
        404,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
    assert _err(api.get(f"{JOBS}/750000000000000AAA/results"))[:2] == (404, "NOT_FOUND")


def test_csv_format_and_locator_paging(emulator: EmulatorProcess, api: httpx.Client) -> None:
    soql = "SELECT Id, Name, Industry, AnnualRevenue, CreatedDate, Owner.Name FROM Account"
    job = _create(api, soql)["id"]
    _complete(api, job)
    live = emulator.sql("SELECT count(*) FROM sf_account WHERE NOT IsDeleted")[0][0]
    page_size = max(1, live // 3 + 1)
    rows: list[list[str]] = []
    locator: str | None = None
    pages: list[tuple[str | None, bytes]] = []
    while True:
        params: dict[str, Any] = {"maxRecords": page_size}
        if locator:
            params["locator"] = locator
        resp = api.get(f"{JOBS}/{job}/results", params=params, headers={"Accept-Encoding": "identity"})
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
        lines = resp.content.split(b"\n")
        assert lines[0] == b'"Id","Name","Industry","AnnualRevenue","CreatedDate","Owner.Name"'
        page_rows = list(csv.reader(io.StringIO(resp.text)))[1:]
        assert int(resp.headers["Sforce-NumberOfRecords"]) == len(page_rows)
        rows += page_rows
        pages.append((locator, resp.content))
        locator = resp.headers["Sforce-Locator"]
        assert re.match(r"^[A-Za-z0-9_-]+$", locator)
        if locator == "null":
            break
    assert len(pages) == 3 and len(rows) == live
    # every value quoted, nulls as "", datetimes with Z
    body = pages[0][1].decode()
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(csv.reader(io.StringIO(body)))
    assert out.getvalue() == body
    assert ',""' in body
    assert re.search(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"', body)
    # a locator can be fetched again and gives the same bytes
    again = api.get(f"{JOBS}/{job}/results", params={"maxRecords": page_size, "locator": pages[1][0]})
    assert again.content == pages[1][1]
    truth = emulator.sql(
        "SELECT a.Id, coalesce(u.Name, '') FROM sf_account a LEFT JOIN sf_user u ON u.Id = a.OwnerId"
        " WHERE NOT a.IsDeleted ORDER BY a.Id LIMIT 50"
    )
    by_id = {r[0]: r for r in rows}
    for rid, owner in truth:
        assert by_id[rid][5] == owner
    bad = api.get(f"{JOBS}/{job}/results", params={"locator": "!!!"})
    assert _err(bad)[:2] == (400, "INVALID_LOCATOR")


def test_gzip_results(api: httpx.Client) -> None:
    job = _create(api, "SELECT Id, Name FROM Contact")["id"]
    _complete(api, job)
    with api.stream("GET", f"{JOBS}/{job}/results", headers={"Accept-Encoding": "gzip"}) as resp:
        raw = b"".join(resp.iter_raw())
        assert resp.headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(raw).decode()
    plain = api.get(f"{JOBS}/{job}/results", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert text == plain.text


def test_results_with_another_api_version_are_a_conflict(api: httpx.Client) -> None:
    job = _create(api, "SELECT Id FROM Lead")["id"]
    _complete(api, job)
    status, code, _ = _err(api.get(f"/services/data/v60.0/jobs/query/{job}/results"))
    assert (status, code) == (409, "CONFLICT")


def test_result_pages(emulator: EmulatorProcess, api: httpx.Client) -> None:
    base = "/services/data/v58.0/jobs/query"
    created = api.post(base, json={"operation": "query", "query": "SELECT Id FROM Contact"}).json()
    job = created["id"]
    _complete(api, job, base)
    live = emulator.sql("SELECT count(*) FROM sf_contact WHERE NOT IsDeleted")[0][0]
    per_page = max(1, live // 7 + 1)  # 7 or 8 pages: two resultPages responses
    url: str | None = f"{base}/{job}/resultPages?maxRecords={per_page}"
    result_urls: list[str] = []
    responses = 0
    while url:
        body = api.get(url).json()
        responses += 1
        assert len(body["resultPages"]) <= 5
        result_urls += [p["resultUrl"] for p in body["resultPages"]]
        url = body["nextRecordsUrl"]
        assert body["done"] is (url is None)
    assert responses == 2
    ids: list[str] = []
    for result_url in result_urls:
        resp = api.get(result_url)
        ids += [r[0] for r in list(csv.reader(io.StringIO(resp.text)))[1:]]
    assert len(ids) == len(set(ids)) == live
    old = api.get(f"/services/data/v57.0/jobs/query/{job}/resultPages")
    assert old.status_code == 404
    before_bulk2 = api.post(
        "/services/data/v46.0/jobs/query", json={"operation": "query", "query": "SELECT Id FROM Contact"}
    )
    assert _err(before_bulk2)[:2] == (404, "NOT_FOUND")


def test_query_all_includes_deleted_rows(emulator: EmulatorProcess, api: httpx.Client) -> None:
    rid = api.post(f"{V}/sobjects/Account", json={"Name": "Bulk Recycle Co"}).json()["id"]
    api.delete(f"{V}/sobjects/Account/{rid}")
    soql = f"SELECT Id, IsDeleted FROM Account WHERE Id = '{rid}'"
    live = _create(api, soql)["id"]
    everything = _create(api, soql, operation="queryAll")["id"]
    assert _complete(api, live)["numberRecordsProcessed"] == 0
    empty = api.get(f"{JOBS}/{live}/results")
    assert empty.headers["Sforce-NumberOfRecords"] == "0" and empty.headers["Sforce-Locator"] == "null"
    assert empty.text == '"Id","IsDeleted"\n'
    _complete(api, everything)
    assert api.get(f"{JOBS}/{everything}/results").text == f'"Id","IsDeleted"\n"{rid}","true"\n'


@pytest.mark.parametrize(
    ("soql", "code", "message"),
    [
        (
            "SELECT Id, Name FROM Attachment",
            "INVALIDENTITY",
            "Entity 'Attachment' is not supported by the Bulk API.",
        ),
        (
            "SELECT Id, BillingAddress FROM Account",
            "API_ERROR",
            "Selecting compound data not supported in Bulk Query",
        ),
        ("SELECT COUNT() FROM Account", "API_ERROR", "Aggregate queries are not supported in Bulk Query"),
        ("SELECT Id, Nope__c FROM Account", "INVALID_FIELD", None),
        ("SELECT Id FROM Nope__c", "INVALID_TYPE", None),
        ("SELECT Id FROM", "MALFORMED_QUERY", None),
    ],
)
def test_refused_queries(api: httpx.Client, soql: str, code: str, message: str | None) -> None:
    status, error_code, text = _err(api.post(JOBS, json={"operation": "query", "query": soql}))
    assert (status, error_code) == (400, code)
    if message is not None:
        assert text == message


def test_delimiter_and_line_ending(api: httpx.Client) -> None:
    job = _create(api, "SELECT Id, Name FROM Account LIMIT 3", columnDelimiter="PIPE", lineEnding="CRLF")[
        "id"
    ]
    info = _complete(api, job)
    assert info["columnDelimiter"] == "PIPE" and info["lineEnding"] == "CRLF"
    text = api.get(f"{JOBS}/{job}/results").text
    lines = text.split("\r\n")
    assert lines[0] == '"Id"|"Name"' and len(lines) == 5 and lines[-1] == ""


def test_bulk_jobs_are_counted(emulator: EmulatorProcess, api: httpx.Client) -> None:
    before = api.get(f"{V}/limits").json()["DailyBulkV2QueryJobs"]["Remaining"]
    job = _create(api, "SELECT Id FROM Case")["id"]
    _complete(api, job)
    after = api.get(f"{V}/limits").json()["DailyBulkV2QueryJobs"]["Remaining"]
    assert after == before - 1
    assert emulator.admin("GET", "/limits")["by_category"]["bulk2_create"] >= 1


def test_a_status_call_answers_at_once_while_the_job_is_still_running(
    emulator: EmulatorProcess, api: httpx.Client
) -> None:
    """Salesforce answers ``GET /jobs/query/{id}`` with the state so far and clients poll; the
    status call never waits for the job (under ``fast`` it once waited until JobComplete). A
    ``hold_job`` fault keeps the job UploadComplete, so the state it must report is known with no
    sleep; the profile stays ``fast``."""
    assert emulator.admin("GET", "/profile")["queue_delay_max_s"] == 0
    hold = emulator.admin(
        "POST", "/faults", json={"path_regex": r"/jobs/query$", "method": "POST", "kind": "hold_job"}
    )
    try:
        job = _create(api, "SELECT Id, Name FROM Account")["id"]
        info = api.get(f"{JOBS}/{job}").json()
        assert info["state"] == "UploadComplete" and info["numberRecordsProcessed"] == 0, info
        assert [j["state"] for j in api.get(JOBS).json()["records"] if j["id"] == job] == ["UploadComplete"]
        not_yet = api.get(f"{JOBS}/{job}/results")
        assert _err(not_yet)[:2] == (400, "INVALIDJOBSTATE")
        assert api.delete(f"{JOBS}/{job}").status_code == 400  # not terminal yet
    finally:
        emulator.admin("POST", f"/faults/{hold['id']}/release")
        emulator.admin("DELETE", "/faults")
    live = emulator.sql("SELECT count(*) FROM sf_account WHERE NOT IsDeleted")[0][0]
    assert _complete(api, job)["numberRecordsProcessed"] == live
