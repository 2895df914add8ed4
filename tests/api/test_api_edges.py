"""The API's edges (issue 15, finding 9): a request body limit, ``Allow`` on 405, and what each
field reveals to each role (a viewer never reads an org's ``storage_location``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.limits import MAX_BODY_BYTES
from engine.catalog.models import Role
from engine.config import Settings
from tests.api.test_api_jobs import add_org

STORAGE = "/srv/backups/acme-secret-container"


def _big_json(size: int) -> bytes:
    return b'{"kind": "records", "pad": "' + b"x" * size + b'"}'


def test_a_body_over_one_mib_is_refused_with_413_and_a_code(
    api_client: TestClient, as_role: Callable[[Role], dict[str, str]]
) -> None:
    headers = {**as_role(Role.ADMIN), "Content-Type": "application/json"}
    r = api_client.post("/v1/orgs", content=_big_json(MAX_BODY_BYTES + 1), headers=headers)
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "SFV-906" and r.json()["details"]["limit_bytes"] == MAX_BODY_BYTES


def test_a_chunked_body_over_the_limit_is_refused_too(
    api_client: TestClient, as_role: Callable[[Role], dict[str, str]]
) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as it is read
        for _ in range(40):
            yield b"x" * 65536

    headers = {**as_role(Role.ADMIN), "Content-Type": "application/json"}
    r = api_client.post("/v1/orgs", content=chunks(), headers=headers)
    assert r.status_code == 413 and r.json()["code"] == "SFV-906"


def test_a_body_under_the_limit_still_reaches_the_route(
    api_client: TestClient, as_role: Callable[[Role], dict[str, str]]
) -> None:
    headers = {**as_role(Role.ADMIN), "Content-Type": "application/json"}
    r = api_client.post("/v1/orgs", content=_big_json(1000), headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "SFV-903"  # validated by the route


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/orgs", {"GET", "POST"}),
        ("DELETE", "/v1/me", {"GET"}),
        ("POST", "/v1/orgs/acme/settings", {"GET", "PATCH"}),
        ("PUT", "/v1/orgs/acme", {"GET", "PATCH", "DELETE"}),
    ],
)
def test_405_names_the_allowed_methods(
    api_client: TestClient, as_role: Callable[[Role], dict[str, str]], method: str, path: str, allow: set[str]
) -> None:
    r = api_client.request(method, path, headers=as_role(Role.ADMIN))
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["Allow"].split(",")} == allow
    assert r.json()["code"] == "SFV-900"


@pytest.fixture
def org_with_storage(settings: Settings) -> str:
    add_org(settings, "acme", storage_location=STORAGE)
    return "acme"


@pytest.mark.parametrize(("role", "sees"), [(Role.VIEWER, False), (Role.OPERATOR, True), (Role.ADMIN, True)])
def test_only_operators_and_admins_read_the_storage_location(
    api_client: TestClient, as_role: Callable[[Role], dict[str, str]], org_with_storage: str, role: Role,
    sees: bool,
) -> None:  # fmt: skip
    for path in (f"/v1/orgs/{org_with_storage}", f"/v1/orgs/{org_with_storage}/settings"):
        r = api_client.get(path, headers=as_role(role))
        assert r.status_code == 200, r.text
        assert r.json()["storage_location"] == (STORAGE if sees else None)
        assert (STORAGE in r.text) is sees


def _viewer_bodies(api_client: TestClient, headers: dict[str, str], org: str) -> list[tuple[str, Any]]:
    """Every GET a viewer may call on an org without ids (the audit's sweep)."""
    doc = api_client.get("/openapi.json").json()
    seen = []
    for path, ops in doc["paths"].items():
        if "get" not in ops or path.count("{") > 1 or ("{" in path and "{org}" not in path):
            continue
        r = api_client.get(path.replace("{org}", org), headers=headers)
        seen.append((path, r.status_code, r.text))
    return seen


def test_no_viewer_answer_carries_the_storage_location(
    api_client: TestClient, as_role: Callable[[Role], dict[str, str]], org_with_storage: str
) -> None:
    answers = _viewer_bodies(api_client, as_role(Role.VIEWER), org_with_storage)
    assert len(answers) >= 5
    leaks = [(path, status) for path, status, text in answers if STORAGE in text]
    assert leaks == []
