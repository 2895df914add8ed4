"""Shared test setup.

Real-service tests carry a marker (``emulator``, ``azurite``, ``postgres``, ``mysql``,
``cluster``). ``SFVAULT_TEST_REQUIRE`` (comma separated, or ``all``) names the markers that
must not be skipped: a skipped test that carries one of them is turned into a failure, so CI
can never pass with a real service silently missing (STYLE rule 16).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.catalog_fixtures", "tests.helpers.mariadb"]

REAL_SERVICE_MARKERS = ("emulator", "azurite", "postgres", "mysql", "cluster")

# No wall-clock limits in property tests: on a busy 2-core machine one example can take far more
# than Hypothesis' default 200 ms deadline, and a test that fails for being slow is a broken test.
# Tests that set their own ``@settings(...)`` inherit these for every key they leave out.
settings.register_profile(
    "sfvault",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("sfvault")


def _required_markers() -> set[str]:
    raw = os.environ.get("SFVAULT_TEST_REQUIRE", "")
    if raw.strip() == "all":
        return set(REAL_SERVICE_MARKERS)
    return {m.strip() for m in raw.split(",") if m.strip()}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.skipped:
        return
    required = _required_markers() & {m.name for m in item.iter_markers()}
    if required:
        report.outcome = "failed"
        report.longrepr = (
            f"test {item.nodeid} needs {', '.join(sorted(required))} which SFVAULT_TEST_REQUIRE "
            f"marks as required, but it was skipped: {report.longrepr}"
        )


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hermetic tests: no SFVAULT_* setting leaks in from the caller's environment."""
    for key in list(os.environ):
        if key.startswith("SFVAULT_") and not key.startswith("SFVAULT_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SFVAULT_CONFIG", str(tmp_path / "sfvault.toml"))


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real Azurite blob service for the session (fails, never skips, when it is missing)."""
    from devkit.azurite import running_azurite

    with running_azurite(tmp_path_factory.mktemp("azurite")) as service:
        yield service
