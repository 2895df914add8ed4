"""The job catalog: orgs, settings, jobs, per-object results, exports, API usage, permission
reports, API tokens and the notification outbox, in SQLite (default) or PostgreSQL.

- :mod:`engine.catalog.models` — the tables; :mod:`engine.catalog.db` — engines, sessions,
  Alembic migrations (``migrate(url)``), schema check.
- Small query modules that take a session and never commit: :mod:`~engine.catalog.orgs`,
  :mod:`~engine.catalog.jobs`, :mod:`~engine.catalog.usage`, :mod:`~engine.catalog.exports`,
  :mod:`~engine.catalog.reports`, :mod:`~engine.catalog.tokens`.
- :mod:`engine.catalog.rebuild` — recreate the catalog from the repository's manifests.

The repository, not the catalog, is the source of truth for what was backed up.
"""
