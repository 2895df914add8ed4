"""The scheduler loop over a real catalog (SQLite and PostgreSQL) with an injected clock.

``Scheduler.tick(now)`` is called directly with chosen instants: no thread, no sleeping. Orgs in
most tests have no credentials, so a slot that the policy decides to *run* reaches the real
job runner, which refuses it before recording a job (the org has no credentials): the
scheduler then records the slot as a skipped job with that refusal's code. That keeps every
slot visible in the catalog without a Salesforce org; one test at the end really runs the
backup on the emulator and a LocalCluster.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.background import JobRunner
from api.context import AppContext
from api.scheduler import Scheduler
from engine.catalog import jobs as cjobs
from engine.catalog import orgs as corgs
from engine.catalog.db import make_engine, migrate, session_factory, transaction
from engine.catalog.models import Job, Org
from engine.clock import FrozenClock, SystemClock
from engine.config import Settings
from engine.errors import JobAlreadyRunning, SubscriptionExpired, UnknownTimeZone
from engine.jobs.credentials import catalog_sealer, credentials_record
from engine.jobs.errors import CredentialsMissing, JobAbandoned
from engine.jobs.planning import JobOptions
from engine.sink.backends import open_backend
from engine.sink.keys import LocalKeyFile
from engine.sink.repository import Repository
from tests.api.conftest import api_settings

pytest_plugins = ["tests.catalog_fixtures"]

CONNECTED = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


def make_ctx(
    settings: Settings, clock: Any, *, dask_factory: Any = None, job_options: JobOptions | None = None
) -> AppContext:
    engine = make_engine(settings.catalog_url)
    migrate(engine)
    runner = JobRunner(
        settings, clock=clock, dask_factory=dask_factory or (lambda: None), job_options=job_options
    )
    return AppContext(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        sealer=catalog_sealer(settings, create=True),
        clock=clock,
        runner=runner,
    )


def init_repository(settings: Settings) -> None:
    Repository.init(
        open_backend(settings.repository_url, settings),
        LocalKeyFile.load_or_create(settings.key_file),
        settings=settings,
    ).close()


@pytest.fixture
def ctx(tmp_path: Path, catalog_url: str) -> Iterator[AppContext]:
    settings = api_settings(tmp_path, catalog_url)
    init_repository(settings)
    c = make_ctx(settings, FrozenClock(CONNECTED))
    try:
        yield c
    finally:
        c.runner.shutdown()
        c.engine.dispose()


def add_org(
    ctx: AppContext, name: str, *, zone: str = "UTC", connected: datetime = CONNECTED, **settings: Any
) -> None:
    org_fields = {
        k: settings.pop(k) for k in ("subscription_expires_at", "plan", "purchased_seats") if k in settings
    }
    with ctx.tx() as s:
        org = corgs.create_org(
            s, name=name, instance_url=None, time_zone=zone, storage_location=ctx.settings.repository_url,
            clock=FrozenClock(connected), **org_fields,
        )  # fmt: skip
        corgs.update_settings(s, org, permission_check_enabled=False, **settings)


def slots_of(ctx: AppContext, name: str) -> list[Job]:
    with ctx.tx() as s:
        org = corgs.get_org_by_name(s, name)
        rows = list(s.scalars(select(Job).where(Job.org_id == org.id).order_by(Job.scheduled_for)))
        s.expunge_all()
        return rows


def test_a_new_org_first_runs_at_the_next_local_midnight(ctx: AppContext) -> None:
    # New York is on daylight time (UTC-4) since 8 March 2026: local midnight is 04:00 UTC
    add_org(ctx, "ny", zone="America/New_York")
    sched = Scheduler(ctx)
    assert sched.tick(datetime(2026, 3, 11, 3, 59, 59, tzinfo=UTC)).slots == []
    report = sched.tick(datetime(2026, 3, 11, 4, 0, 30, tzinfo=UTC))
    [outcome] = report.slots
    assert outcome.slot == datetime(2026, 3, 11, 0, 0, tzinfo=ZoneInfo("America/New_York"))
    assert outcome.slot.astimezone(UTC) == datetime(2026, 3, 11, 4, 0, tzinfo=UTC)
    # the runner refused it (no credentials): the slot is recorded with that code, not lost
    assert (outcome.action, outcome.code) == ("skipped", CredentialsMissing.code)
    [job] = slots_of(ctx, "ny")
    assert job.scheduled_for == datetime(2026, 3, 11, 4, 0, tzinfo=UTC)
    assert (job.state, job.trigger, job.kind, job.error_code) == (
        "skipped",
        "scheduled",
        "full",
        CredentialsMissing.code,
    )
    assert report.failures == []


def test_n_jobs_a_day_from_the_first_start_time(ctx: AppContext) -> None:
    add_org(ctx, "berlin", zone="Europe/Berlin", jobs_per_day=4, first_start_time=time(6, 0))
    sched = Scheduler(ctx)
    for hour in range(1, 26):  # one tick an hour over the day after connecting at 16:00 local
        sched.tick(CONNECTED + timedelta(hours=hour))
    berlin = ZoneInfo("Europe/Berlin")
    local = [j.scheduled_for.astimezone(berlin) for j in slots_of(ctx, "berlin") if j.scheduled_for]
    assert [(t.day, t.hour, t.minute) for t in local] == [(10, 18, 0), (11, 0, 0), (11, 6, 0), (11, 12, 0)]


def test_a_slot_is_skipped_and_recorded_while_a_job_runs(ctx: AppContext) -> None:
    add_org(ctx, "busy")
    with ctx.tx() as s:
        org = corgs.get_org_by_name(s, "busy")
        running = cjobs.create_job(s, org, kind="full", trigger="manual", clock=FrozenClock(CONNECTED))
        cjobs.start_job(s, running, clock=FrozenClock(CONNECTED))
        running_id = running.id
    slot = datetime(2026, 3, 11, 0, 0, tzinfo=UTC)
    [outcome] = Scheduler(ctx).tick(slot + timedelta(seconds=5)).slots
    assert (outcome.action, outcome.code) == ("skipped", JobAlreadyRunning.code)
    skipped = [j for j in slots_of(ctx, "busy") if j.id != running_id]
    assert [(j.state, j.scheduled_for, j.error_code) for j in skipped] == [
        ("skipped", slot, JobAlreadyRunning.code)
    ]
    assert running_id in (skipped[0].error_message or "")


def test_an_expired_subscription_stops_the_schedule_and_records_nothing(ctx: AppContext) -> None:
    add_org(ctx, "expired", plan="standard", subscription_expires_at=datetime(2026, 3, 10, 20, 0, tzinfo=UTC))
    report = Scheduler(ctx).tick(datetime(2026, 3, 11, 0, 1, tzinfo=UTC))
    [outcome] = report.slots
    assert (outcome.action, outcome.code) == ("stopped", SubscriptionExpired.code)
    assert slots_of(ctx, "expired") == []


def test_one_slot_makes_one_job_however_many_ticks_see_it(ctx: AppContext) -> None:
    add_org(ctx, "once")
    now = datetime(2026, 3, 11, 0, 0, 10, tzinfo=UTC)
    first, second = Scheduler(ctx), Scheduler(ctx)  # two processes sharing one catalog
    assert [o.action for o in first.tick(now).slots] == ["skipped"]
    assert first.tick(now).slots == []  # the same process: the slot is behind its last tick
    assert [o.action for o in second.tick(now).slots] == []  # the catalog's last slot bounds it too
    # the job service answers an already recorded slot as handled ...
    slot = datetime(2026, 3, 11, 0, 0, tzinfo=UTC)
    with ctx.tx() as s:
        org_id = corgs.get_org_by_name(s, "once").id
    assert ctx.jobs.admit_slot(org_id, slot, now).action == "already_handled"
    # ... and a process that decided before the first one recorded is refused by the unique index
    with pytest.raises(IntegrityError), ctx.tx() as s:
        org = corgs.get_org_by_name(s, "once")
        late = cjobs.record_skipped_job(s, org, kind="full", reason_code="SFV-601", reason="late",
                                        clock=FrozenClock(now))  # fmt: skip
        late.scheduled_for = slot
        s.flush()
    assert len(slots_of(ctx, "once")) == 1


def test_missed_slots_after_downtime_are_one_run(ctx: AppContext) -> None:
    add_org(ctx, "hourly", jobs_per_day=24)
    sched = Scheduler(ctx)
    sched.tick(datetime(2026, 3, 11, 0, 0, 1, tzinfo=UTC))
    # down for ten hours: one catch-up job for the newest missed slot
    [outcome] = sched.tick(datetime(2026, 3, 11, 10, 30, tzinfo=UTC)).slots
    assert outcome.slot.astimezone(UTC) == datetime(2026, 3, 11, 10, 0, tzinfo=UTC)
    assert len(slots_of(ctx, "hourly")) == 2
    # a restarted process (no memory) starts from the last recorded slot
    [again] = Scheduler(ctx).tick(datetime(2026, 3, 11, 13, 0, 5, tzinfo=UTC)).slots
    assert again.slot.astimezone(UTC) == datetime(2026, 3, 11, 13, 0, tzinfo=UTC)


def test_a_failing_org_does_not_stop_the_others(ctx: AppContext) -> None:
    add_org(ctx, "a-broken")
    add_org(ctx, "b-fine")
    with ctx.tx() as s:  # a zone that no longer exists in the tz database (as after an upgrade)
        corgs.get_org_by_name(s, "a-broken").time_zone = "Mars/Olympus_Mons"
    sched = Scheduler(ctx)
    report = sched.tick(datetime(2026, 3, 11, 0, 0, 5, tzinfo=UTC))
    assert [(f.org, f.step) for f in report.failures] == [("a-broken", "backup")]
    assert report.failures[0].code == UnknownTimeZone.code
    assert [o.org for o in report.slots] == ["b-fine"]
    # the failed step is backed off, not retried on every tick
    assert sched.tick(datetime(2026, 3, 11, 0, 1, 5, tzinfo=UTC)).failures == []
    later = sched.tick(datetime(2026, 3, 11, 0, 16, 5, tzinfo=UTC))
    assert [(f.org, f.step) for f in later.failures] == [("a-broken", "backup")]


def test_the_loop_thread_ticks_with_the_context_clock(tmp_path: Path) -> None:
    import threading

    clock = FrozenClock(datetime(2026, 3, 11, 0, 0, 30, tzinfo=UTC))
    settings = api_settings(tmp_path, scheduler_tick_seconds=0.01)
    init_repository(settings)
    c = make_ctx(settings, clock)
    try:
        add_org(c, "looped")
        ticked = threading.Event()
        sched = Scheduler(c)
        original = sched.tick

        def tick(now: datetime) -> Any:
            report = original(now)
            ticked.set()
            return report

        sched.tick = tick  # type: ignore[method-assign]
        sched.start()
        assert ticked.wait(30)
        sched.stop()
        assert [j.scheduled_for for j in slots_of(c, "looped")] == [datetime(2026, 3, 11, 0, 0, tzinfo=UTC)]
    finally:
        c.runner.shutdown()
        c.engine.dispose()


# --- a tick that really runs a backup ---------------------------------------------------------


@pytest.mark.emulator
@pytest.mark.cluster
class _Lines(logging.Handler):
    """Keeps the messages of one logger (caplog loses them once Dask configures logging)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_tick_starts_a_real_backup_that_finishes_with_its_slot(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    from cluster import configure_dask
    from devkit.backup_env import TEST_OPTIONS, make_settings
    from tests.helpers.emulator_proc import poll_for, start_emulator

    jobs_log, kept = logging.getLogger("sfvault.api.jobs"), _Lines()
    jobs_log.addHandler(kept)
    jobs_log.setLevel(logging.INFO)
    configure_dask()
    em = start_emulator(scale=1_500, seed=5, tls=False, timeout=300)
    try:
        settings = make_settings(tmp_path)
        i = em.info
        rec = credentials_record(
            instance_url=i["instance_url"], username=i["username"], password=i["password"],
            security_token=i["security_token"], client_id=i["client_id"], client_secret=i["client_secret"],
            login_url=i["login_url"],
        )  # fmt: skip
        with (
            LocalCluster(
                n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            c = make_ctx(settings, SystemClock(), dask_factory=lambda: client, job_options=TEST_OPTIONS)
            try:
                with c.tx() as s:
                    org = corgs.create_org(
                        s, name="live", instance_url=i["instance_url"], credentials=rec, sealer=c.sealer,
                        storage_location=settings.repository_url,
                    )  # fmt: skip
                    corgs.update_settings(s, org, permission_check_enabled=False)
                    connected = org.connected_at
                slot = datetime.combine(connected.date() + timedelta(days=1), time(0), tzinfo=UTC)
                report = Scheduler(c).tick(slot + timedelta(seconds=1))
                assert report.failures == []
                [outcome] = report.slots
                assert (outcome.action, outcome.kind) == ("started", "full")

                def finished() -> Job | None:
                    with transaction(c.sessions) as s:
                        job = s.get(Job, outcome.job_id)
                        assert job is not None
                        s.expunge(job)
                        return job if job.state not in ("queued", "running") else None

                job = poll_for(finished, timeout=240)
                assert job.state == "succeeded"
                # serve logs one structured line at the job's start and one at its end (issue 15)
                start = f"job start job={outcome.job_id} org=live kind=full trigger=scheduled"
                assert start in kept.lines
                poll_for(lambda: any(m.startswith("job end") for m in kept.lines), timeout=60)
                [end] = [m for m in kept.lines if m.startswith("job end")]
                assert end.startswith(f"job end job={outcome.job_id} org=live state=succeeded code=- ")
                assert job.records > 0
                with c.tx() as s:
                    assert s.scalar(select(Org.name).where(Org.id == job.org_id)) == "live"
            finally:
                c.runner.shutdown()
                c.engine.dispose()
    finally:
        em.stop()
        jobs_log.removeHandler(kept)


# --- the job service: heartbeats and the operator's override (issue 14) -------------------------


def _org_with_credentials(ctx: AppContext, name: str, **org_fields: Any) -> None:
    rec = credentials_record(
        instance_url="https://acme.example", username="u@acme.example", password="p", security_token="t",
        client_id="cid", client_secret="secret", login_url="https://login.example",
    )  # fmt: skip
    with ctx.tx() as s:
        org = corgs.create_org(
            s, name=name, instance_url="https://acme.example", credentials=rec, sealer=ctx.sealer,
            storage_location=ctx.settings.repository_url, clock=FrozenClock(CONNECTED), **org_fields,
        )  # fmt: skip
        corgs.update_settings(s, org, permission_check_enabled=False)


def _job(ctx: AppContext, job_id: str) -> Job:
    with ctx.tx() as s:
        job = cjobs.get_job(s, job_id)
        s.expunge(job)
        return job


def test_a_job_whose_process_died_is_closed_within_the_stale_limit_and_blocks_nothing(
    ctx: AppContext,
) -> None:
    clock = ctx.clock
    assert isinstance(clock, FrozenClock)
    stale = timedelta(seconds=ctx.settings.job_stale_after_seconds)
    _org_with_credentials(ctx, "dies")
    admitted = ctx.jobs.admit("dies")  # the queued row, with its first heartbeat; then the process dies
    assert _job(ctx, admitted.job_id).state == "queued"
    clock.advance(timedelta(minutes=1))
    assert ctx.jobs.heartbeat(admitted.job_id).beat()  # while it lived, it beat
    beat_at = clock.now()
    with pytest.raises(JobAlreadyRunning):
        ctx.jobs.admit("dies")
    # a tick within the stale limit leaves it alone: its process may be alive
    Scheduler(ctx).tick(beat_at + stale - timedelta(seconds=1))
    assert _job(ctx, admitted.job_id).state == "queued"
    # past it, the tick closes it failed with its own code
    Scheduler(ctx).tick(beat_at + stale + timedelta(seconds=1))
    dead = _job(ctx, admitted.job_id)
    assert (dead.state, dead.error_code) == ("failed", JobAbandoned.code)
    assert dead.finished_at == beat_at + stale + timedelta(seconds=1)
    assert not ctx.jobs.heartbeat(admitted.job_id).beat(), "a closed job takes no heartbeat"
    # and the next job of the org is admitted
    clock.advance(stale * 2)
    assert _job(ctx, ctx.jobs.admit("dies").job_id).state == "queued"


def test_a_dead_job_is_closed_by_the_next_admission_without_a_scheduler(ctx: AppContext) -> None:
    clock = ctx.clock
    assert isinstance(clock, FrozenClock)
    _org_with_credentials(ctx, "cli-only")
    first = ctx.jobs.admit("cli-only")
    clock.advance(timedelta(seconds=ctx.settings.job_stale_after_seconds + 1))
    second = ctx.jobs.admit("cli-only")
    assert (_job(ctx, first.job_id).state, _job(ctx, first.job_id).error_code) == ("failed", "SFV-804")
    assert _job(ctx, second.job_id).state == "queued"


def test_override_passes_the_policy_and_is_recorded_but_never_a_running_job(ctx: AppContext) -> None:
    expired = CONNECTED - timedelta(days=1)
    _org_with_credentials(ctx, "lapsed", plan="standard", subscription_expires_at=expired)
    with pytest.raises(SubscriptionExpired):
        ctx.jobs.admit("lapsed")
    forced = _job(ctx, ctx.jobs.admit("lapsed", override=True).job_id)
    assert forced.policy_override and (forced.override_reason or "").startswith(SubscriptionExpired.code)
    with pytest.raises(JobAlreadyRunning):
        ctx.jobs.admit("lapsed", override=True)
    _org_with_credentials(ctx, "fine")
    plain = _job(ctx, ctx.jobs.admit("fine", override=True).job_id)
    assert plain.policy_override and plain.override_reason is None


def test_the_heartbeat_thread_beats_while_the_job_is_active_and_stops_when_it_ends(ctx: AppContext) -> None:
    from engine.jobs.service import JobHeartbeat
    from tests.helpers.emulator_proc import poll_for

    clock = ctx.clock
    assert isinstance(clock, FrozenClock)
    _org_with_credentials(ctx, "beating")
    job_id = ctx.jobs.admit("beating").job_id
    beat = JobHeartbeat(ctx.sessions, job_id, clock=clock, every=0.01).start()
    try:
        clock.advance(timedelta(minutes=5))
        poll_for(lambda: _job(ctx, job_id).heartbeat_at == clock.now(), timeout=30)
        with ctx.tx() as s:  # the job ends: the thread notices and stops by itself
            cjobs.finish_job(s, cjobs.get_job(s, job_id), "cancelled", clock=clock)
        poll_for(lambda: not beat._thread.is_alive(), timeout=30)
    finally:
        beat.stop()
    assert not beat._thread.is_alive()


def test_the_job_service_admits_one_job_per_lane(ctx: AppContext) -> None:
    """Decision 0016: with a committed full, "back up now" with ``full`` queues a full (kind
    ``full`` on its row from the start), an incremental is admitted beside it, and a second job
    of either lane is refused with SFV-601 naming the job of that lane."""
    from engine.jobs.planning import BackupRequest

    clock = ctx.clock
    assert isinstance(clock, FrozenClock)
    _org_with_credentials(ctx, "lanes")
    with ctx.tx() as s:
        first = cjobs.create_job(s, corgs.get_org_by_name(s, "lanes"), kind="full", clock=clock)
        first.cycle_id = first.id
        cjobs.start_job(s, first, clock=clock)
        cjobs.finish_job(s, first, "succeeded", clock=clock)
    clock.advance(timedelta(hours=1))
    full = ctx.jobs.admit("lanes", BackupRequest("lanes", full=True))
    assert (full.kind, _job(ctx, full.job_id).kind) == ("full", "full")
    inc = ctx.jobs.admit("lanes")
    assert (inc.kind, _job(ctx, inc.job_id).state) == ("incremental", "queued")
    with pytest.raises(JobAlreadyRunning) as second_full:
        ctx.jobs.admit("lanes", BackupRequest("lanes", full=True))
    assert second_full.value.details["job"] == full.job_id
    with pytest.raises(JobAlreadyRunning) as second_inc:
        ctx.jobs.admit("lanes")
    assert second_inc.value.details["job"] == inc.job_id
    with pytest.raises(JobAlreadyRunning):  # the override never passes a job of the same lane
        ctx.jobs.admit("lanes", BackupRequest("lanes", full=True), override=True)


class _FactsReadBeforeTheOtherRowWasWritten:
    """``policy_jobs`` as a second admission saw it when it read the org's jobs just before the
    first admission's queued row was written (the interleaving that let two of them pass): no jobs,
    the first ``stale`` times, then the real catalog."""

    def __init__(self, stale: int) -> None:
        from engine.jobs import service

        self.real, self.stale = service.policy_jobs, stale

    def __call__(self, s: Any, org_id: int, now: datetime) -> Any:
        if self.stale:
            self.stale -= 1
            return ()
        return self.real(s, org_id, now)


def _active(ctx: AppContext, name: str) -> list[str]:
    with ctx.tx() as s:
        org = corgs.get_org_by_name(s, name)
        active = select(Job.id).where(Job.org_id == org.id, Job.state.in_(("queued", "running")))
        return list(s.scalars(active))


def test_two_admissions_of_one_instant_cannot_both_queue_a_job_of_one_lane(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both passed the policy check when each read the org's jobs before the other wrote its row;
    the catalog's unique index on the active lane refuses the second with SFV-601, naming the first."""
    from engine.jobs import service
    from engine.jobs.planning import BackupRequest

    _org_with_credentials(ctx, "race")
    first = ctx.jobs.admit("race", BackupRequest("race", full=True))
    monkeypatch.setattr(service, "policy_jobs", _FactsReadBeforeTheOtherRowWasWritten(stale=1))
    with pytest.raises(JobAlreadyRunning) as refused:
        ctx.jobs.admit("race", BackupRequest("race", full=True))
    assert refused.value.details["job"] == first.job_id
    assert _active(ctx, "race") == [first.job_id]


def test_a_slot_decided_beside_an_admission_of_the_same_instant_is_skipped_not_doubled(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.jobs import service
    from engine.jobs.planning import BackupRequest

    _org_with_credentials(ctx, "race-slot")
    assert isinstance(ctx.clock, FrozenClock)
    ctx.clock.advance(timedelta(hours=1))  # the org was connected at the clock's instant
    manual = ctx.jobs.admit("race-slot", BackupRequest("race-slot", full=True))
    monkeypatch.setattr(service, "policy_jobs", _FactsReadBeforeTheOtherRowWasWritten(stale=1))
    with ctx.tx() as s:
        org_id = corgs.get_org_by_name(s, "race-slot").id
    now = ctx.clock.now()  # the manual job's heartbeat is fresh
    outcome = ctx.jobs.admit_slot(org_id, now.replace(second=0, microsecond=0), now)
    assert (outcome.action, outcome.code) == ("skipped", JobAlreadyRunning.code)
    assert _active(ctx, "race-slot") == [manual.job_id]


def test_a_slot_that_loses_the_lane_twice_stops_without_a_row(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both decisions of the slot saw the org's jobs before an admission of the same instant wrote
    its row: the slot stops with SFV-601 and records nothing (the next tick decides again)."""
    from engine.jobs import service
    from engine.jobs.planning import BackupRequest

    _org_with_credentials(ctx, "race-twice")
    assert isinstance(ctx.clock, FrozenClock)
    ctx.clock.advance(timedelta(hours=1))
    manual = ctx.jobs.admit("race-twice", BackupRequest("race-twice", full=True))
    monkeypatch.setattr(service, "policy_jobs", _FactsReadBeforeTheOtherRowWasWritten(stale=2))
    with ctx.tx() as s:
        org_id = corgs.get_org_by_name(s, "race-twice").id
    now = ctx.clock.now()
    outcome = ctx.jobs.admit_slot(org_id, now.replace(second=0, microsecond=0), now)
    assert (outcome.action, outcome.code, outcome.job_id) == ("stopped", JobAlreadyRunning.code, None)
    assert [j.id for j in slots_of(ctx, "race-twice")] == [manual.job_id]
