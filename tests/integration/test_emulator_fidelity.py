"""The emulator on the wire as Salesforce is (issue 16): raw header names, a ``//`` path,
``columns=true`` and the ``ERROR at Row:1:Column:N`` error messages.

Header names are read from the raw response head over a TLS socket, not through an HTTP
client (which would normalise them). The org is a small one of its own (scale 3,000).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from simple_salesforce import Salesforce

from tests.helpers.emulator_proc import EmulatorProcess, bearer_client, poll_for

pytestmark = pytest.mark.emulator

V = "/services/data/v62.0"
ORG_SEED = 16
"""The seed of this module's own org (the ``org`` fixture of tests/integration/conftest.py)."""


@pytest.fixture()
def api(org: EmulatorProcess) -> Iterator[httpx.Client]:
    """On the module's own org (``org``, seeded by ``ORG_SEED``), not the session's."""
    with bearer_client(org) as client:
        yield client


def raw_head(em: EmulatorProcess, path: str, token: str | None) -> tuple[int, list[tuple[str, str]]]:
    """Status and the raw (name, value) header lines of ``GET path``, names exactly as sent."""
    parts = urlsplit(em.url)
    assert parts.hostname is not None and parts.port is not None
    ctx = ssl.create_default_context(cafile=em.info["ca_file"])
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with (
        socket.create_connection((parts.hostname, parts.port), timeout=120) as sock,
        ctx.wrap_socket(sock, server_hostname=parts.hostname) as tls,
    ):
        tls.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    headers = [(n, v.strip()) for n, _, v in (h.partition(":") for h in head[1:])]
    return status, headers


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [n for n, _ in headers]


def assert_no_lowercase(headers: list[tuple[str, str]]) -> None:
    """Every name starts each of its words with a capital, as Salesforce's do."""
    bad = [n for n in names(headers) if any(w[:1].islower() for w in n.split("-"))]
    assert not bad, headers


def test_header_names_on_the_wire_as_salesforce_spells_them(org: EmulatorProcess, api: httpx.Client) -> None:
    token = org.token()
    # a REST route
    status, headers = raw_head(org, f"{V}/sobjects/Account/describe", token)
    assert status == 200
    assert {"Content-Type", "Sforce-Limit-Info", "Date"} <= set(names(headers)), headers
    assert_no_lowercase(headers)

    # a Bulk 2.0 results route
    job = api.post(f"{V}/jobs/query", json={"operation": "query", "query": "SELECT Id FROM Account"}).json()
    poll_for(lambda: api.get(f"{V}/jobs/query/{job['id']}").json()["state"] == "JobComplete", timeout=120)
    status, headers = raw_head(org, f"{V}/jobs/query/{job['id']}/results?maxRecords=10", token)
    assert status == 200
    assert {"Content-Type", "Sforce-Locator", "Sforce-NumberOfRecords", "Sforce-Limit-Info"} <= set(
        names(headers)
    ), headers
    assert dict(headers)["Sforce-NumberOfRecords"] == "10"
    assert_no_lowercase(headers)

    # error routes: 401 INVALID_SESSION_ID and 404 NOT_FOUND
    status, headers = raw_head(org, f"{V}/sobjects/Account/describe", "bad-token")
    assert status == 401
    assert "Content-Type" in names(headers), headers
    assert_no_lowercase(headers)
    status, headers = raw_head(org, f"{V}/sobjects/NoSuchThing__c/describe", token)
    assert status == 404
    assert {"Content-Type", "Content-Length"} <= set(names(headers)), headers
    assert_no_lowercase(headers)


def test_a_doubled_leading_slash_is_served(org: EmulatorProcess, api: httpx.Client) -> None:
    token = org.token()
    status, headers = raw_head(org, f"/{V}/sobjects/Account/describe", token)
    assert status == 200, headers
    assert raw_head(org, f"/{V}/query?q={quote('SELECT Id FROM Account LIMIT 1')}", token)[0] == 200

    # simple-salesforce given an instance with a trailing slash calls https://host//services/...
    sf = Salesforce(instance=urlsplit(org.url).netloc + "/", session_id=token)
    sf.session.verify = org.verify
    sf.session.trust_env = False
    assert "//services/data" in sf.base_url
    live = org.sql("SELECT count(*) FROM sf_account WHERE NOT IsDeleted")[0][0]
    assert sf.query_all("SELECT Id FROM Account")["totalSize"] == live
    assert sf.Account.describe()["name"] == "Account"


def test_invalid_field_and_type_messages_and_their_classification(api: httpx.Client) -> None:
    from engine.errors import SalesforceQueryError
    from engine.extract.classify import classify

    soql = "SELECT Id, Nope FROM Account"
    resp = api.get(f"{V}/query", params={"q": soql})
    [body] = resp.json()
    assert (resp.status_code, body["errorCode"]) == (400, "INVALID_FIELD")
    assert body["message"].startswith(
        f"\n{soql}\n           ^\nERROR at Row:1:Column:12\nNo such column 'Nope'"
    )
    err = classify(resp, sobject="Account")
    assert isinstance(err, SalesforceQueryError) and "No such column 'Nope'" in str(err)

    soql = "SELECT Id FROM AccountOpps"
    resp = api.post(f"{V}/jobs/query", json={"operation": "query", "query": soql})
    [body] = resp.json()
    assert (resp.status_code, body["errorCode"]) == (400, "INVALID_TYPE")
    assert body["message"].startswith(f"\n{soql}\n               ^\nERROR at Row:1:Column:16\nsObject type")
    assert isinstance(classify(resp, sobject="AccountOpps"), SalesforceQueryError)


def col(name: str, apex: str | None, **flags: Any) -> dict[str, Any]:
    """One ``columnMetadata`` entry (every flag false unless given)."""
    base: dict[str, Any] = {
        "aggregate": False, "apexType": apex, "booleanType": False, "columnName": name, "custom": False,
        "displayName": name, "foreignKeyName": None, "insertable": False, "joinColumns": [],
        "numberType": False, "textType": False, "updatable": False,
    }  # fmt: skip
    return {**base, **flags}


def test_columns_true_answers_column_metadata(api: httpx.Client) -> None:
    for resource in ("query", "queryAll"):
        r = api.get(
            f"{V}/{resource}",
            params={"q": "SELECT Id, Name, Owner.Name, IsDeleted FROM Account", "columns": "true"},
        )
        assert r.status_code == 200, r.text
        assert r.json() == {
            "columnMetadata": [
                col("Id", "Id"),
                col("Name", "String", textType=True, insertable=True, updatable=True),
                col("Owner", None, foreignKeyName="OwnerId", joinColumns=[
                    col("Name", "String", textType=True),
                ]),
                col("IsDeleted", "Boolean", booleanType=True),
            ],
            "entityName": "Account", "groupBy": False, "idSelected": True, "keyPrefix": "001",
        }, resource  # fmt: skip

    r = api.get(f"{V}/query", params={"q": "SELECT COUNT() FROM Account", "columns": "true"})
    assert r.json() == {
        "columnMetadata": [col("expr0", None, aggregate=True, numberType=True, displayName="count()")],
        "entityName": "Account", "groupBy": False, "idSelected": False, "keyPrefix": "001",
    }  # fmt: skip
    r = api.get(
        f"{V}/query",
        params={
            "q": "SELECT Industry, COUNT(Id) n, MAX(AnnualRevenue) FROM Account GROUP BY Industry",
            "columns": "true",
        },
    )
    body = r.json()
    assert [(c["columnName"], c["displayName"], c["aggregate"]) for c in body["columnMetadata"]] == [
        ("Industry", "Industry", False), ("n", "count(Id)", True), ("expr0", "max(AnnualRevenue)", True),
    ]  # fmt: skip
    assert body["groupBy"] is True and body["idSelected"] is False
    # a bad statement is refused as the query itself would be
    r = api.get(f"{V}/query", params={"q": "SELECT Nope FROM Account", "columns": "true"})
    assert (r.status_code, r.json()[0]["errorCode"]) == (400, "INVALID_FIELD")
