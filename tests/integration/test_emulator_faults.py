"""Fault injection, the realistic profile (job queueing, failures) and the churn command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from tests.helpers.emulator_proc import REPO_ROOT, EmulatorProcess, poll_for, running_emulator, wait_bulk2_job

pytestmark = pytest.mark.emulator

V = "/services/data/v59.0"
JOBS = f"{V}/jobs/query"


def test_fail_next_requests_matching_a_path(emulator: EmulatorProcess, api: httpx.Client) -> None:
    fault = emulator.admin(
        "POST",
        "/faults",
        json={"path_regex": r"/sobjects/Contact/describe$", "count": 2, "status": 503},
    )
    try:
        for _ in range(2):
            resp = api.get(f"{V}/sobjects/Contact/describe")
            assert resp.status_code == 503
            assert resp.json() == [
                {"message": "Server temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE"}
            ]
        assert api.get(f"{V}/sobjects/Contact/describe").status_code == 200
        listed = {f["id"]: f for f in emulator.admin("GET", "/faults")["faults"]}
        assert listed[fault["id"]]["fired"] == 2 and listed[fault["id"]]["remaining"] == 0
    finally:
        emulator.admin("DELETE", "/faults")


def test_injected_limit_error_on_job_create(emulator: EmulatorProcess, api: httpx.Client) -> None:
    emulator.admin(
        "POST",
        "/faults",
        json={
            "path_regex": r"/jobs/query$",
            "method": "POST",
            "status": 403,
            "error_code": "REQUEST_LIMIT_EXCEEDED",
            "message": "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
        },
    )
    try:
        resp = api.post(JOBS, json={"operation": "query", "query": "SELECT Id FROM Account"})
        assert resp.status_code == 403
        assert resp.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
        assert (
            api.post(JOBS, json={"operation": "query", "query": "SELECT Id FROM Account"}).status_code == 200
        )
    finally:
        emulator.admin("DELETE", "/faults")


def test_cut_result_download_then_retry_the_same_locator(
    emulator: EmulatorProcess, api: httpx.Client
) -> None:
    job = api.post(JOBS, json={"operation": "query", "query": "SELECT Id, Name FROM Contact"}).json()["id"]
    assert wait_bulk2_job(api, f"{JOBS}/{job}")["state"] == "JobComplete"
    emulator.admin("POST", "/faults", json={"path_regex": f"/jobs/query/{job}/results$", "kind": "cut"})
    try:
        with pytest.raises(httpx.HTTPError):
            api.get(f"{JOBS}/{job}/results", headers={"Accept-Encoding": "identity"})
        full = api.get(f"{JOBS}/{job}/results", headers={"Accept-Encoding": "identity"})
        assert full.status_code == 200
        assert int(full.headers["Content-Length"]) == len(full.content)
        assert full.text.count("\n") >= int(full.headers["Sforce-NumberOfRecords"]) + 1
        assert emulator.admin("GET", "/faults")["faults"][0]["fired"] == 1
    finally:
        emulator.admin("DELETE", "/faults")


def test_injected_failed_job(emulator: EmulatorProcess, api: httpx.Client) -> None:
    message = "InternalServerError : Retried more than 15 times"
    emulator.admin(
        "POST", "/faults", json={"path_regex": r"/jobs/query$", "kind": "fail_job", "message": message}
    )
    try:
        job = api.post(JOBS, json={"operation": "query", "query": "SELECT Id FROM Lead"}).json()
        assert job["state"] == "UploadComplete"
        info = wait_bulk2_job(api, f"{JOBS}/{job['id']}")
        assert (info["state"], info["errorMessage"]) == ("Failed", message)
        resp = api.get(f"{JOBS}/{job['id']}/results")
        assert resp.status_code == 400 and resp.json()[0]["errorCode"] == "INVALIDJOBSTATE"
        again = api.post(JOBS, json={"operation": "query", "query": "SELECT Id FROM Lead"}).json()
        assert wait_bulk2_job(api, f"{JOBS}/{again['id']}")["state"] == "JobComplete"
    finally:
        emulator.admin("DELETE", "/faults")


def test_churn_command_and_change_log(emulator: EmulatorProcess) -> None:
    since = emulator.admin("GET", "/clock")["now"]
    emulator.admin("POST", "/clock", json={"advance": 1})
    out = subprocess.run(
        [
            sys.executable, "-m", "engine.cli", "emulator", "churn",
            "--url", emulator.url, "--admin-secret", emulator.info["admin_secret"],
            "--percent", "0.5", "--seed", "7", "--ca-file", emulator.info["ca_file"],
        ],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary
    changes = emulator.admin("GET", "/changes", params={"since": since})
    kinds = {k for per_obj in changes.values() for k, ids in per_obj.items() if ids}
    assert kinds == {"added", "changed", "removed"}
    assert datetime.fromisoformat(emulator.admin("GET", "/clock")["now"]) >= datetime.fromisoformat(since)


# --- the realistic profile ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def realistic() -> Iterator[EmulatorProcess]:
    with running_emulator(
        scale=3000,
        profile="realistic",
        tls=False,
        extra_args=[
            "--max-running-jobs", "2", "--queue-delay-min", "0", "--queue-delay-max", "0",
            "--job-mbps", "0.02", "--latency-ms", "0", "--error-rate", "0", "--timeout-rate", "0",
        ],
    ) as em:  # fmt: skip
        yield em


def _client(em: EmulatorProcess) -> httpx.Client:
    return httpx.Client(
        base_url=em.url, trust_env=False, timeout=60, headers={"Authorization": f"Bearer {em.token()}"}
    )


def test_realistic_profile_caps_running_jobs(realistic: EmulatorProcess) -> None:
    assert realistic.url.startswith("http://")
    with _client(realistic) as api:
        ids = [
            api.post(
                JOBS, json={"operation": "query", "query": "SELECT Id, Name, Description FROM Account"}
            ).json()["id"]
            for _ in range(5)
        ]
        max_running = 0

        def states() -> list[str]:
            nonlocal max_running
            running = realistic.admin("GET", "/info")["running_jobs"]  # an exact counter
            max_running = max(max_running, running)
            assert running <= 2
            return [api.get(f"{JOBS}/{i}").json()["state"] for i in ids]

        # judge the snapshot that showed two running (a second read races jobs that finish
        # meanwhile on a busy machine): the other jobs wait, none runs beside the two
        now = poll_for(lambda: (snap := states()).count("InProgress") == 2 and snap, timeout=60)
        assert "UploadComplete" in now
        waiting = ids[now.index("UploadComplete")]
        early = api.get(f"{JOBS}/{waiting}/results")
        assert early.status_code == 400 and early.json()[0]["errorCode"] == "INVALIDJOBSTATE"
        poll_for(lambda: all(s == "JobComplete" for s in states()), timeout=120, interval=0.2)
        assert max_running == 2


def test_realistic_profile_fails_big_jobs_and_random_errors(realistic: EmulatorProcess) -> None:
    realistic.admin("PATCH", "/profile", json={"query_timeout_rows": 10, "job_bytes_per_s": 0})
    try:
        with _client(realistic) as api:
            job = api.post(JOBS, json={"operation": "query", "query": "SELECT Id FROM Contact"}).json()["id"]
            info = poll_for(
                lambda: (i := api.get(f"{JOBS}/{job}").json())["state"] in ("JobComplete", "Failed") and i,
                timeout=30,
            )
            assert info["state"] == "Failed" and "QUERY_TIMEOUT" in info["errorMessage"]
            realistic.admin("PATCH", "/profile", json={"error_rate": 1.0})
            resp = api.get(f"{V}/limits")
            assert resp.status_code == 503 and resp.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    finally:
        realistic.admin("PATCH", "/profile", json={"error_rate": 0, "query_timeout_rows": 0})


def test_realistic_profile_caps_stream_bandwidth(realistic: EmulatorProcess) -> None:
    realistic.admin("PATCH", "/profile", json={"stream_bytes_per_s": 200_000, "job_bytes_per_s": 0})
    try:
        with _client(realistic) as api:
            job = api.post(JOBS, json={"operation": "query", "query": "SELECT Id, Name FROM Contact"}).json()[
                "id"
            ]
            poll_for(lambda: api.get(f"{JOBS}/{job}").json()["state"] == "JobComplete", timeout=30)
            resp = api.get(f"{JOBS}/{job}/results", headers={"Accept-Encoding": "identity"})
            size = len(resp.content)
            elapsed = resp.elapsed.total_seconds()
            assert size > 20_000
            log = realistic.admin("GET", "/requests", params={"limit": 50})["requests"]
            took = next(r for r in reversed(log) if r["category"] == "bulk2_results")["duration_ms"] / 1000
            assert max(took, elapsed) >= size / 200_000 * 0.8
    finally:
        realistic.admin("PATCH", "/profile", json={"stream_bytes_per_s": 0})
