"""Bulk API 1.0 (``/services/async``) against the emulator, through published clients unchanged.

``salesforce-bulk`` (XML jobs, CSV results, PK chunking) and simple-salesforce's ``sf.bulk``
handler (JSON jobs and results) must get exactly the rows the REST API returns for the same SOQL;
the raw requests check the wire shapes the clients rely on (``Content-Type`` exactly
``application/json``, the async API's error documents, batch states) and the counters.
"""

from __future__ import annotations

import csv
import io
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from salesforce_bulk import SalesforceBulk
from salesforce_bulk.salesforce_bulk import BulkApiError
from simple_salesforce import Salesforce

from tests.helpers.emulator_proc import EmulatorProcess, poll_for, simple_salesforce

pytestmark = pytest.mark.emulator

NS = "{http://www.force.com/2009/06/asyncapi/dataload}"
ASYNC = "/services/async/59.0"
SOQL = "SELECT Id, Name, Industry, OwnerId, CreatedDate FROM Account"


def _login(emulator: EmulatorProcess) -> Salesforce:
    return simple_salesforce(emulator)


@pytest.fixture()
def bulk(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> SalesforceBulk:
    """salesforce-bulk on the emulator; it calls ``requests.post`` itself, so trust our CA by env."""
    if emulator.info.get("ca_file"):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emulator.info["ca_file"])
    return SalesforceBulk(sessionId=emulator.token(), host=emulator.url, API_version="59.0")


@pytest.fixture()
def raw(emulator: EmulatorProcess, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=emulator.url,
        verify=emulator.verify,
        trust_env=False,
        timeout=120,
        headers={"X-SFDC-Session": token, "Content-Type": "application/xml; charset=UTF-8"},
    ) as client:
        yield client


def _rest_rows(sf: Salesforce, soql: str, *, include_deleted: bool = False) -> dict[str, dict[str, Any]]:
    """REST ``query_all`` rows by Id, values as Bulk CSV writes them ('' for null, ...Z times)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in sf.query_all(soql, include_deleted=include_deleted)["records"]:
        row = {}
        for k, v in rec.items():
            if k == "attributes":
                continue
            if isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", v):
                v = v[:-5] + "Z"
            row[k] = "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        out[row["Id"]] = row
    return out


def _xml(resp: httpx.Response) -> dict[str, str]:
    root = ET.fromstring(resp.content)
    return {child.tag.replace(NS, ""): child.text or "" for child in root}


def _create_xml_job(raw: httpx.Client, obj: str, operation: str = "query", **headers: str) -> str:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="http://www.force.com/2009/06/asyncapi/dataload">'
        f"<operation>{operation}</operation><object>{obj}</object><contentType>CSV</contentType></jobInfo>"
    )
    resp = raw.post(f"{ASYNC}/job", content=body.encode(), headers=headers)
    assert resp.status_code == 201, resp.text
    return _xml(resp)["id"]


def _batch_infos(raw: httpx.Client, job: str) -> list[dict[str, str]]:
    listed = ET.fromstring(raw.get(f"{ASYNC}/job/{job}/batch").content)
    return [{c.tag.replace(NS, ""): c.text or "" for c in b} for b in listed]


def _settled(raw: httpx.Client, job: str) -> list[dict[str, str]] | None:
    """The job's batch list once no batch is Queued or InProgress (a PK-chunked one has its chunks)."""
    infos = _batch_infos(raw, job)
    pending = any(i["state"] in ("Queued", "InProgress") for i in infos)
    return None if pending or not infos else infos


def _wait_batch(raw: httpx.Client, job: str, batch: str) -> dict[str, str]:
    """Poll one batch, as a client does, until it is no longer Queued or InProgress."""
    url = f"{ASYNC}/job/{job}/batch/{batch}"
    return poll_for(
        lambda: (i := _xml(raw.get(url)))["state"] not in ("Queued", "InProgress") and i, timeout=300
    )


def test_salesforce_bulk_pk_chunked_query_gets_exactly_the_rest_rows(
    emulator: EmulatorProcess, bulk: SalesforceBulk
) -> None:
    total_ids = emulator.sql("SELECT count(*) FROM sf_account")[0][0]  # the Id index has deleted rows too
    chunk = max(1, math.ceil(total_ids / 4))
    batches_before = emulator.admin("GET", "/limits")["used"].get("DailyBulkApiBatches", 0)

    job = bulk.create_query_job("Account", contentType="CSV", pk_chunking=chunk)
    original = bulk.query(job, SOQL)
    bulk.close_job(job)
    batches = poll_for(
        lambda: (
            (b := bulk.get_batch_list(job))
            and all(x["state"] not in ("Queued", "InProgress") for x in b)
            and len(b) > 1
            and b
        ),
        timeout=300,
    )
    by_id = {b["id"]: b for b in batches}
    assert by_id[original]["state"] == "NotProcessed"
    chunks = [b for b in batches if b["id"] != original]
    assert len(chunks) == math.ceil(total_ids / chunk) == 4
    assert all(b["state"] == "Completed" for b in chunks), chunks
    requests = [bulk.get_query_batch_request(b["id"], job) for b in chunks]
    assert all(r.startswith(SOQL + " WHERE Id >= '") for r in requests)
    assert "Id < '" in requests[0] and "Id < '" not in requests[-1]  # the last range is open-ended

    rows: dict[str, dict[str, str]] = {}
    for b in chunks:
        for result in bulk.get_all_results_for_query_batch(b["id"], job):
            for row in csv.DictReader(io.TextIOWrapper(result, encoding="utf-8", newline="")):
                assert row["Id"] not in rows
                rows[row["Id"]] = row
    expected = _rest_rows(_login(emulator), SOQL)
    assert len(expected) > 1000
    assert rows == expected

    status = bulk.job_status(job)
    assert status["state"] == "Closed" and status["numberBatchesTotal"] == str(1 + len(chunks))
    assert int(status["numberRecordsProcessed"]) == len(expected)
    used = emulator.admin("GET", "/limits")["used"]["DailyBulkApiBatches"]
    assert used - batches_before == 1 + len(chunks)  # the split batch counts, and every chunk


def test_simple_salesforce_bulk_query_and_query_all_get_exactly_the_rest_rows(
    emulator: EmulatorProcess,
) -> None:
    sf = _login(emulator)
    soql = "SELECT Id, LastName, Email, AccountId, Account.Name, CreatedDate, IsDeleted FROM Contact"
    for method, include_deleted in ((sf.bulk.Contact.query, False), (sf.bulk.Contact.query_all, True)):
        records = method(soql, wait=0)
        expected = sf.query_all(soql, include_deleted=include_deleted)["records"]
        assert len(records) == len(expected) > 1000
        got = {r["Id"]: r for r in records}
        for rec in expected:
            mine = got[rec["Id"]]
            # Bulk 1.0 JSON results carry datetimes as epoch milliseconds
            created = datetime.fromtimestamp(mine.pop("CreatedDate") / 1000, UTC)
            assert created.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000" == rec.pop("CreatedDate")
            assert mine["attributes"]["type"] == "Contact"
            assert mine == rec
    deleted = emulator.sql("SELECT count(*) FROM sf_contact WHERE IsDeleted")[0][0]
    assert deleted > 0, "queryAll must be seen to return deleted rows"


def test_json_job_wire_shapes(raw: httpx.Client) -> None:
    headers = {"Content-Type": "application/json"}
    created = raw.post(
        f"{ASYNC}/job",
        json={"operation": "query", "object": "Account", "contentType": "JSON", "concurrencyMode": 0},
        headers=headers,
    )
    assert created.status_code == 201 and created.headers["Content-Type"] == "application/json"
    job = created.json()
    assert job["state"] == "Open" and job["apiVersion"] == 59.0 and job["concurrencyMode"] == "Parallel"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", job["createdDate"])
    batch = raw.post(
        f"{ASYNC}/job/{job['id']}/batch", content=b"SELECT Id FROM Account LIMIT 3", headers=headers
    )
    assert batch.status_code == 201 and batch.json()["state"] == "Queued"
    listed = poll_for(  # a status call answers at once: poll until the batch is done, as clients do
        lambda: (
            (x := raw.get(f"{ASYNC}/job/{job['id']}/batch", headers=headers).json())
            and all(b["state"] not in ("Queued", "InProgress") for b in x["batchInfo"])
            and x
        ),
        timeout=300,
    )
    assert [b["state"] for b in listed["batchInfo"]] == ["Completed"]
    result_ids = raw.get(f"{ASYNC}/job/{job['id']}/batch/{batch.json()['id']}/result", headers=headers).json()
    assert len(result_ids) == 1 and result_ids[0].startswith("752")
    rows = raw.get(f"{ASYNC}/job/{job['id']}/batch/{batch.json()['id']}/result/{result_ids[0]}").json()
    assert len(rows) == 3 and set(rows[0]) == {"attributes", "Id"}
    closed = raw.post(f"{ASYNC}/job/{job['id']}", json={"state": "Closed"}, headers=headers)
    assert closed.json()["state"] == "Closed" and closed.json()["numberBatchesCompleted"] == 1
    again = raw.post(f"{ASYNC}/job/{job['id']}/batch", content=b"SELECT Id FROM Account", headers=headers)
    assert again.status_code == 400
    assert again.json() == {
        "exceptionCode": "InvalidJobState",
        "exceptionMessage": f"Job {job['id']} is not open",
    }


def test_error_shapes(emulator: EmulatorProcess, raw: httpx.Client, bulk: SalesforceBulk) -> None:
    bad = raw.get(f"{ASYNC}/job/750000000000001AAA", headers={"X-SFDC-Session": "00Dbad!token"})
    assert bad.status_code == 401 and bad.headers["Content-Type"] == "application/xml"
    root = ET.fromstring(bad.content)
    assert root.tag == f"{NS}error"
    assert _xml(bad) == {"exceptionCode": "InvalidSessionId", "exceptionMessage": "Invalid session id"}
    bad_json = raw.get(
        f"{ASYNC}/job/750000000000001AAA",
        headers={"X-SFDC-Session": "nope", "Content-Type": "application/json"},
    )
    assert bad_json.status_code == 401 and bad_json.json()["exceptionCode"] == "InvalidSessionId"

    missing = raw.get(f"{ASYNC}/job/750000000000001AAA")
    assert missing.status_code == 400 and _xml(missing)["exceptionCode"] == "InvalidJob"
    with pytest.raises(BulkApiError) as info:
        bulk.job_status("750000000000001AAA")
    assert info.value.status_code == 400 and "InvalidJob" in str(info.value)

    job = _create_xml_job(raw, "Account")
    assert _xml(raw.get(f"{ASYNC}/job/{job}/batch/751000000000001AAA"))["exceptionCode"] == "InvalidBatch"
    assert raw.get(f"{ASYNC}/job/{job}/nothing").status_code == 404
    assert _xml(raw.get(f"{ASYNC}/job/{job}/nothing"))["exceptionCode"] == "InvalidUrl"
    assert _xml(raw.get("/services/async/12.0/job/" + job))["exceptionCode"] == "InvalidUrl"
    unknown = raw.post(
        f"{ASYNC}/job",
        content=b'<jobInfo xmlns="http://www.force.com/2009/06/asyncapi/dataload"><operation>query</operation>'
        b"<object>NoSuch__c</object><contentType>CSV</contentType></jobInfo>",
    )
    assert _xml(unknown) == {
        "exceptionCode": "InvalidJob",
        "exceptionMessage": "Unable to find object: NoSuch__c",
    }
    too_big = raw.post(
        f"{ASYNC}/job",
        content=b'<jobInfo xmlns="http://www.force.com/2009/06/asyncapi/dataload"><operation>query</operation>'
        b"<object>Account</object><contentType>CSV</contentType></jobInfo>",
        headers={"Sforce-Enable-PKChunking": "chunkSize=250001"},
    )
    assert too_big.status_code == 400 and _xml(too_big)["exceptionCode"] == "InvalidJob"

    batch = _xml(raw.post(f"{ASYNC}/job/{job}/batch", content=b"SELECT Nope__c FROM Account"))["id"]
    # the batch is Queued when created and fails when the org runs it (clean-clone run s10a saw
    # it still Queued on a busy machine): poll it as a client does
    failed = _wait_batch(raw, job, batch)
    assert failed["state"] == "Failed" and "INVALID_FIELD" in failed["stateMessage"]
    assert _xml(raw.get(f"{ASYNC}/job/{job}/batch/{batch}/result")) == {
        "exceptionCode": "InvalidBatch",
        "exceptionMessage": "Batch not completed",
    }
    with pytest.raises(BulkApiError):  # salesforce-bulk reads a Failed batch as an error
        bulk.is_batch_done(batch, job)
    aborted = _xml(raw.post(f"{ASYNC}/job/{job}", content=b"<jobInfo><state>Aborted</state></jobInfo>"))
    assert aborted["state"] == "Aborted"


def test_empty_result_and_pk_chunking_on_the_parent(raw: httpx.Client, emulator: EmulatorProcess) -> None:
    job = _create_xml_job(raw, "Account")
    batch = _xml(
        raw.post(f"{ASYNC}/job/{job}/batch", content=b"SELECT Id FROM Account WHERE Name = 'no such'")
    )["id"]
    _wait_batch(raw, job, batch)
    result = ET.fromstring(raw.get(f"{ASYNC}/job/{job}/batch/{batch}/result").content)
    rid = result.find(f"{NS}result")
    assert result.tag == f"{NS}result-list" and rid is not None
    body = raw.get(f"{ASYNC}/job/{job}/batch/{batch}/result/{rid.text}").content
    assert body == b"Records not found for this query"

    job = _create_xml_job(
        raw, "AccountHistory", "queryAll", **{"Sforce-Enable-PKChunking": "chunkSize=500; parent=Account"}
    )
    soql = "SELECT Id, AccountId, Field FROM AccountHistory"
    original = _xml(raw.post(f"{ASYNC}/job/{job}/batch", content=soql.encode()))["id"]
    infos = poll_for(lambda: _settled(raw, job), timeout=300)
    assert infos[0]["id"] == original and infos[0]["state"] == "NotProcessed"
    accounts = emulator.sql("SELECT count(*) FROM sf_account")[0][0]
    assert len(infos) - 1 == math.ceil(accounts / 500)
    first = raw.get(f"{ASYNC}/job/{job}/batch/{infos[1]['id']}/request").text
    assert first.startswith(soql + " WHERE AccountId >= '001")
    total = sum(int(i["numberRecordsProcessed"] or 0) for i in infos[1:])
    assert total == emulator.sql("SELECT count(*) FROM sf_accounthistory")[0][0] > 0


def test_requests_are_counted_and_the_realistic_shaping_applies(
    emulator: EmulatorProcess, raw: httpx.Client
) -> None:
    before = emulator.admin("GET", "/limits")["by_category"]
    job = _create_xml_job(raw, "Contact")
    emulator.admin(
        "PATCH",
        "/profile",
        json={
            "queue_delay_min_s": 0.5,
            "queue_delay_max_s": 0.5,
            "stream_bytes_per_s": 200_000,
            "latency_ms": 30,
        },
    )
    since = emulator.admin("GET", "/requests", params={"limit": 1})["last_seq"]
    try:
        batch = _xml(raw.post(f"{ASYNC}/job/{job}/batch", content=b"SELECT Id, LastName FROM Contact"))["id"]
        assert _xml(raw.get(f"{ASYNC}/job/{job}/batch/{batch}"))["state"] in ("Queued", "InProgress")
        poll_for(
            lambda: _xml(raw.get(f"{ASYNC}/job/{job}/batch/{batch}"))["state"] == "Completed", timeout=120
        )
        rid = ET.fromstring(raw.get(f"{ASYNC}/job/{job}/batch/{batch}/result").content)[0].text
        resp = raw.get(
            f"{ASYNC}/job/{job}/batch/{batch}/result/{rid}", headers={"Accept-Encoding": "identity"}
        )
        assert resp.headers["Content-Type"] == "text/csv" and len(resp.content) > 20_000
        log = emulator.admin("GET", "/requests", params={"since": since})["requests"]
        took = next(r for r in reversed(log) if r["category"] == "bulk1_results")["duration_ms"] / 1000
        assert took >= len(resp.content) / 200_000 * 0.8
        assert all(r["duration_ms"] >= 30 for r in log if r["category"].startswith("bulk1_"))
    finally:
        emulator.admin(
            "PATCH",
            "/profile",
            json={"queue_delay_min_s": 0, "queue_delay_max_s": 0, "stream_bytes_per_s": 0, "latency_ms": 0},
        )
    after = emulator.admin("GET", "/limits")["by_category"]
    grew = {k: after.get(k, 0) - before.get(k, 0) for k in after if k.startswith("bulk1_")}
    assert grew["bulk1_create"] == 1 and grew["bulk1_batch_create"] == 1
    assert grew["bulk1_result_list"] == 1 and grew["bulk1_results"] == 1 and grew["bulk1_batch"] >= 2


def test_status_calls_answer_at_once_while_a_batch_is_still_processing(
    emulator: EmulatorProcess, raw: httpx.Client
) -> None:
    """Salesforce answers a status call with the state so far; it never waits for the work (a
    status call that waited for a large job's batches ran into the client's read timeout). The
    batch is held Queued by a ``hold_job`` fault, so the state it must report is known, with no
    sleep; the profile stays ``fast``."""
    assert emulator.admin("GET", "/profile")["queue_delay_max_s"] == 0
    job = _create_xml_job(raw, "Account")
    hold = emulator.admin(
        "POST", "/faults", json={"path_regex": rf"/job/{job}/batch$", "method": "POST", "kind": "hold_job"}
    )
    try:
        batch = _xml(raw.post(f"{ASYNC}/job/{job}/batch", content=SOQL.encode()))["id"]
        assert _xml(raw.get(f"{ASYNC}/job/{job}/batch/{batch}"))["state"] == "Queued"
        assert [i["state"] for i in _batch_infos(raw, job)] == ["Queued"]
        info = _xml(raw.get(f"{ASYNC}/job/{job}"))
        counts = (info["numberBatchesQueued"], info["numberBatchesCompleted"])
        assert info["state"] == "Open" and counts == ("1", "0")
        not_yet = raw.get(f"{ASYNC}/job/{job}/batch/{batch}/result")
        assert not_yet.status_code == 400 and _xml(not_yet)["exceptionCode"] == "InvalidBatch"
    finally:
        emulator.admin("POST", f"/faults/{hold['id']}/release")
    assert _wait_batch(raw, job, batch)["state"] == "Completed"
    assert _xml(raw.get(f"{ASYNC}/job/{job}"))["numberBatchesCompleted"] == "1"
