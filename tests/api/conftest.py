"""Fixtures for API tests: the real FastAPI app over a real catalog, with one token per role.

``api_client`` runs the app in-process (Starlette's TestClient drives the real ASGI app, its
lifespan included); the end-to-end test starts `sfvault serve` under uvicorn instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from engine.catalog.db import make_engine, migrate, session_factory, transaction
from engine.catalog.models import Role
from engine.catalog.tokens import create_token
from engine.clock import FrozenClock
from engine.config import Settings
from tests.helpers.emulator_proc import EmulatorProcess, start_emulator

ROLES = (Role.ADMIN, Role.OPERATOR, Role.VIEWER)
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # 13:00 in Paris (winter time, UTC+1)
"""The time of the ``clock`` fixture, and so of the ``client`` app."""
Headers = Callable[[Role], dict[str, str]]


def api_settings(root: Path, catalog_url: str | None = None, **overrides: object) -> Settings:
    """Settings of an isolated service: its own catalog, repository, key, exports and scratch."""
    values: dict[str, object] = {
        "repository_url": str(root / "repo"),
        "key_file": root / "keys" / "repo.key",
        "catalog_url": catalog_url or f"sqlite:///{root / 'catalog.db'}",
        "scratch_dir": root / "scratch",
        "export_dir": root / "exports",
        "retry_wait_max": 0,
        "retry_max_seconds": 30,
        "scheduler_enabled": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def make_tokens(catalog_url: str) -> dict[Role, str]:
    """One live token per role, created in the catalog as `sfvault token create` does."""
    engine = make_engine(catalog_url)
    try:
        migrate(engine)
        with transaction(session_factory(engine)) as s:
            return {role: create_token(s, name=f"test-{role.value}", role=role)[1] for role in ROLES}
    finally:
        engine.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return api_settings(tmp_path)


@pytest.fixture
def tokens(settings: Settings) -> dict[Role, str]:
    return make_tokens(settings.catalog_url)


@pytest.fixture
def api_client(settings: Settings, tokens: dict[Role, str]) -> Iterator[TestClient]:
    """The app with its lifespan running; no scheduler, no Dask cluster until a backup asks."""
    with TestClient(create_app(settings, scheduler=False), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def client(settings: Settings, tokens: dict[Role, str], clock: FrozenClock) -> Iterator[TestClient]:
    """The app on a frozen clock (``tokens`` first: it creates and migrates the catalog)."""
    with TestClient(create_app(settings, clock=clock, scheduler=False), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def catalog(settings: Settings, tokens: dict[Role, str]) -> Iterator[Callable[[], Any]]:
    """``with catalog() as s:`` one transaction on the service's catalog."""
    engine = make_engine(settings.catalog_url)
    try:
        factory = session_factory(engine)
        yield lambda: transaction(factory)
    finally:
        engine.dispose()


@pytest.fixture
def as_role(tokens: dict[Role, str]) -> Callable[[Role], dict[str, str]]:
    """``as_role(Role.ADMIN)`` -> the Authorization header of that role's token."""
    return lambda role: bearer(tokens[role])


@pytest.fixture(scope="session")
def api_emulator() -> Iterator[EmulatorProcess]:
    """A small emulated org shared by the API tests that only read from it (scale 3,000).

    Tests that churn an org or run backups start their own (see devkit/backup_env.py).
    """
    em = start_emulator(scale=3_000, seed=11, tls=False, timeout=300)
    try:
        yield em
    finally:
        em.stop()


def connect_payload(em: EmulatorProcess, name: str, **extra: object) -> dict[str, object]:
    """The body of ``POST /v1/orgs`` for the emulator's integration user."""
    i = em.info
    body: dict[str, object] = {
        "name": name,
        "instance_url": i["instance_url"],
        "login_url": i["login_url"],
        "username": i["username"],
        "password": i["password"],
        "security_token": i["security_token"],
        "client_id": i["client_id"],
        "client_secret": i["client_secret"],
    }
    if i.get("ca_file"):
        body["ca_file"] = i["ca_file"]
    body.update(extra)
    return body
