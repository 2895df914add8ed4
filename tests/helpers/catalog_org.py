"""A catalog with one org in it and no Salesforce login: what the export and compare tests that run
on snapshot chains (:mod:`tests.helpers.diff_snapshots`) need of the catalog."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from engine.catalog import orgs as corgs
from engine.catalog.db import make_engine, migrate, session_factory, transaction
from engine.catalog.models import Export
from engine.config import Settings
from engine.sink.repository import Repository
from tests.helpers.diff_snapshots import ChainWriter, RandomOrg, new_repository


def catalog_settings(root: Path) -> Settings:
    """Settings of a SQLite catalog, a key file and a scratch folder under ``root``."""
    return Settings(
        catalog_url=f"sqlite:///{root / 'catalog.db'}",
        key_file=root / "keys" / "repo.key",
        scratch_dir=root / "scratch",
    )


def add_catalog_org(settings: Settings, name: str) -> None:
    """Migrate the catalog of ``settings`` and add the org ``name`` (no instance URL, no credentials)."""
    engine = make_engine(settings.catalog_url)
    migrate(engine)
    with transaction(session_factory(engine)) as s:
        corgs.create_org(s, name=name, instance_url=None)
    engine.dispose()


def org_with_a_full(
    root: Path, name: str, *, seed: int, rows: int
) -> tuple[Settings, Repository, RandomOrg, ChainWriter]:
    """A catalog with the org ``name`` and a repository under ``root`` holding a full of a random
    org of ``rows`` Accounts; the org and the chain writer go on from there."""
    settings = catalog_settings(root)
    add_catalog_org(settings, name)
    repo = new_repository(root)
    org = RandomOrg(seed)
    org.seed_rows(rows)
    w = ChainWriter(repo, name)
    w.commit("full", {"Account": org.full()})
    return settings, repo, org, w


def exports_of(settings: Settings, org: str) -> list[Export]:
    """The export rows of ``org``, detached from their session."""
    engine = make_engine(settings.catalog_url)
    try:
        with transaction(session_factory(engine)) as s:
            org_id = corgs.get_org_by_name(s, org).id
            rows = list(s.scalars(select(Export).where(Export.org_id == org_id)))
            for r in rows:
                s.expunge(r)
            return rows
    finally:
        engine.dispose()
