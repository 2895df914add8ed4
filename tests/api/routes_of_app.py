"""What the authorisation matrix, the OpenAPI tests and the doc check share: the app's routes.

Everything here is read from the real application (``create_app``), so a route added by any
router is covered by those tests without touching them: :func:`api_routes` lists every
(method, path, APIRoute) the app serves, :func:`required_role` reads the route's
``RoleRequirement`` from its dependency tree, :func:`documented_routes` parses the route map
in docs/API.md, and :func:`seed_catalog` fills a catalog with one org, job, compare and export
whose ids fill path parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from api.deps import RANK, RoleRequirement
from engine.catalog.compares import create_compare
from engine.catalog.db import make_engine, migrate, session_factory, transaction
from engine.catalog.exports import create_export
from engine.catalog.jobs import ObjectResult, create_job, finish_job, record_object_result, start_job
from engine.catalog.models import JobKind, JobState, JobTrigger, Role
from engine.catalog.orgs import create_org

REPO_ROOT = Path(__file__).resolve().parents[2]
API_DOC = REPO_ROOT / "docs" / "API.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str
    route: APIRoute

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def api_routes(app: FastAPI) -> list[ApiRoute]:
    """Every (method, path) the app serves through an ``APIRoute``, sorted by path then method."""
    out: list[ApiRoute] = []
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        if not isinstance(route, APIRoute) or ctx.path is None:
            continue
        for method in sorted(ctx.methods or ()):
            if method in METHODS:
                out.append(ApiRoute(method=method, path=ctx.path, route=route))
    return sorted(out, key=lambda r: (r.path, r.method))


def _requirements(dependant: Dependant) -> Iterator[RoleRequirement]:
    for dep in dependant.dependencies:
        if isinstance(dep.call, RoleRequirement):
            yield dep.call
        yield from _requirements(dep)


def required_role(route: APIRoute) -> Role | None:
    """The lowest role the route accepts (the strictest ``RoleRequirement`` it depends on)."""
    reqs = list(_requirements(route.dependant))
    if not reqs:
        return None
    return max((r.role for r in reqs), key=lambda role: RANK[role])


_SPLIT = re.compile(r"(?<!\\)\|")
_CODE = re.compile(r"`([^`]+)`")


def documented_routes(doc: Path = API_DOC) -> dict[tuple[str, str], str]:
    """``{(method, path): role}`` from the route-map table of docs/API.md (query strings dropped;
    a row listing two paths, such as hide and show, gives two entries)."""
    out: dict[tuple[str, str], str] = {}
    for line in doc.read_text().splitlines():
        cells = [c.strip() for c in _SPLIT.split(line.strip())]
        if len(cells) < 5 or cells[1] not in METHODS:
            continue
        method, paths, role = cells[1], cells[2], cells[3]
        for path in _CODE.findall(paths):
            out[(method, path.split("?", 1)[0])] = role
    return out


@dataclass(frozen=True)
class Seeded:
    """Ids of real catalog rows, for path parameters."""

    org: str
    job_id: str
    other_job_id: str
    compare_id: str
    export_id: str
    object: str = "Account"


MISSING = {
    "org": "no-such-org",
    "job_id": "20000101T000000Z-000000000000",
    "compare_id": "0" * 32,
    "export_id": "0" * 32,
    "object": "Account",
}


def seed_catalog(catalog_url: str, org: str = "seeded") -> Seeded:
    """One org with two finished jobs (with per-object rows), a compare and an export."""
    engine = make_engine(catalog_url)
    try:
        migrate(engine)
        with transaction(session_factory(engine)) as s:
            o = create_org(
                s, name=org, instance_url="https://seeded.example.invalid", time_zone="Europe/Paris"
            )
            jobs = []
            for kind in (JobKind.FULL, JobKind.INCREMENTAL):
                job = create_job(s, o, kind=kind, trigger=JobTrigger.MANUAL)
                start_job(s, job)
                for name, n in (("Account", 120), ("Contact", 340)):
                    result = ObjectResult(name, records=n, bytes=n * 100, chunks=1, duration_s=0.5)
                    record_object_result(s, job, result)
                finish_job(s, job, JobState.SUCCEEDED)
                jobs.append(job.id)
            cmp = create_compare(s, org_id=o.id, job_id=jobs[1], against_job_id=jobs[0], objects=["Account"])
            exp = create_export(s, org_id=o.id, kind="records", format="csv", scope="changed",
                                objects=["Account"], job_id=jobs[1])  # fmt: skip
            return Seeded(org=org, job_id=jobs[0], other_job_id=jobs[1], compare_id=cmp.id, export_id=exp.id)
    finally:
        engine.dispose()


def path_values(seeded: Seeded, method: str) -> dict[str, str]:
    """Path parameters for a request: the seeded rows for reads and settings changes; ids that
    do not exist for everything else (nothing starts work on Salesforce, nothing seeded goes)."""
    if method not in ("GET", "PATCH"):
        return dict(MISSING)
    s = seeded
    return {"org": s.org, "job_id": s.job_id, "compare_id": s.compare_id, "export_id": s.export_id,
            "object": s.object}  # fmt: skip


def fill_path(path: str, values: dict[str, str]) -> str:
    """``/v1/orgs/{org}/jobs`` -> ``/v1/orgs/seeded/jobs``; unknown parameters get ``x``."""
    return re.sub(r"\{([^}:]+)(?::[^}]*)?\}", lambda m: values.get(m.group(1), "x"), path)
