"""Field-level security follows the org's permission sets, and the permission report's three
lists match the emulator's own tables (issue 16).

Contact.Email's read permission is revoked the way an admin would, by updating the user's
``FieldPermissions`` rows through the REST API; Email then vanishes from describe, REST and
Bulk 2.0 queries (``INVALID_FIELD`` when named), and the engine's permission report calls it
unreadable. The org is a small one of its own, since the test changes its permissions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from engine.extract.auth import SessionIdGrant
from engine.extract.client import ClientOptions, SalesforceClient
from engine.extract.rest import RestApi
from engine.jobs.permission_check import read_permission_rows
from tests.helpers.emulator_proc import EmulatorProcess, bearer_client

pytestmark = pytest.mark.emulator

V = "/services/data/v62.0"
ORG_SEED = 17
"""The seed of this module's own org (the ``org`` fixture of tests/integration/conftest.py)."""
NOT_PERMISSIONABLE = {
    "AccountHistory", "ContentDocument", "EventLogFile", "FieldPermissions", "ObjectPermissions",
    "Organization", "PermissionSet", "PermissionSetAssignment", "Profile", "StaticResource", "User",
    "UserLicense",
}  # fmt: skip
"""The emulator's queryable objects without object permissions that a full backs up."""


@pytest.fixture()
def api(org: EmulatorProcess) -> Iterator[httpx.Client]:
    """On the module's own org (``org``, seeded by ``ORG_SEED``), not the session's."""
    with bearer_client(org) as client:
        yield client


def report(org: EmulatorProcess) -> Any:
    grant = SessionIdGrant(instance_url=org.url, session_id=SecretStr(org.token()))
    options = ClientOptions(
        retry_wait_max=0, retry_max_attempts=3, ca_file=org.info["ca_file"], trust_env=False
    )
    with SalesforceClient(grant, options) as client:
        return read_permission_rows(RestApi(client), user_id(org), checked_at=datetime.now(UTC))


def user_id(org: EmulatorProcess) -> str:
    return str(org.admin("GET", "/info")["user_id"])


def email_rows(org: EmulatorProcess) -> list[str]:
    """The user's FieldPermissions rows for Contact.Email (profile's set and the others)."""
    sets = 'SELECT "PermissionSetId" FROM sf_permissionsetassignment WHERE "AssigneeId" = ?'
    rows = org.sql(
        f'SELECT "Id" FROM sf_fieldpermissions WHERE "Field" = \'Contact.Email\' AND "ParentId" IN ({sets})',
        user_id(org),
    )
    return [r[0] for r in rows]


def set_email_read(api: httpx.Client, ids: list[str], value: bool) -> None:
    for rid in ids:
        r = api.patch(f"{V}/sobjects/FieldPermissions/{rid}", json={"PermissionsRead": value})
        assert r.status_code == 204, r.text


def error_code(resp: httpx.Response) -> tuple[int, str]:
    return resp.status_code, resp.json()[0]["errorCode"]


def contact_fields(api: httpx.Client) -> set[str]:
    return {f["name"] for f in api.get(f"{V}/sobjects/Contact/describe").json()["fields"]}


def test_revoking_field_read_hides_it_everywhere(org: EmulatorProcess, api: httpx.Client) -> None:
    ids = email_rows(org)
    assert ids, "the integration user's permission sets have rows for Contact.Email"
    assert "Email" in contact_fields(api)
    assert api.get(f"{V}/query", params={"q": "SELECT Id, Email FROM Contact LIMIT 5"}).status_code == 200
    before = report(org)
    assert ("Contact", "Email") not in {(f.object, f.field) for f in before.unreadable_fields}

    set_email_read(api, ids, False)
    try:
        # describe: gone
        assert "Email" not in contact_fields(api)
        assert {"Id", "LastName"} <= contact_fields(api)
        # REST query, a parent path, one record: INVALID_FIELD, as if it did not exist
        r = api.get(f"{V}/query", params={"q": "SELECT Id, Email FROM Contact"})
        assert error_code(r) == (400, "INVALID_FIELD")
        assert "No such column 'Email' on entity 'Contact'" in r.json()[0]["message"]
        r = api.get(f"{V}/queryAll", params={"q": "SELECT Id, Contact.Email FROM Case"})
        assert error_code(r) == (400, "INVALID_FIELD")
        cid = org.sql("SELECT Id FROM sf_contact WHERE NOT IsDeleted LIMIT 1")[0][0]
        assert error_code(api.get(f"{V}/sobjects/Contact/{cid}", params={"fields": "Id,Email"})) == (
            400,
            "INVALID_FIELD",
        )
        assert "Email" not in api.get(f"{V}/sobjects/Contact/{cid}").json()
        # Bulk API 2.0: refused at job creation
        r = api.post(f"{V}/jobs/query", json={"operation": "query", "query": "SELECT Id, Email FROM Contact"})
        assert error_code(r) == (400, "INVALID_FIELD")
        # Bulk API 1.0: the batch fails as the query would
        assert bulk1_batch(api, "SELECT Id, Email FROM Contact")["state"] == "Failed"
        assert bulk1_batch(api, "SELECT Id, LastName FROM Contact")["state"] == "Completed"
        # other fields still work
        live = org.sql("SELECT count(*) FROM sf_contact WHERE NOT IsDeleted")[0][0]
        r = api.get(f"{V}/query", params={"q": "SELECT COUNT() FROM Contact WHERE LastName != null"})
        assert r.json()["totalSize"] == live

        # the permission report calls it unreadable, and its lists match the emulator's tables
        after = report(org)
        assert ("Contact", "Email") in {(f.object, f.field) for f in after.unreadable_fields}
        check_lists_against_tables(org, api, after)
    finally:
        set_email_read(api, ids, True)
    assert "Email" in contact_fields(api)
    assert api.get(f"{V}/query", params={"q": "SELECT Id, Email FROM Contact LIMIT 5"}).status_code == 200


def bulk1_batch(api: httpx.Client, soql: str) -> dict[str, Any]:
    """A Bulk API 1.0 JSON query job with one batch, polled until the batch ends."""
    job = api.post(
        "/services/async/62.0/job", json={"operation": "query", "object": "Contact", "contentType": "JSON"}
    ).json()
    base = f"/services/async/62.0/job/{job['id']}/batch"
    batch = api.post(base, content=soql.encode(), headers={"Content-Type": "application/json"}).json()
    while batch["state"] in ("Queued", "InProgress"):
        time.sleep(0.2)
        batch = api.get(f"{base}/{batch['id']}").json()
    return dict(batch)


def check_lists_against_tables(org: EmulatorProcess, api: httpx.Client, rep: Any) -> None:
    uid = user_id(org)
    sets = 'SELECT "PermissionSetId" FROM sf_permissionsetassignment WHERE "AssigneeId" = ?'
    unreadable_fields = {
        (o, f.split(".", 1)[1])
        for o, f in org.sql(
            f'SELECT "SobjectType", "Field" FROM sf_fieldpermissions GROUP BY 1, 2 '
            f'HAVING NOT bool_or("PermissionsRead" AND "ParentId" IN ({sets}))',
            uid,
        )
    }
    assert {(f.object, f.field) for f in rep.unreadable_fields} == unreadable_fields
    permissionable = {r[0] for r in org.sql('SELECT DISTINCT "SobjectType" FROM sf_objectpermissions')}
    readable = {
        r[0]
        for r in org.sql(
            f'SELECT DISTINCT "SobjectType" FROM sf_objectpermissions WHERE "PermissionsRead"'
            f' AND "ParentId" IN ({sets})',
            uid,
        )
    }
    described = {o["name"] for o in api.get(f"{V}/sobjects").json()["sobjects"] if o["queryable"]}
    not_permissionable = {
        n for n in described - permissionable
        if not n.endswith(("Share", "Feed", "ChangeEvent")) and n != "ContentDocumentLink"
    }  # fmt: skip
    assert not_permissionable == NOT_PERMISSIONABLE
    objects = {o.object: o for o in rep.objects}
    assert set(objects) == readable | NOT_PERMISSIONABLE
    assert {n for n, o in objects.items() if not o.needs_permission} == NOT_PERMISSIONABLE
    assert set(rep.unreadable_objects) == permissionable - readable
    # every object a full backs up is either listed or unreadable: nothing falls through
    assert set(objects) | set(rep.unreadable_objects) == permissionable | NOT_PERMISSIONABLE
    # fields of the objects that need no permission are listed, readable (describe applies FLS)
    fields = {(f.object, f.field): f.readable for f in rep.fields}
    assert fields[("User", "Username")] and fields[("AccountHistory", "Field")]
    granted = {
        p.permission
        for p in rep.user_permissions
        if org.sql(f'SELECT bool_or("{p.permission}") FROM sf_permissionset WHERE "Id" IN ({sets})', uid)[0][
            0
        ]
    }
    assert {p.permission for p in rep.user_permissions if p.granted} == granted
