"""``rebuild_catalog`` over manifests held in memory (the repository round trip is in
``tests/integration/test_catalog_rebuild.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.catalog import jobs
from engine.catalog.db import make_engine, migrate, session_factory, transaction
from engine.catalog.models import Job, JobError, JobObject, Org
from engine.catalog.rebuild import rebuild_catalog
from engine.clock import FrozenClock
from engine.errors import CatalogRebuildFailed, ObjectCorrupt
from engine.model import JobRecord, Manifest, ObjectEntry, ObjectError, OrgFacts, SnapshotInfo

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class ManifestShelf:
    """Committed manifests, listed and loaded the way ``Repository`` does."""

    manifests: list[Manifest] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)

    def snapshots(self, org: str | None = None) -> list[SnapshotInfo]:
        return [
            SnapshotInfo(org=m.org, job_id=m.job_id, name=f"{m.org}/{m.job_id}", sealed_bytes=1)
            for m in self.manifests
            if org is None or m.org == org
        ]

    def load_manifest(self, org: str, job_id: str) -> Manifest:
        if job_id in self.broken:
            raise ObjectCorrupt(name=f"snapshots/{org}/{job_id}")
        return next(m for m in self.manifests if m.org == org and m.job_id == job_id)


def _manifest(
    org: str,
    job_id: str,
    hours: int,
    kind: str,
    objects: dict[str, ObjectEntry],
    job: JobRecord | None = None,
) -> Manifest:
    return Manifest(
        org=org,
        job_id=job_id,
        created_at=T0 + timedelta(hours=hours),
        kind=kind,  # type: ignore[arg-type]
        cycle_id="2026",
        objects=objects,
        job=job or JobRecord(),
    )


def _shelf() -> ManifestShelf:
    return ManifestShelf(
        [
            # listed newest first on purpose: rebuild applies them oldest first
            _manifest(
                "acme",
                "j2",
                24,
                "incremental",
                {
                    "Account": ObjectEntry(
                        rows=10, bytes=800, api_calls={"rest": 1, "bulk2_jobs": 1, "bulk2_pages": 1}
                    ),
                    "Contact": ObjectEntry(rows=0, bytes=0, errors=[ObjectError("SFV-405", "timed out")]),
                },
                JobRecord(trigger="manual"),
            ),
            _manifest(
                "acme",
                "j1",
                0,
                "full",
                {
                    "Account": ObjectEntry(
                        rows=1000,
                        bytes=90_000,
                        duration_seconds=2.5,
                        api_calls={"rest": 4, "bulk2_jobs": 2, "bulk2_pages": 6},
                    ),
                    "Contact": ObjectEntry(rows=2000, bytes=150_000),
                },
                JobRecord(org=OrgFacts("https://acme.my.salesforce.com", time_zone="America/New_York")),
            ),
            _manifest("globex", "g1", 3, "full", {"Lead": ObjectEntry(rows=5, bytes=100)}),
        ]
    )


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


def _counts(s: Session) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for job_id, name, records in s.execute(
        select(JobObject.job_id, JobObject.object_name, JobObject.records)
    ):
        out.setdefault(job_id, {})[name] = records
    return out


def test_rebuild_into_an_empty_catalog(sessions: sessionmaker[Session]) -> None:
    clock = FrozenClock(current=T0 + timedelta(days=10))
    with transaction(sessions) as s:
        report = rebuild_catalog(s, _shelf(), clock=clock)
    assert (report.snapshots, report.jobs_created, report.jobs_updated, report.objects) == (3, 3, 0, 5)
    assert sorted(report.orgs_created) == ["acme", "globex"]

    with transaction(sessions) as s:
        assert _counts(s) == {
            "j1": {"Account": 1000, "Contact": 2000},
            "j2": {"Account": 10, "Contact": 0},
            "g1": {"Lead": 5},
        }
        acme = s.scalars(select(Org).where(Org.name == "acme")).one()
        assert acme.connected_at == T0 and acme.time_zone == "America/New_York"
        assert acme.instance_url == "https://acme.my.salesforce.com" and acme.credentials_sealed is None
        j1, j2 = jobs.get_job(s, "j1", with_objects=True), jobs.get_job(s, "j2", with_objects=True)
        assert (j1.kind, j1.state, j1.trigger, j1.records, j1.bytes) == (
            "full",
            "succeeded",
            "scheduled",
            3000,
            240_000,
        )
        assert (j2.kind, j2.state, j2.trigger, j2.records) == ("incremental", "partial", "manual", 10)
        assert j1.snapshot_ref == "acme/j1" and j1.cycle_id == "2026" and j1.created_at == T0
        account = j1.objects[0]
        assert (account.rest_calls, account.bulk2_jobs, account.bulk2_pages, account.duration_s) == (
            4,
            2,
            6,
            2.5,
        )
        contact = j2.objects[1]
        assert (contact.state, contact.error_code) == ("failed", "SFV-405")
        assert [(e.object_name, e.code) for e in j2.errors] == [("Contact", "SFV-405")]
        assert jobs.objects_to_retry(s, acme.id) == ["Contact"]


def test_rebuild_is_idempotent_and_keeps_catalog_only_jobs(sessions: sessionmaker[Session]) -> None:
    clock = FrozenClock(current=T0 + timedelta(days=10))
    with transaction(sessions) as s:
        rebuild_catalog(s, _shelf(), clock=clock)
        acme = s.scalars(select(Org).where(Org.name == "acme")).one()
        failed = jobs.create_job(s, acme, kind="incremental", clock=clock)
        jobs.finish_job(s, failed, "failed", error_code="SFV-403", clock=clock)
        # damage what the catalog says about a committed job
        s.execute(update(JobObject).where(JobObject.job_id == "j1").values(records=1))
    with transaction(sessions) as s:
        report = rebuild_catalog(s, _shelf(), clock=clock)
    assert (report.jobs_created, report.jobs_updated, report.orgs_created) == (0, 3, [])
    with transaction(sessions) as s:
        assert _counts(s)["j1"] == {"Account": 1000, "Contact": 2000}
        assert s.scalar(select(JobError.id).where(JobError.job_id == "j2")) is not None
        assert len(s.scalars(select(JobError).where(JobError.job_id == "j2")).all()) == 1  # not duplicated
        assert s.get(Job, failed.id) is not None  # never had a snapshot: left alone
        assert len(s.scalars(select(Org)).all()) == 2


def test_rebuild_of_one_org(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        report = rebuild_catalog(s, _shelf(), org="globex")
    assert (report.snapshots, report.orgs_created) == (1, ["globex"])


def test_unreadable_manifest_fails_the_rebuild_and_changes_nothing(sessions: sessionmaker[Session]) -> None:
    shelf = _shelf()
    shelf.broken.add("j2")
    with pytest.raises(CatalogRebuildFailed) as info, transaction(sessions) as s:
        rebuild_catalog(s, shelf)
    assert "acme/j2" in str(info.value) and "SFV-311" in str(info.value)
    with transaction(sessions) as s:
        assert s.scalar(select(Org.id)) is None

    with transaction(sessions) as s:
        report = rebuild_catalog(s, shelf, skip_unreadable=True)
    assert report.snapshots == 2 and [name for name, _ in report.unreadable] == ["acme/j2"]


def test_a_recreated_org_takes_the_facts_of_its_newest_manifest_that_records_them(
    sessions: sessionmaker[Session],
) -> None:
    """Format-1 manifests (upgraded on read) record no org facts; a newer one does."""
    old = _manifest("acme", "j1", 0, "full", {"Lead": ObjectEntry(rows=1)})
    facts = OrgFacts("https://acme.my.salesforce.com", "00Dacme", "Europe/Paris")
    new = _manifest("acme", "j2", 1, "incremental", {"Lead": ObjectEntry(rows=1)}, JobRecord(org=facts))
    with transaction(sessions) as s:
        rebuild_catalog(s, ManifestShelf([new, old]))
    with transaction(sessions) as s:
        acme = s.scalars(select(Org).where(Org.name == "acme")).one()
        assert (acme.instance_url, acme.sf_org_id, acme.time_zone) == (
            "https://acme.my.salesforce.com", "00Dacme", "Europe/Paris",
        )  # fmt: skip
        assert jobs.get_job(s, "j1").trigger == "scheduled"  # not recorded: the rebuild's default
