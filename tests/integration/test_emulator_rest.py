"""The REST API: discovery, describe, query paging, records, blobs, replication, limits, errors."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.helpers.emulator_proc import EmulatorProcess

pytestmark = pytest.mark.emulator

V = "/services/data/v59.0"


def _err(resp: httpx.Response) -> tuple[int, str, str]:
    body = resp.json()
    assert isinstance(body, list) and len(body) == 1
    return resp.status_code, body[0]["errorCode"], body[0]["message"]


def test_versions_and_resources(emulator: EmulatorProcess, api: httpx.Client) -> None:
    versions = emulator.http().get("/services/data/").json()
    listed = [v["version"] for v in versions]
    assert listed == sorted(listed, key=float)
    assert {"50.0", "59.0", "61.0", "62.0"} <= set(listed)
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions
    for version in listed:
        resp = api.get(f"/services/data/v{version}/")
        assert resp.status_code == 200
        assert resp.json()["query"] == f"/services/data/v{version}/query"
    assert _err(api.get("/services/data/v99.0/sobjects")) == (
        404,
        "NOT_FOUND",
        "The requested resource does not exist",
    )


def test_every_rest_response_carries_the_limit_header(api: httpx.Client) -> None:
    first = api.get(f"{V}/sobjects").headers["Sforce-Limit-Info"]
    second = api.get(f"{V}/sobjects/Account/describe").headers["Sforce-Limit-Info"]
    used1, max1 = map(int, first.removeprefix("api-usage=").split("/"))
    used2, _ = map(int, second.removeprefix("api-usage=").split("/"))
    assert first.startswith("api-usage=") and max1 == 100_000 and used2 == used1 + 1


def test_describe_global_and_describe(api: httpx.Client) -> None:
    body = api.get(f"{V}/sobjects").json()
    entries = {o["name"]: o for o in body["sobjects"]}
    assert body["encoding"] == "UTF-8" and body["maxBatchSize"] == 200
    share = entries["AccountShare"]
    assert share["associateEntityType"] == "Share" and share["associateParentEntity"] == "Account"
    assert entries["Invoice__c"]["custom"] is True
    desc = api.get(f"{V}/sobjects/Invoice__c/describe").json()
    types = {f["type"] for f in desc["fields"]}
    assert {"string", "textarea", "picklist", "multipicklist", "currency", "percent", "double", "date",
            "datetime", "time", "boolean", "email", "phone", "url", "reference"} <= types  # fmt: skip
    not_modified = api.get(
        f"{V}/sobjects/Account/describe", headers={"If-Modified-Since": "Wed, 01 Jan 2099 00:00:00 GMT"}
    )
    assert not_modified.status_code == 304
    old = api.get(
        f"{V}/sobjects/Account/describe", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    assert old.status_code == 200
    info = api.get(f"{V}/sobjects/Account").json()
    assert info["objectDescribe"]["name"] == "Account" and info["recentItems"] == []
    assert _err(api.get(f"{V}/sobjects/Nope__c/describe"))[:2] == (404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("soql", "code", "message_start"),
    [
        ("SELECT Foo FROM Account", "INVALID_FIELD", "No such column 'Foo' on entity 'Account'"),
        ("SELECT Id FROM Nope", "INVALID_TYPE", "sObject type 'Nope' is not supported."),
        ("SELECT Id FRM Account", "MALFORMED_QUERY", ""),
        ("", "MALFORMED_QUERY", ""),
    ],
)
def test_query_errors(api: httpx.Client, soql: str, code: str, message_start: str) -> None:
    status, error_code, message = _err(api.get(f"{V}/query", params={"q": soql}))
    assert (status, error_code) == (400, code)
    if soql:  # Salesforce echoes the statement, a caret and the position before the message
        assert message.startswith(f"\n{soql}\n") and "\nERROR at Row:1:Column:" in message
    assert message.rsplit("\n", 1)[-1].startswith(message_start)


def test_query_paging_batch_size_and_tolerant_next_url(emulator: EmulatorProcess, api: httpx.Client) -> None:
    total = emulator.sql("SELECT count(*) FROM sf_account WHERE NOT IsDeleted")[0][0]
    first = api.get(
        f"{V}/query",
        params={"q": "SELECT Id, Name FROM Account"},
        headers={"Sforce-Query-Options": "batchSize=500"},
    ).json()
    assert first["totalSize"] == total and first["done"] is False and len(first["records"]) == 500
    assert first["nextRecordsUrl"].startswith(f"{V}/query/01g")
    seen = [r["Id"] for r in first["records"]]
    url = first["nextRecordsUrl"]
    again = api.get(url).json()  # a locator can be fetched twice
    pages = 1
    while url:
        page = api.get(url, params={"q": "SELECT Id, Name FROM Account"}).json()  # tap resends q=
        assert page["totalSize"] == total
        seen += [r["Id"] for r in page["records"]]
        url = page.get("nextRecordsUrl")
        if url is None:
            assert page["done"] is True and "nextRecordsUrl" not in page
        pages += 1
    assert len(seen) == len(set(seen)) == total
    assert again["records"][0]["Id"] == seen[500]
    bad = api.get(f"{V}/query/01gnope-2000")
    assert _err(bad)[:2] == (400, "INVALID_QUERY_LOCATOR")


def test_count_and_parent_objects(emulator: EmulatorProcess, api: httpx.Client) -> None:
    live = emulator.sql("SELECT count(*) FROM sf_contact WHERE NOT IsDeleted")[0][0]
    assert api.get(f"{V}/query", params={"q": "SELECT COUNT() FROM Contact"}).json() == {
        "totalSize": live,
        "done": True,
        "records": [],
    }
    no_parent = emulator.sql("SELECT Id FROM sf_contact WHERE AccountId IS NULL AND NOT IsDeleted LIMIT 1")
    with_parent = emulator.sql(
        "SELECT c.Id, a.Id, a.Name FROM sf_contact c JOIN sf_account a ON a.Id = c.AccountId"
        " WHERE NOT c.IsDeleted LIMIT 1"
    )[0]
    recs = api.get(
        f"{V}/query", params={"q": f"SELECT Id, Account.Name FROM Contact WHERE Id = '{with_parent[0]}'"}
    ).json()["records"]
    assert recs[0]["Account"] == {
        "attributes": {"type": "Account", "url": f"{V}/sobjects/Account/{with_parent[1]}"},
        "Name": with_parent[2],
    }
    if no_parent:
        recs = api.get(
            f"{V}/query", params={"q": f"SELECT Id, Account.Name FROM Contact WHERE Id = '{no_parent[0][0]}'"}
        ).json()["records"]
        assert recs[0]["Account"] is None


def test_record_crud_and_query_all(emulator: EmulatorProcess, api: httpx.Client) -> None:
    created = api.post(f"{V}/sobjects/Account", json={"Name": "Emulator Test Co", "Industry": "Banking"})
    assert created.status_code == 201
    body = created.json()
    assert body["success"] is True and body["errors"] == [] and body["id"].startswith("001")
    rid = body["id"]
    rec = api.get(f"{V}/sobjects/Account/{rid}").json()
    assert rec["Name"] == "Emulator Test Co" and rec["attributes"]["type"] == "Account"
    assert rec["CreatedDate"].endswith("+0000")
    assert (
        api.get(f"{V}/sobjects/Account/{rid[:15]}", params={"fields": "Name"}).json()["Name"]
        == "Emulator Test Co"
    )
    assert api.patch(f"{V}/sobjects/Account/{rid}", json={"Name": "Renamed Co"}).status_code == 204
    assert emulator.admin("GET", f"/records/Account/{rid}")["Name"] == "Renamed Co"
    assert api.delete(f"{V}/sobjects/Account/{rid}").status_code == 204
    assert _err(api.get(f"{V}/sobjects/Account/{rid}"))[:2] == (404, "ENTITY_IS_DELETED")
    q = f"SELECT Id, IsDeleted FROM Account WHERE Id = '{rid}'"
    assert api.get(f"{V}/query", params={"q": q}).json()["totalSize"] == 0
    rows = api.get(f"{V}/queryAll", params={"q": q}).json()["records"]
    assert [(r["Id"], r["IsDeleted"]) for r in rows] == [(rid, True)]
    assert _err(api.get(f"{V}/sobjects/Account/001000000000000AAA"))[:2] == (404, "NOT_FOUND")
    assert _err(api.get(f"{V}/sobjects/Account/notanid"))[:2] == (400, "MALFORMED_ID")
    bad = api.post(f"{V}/sobjects/Account", json={"Nope__c": 1})
    assert _err(bad)[:2] == (400, "INVALID_FIELD")


@pytest.mark.parametrize(
    ("obj", "table", "field", "length_field"),
    [
        ("Attachment", "sf_attachment", "Body", "BodyLength"),
        ("Document", "sf_document", "Body", "BodyLength"),
        ("ContentVersion", "sf_contentversion", "VersionData", "ContentSize"),
        ("StaticResource", "sf_staticresource", "Body", "BodyLength"),
        ("EventLogFile", "sf_eventlogfile", "LogFile", "LogFileLength"),
    ],
)
def test_blob_endpoints(
    emulator: EmulatorProcess, api: httpx.Client, obj: str, table: str, field: str, length_field: str
) -> None:
    rid, length = emulator.sql(f"SELECT Id, {length_field} FROM {table} WHERE {length_field} > 0 LIMIT 1")[0]
    resp = api.get(f"{V}/sobjects/{obj}/{rid}/{field}")
    assert resp.status_code == 200
    assert len(resp.content) == length
    rec = api.get(f"{V}/sobjects/{obj}/{rid}").json()
    assert rec[field] == f"{V}/sobjects/{obj}/{rid}/{field}"
    assert _err(api.get(f"{V}/sobjects/{obj}/{rid}/Nope"))[:2] == (404, "NOT_FOUND")


def _fmt(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def test_updated_and_deleted(emulator: EmulatorProcess, api: httpx.Client) -> None:
    # the session's org is shared: an earlier test's hard delete moved the log's
    # earliestDateAvailable to its time, and a window starting before it is refused
    # (INVALID_REPLICATION_DATE, SALESFORCE_API.md 2.5); start two minutes past the clock
    emulator.admin("POST", "/clock", json={"advance": 120})
    start = datetime.fromisoformat(emulator.admin("GET", "/clock")["now"])
    rid = api.post(
        f"{V}/sobjects/Lead",
        json={"LastName": "Replica", "Company": "Rep Co", "Status": "Open - Not Contacted"},
    ).json()["id"]
    emulator.admin("POST", "/clock", json={"advance": 120})
    api.delete(f"{V}/sobjects/Lead/{rid}")
    emulator.admin("POST", "/clock", json={"advance": 120})
    end = datetime.fromisoformat(emulator.admin("GET", "/clock")["now"]) + timedelta(minutes=1)
    deleted = api.get(f"{V}/sobjects/Lead/deleted/", params={"start": _fmt(start), "end": _fmt(end)}).json()
    assert rid in [d["id"] for d in deleted["deletedRecords"]]
    assert deleted["earliestDateAvailable"].endswith("+0000") and deleted["latestDateCovered"].endswith(
        "+0000"
    )
    rid2 = api.post(
        f"{V}/sobjects/Lead", json={"LastName": "Upd", "Company": "Upd Co", "Status": "Open - Not Contacted"}
    ).json()["id"]
    emulator.admin("POST", "/clock", json={"advance": 120})  # getUpdated covers whole past minutes only
    end2 = datetime.fromisoformat(emulator.admin("GET", "/clock")["now"]) + timedelta(minutes=1)
    updated = api.get(f"{V}/sobjects/Lead/updated/", params={"start": _fmt(start), "end": _fmt(end2)}).json()
    assert rid2 in updated["ids"] and rid not in updated["ids"]
    too_old = api.get(
        f"{V}/sobjects/Lead/updated/", params={"start": _fmt(start - timedelta(days=31)), "end": _fmt(end2)}
    )
    assert _err(too_old)[:2] == (400, "INVALID_REPLICATION_DATE")
    backwards = api.get(f"{V}/sobjects/Lead/deleted/", params={"start": _fmt(end), "end": _fmt(start)})
    assert _err(backwards)[:2] == (400, "INVALID_REPLICATION_DATE")


def test_limits_and_request_limit_exceeded(emulator: EmulatorProcess, api: httpx.Client) -> None:
    body: dict[str, Any] = api.get(f"{V}/limits").json()
    for key in (
        "DailyApiRequests",
        "DailyBulkApiBatches",
        "DailyBulkV2QueryJobs",
        "DailyBulkV2QueryFileStorageMB",
        "DataStorageMB",
        "FileStorageMB",
    ):
        assert set(body[key]) >= {"Max", "Remaining"}
    used, mx = map(int, api.get(f"{V}/limits").headers["Sforce-Limit-Info"][len("api-usage=") :].split("/"))
    assert body["DailyApiRequests"]["Max"] == mx
    state = emulator.admin("GET", "/limits")
    emulator.admin(
        "POST", "/limits", json={"name": "DailyApiRequests", "used": state["max"]["DailyApiRequests"]}
    )
    try:
        resp = api.get(f"{V}/sobjects")
        assert _err(resp) == (403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    finally:
        emulator.admin("POST", "/limits", json={"name": "DailyApiRequests", "used": used})
    assert api.get(f"{V}/sobjects").status_code == 200


def test_unknown_path_and_method(api: httpx.Client) -> None:
    assert _err(api.get(f"{V}/nothing/here"))[:2] == (404, "NOT_FOUND")
    status, code, message = _err(api.put(f"{V}/sobjects"))
    assert (status, code) == (405, "METHOD_NOT_ALLOWED")
    assert message.startswith("HTTP Method 'PUT' not allowed.")


def test_request_log_counts_calls(emulator: EmulatorProcess, api: httpx.Client) -> None:
    before = emulator.admin("GET", "/requests")["last_seq"]
    api.get(f"{V}/sobjects/Account/describe")
    api.get(f"{V}/query", params={"q": "SELECT Id FROM Account LIMIT 3"})
    log = emulator.admin("GET", "/requests", params={"since": before})["requests"]
    mine = [(r["method"], r["path"], r["status"], r["category"]) for r in log if r["category"] != "admin"]
    assert mine == [
        ("GET", f"{V}/sobjects/Account/describe", 200, "describe"),
        ("GET", f"{V}/query", 200, "query"),
    ]
    assert all(r["bytes"] > 0 for r in log if r["category"] != "admin")


def _sub(url: str, ref: str, **kw: Any) -> dict[str, Any]:
    return {"method": "GET", "url": url, "referenceId": ref, **kw}


def test_composite_runs_describes_and_queries_as_one_api_call(api: httpx.Client) -> None:
    one = api.get(f"{V}/sobjects/Contact/describe").json()
    used = int(api.get(f"{V}/sobjects").headers["Sforce-Limit-Info"].removeprefix("api-usage=").split("/")[0])
    resp = api.post(
        f"{V}/composite",
        json={
            "allOrNone": False,
            "compositeRequest": [
                _sub(f"{V}/sobjects/Contact/describe", "c"),
                _sub(f"{V}/sobjects/Nope__c/describe", "nope"),
                _sub(
                    f"{V}/query?q=SELECT+Id+FROM+Account",
                    "q",
                    httpHeaders={"Sforce-Query-Options": "batchSize=200"},
                ),
            ],
        },
    )
    assert resp.status_code == 200
    after = int(resp.headers["Sforce-Limit-Info"].removeprefix("api-usage=").split("/")[0])
    assert after == used + 1  # the whole composite request is one call
    answers = {a["referenceId"]: a for a in resp.json()["compositeResponse"]}
    assert answers["c"]["httpStatusCode"] == 200 and answers["c"]["body"] == one
    assert answers["nope"]["httpStatusCode"] == 404
    assert answers["nope"]["body"][0]["errorCode"] == "NOT_FOUND"
    page = answers["q"]["body"]
    assert len(page["records"]) == 200 and page["done"] is False and page["totalSize"] > 200
    more = api.post(f"{V}/composite", json={"compositeRequest": [_sub(page["nextRecordsUrl"], "m")]}).json()
    assert more["compositeResponse"][0]["body"]["records"][0]["Id"] != page["records"][0]["Id"]


def test_composite_limits_and_all_or_none(api: httpx.Client) -> None:
    describe = _sub(f"{V}/sobjects/Account/describe", "d")
    too_many = [dict(describe, referenceId=f"d{i}") for i in range(26)]
    assert _err(api.post(f"{V}/composite", json={"compositeRequest": too_many}))[:2] == (
        400,
        "LIMIT_EXCEEDED",
    )
    queries = [_sub(f"{V}/query?q=SELECT+Id+FROM+Account", f"q{i}") for i in range(6)]
    assert _err(api.post(f"{V}/composite", json={"compositeRequest": queries}))[:2] == (400, "LIMIT_EXCEEDED")
    halted = api.post(
        f"{V}/composite",
        json={"allOrNone": True, "compositeRequest": [_sub(f"{V}/sobjects/Nope__c/describe", "x"), describe]},
    ).json()["compositeResponse"]
    assert [a["httpStatusCode"] for a in halted] == [404, 400]
    assert halted[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"
