"""Files a user without "Query All Files" sees (emulator/files.py; SALESFORCE_API.md section 2.8).

A private emulator (the tests take the permission away from its integration user). The ground
truth is the visibility rule written out in plain SQL over the store, independently of the SOQL
translation (tests/helpers/files_visibility.py): a ContentDocument the user owns or that a
ContentDocumentLink shares with it, and the ContentVersions of those documents.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import files_visibility
from tests.helpers.emulator_proc import EmulatorProcess, start_emulator, wait_bulk2_job
from tests.helpers.files_visibility import QAF, live_ids, visible_ids

pytestmark = pytest.mark.emulator

V = "/services/data/v59.0"


@pytest.fixture(scope="module")
def em() -> Iterator[EmulatorProcess]:
    proc = start_emulator(scale=5000, seed=5, tls=False)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def api(em: EmulatorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=em.url, headers={"Authorization": f"Bearer {em.token()}"}, timeout=60, trust_env=False
    ) as client:
        yield client


@pytest.fixture
def without_query_all_files(em: EmulatorProcess) -> Iterator[str]:
    """The integration user loses Query All Files for the test; its Id."""
    with files_visibility.without_query_all_files(em) as user:
        yield user


def _rest_ids(api: httpx.Client, soql: str) -> set[str]:
    ids: set[str] = set()
    resp = api.get(f"{V}/query", params={"q": soql}, headers={"Sforce-Query-Options": "batchSize=200"})
    while True:
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        ids |= {str(r["Id"]) for r in body["records"]}
        if body["done"]:
            return ids
        resp = api.get(body["nextRecordsUrl"])


def _rest_count(api: httpx.Client, soql: str) -> int:
    resp = api.get(f"{V}/query", params={"q": soql})
    assert resp.status_code == 200, resp.text
    return int(resp.json()["totalSize"])


def _bulk_ids(api: httpx.Client, soql: str) -> set[str]:
    created = api.post(f"{V}/jobs/query", json={"operation": "query", "query": soql})
    assert created.status_code == 200, created.text
    job = created.json()["id"]
    info = wait_bulk2_job(api, f"{V}/jobs/query/{job}")  # polled as a client does
    assert info["state"] == "JobComplete", info
    ids: set[str] = set()
    locator: str | None = None
    while True:
        params = {"locator": locator} if locator else {}
        resp = api.get(f"{V}/jobs/query/{job}/results", params=params)
        assert resp.status_code == 200, resp.text
        ids |= {row["Id"] for row in csv.DictReader(io.StringIO(resp.text))}
        locator = resp.headers.get("Sforce-Locator")
        if not locator or locator == "null":
            return ids


def test_the_default_user_has_query_all_files_and_sees_every_file(
    em: EmulatorProcess, api: httpx.Client
) -> None:
    assert em.admin("GET", "/user-permissions")["permissions"][QAF] is True
    for obj in ("ContentVersion", "ContentDocument"):
        truth = live_ids(em, obj)
        assert _rest_ids(api, f"SELECT Id FROM {obj}") == truth
        assert _bulk_ids(api, f"SELECT Id, Title FROM {obj}") == truth


@pytest.mark.parametrize("obj", ["ContentVersion", "ContentDocument"])
def test_rest_and_bulk_return_the_same_visible_files(
    em: EmulatorProcess, api: httpx.Client, without_query_all_files: str, obj: str
) -> None:
    visible = visible_ids(em, obj, without_query_all_files)
    every = live_ids(em, obj)
    assert 0 < len(visible) < len(every), "the seed gives the user some files, not all"
    assert _rest_ids(api, f"SELECT Id FROM {obj}") == visible
    assert _bulk_ids(api, f"SELECT Id, Title FROM {obj}") == visible
    assert _rest_count(api, f"SELECT COUNT() FROM {obj}") == len(visible)
    # the filter composes with the query's own WHERE (the engine's Id-range partitions)
    lo = sorted(every)[len(every) // 2]
    assert _rest_ids(api, f"SELECT Id FROM {obj} WHERE Id >= '{lo}'") == {i for i in visible if i >= lo}
    # other objects are not filtered
    assert _rest_count(api, "SELECT COUNT() FROM Attachment") == len(live_ids(em, "Attachment"))


def test_the_body_and_record_of_a_hidden_file_answer_404(
    em: EmulatorProcess, api: httpx.Client, without_query_all_files: str
) -> None:
    visible = visible_ids(em, "ContentVersion", without_query_all_files)
    hidden = sorted(live_ids(em, "ContentVersion") - visible)[0]
    shown = sorted(visible)[0]
    body = api.get(f"{V}/sobjects/ContentVersion/{hidden}/VersionData")
    assert body.status_code == 404
    assert body.json() == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
    assert api.get(f"{V}/sobjects/ContentVersion/{hidden}").status_code == 404
    assert api.get(f"{V}/sobjects/ContentVersion/{shown}/VersionData").status_code == 200
    assert api.get(f"{V}/sobjects/ContentVersion/{shown}").status_code == 200


def test_granting_the_permission_again_shows_every_file(em: EmulatorProcess, api: httpx.Client) -> None:
    user = em.admin("POST", "/user-permissions", json={QAF: False})["user_id"]
    hidden = sorted(live_ids(em, "ContentVersion") - visible_ids(em, "ContentVersion", user))[0]
    assert api.get(f"{V}/sobjects/ContentVersion/{hidden}/VersionData").status_code == 404
    assert em.admin("POST", "/user-permissions", json={QAF: True})["permissions"][QAF] is True
    assert api.get(f"{V}/sobjects/ContentVersion/{hidden}/VersionData").status_code == 200
    assert _rest_ids(api, "SELECT Id FROM ContentVersion") == live_ids(em, "ContentVersion")


def test_the_admin_knob_refuses_what_is_not_a_permission(em: EmulatorProcess) -> None:
    for body in ({"Name": False}, {"PermissionsNoSuchThing": False}, {QAF: "no"}):
        resp = em.http().post(
            "/__emulator/user-permissions",
            json=body,
            headers={"X-Emulator-Admin-Secret": em.info["admin_secret"]},
        )
        assert resp.status_code == 400, (body, resp.text)
