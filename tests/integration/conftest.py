"""Fixtures for integration tests against real services.

``emulator`` starts one Salesforce org emulator per test session, in its own process, over TLS
(so simple-salesforce, which always speaks https, can use it unchanged). If it cannot start
the fixture fails: it never skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.emulator_proc import EmulatorProcess, EmulatorStartError, start_emulator

# Task holds ~21% of the records: 500k gives ~105k Task rows for the 100k+ Bulk download test.
EMULATOR_SCALE = int(os.environ.get("SFVAULT_TEST_EMULATOR_SCALE", "500000"))
EMULATOR_SEED = 1


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorProcess]:
    """A running emulator (fast profile, TLS) with a generated org."""
    try:
        em = start_emulator(scale=EMULATOR_SCALE, seed=EMULATOR_SEED, tls=True, timeout=300)
    except EmulatorStartError as exc:
        pytest.fail(f"the Salesforce emulator could not start: {exc}", pytrace=False)
    try:
        yield em
    finally:
        em.stop()


@pytest.fixture()
def token(emulator: EmulatorProcess) -> str:
    """A fresh access token of the integration user."""
    return emulator.token()


@pytest.fixture()
def api(emulator: EmulatorProcess, token: str) -> Any:
    """An httpx client on the instance URL that sends the Bearer token."""
    import httpx

    with httpx.Client(
        base_url=emulator.url,
        verify=emulator.verify,
        trust_env=False,
        timeout=120,
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client
