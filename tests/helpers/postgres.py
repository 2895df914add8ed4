"""The PostgreSQL fixtures of the test session; the server itself is :mod:`devkit.postgres`.

The fixtures never skip: if PostgreSQL is not installed, or does not start, the test fails
with the reason and the server log (decision 0001, STYLE rule 16).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit.postgres import PostgresError, PostgresServer, free_port, running_postgres

__all__ = [
    "PostgresError", "PostgresServer", "free_port", "postgres_server", "postgres_url", "running_postgres",
]  # fmt: skip


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session. Fails (never skips) if it cannot start."""
    try:
        ctx = running_postgres()
        server = ctx.__enter__()
    except PostgresError as exc:
        pytest.fail(f"PostgreSQL is required for this test and could not be started: {exc}", pytrace=False)
    try:
        yield server
    finally:
        ctx.__exit__(None, None, None)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)
