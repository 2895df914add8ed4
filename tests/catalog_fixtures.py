"""Catalog fixtures, loaded as a pytest plugin by the catalog test modules
(``pytest_plugins = ["tests.catalog_fixtures"]``), so the PostgreSQL server starts once per
session however many modules use it.

``catalog_url`` is parametrized: every test that uses it runs on a SQLite file and on a real
PostgreSQL database (those items carry the ``postgres`` marker).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from engine.catalog.db import make_engine, migrate, session_factory
from engine.catalog.secrets import AesGcmSealer
from tests.helpers.postgres import PostgresServer, postgres_server, postgres_url

__all__ = ["catalog_engine", "catalog_sessions", "catalog_url", "postgres_server", "postgres_url", "sealer"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty catalog database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture
def catalog_engine(catalog_url: str) -> Iterator[Engine]:
    """An engine on a catalog migrated to the newest schema."""
    engine = make_engine(catalog_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def catalog_sessions(catalog_engine: Engine) -> sessionmaker[Session]:
    return session_factory(catalog_engine)


@pytest.fixture
def sealer() -> AesGcmSealer:
    return AesGcmSealer(bytes(range(32)))
