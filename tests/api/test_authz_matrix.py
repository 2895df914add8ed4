"""The authorisation matrix: every /v1 endpoint x {no token, viewer, operator, admin}.

The routes and their rules come from the real app (``create_app``): each route's lowest accepted
role is the ``RoleRequirement`` in its dependency tree, so a new endpoint is covered as soon as a
router mounts it, and an endpoint that forgets to declare a role fails here. Expectations:
no token -> 401 SFV-901; a role below the route's -> 403 SFV-902; a role at or above -> anything
but 401/403 (404, 409 or 422 are fine: authorisation passed).

Path parameters name real catalog rows (one seeded org, job, compare and export) for reads and
settings changes; other requests that change something use ids that do not exist, so no
Salesforce login, backup, compare or export is ever started and no seeded row is deleted.

The route set and every route's role must also match the table in docs/API.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import RANK
from engine.catalog.models import Role
from tests.api.conftest import api_settings, bearer, make_tokens
from tests.api.routes_of_app import (
    ApiRoute,
    Seeded,
    api_routes,
    documented_routes,
    fill_path,
    path_values,
    required_role,
    seed_catalog,
)

ROUTES = [
    r
    for r in api_routes(create_app(api_settings(Path("/nonexistent")), scheduler=False))
    if r.path.startswith("/v1")
]
CALLERS = ("none", Role.VIEWER.value, Role.OPERATOR.value, Role.ADMIN.value)


class Env:
    def __init__(self, client: TestClient, tokens: dict[Role, str], seeded: Seeded) -> None:
        self.client = client
        self.tokens = tokens
        self.seeded = seeded

    def url(self, r: ApiRoute) -> str:
        return fill_path(r.path, path_values(self.seeded, r.method))

    def call(self, r: ApiRoute, caller: str) -> tuple[int, dict[str, Any]]:
        headers = {} if caller == "none" else bearer(self.tokens[Role(caller)])
        resp = self.client.request(r.method, self.url(r), headers=headers)
        ctype = resp.headers.get("content-type", "")
        body = resp.json() if ctype.startswith("application/json") else {}
        return resp.status_code, body if isinstance(body, dict) else {}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("authz")
    settings = api_settings(root)
    tokens = make_tokens(settings.catalog_url)
    seeded = seed_catalog(settings.catalog_url)
    with TestClient(create_app(settings, scheduler=False), raise_server_exceptions=False) as client:
        yield Env(client, tokens, seeded)


def test_the_app_has_v1_routes() -> None:
    assert len(ROUTES) >= 2, [r.id for r in ROUTES]


@pytest.mark.parametrize("r", ROUTES, ids=lambda r: r.id)
def test_every_route_declares_a_role(r: ApiRoute) -> None:
    assert required_role(r.route) is not None, (
        f"{r.id} has no Depends(require(Role.X)) (Viewer/Operator/Admin)"
    )


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("r", ROUTES, ids=lambda r: r.id)
def test_authorisation(env: Env, r: ApiRoute, caller: str) -> None:
    needed = required_role(r.route)
    assert needed is not None, f"{r.id} declares no role"
    status, body = env.call(r, caller)
    if caller == "none":
        assert (status, body.get("code")) == (401, "SFV-901"), body
    elif RANK[Role(caller)] < RANK[needed]:
        assert (status, body.get("code")) == (403, "SFV-902"), body
        assert body.get("details", {}).get("needed") == needed.value
    else:
        assert status not in (401, 403), f"{caller} refused on {r.id} (needs {needed.value}): {status} {body}"


def test_no_token_is_401_even_with_a_bad_token_on_every_route(env: Env) -> None:
    for r in ROUTES:
        resp = env.client.request(r.method, env.url(r), headers=bearer("sfv_not-a-real-token"))
        assert (resp.status_code, resp.json()["code"]) == (401, "SFV-901"), r.id


def test_app_routes_match_docs_api_md() -> None:
    """docs/API.md lists exactly the routes the app serves, each with the role the route declares."""
    doc = documented_routes()
    app_routes = {
        (r.method, r.path): r for r in api_routes(create_app(api_settings(Path("/x")), scheduler=False))
    }
    undocumented = sorted(f"{m} {p}" for (m, p) in app_routes.keys() - doc.keys())
    assert not undocumented, f"served but missing from docs/API.md: {undocumented}"
    wrong_role = {
        f"{m} {p}": (doc[(m, p)], role.value if (role := required_role(r.route)) else "none")
        for (m, p), r in app_routes.items()
        if (role.value if (role := required_role(r.route)) else "none") != doc[(m, p)]
    }
    assert not wrong_role, f"role in docs/API.md vs the route's RoleRequirement: {wrong_role}"


def test_every_documented_route_is_served() -> None:
    doc = documented_routes()
    app_routes = {
        (r.method, r.path) for r in api_routes(create_app(api_settings(Path("/x")), scheduler=False))
    }
    missing = sorted(f"{m} {p}" for (m, p) in doc.keys() - app_routes)
    assert not missing, f"documented in docs/API.md but not served: {missing}"
