"""The OpenAPI contract, checked against the real app.

1. Schemathesis generates requests for every operation of ``/openapi.json`` with each role's
   token (admin, operator, viewer; ``EXAMPLES_PER_OPERATION`` examples each, a few hundred cases
   per role; ``SFVAULT_SCHEMATHESIS_EXAMPLES`` raises it, see ``benchmarks/schemathesis_roles.py``
   for the 10,000-case run) and checks that nothing answers 500 and that every response
   conforms to the documented schema and content type. Reads and settings changes name the
   seeded org, job, compare and export so real rows are rendered; requests that would start
   work on Salesforce (back up now, permission check, compare, export, hide/show, cancel,
   disconnect) name an org or id that does not exist and fail fast with 404; connecting an org
   and changing its credentials (``POST /v1/orgs``, ``PATCH /v1/orgs/{org}``, which log in to
   Salesforce) are left to tests with an emulator (test_api_org_operator_path, the e2e test).
2. Malformed input: for every query parameter and JSON body field whose schema can be violated
   (a number, a boolean, an enum, a bounded string, a list, an object), a wrong-typed value, and a
   number just outside its documented minimum or maximum, answers 422
   SFV-903 with ``details.errors[].field`` naming it, and a refused settings change saves nothing.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from api.app import create_app
from engine.catalog.models import Role
from tests.api.conftest import api_settings, bearer, make_tokens
from tests.api.routes_of_app import Seeded, fill_path, path_values, seed_catalog

EXAMPLES_PER_OPERATION = int(os.environ.get("SFVAULT_SCHEMATHESIS_EXAMPLES", "12"))
CASES: Counter[str] = Counter()
"""Cases run per role (the benchmark reads the total from ``SFVAULT_SCHEMATHESIS_REPORT``)."""
SALESFORCE_CONNECT = {("POST", "/v1/orgs"), ("PATCH", "/v1/orgs/{org}")}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass
class Service:
    client: TestClient
    app: Any
    admin: dict[str, str]
    seeded: Seeded
    roles: dict[Role, dict[str, str]]

    def values(self, method: str) -> dict[str, str]:
        return path_values(self.seeded, method)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The app with its lifespan running (catalog open) over a seeded catalog, no scheduler."""
    root = tmp_path_factory.mktemp("openapi")
    cfg = api_settings(root)
    tokens = make_tokens(cfg.catalog_url)
    seeded = seed_catalog(cfg.catalog_url)
    app = create_app(cfg, scheduler=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Service(client=client, app=app, admin=bearer(tokens[Role.ADMIN]), seeded=seeded,
                      roles={role: bearer(token) for role, token in tokens.items()})  # fmt: skip
    report = os.environ.get("SFVAULT_SCHEMATHESIS_REPORT")
    if report:
        Path(report).write_text(json.dumps({"cases": dict(CASES), "total": sum(CASES.values())}))


@pytest.fixture(scope="module")
def api_schema(service: Service) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", service.app)


def _operations() -> list[tuple[str, str]]:
    doc = create_app(api_settings(Path("/nonexistent")), scheduler=False).openapi()
    ops = [(m.upper(), p) for p, item in doc["paths"].items() for m in item if m.upper() in METHODS]
    return [op for op in ops if op not in SALESFORCE_CONNECT]


# schemathesis' own pytest integration (``from_fixture``) does not run under pytest 9, so each
# operation is its own test id and drives hypothesis over the operation's strategy itself.
@pytest.mark.parametrize("role", [Role.ADMIN, Role.OPERATOR, Role.VIEWER], ids=lambda r: r.value)
@pytest.mark.parametrize(("method", "path"), _operations(), ids=lambda v: str(v))
def test_no_500_and_responses_match_the_schema(
    api_schema: Any, service: Service, method: str, path: str, role: Role
) -> None:
    operation = api_schema[path][method]
    values = service.values(method)

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Any) -> None:
        if case.path_parameters:
            case.path_parameters = {k: values.get(k, v) for k, v in case.path_parameters.items()}
        CASES[role.value] += 1
        case.call_and_validate(
            headers=service.roles[role],
            checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
        )

    check()


# --- malformed input -> 422 naming the field -------------------------------------------------


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    if "anyOf" in schema:
        branches = [_resolve(doc, s) for s in schema["anyOf"] if s.get("type") != "null"]
        return branches[0] if branches else schema
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _resolve(doc, schema["allOf"][0])
    return schema


def _wrong(schema: dict[str, Any], *, in_query: bool) -> Any:
    """A value the schema refuses, or None when it accepts anything we could send."""
    if "enum" in schema:
        return "@@not-one-of-them@@"
    kind = schema.get("type")
    if kind == "integer" or kind == "number":
        return "not-a-number"
    if kind == "boolean":
        return "maybe-not"
    if kind == "array":
        if not in_query:
            return 7
        items = schema.get("items", {})
        return "@@not-one-of-them@@" if "enum" in items or "$ref" in items else None
    if kind == "object":
        return None if in_query else 7
    if kind == "string":
        if schema.get("format") in ("date-time", "date", "time"):
            return "not-a-time"
        if "maxLength" in schema:
            return "x" * (int(schema["maxLength"]) + 1)
        if "pattern" in schema:
            return "\u00e9\u00e9 not matching \u00e9\u00e9"
        return None if in_query else 12345
    return None


def _out_of_range(schema: dict[str, Any]) -> list[Any]:
    """Numbers just outside a documented minimum / maximum."""
    if schema.get("type") not in ("integer", "number"):
        return []
    out: list[Any] = []
    if "minimum" in schema:
        out.append(schema["minimum"] - 1)
    if "exclusiveMinimum" in schema:
        out.append(schema["exclusiveMinimum"])
    if "maximum" in schema:
        out.append(schema["maximum"] + 1)
    if "exclusiveMaximum" in schema:
        out.append(schema["exclusiveMaximum"])
    return out


@dataclass(frozen=True)
class BadInput:
    method: str
    path: str
    where: str  # "query" or "body"
    name: str
    value: Any

    @property
    def id(self) -> str:
        return f"{self.method} {self.path} {self.where}.{self.name}={self.value!r}"[:160]


def _bad_inputs() -> list[BadInput]:
    app = create_app(api_settings(Path("/nonexistent")), scheduler=False)
    doc = app.openapi()
    out: list[BadInput] = []
    for path, ops in doc["paths"].items():
        if not path.startswith("/v1"):
            continue
        for method, op in ops.items():
            for p in op.get("parameters", []):
                if p["in"] != "query":
                    continue
                schema = _resolve(doc, p["schema"])
                for value in (_wrong(schema, in_query=True), *_out_of_range(schema)):
                    if value is not None:
                        out.append(BadInput(method.upper(), path, "query", p["name"], value))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body is None:
                continue
            for name, prop in _resolve(doc, body).get("properties", {}).items():
                schema = _resolve(doc, prop)
                for value in (_wrong(schema, in_query=False), *_out_of_range(schema)):
                    if value is not None:
                        out.append(BadInput(method.upper(), path, "body", name, value))
    return out


BAD_INPUTS = _bad_inputs()


def test_there_is_malformed_input_to_send() -> None:
    assert any(b.where == "body" for b in BAD_INPUTS) and any(b.where == "query" for b in BAD_INPUTS)


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=lambda b: b.id)
def test_malformed_input_is_422_naming_the_field(service: Service, bad: BadInput) -> None:
    url = fill_path(bad.path, service.values(bad.method))
    before = _readback(service, bad, url)
    if bad.where == "query":
        resp = service.client.request(bad.method, url, params={bad.name: bad.value}, headers=service.admin)
    else:
        resp = service.client.request(bad.method, url, json={bad.name: bad.value}, headers=service.admin)
    assert resp.status_code == 422, f"{bad.id} = {bad.value!r}: {resp.status_code} {resp.text[:500]}"
    body = resp.json()
    assert body["code"] == "SFV-903"
    fields = [e["field"] for e in body["details"]["errors"]]
    assert f"{bad.where}.{bad.name}" in fields or any(
        f.startswith(f"{bad.where}.{bad.name}.") for f in fields
    ), f"{bad.id}: errors name {fields}"
    assert bad.name in body["message"]
    assert _readback(service, bad, url) == before, f"{bad.id}: a refused request changed {url}"


def _readback(service: Service, bad: BadInput, url: str) -> Any:
    """For a change (PATCH/PUT) with a GET at the same path: what GET answers (nothing half-saved)."""
    if bad.method not in ("PATCH", "PUT"):
        return None
    resp = service.client.get(url, headers=service.admin)
    return resp.status_code, resp.json() if resp.status_code == 200 else None


# --- answers from outside the routes: 405 (router) and 413 (body limit) -------------------------


def test_405_and_413_are_documented_on_every_operation_and_real_answers_match(service: Service) -> None:
    """Issue 15: the router's 405 and the body limit's 413 were answered but not in the document, so
    clients and schemathesis met undocumented statuses. Each operation lists both, with the error
    body's schema (and ``Allow`` on 405), and real answers validate against that schema."""
    from api.errors import ErrorBody

    doc = service.client.get("/openapi.json").json()
    missing = [
        f"{method.upper()} {path}: {status}"
        for path, item in doc["paths"].items()
        for method, op in item.items()
        for status in ("405", "413")
        if status not in op["responses"]
    ]
    assert not missing, missing
    responses = doc["components"]["responses"]
    assert "Allow" in responses["MethodNotAllowed"]["headers"]
    for name in ("MethodNotAllowed", "RequestTooLarge"):
        ref = responses[name]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/ErrorBody"
    assert set(doc["components"]["schemas"]["ErrorBody"]["required"]) == {"code", "message"}

    not_allowed = service.client.put("/v1/orgs", headers=service.admin)
    assert not_allowed.status_code == 405 and not_allowed.headers["Allow"]
    too_large = service.client.post(
        "/v1/orgs", headers={**service.admin, "Content-Type": "application/json"}, content=b" " * (2 << 20)
    )
    assert too_large.status_code == 413
    for answer in (not_allowed, too_large):
        body = answer.json()
        assert set(body) == set(doc["components"]["schemas"]["ErrorBody"]["properties"])
        ErrorBody.model_validate(body, strict=True)
