"""Jobs: back up now, the job list, job details with live progress, cancel, report and usage.

Two parts. The first runs the real app over a real catalog in which jobs are recorded the way
the runner records them: refusals of "back up now" (they are decided before any Salesforce or
Dask work), paging and filters of the job list, details, cancel and bad input.

The second is end to end: a private emulated org, a process-based Dask LocalCluster and the app
with them (``create_app(settings, dask_factory=..., job_options=TEST_OPTIONS)``); the org is
connected through the catalog with its ``storage_location`` pointing at a folder that is not a
repository yet (the first backup initialises it). It backs up over HTTP, follows the job while
it runs (an emulator fault holds one result download so the job is seen mid-way, another fails
one Bulk job so an object hits an exception), and checks details, report, usage and cancel
against the catalog.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from api.app import create_app
from api.reports import OBJECT_COLUMNS, OBJECTS_SHEET, troubleshooting_link
from devkit.backup_env import TEST_OPTIONS, bulk_only
from engine.catalog import jobs as cjobs
from engine.catalog import orgs as corgs
from engine.catalog.db import make_engine, session_factory, transaction
from engine.catalog.jobs import ObjectResult
from engine.catalog.models import Job, Role
from engine.catalog.usage import usage_of_job
from engine.clock import FrozenClock
from engine.config import Settings
from engine.jobs.credentials import catalog_sealer, credentials_record
from engine.jobs.selection import check_selection
from engine.sink.repository import open_backend, read_config
from tests.api.conftest import api_settings, bearer, make_tokens
from tests.helpers.emulator_proc import EmulatorProcess, poll_for, start_emulator

T0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
Headers = Callable[[Role], dict[str, str]]


def _catalog(settings: Settings) -> Any:
    engine = make_engine(settings.catalog_url)
    return engine, session_factory(engine)


def add_org(settings: Settings, name: str, **kw: Any) -> None:
    engine, sessions = _catalog(settings)
    try:
        with transaction(sessions) as s:
            corgs.create_org(s, name=name, instance_url="https://x.example", clock=FrozenClock(T0), **kw)
    finally:
        engine.dispose()


def add_job(
    settings: Settings,
    org: str,
    state: str,
    at: datetime,
    *,
    kind: str = "full",
    objects: tuple[ObjectResult, ...] = (),
) -> str:
    """A job recorded like the runner records one, ending in ``state``."""
    engine, sessions = _catalog(settings)
    clock = FrozenClock(at)
    try:
        with transaction(sessions) as s:
            job = cjobs.create_job(s, corgs.get_org_by_name(s, org), kind=kind, trigger="manual", clock=clock)
            if state != "queued":
                cjobs.start_job(s, job, clock=clock)
            for res in objects:
                cjobs.record_object_result(s, job, res)
                if res.error_code:
                    cjobs.add_job_error(s, job, code=res.error_code, message=res.error_message or "",
                                        object_name=res.object_name, clock=clock)  # fmt: skip
            if state not in ("queued", "running"):
                clock.advance(timedelta(minutes=3))
                cjobs.finish_job(s, job, state, clock=clock)
            return job.id
    finally:
        engine.dispose()


def catalog_job(settings: Settings, job_id: str) -> Job:
    engine, sessions = _catalog(settings)
    try:
        with transaction(sessions) as s:
            job = cjobs.get_job(s, job_id, with_objects=True)
            s.expunge_all()
            return job
    finally:
        engine.dispose()


# --- part 1: the catalog only ------------------------------------------------------------------


def test_job_list_newest_first_with_paging_and_states(
    api_client: TestClient, settings: Settings, as_role: Headers
) -> None:
    add_org(settings, "acme", storage_location="/r")
    add_org(settings, "other", storage_location="/r")
    states = ["succeeded", "partial", "failed", "succeeded", "cancelled", "succeeded", "running"]
    ids = [add_job(settings, "acme", st, T0 + timedelta(hours=i)) for i, st in enumerate(states)]
    add_job(settings, "other", "succeeded", T0)
    h = as_role(Role.VIEWER)

    first = api_client.get("/v1/orgs/acme/jobs?limit=3", headers=h).json()
    assert [j["id"] for j in first["items"]] == ids[::-1][:3]
    assert first["next_offset"] == 3 and first["items"][0]["state"] == "running"
    last = api_client.get("/v1/orgs/acme/jobs?limit=3&offset=6", headers=h).json()
    assert [j["id"] for j in last["items"]] == [ids[0]] and last["next_offset"] is None
    everything = api_client.get("/v1/orgs/acme/jobs", headers=h).json()
    assert [j["id"] for j in everything["items"]] == ids[::-1] and everything["limit"] == 50
    ok = api_client.get("/v1/orgs/acme/jobs?state=succeeded&state=partial", headers=h).json()
    assert [j["id"] for j in ok["items"]] == [ids[5], ids[3], ids[1], ids[0]]
    job = everything["items"][-1]
    assert (job["org"], job["kind"], job["trigger"], job["state"]) == ("acme", "full", "manual", "succeeded")
    assert job["started_at"] and job["finished_at"]


def test_job_list_pages_by_key_while_new_jobs_arrive(
    api_client: TestClient, settings: Settings, as_role: Headers
) -> None:
    """Issue 15 (keyset paging): with offsets, a job created between two page reads shifts the
    next page (a job seen twice); ``after=<next_after>`` pages from the last job seen."""
    add_org(settings, "acme", storage_location="/r")
    ids = [add_job(settings, "acme", "succeeded", T0 + timedelta(hours=i)) for i in range(5)]
    h = as_role(Role.VIEWER)
    first = api_client.get("/v1/orgs/acme/jobs?limit=2", headers=h).json()
    assert [j["id"] for j in first["items"]] == [ids[4], ids[3]] and first["next_after"] == ids[3]
    add_job(settings, "acme", "succeeded", T0 + timedelta(hours=9))  # arrives between the reads
    seen = [j["id"] for j in first["items"]]
    after: str | None = first["next_after"]
    while after is not None:
        page = api_client.get(f"/v1/orgs/acme/jobs?limit=2&after={after}", headers=h).json()
        seen += [j["id"] for j in page["items"]]
        after = page["next_after"]
    assert seen == ids[::-1], "each job once, none skipped"
    unknown = api_client.get("/v1/orgs/acme/jobs?after=nope", headers=h)
    assert (unknown.status_code, unknown.json()["code"]) == (422, "SFV-903")


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "query.limit"), ("limit=501", "query.limit"), ("offset=-1", "query.offset"),
     ("state=bogus", "query.state.0"), ("limit=ten", "query.limit")],
)  # fmt: skip
def test_job_list_bad_input_is_422(
    api_client: TestClient, settings: Settings, as_role: Headers, query: str, field: str
) -> None:
    add_org(settings, "acme", storage_location="/r")
    resp = api_client.get(f"/v1/orgs/acme/jobs?{query}", headers=as_role(Role.VIEWER))
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "SFV-903"
    assert [e["field"] for e in resp.json()["details"]["errors"]] == [field]


def test_unknown_org_and_job_are_404(api_client: TestClient, as_role: Headers) -> None:
    h = as_role(Role.OPERATOR)
    missing = "20261101T000000Z-000000000000"
    for method, path in [
        ("GET", "/v1/orgs/nobody/jobs"),
        ("POST", "/v1/orgs/nobody/backups"),
        ("GET", f"/v1/jobs/{missing}"),
        ("POST", f"/v1/jobs/{missing}/cancel"),
    ]:
        resp = api_client.request(method, path, headers=h, json={} if method == "POST" else None)
        assert resp.status_code == 404, (path, resp.text)
        assert resp.json()["code"] == "SFV-101"
    assert api_client.get("/v1/jobs/not%20a%20job", headers=h).status_code == 422


def test_job_details_with_objects_and_errors(
    api_client: TestClient, settings: Settings, as_role: Headers
) -> None:
    add_org(settings, "acme", storage_location="/r")
    objects = (
        ObjectResult(
            "Account", records=10, bytes=100, duration_s=1.5, rest_calls=2, bulk2_jobs=1, bulk2_pages=1
        ),
        ObjectResult(
            "Case", state="failed", rest_calls=1, error_code="SFV-409", error_message="Bulk job failed"
        ),
    )
    job_id = add_job(settings, "acme", "partial", T0, objects=objects)
    body = api_client.get(f"/v1/jobs/{job_id}", headers=as_role(Role.VIEWER)).json()
    assert (body["state"], body["records"], body["bytes"], body["live"]) == ("partial", 10, 100, False)
    assert body["object_counts"] == {"total": 2, "succeeded": 1, "failed": 1, "running": 0, "pending": 0}
    assert [(o["name"], o["state"], o["records"], o["error_code"]) for o in body["objects"]] == [
        ("Account", "succeeded", 10, None),
        ("Case", "failed", 0, "SFV-409"),
    ]
    assert body["objects"][0]["bulk2_jobs"] == 1 and body["objects"][0]["duration_s"] == 1.5
    assert [(e["object"], e["code"]) for e in body["errors"]] == [("Case", "SFV-409")]


def test_cancel(api_client: TestClient, settings: Settings, as_role: Headers) -> None:
    add_org(settings, "acme", storage_location="/r")
    queued = add_job(settings, "acme", "queued", T0)
    resp = api_client.post(f"/v1/jobs/{queued}/cancel", headers=as_role(Role.OPERATOR))
    assert resp.status_code == 202 and resp.json()["state"] == "cancelled"
    assert catalog_job(settings, queued).state == "cancelled"

    again = api_client.post(f"/v1/jobs/{queued}/cancel", headers=as_role(Role.ADMIN))
    assert again.status_code == 409
    assert again.json()["code"] == "SFV-910" and "only a queued or running job" in again.json()["message"]

    running = add_job(settings, "acme", "running", T0 + timedelta(hours=1))
    assert api_client.post(f"/v1/jobs/{running}/cancel", headers=as_role(Role.VIEWER)).status_code == 403
    resp = api_client.post(f"/v1/jobs/{running}/cancel", headers=as_role(Role.OPERATOR))
    assert resp.status_code == 202
    assert (resp.json()["state"], resp.json()["cancel_requested"]) == ("running", True)
    assert catalog_job(settings, running).cancel_requested


def test_back_up_now_refusals(api_client: TestClient, settings: Settings, as_role: Headers) -> None:
    h = as_role(Role.OPERATOR)
    add_org(settings, "nostore")
    resp = api_client.post("/v1/orgs/nostore/backups", headers=h, json={})
    assert resp.status_code == 409 and resp.json()["code"] == "SFV-605"
    assert "PATCH /v1/orgs/nostore/settings" in resp.json()["message"]
    assert "storage_location" in resp.json()["message"]

    add_org(settings, "fresh", storage_location="/r")
    resp = api_client.post("/v1/orgs/fresh/backups", headers=h, json={"objects": ["Account"]})
    assert resp.status_code == 409 and resp.json()["code"] == "SFV-606"

    add_org(settings, "busy", storage_location="/r")
    running = add_job(settings, "busy", "running", datetime.now(UTC) - timedelta(minutes=1))
    resp = api_client.post("/v1/orgs/busy/backups", headers=h, json={"objects": None, "full": False})
    assert resp.status_code == 409 and resp.json()["code"] == "SFV-601"
    assert running in resp.json()["message"]

    add_org(settings, "expired", storage_location="/r", plan="standard", subscription_expires_at=T0)
    resp = api_client.post("/v1/orgs/expired/backups", headers=h, json={})
    assert resp.status_code == 403 and resp.json()["code"] == "SFV-603"

    assert api_client.post("/v1/orgs/fresh/backups", headers=as_role(Role.VIEWER), json={}).status_code == 403
    assert api_client.post("/v1/orgs/fresh/backups", json={}).status_code == 401
    jobs = api_client.get("/v1/orgs/busy/jobs", headers=h).json()["items"]
    assert [j["id"] for j in jobs] == [running], "a refusal records no job"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"objects": []}, "body.objects"), ({"objects": ["Acc ount"]}, "body.objects.0"),
     ({"full": "maybe"}, "body.full"), ({"objects": "Account"}, "body.objects")],
)  # fmt: skip
def test_back_up_now_bad_body_is_422(
    api_client: TestClient, settings: Settings, as_role: Headers, body: dict[str, Any], field: str
) -> None:
    add_org(settings, "acme", storage_location="/r")
    resp = api_client.post("/v1/orgs/acme/backups", headers=as_role(Role.OPERATOR), json=body)
    assert resp.status_code == 422, resp.text
    assert [e["field"] for e in resp.json()["details"]["errors"]] == [field]


# --- part 2: end to end ------------------------------------------------------------------------


@dataclass
class Live:
    client: TestClient
    tokens: dict[Role, str]
    settings: Settings
    em: EmulatorProcess
    org_repo: Path

    def h(self, role: Role = Role.OPERATOR) -> dict[str, str]:
        return bearer(self.tokens[role])

    def wait_finished(self, job_id: str, seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            body: dict[str, Any] = self.client.get(f"/v1/jobs/{job_id}", headers=self.h(Role.VIEWER)).json()
            if seen is not None:
                seen.append(body)
            return body if body["state"] not in ("queued", "running") else None

        result: dict[str, Any] = poll_for(finished, timeout=240, interval=0.1)
        return result


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from distributed import Client, LocalCluster

    from cluster import configure_dask

    configure_dask()
    root = tmp_path_factory.mktemp("api-jobs")
    settings = api_settings(
        root, repository_url=str(root / "service-repo"), chunk_target_bytes=2 * 1024 * 1024
    )
    org_repo = root / "org-repo"
    tokens = make_tokens(settings.catalog_url)
    em = start_emulator(scale=4_000, seed=17, tls=False, timeout=300)
    try:
        i = em.info
        rec = credentials_record(
            instance_url=i["instance_url"], username=i["username"], password=i["password"],
            security_token=i["security_token"], client_id=i["client_id"], client_secret=i["client_secret"],
            login_url=i["login_url"], ca_file=i.get("ca_file"),
        )  # fmt: skip
        engine, sessions = _catalog(settings)
        try:
            with transaction(sessions) as s:
                sealer = catalog_sealer(settings, create=True)
                corgs.create_org(s, name="acme", instance_url=i["instance_url"], credentials=rec,
                                 sealer=sealer, storage_location=str(org_repo))  # fmt: skip
        finally:
            engine.dispose()
        with (
            LocalCluster(
                n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as dask,
        ):
            options = bulk_only(TEST_OPTIONS)  # the tests' faults sit on Bulk routes
            app = create_app(settings, dask_factory=lambda: dask, job_options=options, scheduler=False)
            with TestClient(app, raise_server_exceptions=False) as client:
                yield Live(client, tokens, settings, em, org_repo)
    finally:
        em.stop()


def _faults_fired(em: EmulatorProcess) -> dict[str, int]:
    return {f["kind"]: f["fired"] for f in em.admin("GET", "/faults")["faults"]}


@pytest.mark.emulator
@pytest.mark.cluster
def test_back_up_now_end_to_end(live: Live) -> None:
    c, h = live.client, live.h()
    # objects before the first full are refused, and nothing is initialised or recorded
    resp = c.post("/v1/orgs/acme/backups", headers=h, json={"objects": ["Account"]})
    assert (resp.status_code, resp.json()["code"]) == (409, "SFV-606")
    assert not live.org_repo.exists()

    # one result download is held 6 s (the job is seen running), one Bulk job fails
    live.em.admin("POST", "/faults", json={"path_regex": r"/jobs/query/[^/]+/results$", "kind": "delay",
                                           "delay_s": 6.0, "count": 1})  # fmt: skip
    failure = "UNKNOWN_EXCEPTION: the job could not be processed"  # not a timeout: no bisecting
    live.em.admin("POST", "/faults", json={"path_regex": r"/jobs/query$", "kind": "fail_job", "count": 1,
                                           "message": failure})  # fmt: skip
    resp = c.post("/v1/orgs/acme/backups", headers=h, json={})
    assert resp.status_code == 202, resp.text
    started = resp.json()
    job_id = started["id"]
    assert started["state"] in ("queued", "running"), "answered at once: queued, or running already"
    assert (started["kind"], started["trigger"]) == ("full", "manual")

    again = c.post("/v1/orgs/acme/backups", headers=h, json={})
    assert (again.status_code, again.json()["code"]) == (409, "SFV-601")
    assert job_id in again.json()["message"]

    seen: list[dict[str, Any]] = []
    done = live.wait_finished(job_id, seen)
    assert read_config(open_backend(str(live.org_repo), live.settings)).repo_id, "initialised on first use"
    assert not (Path(live.settings.repository_url)).exists(), "the org's storage location is used"
    assert _faults_fired(live.em) == {"delay": 1, "fail_job": 1}
    mid = [b for b in seen if b["state"] == "running" and b["live"] and b["objects"]]
    assert mid, "the job was never seen running with live per-object rows"
    counts = [b["object_counts"] for b in mid]
    assert any(0 < n["succeeded"] < n["total"] for n in counts), "never seen with some objects done, some not"

    # final details equal the catalog, one object hit an exception
    assert done["state"] == "partial", done
    job = catalog_job(live.settings, job_id)
    rows = {o.object_name: o for o in job.objects}
    assert [o["name"] for o in done["objects"]] == sorted(rows)
    for o in done["objects"]:
        r = rows[o["name"]]
        assert (o["state"], o["records"], o["bytes"], o["rest_calls"], o["bulk2_jobs"], o["error_code"]) == (
            r.state, r.records, r.bytes, r.rest_calls, r.bulk2_jobs, r.error_code
        )  # fmt: skip
    failed = [o for o in done["objects"] if o["state"] == "failed"]
    assert len(failed) == 1 and failed[0]["error_code"] == "SFV-409"
    assert done["records"] == job.records > 0 and done["bytes"] == job.bytes > 0
    assert done["started_at"] and done["finished_at"] and not done["live"]
    assert [e["code"] for e in done["errors"]] == ["SFV-409"]

    # the report: one row per object, equal to the catalog, the error code linked
    resp = c.get(f"/v1/jobs/{job_id}/report.xlsx", headers=live.h(Role.VIEWER))
    assert resp.status_code == 200
    sheet = load_workbook(io.BytesIO(resp.content))[OBJECTS_SHEET]
    report = list(sheet.iter_rows(min_row=2))
    assert [r[0].value for r in report] == sorted(rows)
    col = {name: i for i, name in enumerate(OBJECT_COLUMNS)}
    for r in report:
        o = rows[r[0].value]
        assert (r[col["State"]].value, r[col["Records"]].value, r[col["Size (bytes)"]].value,
                r[col["REST calls"]].value, r[col["Bulk 2.0 jobs"]].value,
                r[col["Bulk 2.0 result pages"]].value) == (
            o.state, o.records, o.bytes, o.rest_calls, o.bulk2_jobs, o.bulk2_pages)  # fmt: skip
        link = r[col["Error code"]].hyperlink
        assert (link.target if link else None) == (
            troubleshooting_link(o.error_code) if o.error_code else None
        )

    # usage: the job's and the org's day
    usage = c.get(f"/v1/jobs/{job_id}/usage", headers=live.h(Role.VIEWER)).json()
    engine, sessions = _catalog(live.settings)
    try:
        with transaction(sessions) as s:
            totals = usage_of_job(s, job_id)
    finally:
        engine.dispose()
    assert (usage["rest_calls"], usage["bulk2_jobs"], usage["bulk2_pages"]) == (
        totals.rest_calls, totals.bulk2_jobs, totals.bulk2_pages
    )  # fmt: skip
    assert usage["rest_calls"] > 0 and usage["bulk2_jobs"] > 0
    day = c.get("/v1/orgs/acme/usage", headers=live.h(Role.VIEWER)).json()
    assert sum(d["rest_calls"] for d in day["days"]) == usage["rest_calls"]
    assert day["allowance"] is not None and day["allowance"]["remaining"] > 0

    # objects once a full exists: an incremental of the chosen object
    resp = c.post("/v1/orgs/acme/backups", headers=h, json={"objects": ["Account"]})
    assert resp.status_code == 202, resp.text
    chosen = live.wait_finished(resp.json()["id"])
    assert chosen["state"] == "succeeded", chosen
    assert chosen["requested_objects"] == ["Account"] and chosen["kind"] == "incremental"
    listed = c.get("/v1/orgs/acme/jobs", headers=live.h(Role.VIEWER)).json()["items"]
    assert [j["id"] for j in listed] == [chosen["id"], job_id]


@pytest.mark.emulator
@pytest.mark.cluster
def test_unknown_objects_in_a_selection_are_refused_at_request_time(live: Live) -> None:
    """Issue 15 finding 22: a selection naming unknown objects used to answer 202 and fail later
    with SFV-806. Now 400 SFV-806 names every one, no job row is written, and names the catalog's
    cycle knows cost no Salesforce call (decision 0029)."""
    c, h = live.client, live.h()
    listed = c.get("/v1/orgs/acme/jobs", headers=h).json()["items"]
    if not any(j["kind"] == "full" and j["state"] in ("succeeded", "partial") for j in listed):
        resp = c.post("/v1/orgs/acme/backups", headers=h, json={})
        assert resp.status_code == 202, resp.text
        assert live.wait_finished(resp.json()["id"])["state"] in ("succeeded", "partial")
        listed = c.get("/v1/orgs/acme/jobs", headers=h).json()["items"]
    before = live.em.admin("GET", "/requests", params={"limit": 1})["last_seq"]

    resp = c.post("/v1/orgs/acme/backups", headers=h,
                  json={"objects": ["Account", "NoSuchObj__c", "Contcat"]})  # fmt: skip
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["code"] == "SFV-806"
    assert "NoSuchObj__c" in body["message"] and "Contcat" in body["message"]
    assert "Account" not in body["details"]["names"]
    assert c.get("/v1/orgs/acme/jobs", headers=h).json()["items"] == listed, "no job row was written"
    asked = [r["path"] for r in live.em.admin("GET", "/requests", params={"since": before})["requests"]]
    assert any(p.rstrip("/").endswith("/sobjects") for p in asked), asked  # one describeGlobal for the two

    # names the cycle already holds (any case) pass the check without a call to Salesforce
    before = live.em.admin("GET", "/requests", params={"limit": 1})["last_seq"]
    engine, sessions = _catalog(live.settings)
    try:
        check_selection(live.settings, sessions, "acme", ["contact", "Account"])
    finally:
        engine.dispose()
    asked = live.em.admin("GET", "/requests", params={"since": before})["requests"]
    # the check would log in and call describeGlobal. Other paths are not its calls: the emulator logs
    # a request when its answer ends, so the earlier test's results download that its fault delayed
    # (and the client abandoned and retried) can land here, after that job finished (clean-clone run)
    its_calls = ("/sobjects", "/sobjects/", "/oauth2/token")
    assert [r["path"] for r in asked if r["path"].endswith(its_calls)] == []


@pytest.mark.emulator
@pytest.mark.cluster
def test_cancel_a_running_backup(live: Live) -> None:
    c, h = live.client, live.h()
    live.em.admin("POST", "/faults", json={"path_regex": r"/jobs/query/[^/]+/results$", "kind": "delay",
                                           "delay_s": 8.0, "count": 1})  # fmt: skip
    try:
        resp = c.post("/v1/orgs/acme/backups", headers=h, json={"full": True})
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        cancel = c.post(f"/v1/jobs/{job_id}/cancel", headers=h)
        assert cancel.status_code == 202, cancel.text
        assert cancel.json()["cancel_requested"] is True
        done = live.wait_finished(job_id)
        assert done["state"] == "cancelled" and done["error_code"] == "SFV-801"
        finished = c.post(f"/v1/jobs/{job_id}/cancel", headers=h)
        assert (finished.status_code, finished.json()["code"]) == (409, "SFV-910")
    finally:
        live.em.admin("DELETE", "/faults")


# --- the job row exists from the instant "back up now" is admitted (issue 14, defects 8 and 10) --


def _org_beside(live: Live, name: str) -> None:
    """Another org of the same emulated Salesforce org, with its own repository, connected two
    days ago (its daily slot is due), permission checks off."""
    i = live.em.info
    rec = credentials_record(
        instance_url=i["instance_url"], username=i["username"], password=i["password"],
        security_token=i["security_token"], client_id=i["client_id"], client_secret=i["client_secret"],
        login_url=i["login_url"], ca_file=i.get("ca_file"),
    )  # fmt: skip
    engine, sessions = _catalog(live.settings)
    try:
        with transaction(sessions) as s:
            org = corgs.create_org(
                s, name=name, instance_url=i["instance_url"], credentials=rec,
                sealer=catalog_sealer(live.settings),
                storage_location=str(live.org_repo.parent / f"{name}-repo"),
                clock=FrozenClock(datetime.now(UTC) - timedelta(days=2)),
            )  # fmt: skip
            corgs.update_settings(s, org, permission_check_enabled=False)
    finally:
        engine.dispose()


def _hold_discovery(live: Live) -> int:
    """Park the next describeGlobal (the first call of a job's discovery) until released."""
    fault = live.em.admin("POST", "/faults", json={"path_regex": r"/sobjects/?$", "method": "GET",
                                                   "kind": "hold", "count": 1})  # fmt: skip
    return int(fault["id"])


def _fired(live: Live, fault_id: int) -> int:
    return next(f["fired"] for f in live.em.admin("GET", "/faults")["faults"] if f["id"] == fault_id)


@pytest.mark.emulator
@pytest.mark.cluster
def test_back_up_now_answers_the_job_before_discovery_and_planning(live: Live) -> None:
    """Defect 8: the route used to wait for the job's first progress event (after every object was
    sized and split) and answered SFV-911 when planning outlasted its 120 s wait."""
    _org_beside(live, "planning-held")
    hold = _hold_discovery(live)
    try:
        resp = live.client.post("/v1/orgs/planning-held/backups", headers=live.h(), json={})
        assert resp.status_code == 202, resp.text
        job = resp.json()
        assert job["state"] in ("queued", "running") and job["kind"] == "full"
        # the job reaches discovery only now, after the answer: it is parked there
        poll_for(lambda: _fired(live, hold) == 1, timeout=120)
        now = live.client.get(f"/v1/jobs/{job['id']}", headers=live.h()).json()
        assert now["state"] in ("queued", "running")
    finally:
        live.em.admin("POST", f"/faults/{hold}/release")
    done = live.wait_finished(job["id"])
    assert done["state"] == "succeeded" and done["records"] > 0, done


@pytest.mark.emulator
@pytest.mark.cluster
def test_while_a_job_starts_a_second_back_up_now_and_a_due_slot_answer_job_running(live: Live) -> None:
    """Defect 10: while the first job was discovering objects it had no row yet, so a second
    back-up-now met the repository lock (SFV-330) and a due slot was skipped with SFV-330."""
    from concurrent.futures import ThreadPoolExecutor

    from api.scheduler import Scheduler

    _org_beside(live, "start-held")
    url = "/v1/orgs/start-held/backups"
    hold = _hold_discovery(live)
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            first = pool.submit(live.client.post, url, headers=live.h(), json={})
            poll_for(lambda: _fired(live, hold) == 1, timeout=120)  # the first job holds the org's lock
            again = live.client.post(url, headers=live.h(), json={})
            assert (again.status_code, again.json()["code"]) == (409, "SFV-601"), again.text
            ctx = live.client.app.state.ctx  # type: ignore[attr-defined]
            slots = [o for o in Scheduler(ctx).tick(datetime.now(UTC)).slots if o.org == "start-held"]
            assert [(o.action, o.code) for o in slots] == [("skipped", "SFV-601")]
        finally:
            live.em.admin("POST", f"/faults/{hold}/release")
        resp = first.result()
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    assert job_id in again.json()["message"]
    done = live.wait_finished(job_id)
    assert done["state"] == "succeeded", done
    listed = live.client.get("/v1/orgs/start-held/jobs", headers=live.h()).json()["items"]
    assert sorted((j["trigger"], j["state"], j["error_code"]) for j in listed) == [
        ("manual", "succeeded", None),
        ("scheduled", "skipped", "SFV-601"),
    ]
