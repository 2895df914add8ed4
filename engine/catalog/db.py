"""Connecting to the catalog and migrating it.

The catalog is a SQLite file by default (``sqlite:///./sfvault-data/catalog.db``) and a
PostgreSQL database for a shared deployment (``postgresql+psycopg://user@host/db``).

- :func:`make_engine` builds an engine from a URL. SQLite connections get ``foreign_keys=ON``
  (without it cascades and references are not enforced), WAL journaling (readers never block
  the single writer), ``synchronous=NORMAL`` and a busy timeout.
- :func:`migrate` brings a catalog to the newest schema with Alembic; the migration scripts ship
  inside this package, so it works from an installed wheel without an ``alembic.ini``.
- :func:`check_schema` refuses to run against a catalog that is not at the newest schema.

No engine is created at import time; callers build one and pass sessions down.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import CatalogMigrationFailed, CatalogSchemaOutdated, ConfigError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        cur.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for a catalog URL (SQLite or PostgreSQL), with the SQLite pragmas applied.

    For a SQLite file the parent folder is created. ``kwargs`` go to ``create_engine``.
    """
    try:
        parsed = make_url(url)
    except SQLAlchemyError as exc:  # ArgumentError: not a URL at all
        raise ConfigError(what=f"catalog_url is not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(what=f"catalog_url must be sqlite:// or postgresql+psycopg://, not {backend}://")
    if backend == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).parent.mkdir(parents=True, exist_ok=True)
    else:
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(parsed, **kwargs)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (handy for returning rows)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def open_catalog(url: str) -> Iterator[sessionmaker[Session]]:
    """The catalog at ``url``, migrated to the newest schema, for one command; disposed after."""
    engine = make_engine(url)
    try:
        migrate(engine)
        yield session_factory(engine)
    finally:
        engine.dispose()


@contextmanager
def catalog_transaction(url: str) -> Iterator[Session]:
    """One transaction on the catalog at ``url`` (see :func:`open_catalog`): for short commands."""
    with open_catalog(url) as sessions, transaction(sessions) as session:
        yield session


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (no ``alembic.ini`` needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@functools.cache
def head_revision() -> str:
    """The newest schema revision this sfvault ships (fixed for the life of the process)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no catalog migrations packaged"
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision of a catalog, ``None`` for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


_ALEMBIC_LOCK = threading.Lock()
"""Alembic's command context is process-global: two threads migrating at once fail inside it
(``KeyError: 'script'``), e.g. a backup and an export starting together in the service."""


def _run(engine: Engine, fn: Any, revision: str) -> None:
    cfg = alembic_config()
    try:
        with _ALEMBIC_LOCK, engine.begin() as conn:
            cfg.attributes["connection"] = conn
            fn(cfg, revision)
    except SQLAlchemyError as exc:
        what = f"{type(exc).__name__}: {exc.args[0] if exc.args else exc}"
        raise CatalogMigrationFailed(url=redact(engine.url), what=what) from exc


def migrate(url: str | Engine, revision: str = "head") -> None:
    """Upgrade the catalog at ``url`` to ``revision`` (default: the newest), in one transaction.

    Safe to call on an up-to-date catalog (it does nothing) and on an empty database.
    """
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        if revision == "head" and _at_head(engine):
            return  # one query instead of Alembic's environment (~0.2 s on every job)
        _run(engine, command.upgrade, revision)
    finally:
        if not isinstance(url, Engine):
            engine.dispose()


def _at_head(engine: Engine) -> bool:
    try:
        return current_revision(engine) == head_revision()
    except SQLAlchemyError:
        return False  # let the upgrade report what is wrong


def downgrade(url: str | Engine, revision: str = "base") -> None:
    """Downgrade the catalog to ``revision`` (``base`` drops every table). For tests and rollbacks."""
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        _run(engine, command.downgrade, revision)
    finally:
        if not isinstance(url, Engine):
            engine.dispose()


def check_schema(engine: Engine) -> None:
    """Raise :class:`CatalogSchemaOutdated` unless the catalog is at :func:`head_revision`."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise CatalogSchemaOutdated(url=redact(engine.url), version=current or "empty", expected=head)


def redact(url: str | URL) -> str:
    """The URL without its password, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)
