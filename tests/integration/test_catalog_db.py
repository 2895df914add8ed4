"""The catalog on SQLite and on a real PostgreSQL server: one module, both databases.

Every test taking ``catalog_url`` (directly or through ``catalog_sessions``) runs twice; the
PostgreSQL items carry the ``postgres`` marker and fail, never skip, without a server.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from engine.catalog import exports, jobs, orgs, reports, tokens, usage
from engine.catalog.db import (
    check_schema,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    migrate,
    transaction,
)
from engine.catalog.jobs import ObjectResult
from engine.catalog.models import (
    ApiUsage,
    Base,
    Job,
    JobObject,
    JobState,
    Org,
    OrgSettings,
)
from engine.catalog.secrets import AesGcmSealer
from engine.clock import FrozenClock
from engine.errors import (
    CatalogSchemaOutdated,
    InvalidJobTransition,
    NotFound,
    OrgExists,
    SealedSecretUnreadable,
)

CATALOG_TABLES = {
    "orgs",
    "org_settings",
    "jobs",
    "job_objects",
    "job_errors",
    "exports",
    "api_usage",
    "permission_reports",
    "api_tokens",
    "outbox",
}
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(current=T0)


def _org(s: Session, clock: FrozenClock, name: str = "acme", **kw: object) -> Org:
    return orgs.create_org(s, name=name, instance_url=f"https://{name}.my.salesforce.com", clock=clock, **kw)  # type: ignore[arg-type]


# --- migrations ----------------------------------------------------------------------------


def test_migrations_upgrade_from_empty_to_head_and_back(catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    try:
        assert current_revision(engine) is None
        with pytest.raises(CatalogSchemaOutdated):
            check_schema(engine)

        migrate(catalog_url)
        assert current_revision(engine) == head_revision()
        check_schema(engine)
        assert set(inspect(engine).get_table_names()) >= CATALOG_TABLES
        migrate(catalog_url)  # idempotent at head
        assert current_revision(engine) == head_revision()

        downgrade(catalog_url, "base")
        assert current_revision(engine) is None
        assert not CATALOG_TABLES & set(inspect(engine).get_table_names())

        migrate(catalog_url)  # and up again from base
        assert set(inspect(engine).get_table_names()) >= CATALOG_TABLES
    finally:
        engine.dispose()


def test_models_match_the_migrations(catalog_engine: Engine) -> None:
    """The newest migration creates exactly what the models declare (types, nullability, indexes)."""
    with catalog_engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_indexes_for_the_catalog_queries_exist(catalog_engine: Engine) -> None:
    insp = inspect(catalog_engine)
    job_indexes = {ix["name"]: ix["column_names"] for ix in insp.get_indexes("jobs")}
    assert job_indexes["ix_jobs_org_created"] == ["org_id", "created_at"]
    assert job_indexes["ix_jobs_org_state"] == ["org_id", "state"]
    usage_indexes = {ix["name"]: ix["column_names"] for ix in insp.get_indexes("api_usage")}
    assert usage_indexes["ix_api_usage_org_day"] == ["org_id", "day"]


def test_sqlite_connections_use_wal_and_enforce_foreign_keys(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/sub/dir/catalog.db")  # parent folders are created
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


# --- orgs and settings ---------------------------------------------------------------------


def test_org_crud_with_default_settings_and_sealed_credentials(
    catalog_sessions: sessionmaker[Session], clock: FrozenClock, sealer: AesGcmSealer
) -> None:
    creds = {"username": "integration@acme.example", "password": "s3cret-Pa55", "security_token": "tok"}
    with transaction(catalog_sessions) as s:
        org = _org(s, clock, credentials=creds, sealer=sealer, time_zone="Europe/Paris", purchased_seats=50)
        org_id = org.id

    with transaction(catalog_sessions) as s:
        org = orgs.get_org_by_name(s, "acme")
        assert org.id == org_id
        assert org.connected_at == T0 and org.connected_at.tzinfo is not None
        assert org.time_zone == "Europe/Paris" and org.purchased_seats == 50 and org.hidden is False
        assert orgs.read_credentials(org, sealer) == creds
        assert org.credentials_sealed is not None and b"s3cret-Pa55" not in org.credentials_sealed
        assert "s3cret" not in repr(org)
        st = org.settings
        assert (st.backup_enabled, st.include_feed, st.include_share, st.event_logs) == (
            True,
            False,
            False,
            "off",
        )
        assert (st.jobs_per_day, st.first_start_time, st.permission_check_interval_days) == (
            1,
            time(0, 0),
            30,
        )
        assert st.excluded_objects == [] and st.permission_check_start == T0

        orgs.update_settings(
            s,
            org,
            jobs_per_day=4,
            first_start_time=time(2, 30),
            event_logs="hourly",
            include_feed=True,
            excluded_objects=["LoginHistory", "Account", "LoginHistory"],
            clock=clock,
        )
        orgs.set_hidden(s, org, True, clock=clock)

    with transaction(catalog_sessions) as s:
        got = s.get(OrgSettings, org_id)
        assert got is not None
        st = got
        assert (st.jobs_per_day, st.first_start_time, st.event_logs) == (4, time(2, 30), "hourly")
        assert st.excluded_objects == ["Account", "LoginHistory"]
        assert [o.name for o in orgs.list_orgs(s, hidden=True)] == ["acme"]
        assert orgs.list_orgs(s, hidden=False) == []

    with transaction(catalog_sessions) as s:
        orgs.delete_org(s, orgs.get_org(s, org_id))
    with transaction(catalog_sessions) as s:
        assert s.get(OrgSettings, org_id) is None  # cascaded
        with pytest.raises(NotFound):
            orgs.get_org(s, org_id)


def test_credentials_do_not_open_on_another_org_or_with_another_key(
    catalog_sessions: sessionmaker[Session], clock: FrozenClock, sealer: AesGcmSealer
) -> None:
    with transaction(catalog_sessions) as s:
        a = _org(s, clock, "a", credentials={"password": "x"}, sealer=sealer)
        b = _org(s, clock, "b")
        b.credentials_sealed = a.credentials_sealed  # a blob copied onto another org
        with pytest.raises(SealedSecretUnreadable):
            orgs.read_credentials(b, sealer)
        with pytest.raises(SealedSecretUnreadable):
            orgs.read_credentials(a, AesGcmSealer(bytes(32)))


def test_duplicate_org_name_is_refused(catalog_sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    with transaction(catalog_sessions) as s:
        _org(s, clock)
    with pytest.raises(OrgExists) as info, transaction(catalog_sessions) as s:
        _org(s, clock)
    assert info.value.code == "SFV-503"
    # and the database itself enforces it, whoever writes
    with pytest.raises(IntegrityError), transaction(catalog_sessions) as s:
        s.add(
            Org(
                name="acme",
                auth_kind="password",
                time_zone="UTC",
                connected_at=T0,
                hidden=False,
                created_at=T0,
                updated_at=T0,
            )
        )
        s.flush()


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("orgs", "auth_kind", "telepathy"),
        ("org_settings", "event_logs", "weekly"),
        ("org_settings", "jobs_per_day", 25),
        ("org_settings", "jobs_per_day", 0),
        ("jobs", "state", "exploded"),
        ("jobs", "kind", "differential"),
        ("jobs", "trigger", "cron"),
        ("job_objects", "state", "meh"),
        ("jobs", "records", -1),
    ],
)
def test_check_constraints_reject_bad_values(
    catalog_sessions: sessionmaker[Session], clock: FrozenClock, table: str, column: str, value: object
) -> None:
    """Raw SQL, past the Python enums: the database itself refuses values outside the enums."""
    with transaction(catalog_sessions) as s:
        org = _org(s, clock)
        job = jobs.create_job(s, org, kind="full", clock=clock)
        jobs.record_object_result(s, job, ObjectResult("Account", records=1))
        keys = {
            "orgs": ("id", org.id),
            "org_settings": ("org_id", org.id),
            "jobs": ("id", job.id),
            "job_objects": ("job_id", job.id),
        }
    key, key_value = keys[table]
    with pytest.raises(IntegrityError), transaction(catalog_sessions) as s:
        s.execute(text(f"UPDATE {table} SET {column} = :v WHERE {key} = :k"), {"v": value, "k": key_value})


def test_python_enums_refuse_bad_values_before_the_database(
    catalog_sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    with transaction(catalog_sessions) as s:
        org = _org(s, clock)
        with pytest.raises(ValueError):
            jobs.create_job(s, org, kind="differential", clock=clock)
        with pytest.raises(ValueError):
            orgs.update_settings(s, org, event_logs="weekly")


# --- timestamps ----------------------------------------------------------------------------


def test_timestamps_round_trip_as_aware_utc(
    catalog_sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    paris = timezone(timedelta(hours=2))
    local = datetime(2026, 7, 1, 2, 0, 0, 123456, tzinfo=paris)
    with transaction(catalog_sessions) as s:
        org = _org(s, clock, subscription_expires_at=local)
        org_id = org.id
    with transaction(catalog_sessions) as s:
        got = s.get(Org, org_id)
        assert got is not None and got.subscription_expires_at is not None
        assert got.subscription_expires_at.utcoffset() == timedelta(0)
        assert got.subscription_expires_at == datetime(2026, 7, 1, 0, 0, 0, 123456, tzinfo=UTC)
        # comparisons in SQL use UTC too
        assert s.scalar(
            select(Org.id).where(Org.subscription_expires_at > datetime(2026, 6, 30, 23, 59, tzinfo=UTC))
        )
        assert (
            s.scalar(
                select(Org.id).where(Org.subscription_expires_at > datetime(2026, 7, 1, 2, 1, tzinfo=paris))
            )
            is None
        )


def test_naive_timestamps_are_refused(catalog_sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    with pytest.raises(StatementError) as info, transaction(catalog_sessions) as s:
        _org(s, clock, subscription_expires_at=datetime(2026, 1, 1))
    assert isinstance(info.value.orig, ValueError)


# --- jobs ----------------------------------------------------------------------------------


def test_job_lifecycle_with_object_results_and_errors(
    catalog_sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    with transaction(catalog_sessions) as s:
        org = _org(s, clock)
        job = jobs.create_job(s, org, kind="full", trigger="manual", cycle_id="c2026", clock=clock)
        job_id = job.id
        assert job.state == "queued" and job.id.startswith("20260301T120000Z-")
        clock.advance(timedelta(seconds=5))
        jobs.start_job(s, job, clock=clock)
        jobs.record_object_result(s, job, ObjectResult("Account", "running"))
        jobs.record_object_result(
            s,
            job,
            ObjectResult(
                "Account",
                records=1000,
                bytes=50_000,
                chunks=2,
                duration_s=3.5,
                rest_calls=3,
                bulk2_jobs=1,
                bulk2_pages=4,
            ),
        )
        jobs.record_object_result(
            s,
            job,
            ObjectResult(
                "Contact", "failed", records=10, bytes=700, error_code="SFV-405", error_message="timed out"
            ),
        )
        jobs.add_job_error(
            s,
            job,
            code="SFV-405",
            message="query on Contact timed out",
            object_name="Contact",
            details={"partition": 3},
            clock=clock,
        )
        clock.advance(timedelta(minutes=2))
        jobs.finish_job(s, job, "partial", snapshot_ref="snapshots/acme/x", clock=clock)

    with transaction(catalog_sessions) as s:
        job = jobs.get_job(s, job_id, with_objects=True)
        assert (job.state, job.records, job.bytes) == ("partial", 1010, 50_700)
        assert job.started_at == T0 + timedelta(seconds=5)
        assert job.finished_at == T0 + timedelta(minutes=2, seconds=5)
        assert [(o.object_name, o.state, o.records) for o in job.objects] == [
            ("Account", "succeeded", 1000),
            ("Contact", "failed", 10),
        ]
        acc = job.objects[0]
        assert (acc.rest_calls, acc.bulk2_jobs, acc.bulk2_pages, acc.chunks) == (3, 1, 4, 2)
        assert [(e.code, e.object_name, e.details) for e in job.errors] == [
            ("SFV-405", "Contact", {"partition": 3})
        ]
        assert jobs.objects_to_retry(s, job.org_id) == ["Contact"]
        # a newer job closed before it ran any object (the job service's queued row, refused or
        # dead before discovery) says nothing about Contact: it is still redone
        clock.advance(timedelta(minutes=1))
        org = s.get(Org, job.org_id)
        assert org is not None
        never_ran = jobs.create_job(s, org, kind="incremental", clock=clock)
        jobs.finish_job(s, never_ran, "failed", error_code="SFV-201", error_message="refused", clock=clock)
        assert jobs.objects_to_retry(s, job.org_id) == ["Contact"]
        with pytest.raises(InvalidJobTransition):
            jobs.start_job(s, job, clock=clock)
        with pytest.raises(NotFound):
            jobs.get_job(s, "nope")


def test_job_queries_latest_per_org_paging_active_and_quota(
    catalog_sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    with transaction(catalog_sessions) as s:
        a, b, c = _org(s, clock, "a"), _org(s, clock, "b"), _org(s, clock, "c")
        ids_a = []
        for i in range(5):
            clock.advance(timedelta(hours=1))
            job = jobs.create_job(s, a, kind="full" if i == 0 else "incremental", cycle_id="c1", clock=clock)
            jobs.start_job(s, job, clock=clock)
            jobs.finish_job(s, job, "failed" if i == 3 else "succeeded", clock=clock)
            ids_a.append(job.id)
        clock.advance(timedelta(minutes=1))
        skipped = jobs.record_skipped_job(
            s, a, kind="incremental", reason_code="SFV-330", reason="still running", clock=clock
        )
        clock.advance(timedelta(hours=1))
        running_b = jobs.create_job(s, b, kind="full", clock=clock)
        jobs.start_job(s, running_b, clock=clock)
        ids = (a.id, b.id, c.id, running_b.id, skipped.id)

    a_id, b_id, c_id, running_b_id, skipped_id = ids
    with transaction(catalog_sessions) as s:
        latest = jobs.latest_jobs(s)
        assert set(latest) == {a_id, b_id}
        assert latest[a_id].id == skipped_id and latest[b_id].id == running_b_id
        assert jobs.latest_jobs(s, [a_id], states=["succeeded"])[a_id].id == ids_a[4]

        page1 = jobs.jobs_of_org(s, a_id, limit=4)
        assert [j.id for j in page1] == [skipped_id, ids_a[4], ids_a[3], ids_a[2]]
        page2 = jobs.jobs_of_org(s, a_id, limit=4, before_id=page1[-1].id)
        assert [j.id for j in page2] == [ids_a[1], ids_a[0]]

        assert jobs.active_job(s, a_id) is None
        active = jobs.active_job(s, b_id)
        assert active is not None and active.id == running_b_id
        full = jobs.last_full_job(s, a_id, cycle_id="c1")
        assert full is not None and full.id == ids_a[0]
        assert jobs.last_full_job(s, c_id) is None
        # 5 jobs of a in the window, one failed and one skipped do not count
        assert jobs.count_jobs_since(s, a_id, T0) == 4

        job = jobs.request_cancel(s, jobs.get_job(s, running_b_id))
        assert job.cancel_requested and job.state == "running"
        jobs.finish_job(s, job, JobState.CANCELLED, clock=clock)


def test_job_paging_is_exact_when_jobs_share_a_creation_time(
    catalog_sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    with transaction(catalog_sessions) as s:
        org = _org(s, clock)
        for i in range(7):  # same instant; each ended before the next (one active job per lane)
            job = jobs.create_job(s, org, kind="incremental", job_id=f"job-{i}", clock=clock)
            jobs.finish_job(s, job, "failed", error_code="SFV-804", error_message="x", clock=clock)
        org_id = org.id
    with transaction(catalog_sessions) as s:
        seen: list[str] = []
        page = jobs.jobs_of_org(s, org_id, limit=3)
        while page:
            seen += [j.id for j in page]
            page = jobs.jobs_of_org(s, org_id, limit=3, before_id=page[-1].id)
    assert seen == [f"job-{i}" for i in reversed(range(7))]


def test_deleting_an_org_cascades_to_its_jobs(
    catalog_sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    with transaction(catalog_sessions) as s:
        org = _org(s, clock)
        job = jobs.create_job(s, org, kind="full", clock=clock)
        jobs.record_object_result(s, job, ObjectResult("Account", records=1))
        usage.record_api_usage(s, org_id=org.id, job_id=job.id, rest_calls=1, clock=clock)
        org_id = org.id
    with transaction(catalog_sessions) as s:
        s.execute(text("DELETE FROM orgs WHERE id = :i"), {"i": org_id})  # the database cascades
    with transaction(catalog_sessions) as s:
        assert s.scalar(select(Job.id)) is None
        assert s.scalar(select(JobObject.id)) is None
        assert s.scalar(select(ApiUsage.id)) is None


# --- usage, exports, tokens, reports, outbox -----------------------------------------------


def test_api_usage_per_job_and_per_day(catalog_sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    with transaction(catalog_sessions) as s:
        org = _org(s, clock)
        job = jobs.create_job(s, org, kind="full", clock=clock)
        usage.record_api_usage(
            s,
            org_id=org.id,
            job_id=job.id,
            rest_calls=10,
            bulk2_calls=20,
            bulk1_calls=3,
            bulk1_batches=4,
            bulk2_jobs=2,
            bulk2_pages=7,
            remaining=14_000,
            daily_limit=15_000,
            clock=clock,
        )
        clock.advance(timedelta(hours=1))
        usage.record_api_usage(
            s,
            org_id=org.id,
            job_id=job.id,
            rest_calls=5,
            bulk2_pages=1,
            remaining=13_900,
            daily_limit=15_000,
            clock=clock,
        )
        clock.advance(timedelta(days=1))
        usage.record_api_usage(s, org_id=org.id, rest_calls=1, clock=clock)
        org_id, job_id = org.id, job.id
    with transaction(catalog_sessions) as s:
        totals = usage.usage_of_job(s, job_id)
        assert totals == usage.UsageTotals(
            rest_calls=15, bulk2_jobs=2, bulk2_pages=8, bulk2_calls=20, bulk1_calls=3, bulk1_batches=4
        )
        assert totals.api_calls == 15 + 20 + 3  # batches and Bulk 2.0 jobs/pages are not calls
        days = usage.usage_by_day(s, org_id, since=date(2026, 3, 1), until=date(2026, 3, 2))
        assert days == [
            usage.DailyUsage(
                rest_calls=15,
                bulk2_jobs=2,
                bulk2_pages=8,
                bulk2_calls=20,
                bulk1_calls=3,
                bulk1_batches=4,
                day=date(2026, 3, 1),
                remaining=13_900,
                daily_limit=15_000,
            ),
            usage.DailyUsage(rest_calls=1, day=date(2026, 3, 2)),
        ]


def test_exports_keep_the_password_sealed_and_run_one_at_a_time(
    catalog_sessions: sessionmaker[Session], clock: FrozenClock, sealer: AesGcmSealer
) -> None:
    with transaction(catalog_sessions) as s:
        org = _org(s, clock)
        exp = exports.create_export(
            s,
            org_id=org.id,
            kind="records",
            format="mysql",
            scope="changed",
            objects=["Contact", "Account"],
            created_by="admin",
            clock=clock,
        )
        exports.set_export_password(exp, "zip-Pa55word", sealer)
        assert exports.active_export(s, org.id) is exp
        exports.set_export_state(s, exp, "running", clock=clock)
        exports.set_export_state(s, exp, "succeeded", size_bytes=1234, location="exports/x.zip", clock=clock)
        org_id, exp_id = org.id, exp.id
    with transaction(catalog_sessions) as s:
        exp = exports.get_export(s, exp_id)
        assert exp.objects == ["Account", "Contact"] and exp.state == "succeeded"
        assert exp.password_sealed is not None and b"zip-Pa55word" not in exp.password_sealed
        assert exports.read_export_password(exp, sealer) == "zip-Pa55word"
        assert exports.active_export(s, org_id) is None
        assert exports.exported_bytes_since(s, org_id, T0, kind="records") == 1234
        assert exports.exported_bytes_since(s, org_id, T0, kind="files") == 0
    with pytest.raises(IntegrityError), transaction(catalog_sessions) as s:
        s.execute(text("UPDATE exports SET format = 'xlsx'"))


def test_api_tokens_are_stored_hashed(catalog_sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    with transaction(catalog_sessions) as s:
        row, clear = tokens.create_token(s, name="ci", role="operator", clock=clock)
        assert clear.startswith("sfv_") and row.token_hash != clear and clear not in repr(row)
        token_id = row.id
    with transaction(catalog_sessions) as s:
        found = tokens.find_token(s, clear, clock=clock)
        assert found is not None and found.role == "operator" and found.last_used_at == T0
        assert tokens.find_token(s, clear + "x") is None
        tokens.revoke_token(s, token_id, clock=clock)
        assert tokens.find_token(s, clear) is None
    with pytest.raises(ValueError), transaction(catalog_sessions) as s:
        tokens.create_token(s, name="x", role="superuser")


def test_permission_reports_and_outbox(catalog_sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    fields = [{"object": "Account", "field": "Secret__c", "readable": False}]
    perms = [{"name": "QueryAllFiles", "granted": False, "needed_for": "backing up every file"}]
    with transaction(catalog_sessions) as s:
        org = _org(s, clock)
        reports.add_permission_report(
            s, org_id=org.id, fields=[], objects=[], user_permissions=[], clock=clock
        )
        clock.advance(timedelta(days=30))
        reports.add_permission_report(
            s,
            org_id=org.id,
            fields=fields,
            objects=[{"object": "Account"}],
            user_permissions=perms,
            trigger="manual",
            clock=clock,
        )
        msg = reports.enqueue_message(
            s,
            kind="permission_report",
            recipient="admin@acme.example",
            subject="Permission check",
            body="2 problems",
            org_id=org.id,
            payload={"report": 2},
            clock=clock,
        )
        org_id = org.id
    with transaction(catalog_sessions) as s:
        latest = reports.latest_permission_report(s, org_id)
        assert latest is not None and latest.fields == fields and latest.user_permissions == perms
        assert latest.created_at == T0 + timedelta(days=30) and latest.trigger == "manual"
        pending = reports.pending_messages(s)
        assert [m.id for m in pending] == [msg.id]
        reports.mark_message(s, pending[0], sent=False, error="smtp down")
        reports.mark_message(s, pending[0], sent=True, clock=clock)
        assert reports.pending_messages(s) == []
        assert pending[0].attempts == 2 and pending[0].sent_at is not None
