"""The API's cross-cutting rules on the real app: token auth, roles, the one error shape."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from engine.catalog.models import Role


def test_health_needs_no_token(api_client: TestClient) -> None:
    assert api_client.get("/healthz").json() == {"status": "ok"}


def test_missing_or_unknown_token_is_401_with_the_error_shape(api_client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer sfv_not-a-token"}, {"Authorization": "Basic abc"}):
        r = api_client.get("/v1/me", headers=headers)
        assert r.status_code == 401
        assert r.json()["code"] == "SFV-901"
        assert "Bearer" in r.json()["message"]


def test_each_role_sees_itself(api_client: TestClient, as_role: Callable[[Role], dict[str, str]]) -> None:
    for role in (Role.ADMIN, Role.OPERATOR, Role.VIEWER):
        r = api_client.get("/v1/me", headers=as_role(role))
        assert r.status_code == 200
        assert r.json() == {"name": f"test-{role.value}", "role": role.value}


def test_unknown_route_is_404_with_a_code(api_client: TestClient) -> None:
    r = api_client.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.json()["code"] == "SFV-904"


def test_openapi_documents_the_error_shape(api_client: TestClient) -> None:
    doc = api_client.get("/openapi.json").json()
    assert "ErrorBody" in doc["components"]["schemas"]
    assert doc["info"]["title"] == "sfvault"
