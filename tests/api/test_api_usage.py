"""API usage per job and per day (``/v1/jobs/{job_id}/usage``, ``/v1/orgs/{org}/usage``).

The usage ledger is written the way backup jobs write it (:func:`record_api_usage` with the
job's clock), over three days, for two orgs; the app runs with a frozen clock so "the last 30
days" is exact. The end-to-end test in test_api_jobs.py reads the usage of a real backup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from engine.catalog import jobs as cjobs
from engine.catalog import orgs as corgs
from engine.catalog.db import make_engine, session_factory, transaction
from engine.catalog.models import Role
from engine.catalog.usage import record_api_usage
from engine.clock import FrozenClock
from engine.config import Settings

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def ledger(settings: Settings) -> dict[str, str]:
    """Jobs on Nov 1, Nov 24 and Nov 25 for acme (two on the 25th), one for other; job ids by day."""
    clock = FrozenClock(datetime(2026, 11, 1, 3, 0, tzinfo=UTC))
    jobs: dict[str, str] = {}
    engine = make_engine(settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            acme = corgs.create_org(s, name="acme", instance_url=None, storage_location="/r", clock=clock)
            other = corgs.create_org(s, name="other", instance_url=None, storage_location="/r", clock=clock)
            plan = [
                (datetime(2026, 11, 1, 3, 0, tzinfo=UTC), acme, 10, 1, 2, 900),
                (datetime(2026, 11, 24, 0, 5, tzinfo=UTC), acme, 20, 2, 3, 800),
                (datetime(2026, 11, 25, 0, 5, tzinfo=UTC), acme, 30, 3, 4, 700),
                (datetime(2026, 11, 25, 6, 5, tzinfo=UTC), acme, 40, 4, 5, 600),
                (datetime(2026, 11, 25, 7, 0, tzinfo=UTC), other, 99, 9, 9, 1),
            ]
            for at, org, rest, bulk, pages, remaining in plan:
                clock = FrozenClock(at)
                job = cjobs.create_job(s, org, kind="incremental", clock=clock)
                cjobs.start_job(s, job, clock=clock)  # one job of a lane at a time: each ran and ended
                cjobs.finish_job(s, job, "succeeded", clock=clock)
                record_api_usage(s, org_id=org.id, job_id=job.id, rest_calls=rest, bulk2_calls=3 * bulk,
                                 bulk1_calls=pages, bulk1_batches=1, bulk2_jobs=bulk, bulk2_pages=pages,
                                 remaining=remaining, daily_limit=1000, clock=clock)  # fmt: skip
                jobs[f"{org.name}-{at:%m%dT%H}"] = job.id
    finally:
        engine.dispose()
    return jobs


def _counts(rest: int, bulk: int, pages: int, batches: int) -> dict[str, int]:
    """What the ledger fixture recorded for ``rest`` REST calls, ``bulk`` Bulk 2.0 jobs and
    ``pages`` pages (3 Bulk 2.0 calls per job, one Bulk 1.0 call per page, one batch per row)."""
    return {
        "api_calls": rest + 3 * bulk + pages, "rest_calls": rest, "bulk2_calls": 3 * bulk,
        "bulk1_calls": pages, "bulk1_batches": batches, "bulk2_jobs": bulk, "bulk2_pages": pages,
    }  # fmt: skip


@pytest.fixture
def client(settings: Settings, tokens: dict[Role, str]) -> Iterator[TestClient]:
    app = create_app(settings, clock=FrozenClock(NOW), scheduler=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_job_usage(
    client: TestClient, ledger: dict[str, str], as_role: Callable[[Role], dict[str, str]]
) -> None:
    job = ledger["acme-1125T06"]
    resp = client.get(f"/v1/jobs/{job}/usage", headers=as_role(Role.VIEWER))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"job": job, "org": "acme", **_counts(40, 4, 5, 1)}
    # REST + Bulk 2.0 + Bulk 1.0 calls; not jobs, pages, batches
    assert resp.json()["api_calls"] == 40 + 12 + 5


def test_org_usage_defaults_to_the_last_30_days(
    client: TestClient, ledger: dict[str, str], as_role: Callable[[Role], dict[str, str]]
) -> None:
    resp = client.get("/v1/orgs/acme/usage", headers=as_role(Role.VIEWER))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["since"], body["until"]) == ("2026-10-27", "2026-11-25")
    assert body["days"] == [
        {"day": "2026-11-01", **_counts(10, 1, 2, 1), "remaining": 900, "daily_limit": 1000},
        {"day": "2026-11-24", **_counts(20, 2, 3, 1), "remaining": 800, "daily_limit": 1000},
        {"day": "2026-11-25", **_counts(70, 7, 9, 2), "remaining": 600, "daily_limit": 1000},
    ]  # fmt: skip
    assert body["totals"] == _counts(100, 10, 14, 4)
    assert body["allowance"]["remaining"] == 600 and body["allowance"]["daily_limit"] == 1000


def test_org_usage_range(
    client: TestClient, ledger: dict[str, str], as_role: Callable[[Role], dict[str, str]]
) -> None:
    resp = client.get("/v1/orgs/acme/usage?since=2026-11-02&until=2026-11-24", headers=as_role(Role.VIEWER))
    body = resp.json()
    assert [d["day"] for d in body["days"]] == ["2026-11-24"]
    assert body["totals"]["rest_calls"] == 20
    assert body["allowance"]["remaining"] == 600, "the allowance is the latest seen, whatever the range"
    one_day = client.get(
        "/v1/orgs/acme/usage?since=2026-11-01&until=2026-11-01", headers=as_role(Role.VIEWER)
    )
    assert [d["rest_calls"] for d in one_day.json()["days"]] == [10]


def test_org_without_usage(
    client: TestClient, settings: Settings, as_role: Callable[[Role], dict[str, str]]
) -> None:
    engine = make_engine(settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            corgs.create_org(s, name="fresh", instance_url=None)
    finally:
        engine.dispose()
    body = client.get("/v1/orgs/fresh/usage", headers=as_role(Role.VIEWER)).json()
    assert body["days"] == [] and body["allowance"] is None
    assert body["totals"] == _counts(0, 0, 0, 0)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=2026-11-10&until=2026-11-09", "query.since"),
        ("since=2024-01-01&until=2026-11-09", "query.since"),
        ("since=yesterday", "query.since"),
        ("until=2026-13-01", "query.until"),
    ],
)
def test_bad_ranges_answer_422_naming_the_field(
    client: TestClient,
    ledger: dict[str, str],
    as_role: Callable[[Role], dict[str, str]],
    query: str,
    field: str,
) -> None:
    resp = client.get(f"/v1/orgs/acme/usage?{query}", headers=as_role(Role.VIEWER))
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["code"] == "SFV-903"
    assert [e["field"] for e in body["details"]["errors"]] == [field]


def test_unknown_org_and_job_are_404(client: TestClient, as_role: Callable[[Role], dict[str, str]]) -> None:
    org = client.get("/v1/orgs/nobody/usage", headers=as_role(Role.VIEWER))
    job = client.get("/v1/jobs/20261125T000000Z-000000000000/usage", headers=as_role(Role.VIEWER))
    assert (org.status_code, org.json()["code"]) == (404, "SFV-101")
    assert (job.status_code, job.json()["code"]) == (404, "SFV-101")
    bad = client.get("/v1/orgs/no%20such/usage", headers=as_role(Role.VIEWER))
    assert bad.status_code == 422


def test_usage_needs_a_token(client: TestClient, ledger: dict[str, str]) -> None:
    assert client.get("/v1/orgs/acme/usage").status_code == 401
    assert client.get(f"/v1/jobs/{ledger['acme-1101T03']}/usage").status_code == 401
