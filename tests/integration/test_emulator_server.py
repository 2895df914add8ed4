"""``serve`` itself: the ready line, plain http, and an org kept under ``--data`` across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.emulator_proc import start_emulator

pytestmark = pytest.mark.emulator

READY_KEYS = {
    "instance_url", "login_url", "username", "password", "security_token", "client_id", "client_secret",
    "admin_secret", "refresh_token",
}  # fmt: skip


def test_org_under_data_dir_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "org"
    first = start_emulator(scale=2000, seed=5, tls=False, extra_args=["--data", str(data)])
    try:
        assert set(first.info) >= READY_KEYS
        assert first.url.startswith("http://127.0.0.1:") and first.info["ca_file"] is None
        token = first.token()
        resp = first.http().post(
            "/services/data/v59.0/sobjects/Account",
            json={"Name": "Survivor Co"},
            headers={"Authorization": f"Bearer {token}"},
        )
        rid = resp.json()["id"]
        digest = first.admin("GET", "/digest")["digest"]
    finally:
        assert first.stop() in (0, -15)
    second = start_emulator(scale=9999, seed=99, tls=False, extra_args=["--data", str(data)])
    try:
        assert "opened existing org" in second.stderr_tail()
        assert second.admin("GET", "/digest")["digest"] == digest
        assert second.info["username"] == first.info["username"]
        assert second.info["refresh_token"] == first.info["refresh_token"]
        assert second.admin("GET", f"/records/Account/{rid}")["Name"] == "Survivor Co"
    finally:
        second.stop()


def test_same_seed_same_org() -> None:
    digests = []
    for _ in range(2):
        em = start_emulator(
            scale=3000, seed=11, tls=False, extra_args=["--start-time", "2026-01-01T00:00:00Z"]
        )
        try:
            digests.append(em.admin("GET", "/digest")["digest"])
        finally:
            em.stop()
    assert digests[0] == digests[1]
