"""Alembic environment of the catalog.

``engine.catalog.db.migrate`` hands over an open connection in ``config.attributes``; the
``alembic`` command line (developers only) connects to ``sqlalchemy.url`` or, if that is unset,
to ``SFVAULT_CATALOG_URL``. SQLite runs in batch mode so that later migrations can alter tables.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from engine.catalog.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from engine.catalog.db import make_engine

    url = config.get_main_option("sqlalchemy.url") or os.environ.get("SFVAULT_CATALOG_URL")
    if not url:
        raise RuntimeError("set sqlalchemy.url or SFVAULT_CATALOG_URL to run alembic by hand")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("the catalog migrations run online only")
run_migrations_online()
