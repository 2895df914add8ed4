"""Test-side names for the emulator launcher (it lives in :mod:`emulator.launcher`), plus ``poll_for``.

Kept so that tests written against ``tests.helpers.emulator_proc`` keep working; new code
imports :mod:`emulator.launcher` directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from simple_salesforce import Salesforce

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
    "bearer_client",
    "poll_for",
    "running_emulator",
    "salesforce_session",
    "start_emulator",
]


@contextmanager
def running_emulator(**kwargs: Any) -> Iterator[EmulatorProcess]:
    """:func:`start_emulator` for a fixture: an emulator that cannot start fails the test (never
    a skip), and the process stops at the end."""
    try:
        em = start_emulator(**kwargs)
    except EmulatorStartError as exc:
        pytest.fail(f"the Salesforce emulator could not start: {exc}", pytrace=False)
    try:
        yield em
    finally:
        em.stop()


@contextmanager
def bearer_client(em: EmulatorProcess, token: str | None = None) -> Iterator[httpx.Client]:
    """An httpx client on the instance URL that sends a Bearer token (a fresh one by default)."""
    with httpx.Client(
        base_url=em.url,
        verify=em.verify,
        trust_env=False,
        timeout=120,
        headers={"Authorization": f"Bearer {token if token is not None else em.token()}"},
    ) as client:
        yield client


def simple_salesforce(em: EmulatorProcess) -> Salesforce:
    """simple-salesforce logged in to ``em`` by username, password and security token (SOAP)."""
    i = em.info
    return Salesforce(
        username=i["username"], password=i["password"], security_token=i["security_token"],
        session=salesforce_session(i),
    )  # fmt: skip


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


BULK2_TERMINAL = ("JobComplete", "Failed", "Aborted")


def wait_bulk2_job(api: httpx.Client, url: str, timeout: float = 300.0) -> dict[str, Any]:
    """Poll a Bulk API 2.0 query job's status (``url``: ``.../jobs/query/{id}``), as a client does,
    until it is terminal; its last JobInfo. A status call answers at once with the state so far."""

    def terminal() -> dict[str, Any] | None:
        info: dict[str, Any] = api.get(url).json()
        return info if info["state"] in BULK2_TERMINAL else None

    result: dict[str, Any] = poll_for(terminal, timeout=timeout)
    return result
