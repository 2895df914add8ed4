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

from tests.helpers.emulator_proc import EmulatorProcess, bearer_client, running_emulator

# Task holds ~21% of the records: 500k gives ~105k Task rows for the 100k+ Bulk download test.
EMULATOR_SCALE = int(os.environ.get("SFVAULT_TEST_EMULATOR_SCALE", "500000"))
EMULATOR_SEED = 1


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorProcess]:
    """A running emulator (fast profile, TLS) with a generated org."""
    with running_emulator(scale=EMULATOR_SCALE, seed=EMULATOR_SEED, tls=True, timeout=300) as em:
        yield em


@pytest.fixture(scope="module")
def org(request: pytest.FixtureRequest) -> Iterator[EmulatorProcess]:
    """A small org of the module's own (scale 3,000, TLS, the module's ``ORG_SEED``), for tests
    that change the org or need one apart from the session's."""
    seed = getattr(request.module, "ORG_SEED", None)
    if not isinstance(seed, int):
        pytest.fail(f"{request.module.__name__} uses the `org` fixture without an ORG_SEED", pytrace=False)
    with running_emulator(scale=3_000, seed=seed, tls=True, timeout=300) as em:
        yield em


@pytest.fixture()
def token(emulator: EmulatorProcess) -> str:
    """A fresh access token of the integration user."""
    return emulator.token()


@pytest.fixture()
def api(emulator: EmulatorProcess, token: str) -> Any:
    """An httpx client on the instance URL that sends the Bearer token."""
    with bearer_client(emulator, token) as client:
        yield client
