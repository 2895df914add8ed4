"""Catalog pieces that need no server: the UTC timestamp type, sealed secrets, the job state
machine and the agreement of the migration's CHECK constraints with the models' enums."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import CheckConstraint, Engine, inspect
from sqlalchemy.dialects import postgresql, sqlite

from engine.catalog.db import make_engine, migrate, redact
from engine.catalog.jobs import TRANSITIONS, _move
from engine.catalog.models import Base, Job, JobState, UTCDateTime
from engine.catalog.secrets import AesGcmSealer
from engine.errors import ConfigError, InvalidJobTransition, SealedSecretUnreadable

UTC_TYPE = UTCDateTime()


def test_utc_datetime_stores_utc_and_reads_aware() -> None:
    local = datetime(2026, 3, 29, 3, 30, tzinfo=timezone(timedelta(hours=2)))
    on_sqlite = UTC_TYPE.process_bind_param(local, sqlite.dialect())
    assert on_sqlite == datetime(2026, 3, 29, 1, 30)  # naive UTC text on SQLite
    on_pg = UTC_TYPE.process_bind_param(local, postgresql.dialect())
    assert on_pg is not None and on_pg.tzinfo is UTC and on_pg == local
    assert UTC_TYPE.process_result_value(datetime(2026, 3, 29, 1, 30), sqlite.dialect()) == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC
    )
    back = UTC_TYPE.process_result_value(local, postgresql.dialect())
    assert back is not None and back.tzinfo is UTC
    with pytest.raises(ValueError, match="naive"):
        UTC_TYPE.process_bind_param(datetime(2026, 1, 1), sqlite.dialect())


def test_sealer_round_trip_binds_associated_data_and_hides_key() -> None:
    sealer = AesGcmSealer(b"k" * 32)
    sealed = sealer.seal(b"password", aad=b"org-credentials:acme")
    assert b"password" not in sealed
    assert sealer.seal(b"password", aad=b"x") != sealer.seal(b"password", aad=b"x")  # fresh nonce
    assert sealer.open(sealed, aad=b"org-credentials:acme") == b"password"
    with pytest.raises(SealedSecretUnreadable):
        sealer.open(sealed, aad=b"org-credentials:other")
    flipped = bytearray(sealed)
    flipped[-1] ^= 0x01
    with pytest.raises(SealedSecretUnreadable):
        sealer.open(bytes(flipped), aad=b"org-credentials:acme")
    assert "k" * 8 not in repr(sealer)
    with pytest.raises(ValueError):
        AesGcmSealer(b"short")


@pytest.mark.parametrize("state", list(JobState))
def test_finished_jobs_never_change_state(state: JobState) -> None:
    for target in JobState:
        job = Job(id="j", state=state.value)
        if target in TRANSITIONS.get(state, frozenset()):
            _move(job, target)
            assert job.state == target.value
        else:
            with pytest.raises(InvalidJobTransition):
                _move(job, target)
    assert state.finished == (state not in TRANSITIONS)


@pytest.fixture
def sqlite_catalog(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def test_migration_check_constraints_match_the_models(sqlite_catalog: Engine) -> None:
    """Alembic's autogenerate does not compare CHECK constraints; this does (enum values, ranges)."""
    insp = inspect(sqlite_catalog)
    for table in Base.metadata.sorted_tables:
        migrated = {c["name"]: " ".join(c["sqltext"].split()) for c in insp.get_check_constraints(table.name)}
        declared = {
            str(c.name): " ".join(str(c.sqltext).split())
            for c in table.constraints
            if isinstance(c, CheckConstraint)
        }
        assert migrated == declared, table.name


def test_bad_catalog_urls_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        make_engine("mysql://x/y")
    with pytest.raises(ConfigError):
        make_engine("not a url")
    assert redact("postgresql+psycopg://u:secret@h/db") == "postgresql+psycopg://u:***@h/db"


def test_hypothesis_has_no_wall_clock_deadline() -> None:
    """The profile registered in tests/conftest.py: no property test fails for being slow."""
    from hypothesis import settings as hsettings

    assert hsettings.default.deadline is None


@given(
    first=st.datetimes(datetime(2020, 1, 1), datetime(2099, 1, 1), timezones=st.just(UTC)),
    gap_us=st.integers(1, 10**9),
)
def test_job_ids_sort_by_creation_time_within_a_second(first: datetime, gap_us: int) -> None:
    """Two jobs created within the same second (or any later) list in creation order."""
    from engine.catalog.jobs import new_job_id

    later = first + timedelta(microseconds=gap_us)
    assert new_job_id(first) < new_job_id(later)
    assert len(new_job_id(first).split("-")[1]) == 12
