"""One meaning of "API calls" (issue 15 finding 17, issue 16; decision 0027).

A real job runs from the CLI against a private emulated org (a process-based LocalCluster, a local
encrypted repository, a SQLite catalog). The figure the CLI prints must equal what the org's
allowance lost: ``DailyApiRequests.Remaining`` read from ``/limits`` (the REST route a Salesforce
client reads) before and after the job, less the one call the second read itself costs; logins are
free, as in Salesforce. The job report (XLSX), ``GET /v1/jobs/{id}/usage``, ``GET
/v1/orgs/{org}/data``, ``sfvault job show`` and ``sfvault data`` must show the same number and the
same split by API, and the emulator's own counters by category must agree with that split. One job
reads through Bulk API 2.0, one through Bulk API 1.0 with PK chunking, whose batches must equal what
``DailyBulkApiBatches`` lost. ``/v1/orgs/{org}/usage`` must show the allowance as it was at the end
of the job.

Before this change, one job measured 571 calls in the CLI and at the allowance, but 47 in
``/usage`` (REST calls + Bulk jobs + result pages), and the allowance ``/usage`` showed was the one
of whichever task's figures were merged last.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from typer.testing import CliRunner

from api.app import create_app
from api.reports import SUMMARY_SHEET
from devkit.backup_env import BackupEnv, backup_env
from engine.catalog.models import Role
from engine.cli import app
from engine.config import Settings
from tests.api.conftest import bearer, make_tokens
from tests.helpers.cli_config import write_config

pytestmark = [pytest.mark.emulator, pytest.mark.cluster]

# the emulator's request categories (emulator.limits.categorize) by API
REST = ("describe", "rest", "query", "limits", "blob", "record", "replication")
BULK2 = ("bulk2_create", "bulk2_job", "bulk2_results", "bulk2_result_pages")
BULK1 = (
    "bulk1_create", "bulk1_job", "bulk1_batch_create", "bulk1_batch", "bulk1_result_list", "bulk1_results",
)  # fmt: skip
CLI_ENV = {
    "COLUMNS": "250",
    "SFVAULT_JOB__REST_MAX_ROWS": "0",  # every object through Bulk: a full reads small ones through REST
    "SFVAULT_JOB__POLL_FIRST": "0.02",
    "SFVAULT_JOB__POLL_MAX": "0.2",
}
CONFIG_KEYS = ("repository_url", "key_file", "catalog_url", "scratch_dir", "retry_wait_max",
               "retry_max_seconds", "chunk_target_bytes")  # fmt: skip
CALLS = re.compile(
    r"([\d,]+) API calls \(REST ([\d,]+), Bulk 2\.0 ([\d,]+), Bulk 1\.0 ([\d,]+)"
    r"(?:; ([\d,]+) Bulk 1\.0 batches)?\)"
)


@dataclass(frozen=True)
class Measured:
    """One job as the CLI printed it and as the org's allowance saw it."""

    job_id: str
    printed: str
    allowance_delta: int
    """DailyApiRequests Remaining before - after the job (the after-read's own call taken off)."""
    batches_delta: int
    """DailyBulkApiBatches Remaining before - after the job."""
    remaining_after: int
    """DailyApiRequests Remaining right after the job (before the after-read)."""
    by_category: dict[str, int]
    """The emulator's request counters by category, during the job only."""

    def split(self) -> dict[str, int]:
        """The emulator's counted requests by API."""
        c = self.by_category
        return {
            "rest": sum(c.get(k, 0) for k in REST), "bulk2": sum(c.get(k, 0) for k in BULK2),
            "bulk1": sum(c.get(k, 0) for k in BULK1),
        }  # fmt: skip


@dataclass
class Env:
    be: BackupEnv
    settings: Settings
    config: Path
    bulk2: Measured
    bulk1: Measured


def _limits(be: BackupEnv) -> dict[str, Any]:
    """``/limits`` as a Salesforce client reads it (this request counts against the allowance)."""
    resp = be.em.http().get(
        "/services/data/v62.0/limits", headers={"Authorization": f"Bearer {be.em.token()}"}
    )
    resp.raise_for_status()
    return dict(resp.json())


def _cli(config: Path, *args: str, env: dict[str, str] | None = None, exit_code: int = 0) -> str:
    res = CliRunner(env={**CLI_ENV, **(env or {})}).invoke(app, [*args, "--config", str(config)])
    assert res.exit_code == exit_code, res.output
    return " ".join(res.output.split())  # rich and typer may wrap long lines


def _measured_backup(be: BackupEnv, config: Path, env: dict[str, str]) -> Measured:
    before = _limits(be)
    state0 = be.em.admin("GET", "/limits")  # admin reads are not API calls
    printed = _cli(config, "backup", "acme", "--full", "--scheduler", be.dask.scheduler.address, env=env)
    state1 = be.em.admin("GET", "/limits")
    after = _limits(be)
    found = re.search(r"full backup (\S+): succeeded", printed)
    assert found, printed
    cats0, cats1 = state0["by_category"], state1["by_category"]
    return Measured(
        job_id=found.group(1),
        printed=printed,
        allowance_delta=before["DailyApiRequests"]["Remaining"] - after["DailyApiRequests"]["Remaining"] - 1,
        batches_delta=before["DailyBulkApiBatches"]["Remaining"] - after["DailyBulkApiBatches"]["Remaining"],
        remaining_after=after["DailyApiRequests"]["Remaining"] + 1,
        by_category={k: n - cats0.get(k, 0) for k, n in cats1.items() if n != cats0.get(k, 0)},
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("api-calls")
    with backup_env(root / "env", scale=3_000, seed=27) as be:
        settings = be.settings.model_copy(
            update={"scratch_dir": root / "scratch", "scheduler_enabled": False}
        )
        config = write_config(root / "sfvault.toml", settings, CONFIG_KEYS)
        be.add_org("acme")
        bulk2 = _measured_backup(be, config, {})
        bulk1 = _measured_backup(be, config, {"SFVAULT_JOB__EXTRACTION_STRATEGY": "bulk1"})
        yield Env(be, settings, config, bulk2, bulk1)


@pytest.fixture(scope="module")
def api(env: Env) -> Iterator[tuple[TestClient, dict[str, str]]]:
    tokens = make_tokens(env.settings.catalog_url)
    with TestClient(create_app(env.settings, scheduler=False), raise_server_exceptions=False) as client:
        yield client, bearer(tokens[Role.VIEWER])


def _printed_calls(text: str) -> dict[str, int]:
    """``N API calls (REST a, Bulk 2.0 b, Bulk 1.0 c[; d Bulk 1.0 batches])`` from CLI output."""
    found = CALLS.search(text)
    assert found, text
    total, rest, bulk2, bulk1, batches = (int((g or "0").replace(",", "")) for g in found.groups())
    return {"total": total, "rest": rest, "bulk2": bulk2, "bulk1": bulk1, "bulk1_batches": batches}


def _calls_fields(u: dict[str, Any]) -> dict[str, int]:
    """The calls of an API answer (``api_calls``, ``rest_calls`` ...) under the CLI's names."""
    return {
        "total": u["api_calls"], "rest": u["rest_calls"], "bulk2": u["bulk2_calls"],
        "bulk1": u["bulk1_calls"], "bulk1_batches": u["bulk1_batches"],
    }  # fmt: skip


def _usage_route(api: tuple[TestClient, dict[str, str]], job_id: str) -> dict[str, int]:
    client, h = api
    resp = client.get(f"/v1/jobs/{job_id}/usage", headers=h)
    assert resp.status_code == 200, resp.text
    return _calls_fields(resp.json())


def _report(api: tuple[TestClient, dict[str, str]], job_id: str) -> dict[str, int]:
    client, h = api
    resp = client.get(f"/v1/jobs/{job_id}/report.xlsx", headers=h)
    assert resp.status_code == 200, resp.text
    ws = load_workbook(io.BytesIO(resp.content))[SUMMARY_SHEET]
    rows = {str(r[0]): r[1] for r in ws.iter_rows(values_only=True)}
    return {"total": rows["API calls"], "rest": rows["REST calls"], "bulk2": rows["Bulk 2.0 calls"],
            "bulk1": rows["Bulk 1.0 calls"], "bulk1_batches": rows["Bulk 1.0 batches"]}  # fmt: skip


def _data_view(api: tuple[TestClient, dict[str, str]], job_id: str) -> dict[str, int]:
    client, h = api
    resp = client.get("/v1/orgs/acme/data", params={"job": job_id}, headers=h)
    assert resp.status_code == 200, resp.text
    return _calls_fields(resp.json()["usage"])


@pytest.mark.parametrize("which", ["bulk2", "bulk1"])
def test_the_cli_figure_is_what_the_org_allowance_lost(env: Env, which: str) -> None:
    m: Measured = getattr(env, which)
    printed = _printed_calls(m.printed)
    assert printed["total"] == m.allowance_delta, (printed, m.allowance_delta, m.by_category)
    # the split by API is the emulator's split of the requests it counted
    assert {k: printed[k] for k in ("rest", "bulk2", "bulk1")} == m.split(), m.by_category
    # Bulk API 1.0 batches (PK chunks included) are what DailyBulkApiBatches lost, and not calls
    assert printed["bulk1_batches"] == m.batches_delta
    if which == "bulk1":
        assert printed["bulk1"] > 0 and printed["bulk1_batches"] > 0, printed
    else:
        assert printed["bulk2"] > 0 and printed["bulk1"] == 0, printed


@pytest.mark.parametrize("which", ["bulk2", "bulk1"])
def test_every_surface_shows_the_same_calls(
    env: Env, api: tuple[TestClient, dict[str, str]], which: str
) -> None:
    m: Measured = getattr(env, which)
    expected = _printed_calls(m.printed)
    assert expected["total"] == m.allowance_delta
    shown = {
        "GET /v1/jobs/{id}/usage": _usage_route(api, m.job_id),
        "job report (XLSX)": _report(api, m.job_id),
        "GET /v1/orgs/{org}/data": _data_view(api, m.job_id),
        "sfvault job show": _printed_calls(_cli(env.config, "job", "show", m.job_id)),
        "sfvault data": _printed_calls(_cli(env.config, "data", "acme", "--job", m.job_id)),
    }
    assert {where: got for where, got in shown.items() if got != expected} == {}, expected


def test_the_usage_route_shows_the_allowance_left_at_the_end_of_the_job(
    env: Env, api: tuple[TestClient, dict[str, str]]
) -> None:
    client, h = api
    resp = client.get("/v1/orgs/acme/usage", headers=h)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["allowance"]["remaining"] == env.bulk1.remaining_after  # the newer job's
    # the day's totals are the two jobs' calls
    day_calls = sum(d["api_calls"] for d in body["days"])
    assert day_calls == body["totals"]["api_calls"] == env.bulk2.allowance_delta + env.bulk1.allowance_delta
