"""simple-salesforce, unchanged and through its public API only, against the emulator.

It logs in with username / password / security token (SOAP, at https://login.salesforce.com,
routed to the emulator by the session we hand it), describes, runs a paged ``query_all`` and
downloads a Bulk API 2.0 query of 100k+ rows; counts and values are checked against the
emulator's store through the admin API.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pytest
from simple_salesforce import Salesforce, SalesforceAuthenticationFailed
from simple_salesforce.exceptions import SalesforceMalformedRequest

from tests.helpers.emulator_proc import EmulatorProcess, salesforce_session, simple_salesforce

pytestmark = pytest.mark.emulator


def _login(emulator: EmulatorProcess) -> Salesforce:
    return simple_salesforce(emulator)


def test_soap_login_describe_and_paged_query_all(emulator: EmulatorProcess) -> None:
    sf = _login(emulator)
    host = emulator.url.split("://", 1)[1]
    assert sf.sf_instance == host
    assert sf.session_id.startswith(
        emulator.sql("SELECT value FROM _meta WHERE key = 'org_id'")[0][0][:15] + "!"
    )

    names = {o["name"]: o for o in sf.describe()["sobjects"]}
    assert {"Account", "Contact", "Task", "Invoice__c", "AccountFeed", "AccountShare"} <= set(names)
    assert names["Account"]["keyPrefix"] == "001"
    fields = {f["name"]: f for f in sf.Account.describe()["fields"]}
    assert fields["Id"]["type"] == "id"
    assert fields["BillingCity"]["compoundFieldName"] == "BillingAddress"

    truth = emulator.sql("SELECT count(*), min(Id), max(Id) FROM sf_lead WHERE NOT IsDeleted")[0]
    result = sf.query_all("SELECT Id, LastName, Company, Owner.Name, CreatedDate FROM Lead")
    records = result["records"]
    assert result["totalSize"] == truth[0] == len(records)
    assert truth[0] > 2000, "needs more than one page"
    ids = sorted(r["Id"] for r in records)
    assert ids[0] == truth[1] and ids[-1] == truth[2]
    assert len(set(ids)) == len(ids)
    sample = records[1234]
    row = emulator.sql(
        "SELECT l.LastName, l.Company, u.Name FROM sf_lead l LEFT JOIN sf_user u ON u.Id = l.OwnerId"
        " WHERE l.Id = ?",
        sample["Id"],
    )[0]
    assert [sample["LastName"], sample["Company"], sample["Owner"]["Name"]] == row
    assert sample["attributes"] == {
        "type": "Lead",
        "url": f"/services/data/v59.0/sobjects/Lead/{sample['Id']}",
    }
    assert sample["CreatedDate"].endswith("+0000")
    usage = sf.api_usage["api-usage"]
    assert usage.total == 100_000 and usage.used > 0


def test_bulk2_query_of_100k_rows_matches_the_store(emulator: EmulatorProcess) -> None:
    sf = _login(emulator)
    truth_count, truth_digest = emulator.sql(
        "SELECT count(*), sha256(string_agg(Id || '|' || coalesce(Subject, '') || '|' || coalesce(WhatId, '')"
        " || '|' || coalesce(strftime(ActivityDate, '%Y-%m-%d'), ''), chr(10) ORDER BY Id))"
        " FROM sf_task WHERE NOT IsDeleted AND NOT IsArchived"
    )[0]
    assert truth_count >= 100_000

    rows: list[tuple[str, str, str, str]] = []
    pages = 0
    for chunk in sf.bulk2.Task.query(
        "SELECT Id, Subject, WhatId, ActivityDate, Description FROM Task", max_records=30_000, wait=0.05
    ):
        pages += 1
        reader = csv.reader(io.StringIO(chunk))
        assert next(reader) == ["Id", "Subject", "WhatId", "ActivityDate", "Description"]
        rows.extend((r[0], r[1], r[2], r[3]) for r in reader)
    assert pages == -(-truth_count // 30_000)
    assert len(rows) == truth_count
    digest = hashlib.sha256("\n".join("|".join(r) for r in sorted(rows)).encode()).hexdigest()
    assert digest == truth_digest


def test_bulk2_download_to_files(emulator: EmulatorProcess, tmp_path: Path) -> None:
    sf = _login(emulator)
    results = sf.bulk2.Account.download(
        "SELECT Id, Name, AnnualRevenue, BillingCity FROM Account",
        path=str(tmp_path),
        max_records=10_000,
        wait=0.05,
    )
    assert len(results) >= 2
    assert sum(r["number_of_records"] for r in results) == truth_live(emulator, "sf_account")


def truth_live(emulator: EmulatorProcess, table: str) -> int:
    return int(emulator.sql(f"SELECT count(*) FROM {table} WHERE NOT IsDeleted")[0][0])


def test_expired_session_is_renewed_by_the_client(emulator: EmulatorProcess) -> None:
    sf = _login(emulator)
    before = emulator.admin("GET", "/requests")["last_seq"]
    emulator.admin("POST", "/sessions/expire")
    assert sf.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1
    log = emulator.admin("GET", "/requests", params={"since": before})["requests"]
    kinds = [(r["category"], r["status"]) for r in log if r["category"] != "admin"]
    assert kinds == [("query", 401), ("login", 200), ("query", 200)]


def test_wrong_password_is_a_soap_login_fault(emulator: EmulatorProcess) -> None:
    i = emulator.info
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        Salesforce(
            username=i["username"],
            password="wrong",
            security_token=i["security_token"],
            session=salesforce_session(i),
        )
    assert exc.value.code == "INVALID_LOGIN"
    assert exc.value.auth_message == "Invalid username, password, security token; or user locked out."


def test_oauth_password_flow_with_consumer_key(emulator: EmulatorProcess) -> None:
    i = emulator.info
    sf = Salesforce(
        username=i["username"],
        password=i["password"] + i["security_token"],
        consumer_key=i["client_id"],
        consumer_secret=i["client_secret"],
        session=salesforce_session(i),
    )
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == truth_live(emulator, "sf_account")


def test_malformed_soql_raises_the_salesforce_error(emulator: EmulatorProcess) -> None:
    sf = _login(emulator)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id FRM Account")
    assert exc.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_jwt_bearer_flow(emulator: EmulatorProcess) -> None:
    i = emulator.info
    sf = Salesforce(
        username=i["username"],
        consumer_key=i["client_id"],
        privatekey_file=i["jwt_private_key_file"],
        session=salesforce_session(i),
    )
    assert sf.sf_instance == emulator.url.split("://", 1)[1]
    assert sf.query("SELECT Id FROM Organization")["totalSize"] == 1
