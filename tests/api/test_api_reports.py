"""The XLSX job report (``GET /v1/jobs/{job_id}/report.xlsx``) over a real catalog.

The job is put in the catalog the way the runner records one (create, start, per-object
results, API usage, finish), with one failed object, so every error-code path of the report is
exercised without a backup; the end-to-end test in test_api_jobs.py downloads the report of a
real backup. The workbook is opened with openpyxl and compared with the catalog row by row.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from api.reports import (
    OBJECT_COLUMNS,
    OBJECTS_SHEET,
    SUMMARY_SHEET,
    TROUBLESHOOTING_URL,
    XLSX_MEDIA_TYPE,
    github_slug,
    troubleshooting_link,
)
from engine.catalog import jobs as cjobs
from engine.catalog import orgs as corgs
from engine.catalog.db import make_engine, session_factory, transaction
from engine.catalog.jobs import ObjectResult
from engine.catalog.models import Role
from engine.catalog.usage import record_api_usage
from engine.clock import FrozenClock
from engine.config import Settings

GUIDE = Path(__file__).parents[2] / "docs" / "TROUBLESHOOTING.md"
T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
OBJECTS = (
    ObjectResult("Account", records=1200, bytes=48213, chunks=2, duration_s=3.25, rest_calls=4, bulk2_jobs=1,
                 bulk2_pages=2),
    ObjectResult("Contact", records=2400, bytes=91000, chunks=3, duration_s=4.5, rest_calls=5, bulk2_jobs=2,
                 bulk2_pages=3, bulk2_calls=9, bulk1_calls=4, bulk1_batches=2),
    ObjectResult("Case", state="failed", records=0, bytes=0, duration_s=1.0, rest_calls=3, bulk2_jobs=1,
                 error_code="SFV-403", error_message="the org's daily API allowance is used up"),
    ObjectResult("Lead", state="failed", rest_calls=1, error_code="SFV-999",
                 error_message="a code this version does not know"),
)  # fmt: skip


def seed_job(settings: Settings, org: str = "acme", *, cycle_id: str | None = None, kind: str = "full",
             start: datetime = T0) -> str:  # fmt: skip
    """A partial job of ``org`` with four objects (two failed) and its API usage."""
    clock = FrozenClock(start)
    engine = make_engine(settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            row = corgs.find_org_by_name(s, org) or corgs.create_org(
                s, name=org, instance_url="https://acme.example", storage_location="/nowhere", clock=clock
            )
            job = cjobs.create_job(s, row, kind=kind, trigger="manual", cycle_id=cycle_id, clock=clock)
            cjobs.start_job(s, job, clock=clock)
            clock.advance(timedelta(minutes=5))
            for res in OBJECTS:
                cjobs.record_object_result(s, job, res)
                if res.error_code:
                    cjobs.add_job_error(s, job, code=res.error_code, message=res.error_message or "",
                                        object_name=res.object_name, clock=clock)  # fmt: skip
            record_api_usage(s, org_id=row.id, job_id=job.id, rest_calls=13, bulk2_calls=20, bulk1_calls=6,
                             bulk1_batches=3, bulk2_jobs=4, bulk2_pages=5, remaining=14_000,
                             daily_limit=15_000, clock=clock)  # fmt: skip
            cjobs.finish_job(s, job, "partial", snapshot_ref="snap-1", metadata_items=7, error_code="SFV-403",
                             error_message="2 object(s) failed", clock=clock)  # fmt: skip
            return job.id
    finally:
        engine.dispose()


def anchors_of_guide() -> set[str]:
    return {github_slug(line[3:]) for line in GUIDE.read_text().splitlines() if line.startswith("## ")}


def test_report_rows_match_the_catalog(
    api_client: TestClient, settings: Settings, as_role: Callable[[Role], dict[str, str]]
) -> None:
    job_id = seed_job(settings)
    resp = api_client.get(f"/v1/jobs/{job_id}/report.xlsx", headers=as_role(Role.VIEWER))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == XLSX_MEDIA_TYPE
    assert resp.headers["content-disposition"] == f'attachment; filename="sfvault-acme-{job_id}.xlsx"'

    wb = load_workbook(io.BytesIO(resp.content))
    assert wb.sheetnames == [SUMMARY_SHEET, OBJECTS_SHEET]
    summary = {r[0].value: r[1] for r in wb[SUMMARY_SHEET].iter_rows(min_col=1, max_col=2)}
    expect = {
        "Org": "acme", "Job": job_id, "Kind": "full", "Trigger": "manual", "State": "partial",
        "Start (UTC)": T0.replace(tzinfo=None), "End (UTC)": (T0 + timedelta(minutes=5)).replace(tzinfo=None),
        "Duration (s)": 300, "Objects": 4, "Objects succeeded": 2, "Objects failed": 2,
        "Records": 3600, "Size (bytes)": 48213 + 91000, "Metadata items": 7, "API calls": 13 + 20 + 6,
        "REST calls": 13, "Bulk 2.0 calls": 20, "Bulk 1.0 calls": 6, "Bulk 2.0 jobs": 4,
        "Bulk 2.0 result pages": 5, "Bulk 1.0 batches": 3, "Error code": "SFV-403",
    }  # fmt: skip
    assert {k: summary[k].value for k in expect} == expect
    assert summary["Error code"].hyperlink.target == troubleshooting_link("SFV-403")

    sheet = wb[OBJECTS_SHEET]
    rows = list(sheet.iter_rows())
    assert [c.value for c in rows[0]] == list(OBJECT_COLUMNS)
    by_name = {r[0].value: r for r in rows[1:]}
    assert list(by_name) == sorted(o.object_name for o in OBJECTS), "one row per object, by name"
    code_col = OBJECT_COLUMNS.index("Error code")
    for o in OBJECTS:
        row = [c.value for c in by_name[o.object_name]]
        assert row == [
            o.object_name, o.state, o.records, o.bytes, o.chunks, o.duration_s,
            o.rest_calls + o.bulk2_calls + o.bulk1_calls, o.rest_calls, o.bulk2_calls, o.bulk1_calls,
            o.bulk2_jobs, o.bulk2_pages, o.bulk1_batches, o.files_unavailable, o.error_code, o.error_message,
            o.warning_code, o.warning_message, "absent" if o.error_code else "this job",
            None if o.error_code else job_id,
        ]  # fmt: skip
        link = by_name[o.object_name][code_col].hyperlink
        if o.error_code is None:
            assert link is None
        else:
            assert link is not None and link.target == troubleshooting_link(o.error_code)

    # a known code links to its section of the guide; an unknown one to the guide itself
    case_link = by_name["Case"][code_col].hyperlink.target
    assert case_link.startswith(TROUBLESHOOTING_URL + "#")
    assert case_link.split("#", 1)[1] in anchors_of_guide()
    assert by_name["Lead"][code_col].hyperlink.target == TROUBLESHOOTING_URL


def seed_first_full(settings: Settings, org: str = "acme") -> str:
    """A full job that backed up Account, Contact and Case and failed on Lead (the cycle's first)."""
    clock = FrozenClock(T0 - timedelta(days=1))
    engine = make_engine(settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            row = corgs.create_org(s, name=org, instance_url="https://acme.example",
                                   storage_location="/nowhere", clock=clock)  # fmt: skip
            job = cjobs.create_job(s, row, kind="full", trigger="scheduled", clock=clock)
            job.cycle_id = job.id
            cjobs.start_job(s, job, clock=clock)
            for name in ("Account", "Contact", "Case"):
                cjobs.record_object_result(s, job, ObjectResult(name, records=10))
            lead = ObjectResult("Lead", state="failed", error_code="SFV-403", error_message="limit")
            cjobs.record_object_result(s, job, lead)
            cjobs.finish_job(s, job, "partial", snapshot_ref="snap-0", clock=clock)
            return job.id
    finally:
        engine.dispose()


def test_partial_job_report_and_details_say_which_objects_are_as_of_an_earlier_job(
    api_client: TestClient, settings: Settings, as_role: Callable[[Role], dict[str, str]]
) -> None:
    """Issue 14 defect 5: the report and the job details of a partial job name the objects whose
    data in its recovery point is as of an earlier job (and which), or absent."""
    first = seed_first_full(settings)
    job_id = seed_job(settings, cycle_id=first, kind="incremental")  # Case and Lead fail here
    resp = api_client.get(f"/v1/jobs/{job_id}/report.xlsx", headers=as_role(Role.VIEWER))
    assert resp.status_code == 200, resp.text
    wb = load_workbook(io.BytesIO(resp.content))
    summary = {r[0].value: r[1].value for r in wb[SUMMARY_SHEET].iter_rows(min_col=1, max_col=2)}
    assert summary["State"] == "partial"
    assert summary["Objects as of an earlier job"] == 1
    assert summary["Objects absent from the recovery point"] == 1
    assert "2 object(s) were not backed up by this job" in summary["Note"]
    rows = list(wb[OBJECTS_SHEET].iter_rows(values_only=True))
    as_of = {r[0]: r[-2:] for r in rows[1:]}
    assert as_of == {"Account": ("this job", job_id), "Contact": ("this job", job_id),
                     "Case": ("earlier job", first), "Lead": ("absent", None)}  # fmt: skip

    details = api_client.get(f"/v1/jobs/{job_id}", headers=as_role(Role.VIEWER)).json()
    assert details["state"] == "partial"
    assert details["stale_objects"] == [
        {"object": "Case", "as_of": "earlier_job", "as_of_job": first, "error_code": "SFV-403"},
        {"object": "Lead", "as_of": "absent", "as_of_job": None, "error_code": "SFV-999"},
    ]
    assert {o["name"]: (o["as_of"], o["as_of_job"]) for o in details["objects"]} == {
        "Account": ("this_job", job_id), "Contact": ("this_job", job_id), "Case": ("earlier_job", first),
        "Lead": ("absent", None),
    }  # fmt: skip
    # the earlier job is itself partial on Lead, and complete for the rest
    first_details = api_client.get(f"/v1/jobs/{first}", headers=as_role(Role.VIEWER)).json()
    assert [(o["object"], o["as_of"]) for o in first_details["stale_objects"]] == [("Lead", "absent")]


def test_every_error_code_links_to_an_existing_heading() -> None:
    from engine.errors import all_error_classes

    anchors = anchors_of_guide()
    missing = sorted(
        cls.code
        for cls in all_error_classes()
        if troubleshooting_link(cls.code).split("#", 1)[-1] not in anchors
    )
    assert not missing, f"links without a section in TROUBLESHOOTING.md: {missing}"


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("SFV-601 JobAlreadyRunning", "sfv-601-jobalreadyrunning"),
        ("SFV-300 KeyError_", "sfv-300-keyerror_"),
        ("SFV-910 JobNotCancellable", "sfv-910-jobnotcancellable"),
    ],
)
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_report_of_unknown_job_is_404(
    api_client: TestClient, as_role: Callable[[Role], dict[str, str]]
) -> None:
    resp = api_client.get("/v1/jobs/20261120T000000Z-000000000000/report.xlsx", headers=as_role(Role.VIEWER))
    assert resp.status_code == 404
    assert resp.json()["code"] == "SFV-101"


def test_report_needs_a_token(api_client: TestClient, settings: Settings) -> None:
    job_id = seed_job(settings)
    assert api_client.get(f"/v1/jobs/{job_id}/report.xlsx").json()["code"] == "SFV-901"
