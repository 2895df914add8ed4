"""Test-side names for the emulator launcher (it lives in :mod:`emulator.launcher`), plus ``poll_for``.

Kept so that tests written against ``tests.helpers.emulator_proc`` keep working; new code
imports :mod:`emulator.launcher` directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from emulator.launcher import (
    ADMIN_HEADER,
    ADMIN_PREFIX,
    LOGIN_HOSTS,
    REPO_ROOT,
    EmulatorProcess,
    EmulatorStartError,
    salesforce_session,
    start_emulator,
)

__all__ = [
    "ADMIN_HEADER",
    "ADMIN_PREFIX",
    "LOGIN_HOSTS",
    "REPO_ROOT",
    "EmulatorProcess",
    "EmulatorStartError",
    "poll_for",
    "salesforce_session",
    "start_emulator",
]


def poll_for(pred: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Call ``pred`` until it returns something truthy; return that. Fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)
