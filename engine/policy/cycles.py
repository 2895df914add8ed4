"""Backup cycles: which kind of job to run, which cycle it belongs to, what to redo.

Rules (PRODUCT.md "Backup cycles and jobs"):

* **A cycle** begins with its first full job that commits (state succeeded or partial) and
  lasts one calendar year from that job's commit (same UTC date and time a year later; a
  29 February start ends on 28 February): the catalog's ``finished_at`` of the full job, the
  same instant as its manifest's ``created_at``, which the runner counts from
  (:meth:`engine.model.Manifest.cycle_position`). A full of a large org runs for hours, so
  counting from its start here would end the scheduler's year hours before the runner's.
  Its id is recorded on every job planned into it.
* **Kind.** With no committed full the job is a full and opens a new cycle. Within a cycle
  every job is incremental. From the instant the cycle ends, the next job is the full of
  a new cycle (it opens the cycle only once it commits; a failed one is simply tried again).
* **Protection never pauses.** While a new cycle's full runs, jobs go on as incrementals of
  the old cycle *beside* it. An org has two lanes (decision 0016): the full of every object,
  and everything else; a job is blocked only by an active job of its own lane
  (:func:`blocking_job`), so two incrementals, or two fulls, never run at the same time. Before
  the first full commits there is no cycle, and nothing runs beside that full.
* **Exceptions are redone.** An object that hit an exception stays pending until a later
  committed job that covers it backs it up without one. An incremental re-extracts pending
  objects in full for that object (its cursor cannot be trusted). A job that did not commit
  (failed, cancelled) moved no cursor, so it clears nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from engine.model import lane_of
from engine.policy.facts import JobFact, JobKind, utc


def add_year(start: datetime) -> datetime:
    """The same UTC date and time one year later (29 February -> 28 February)."""
    at = utc(start)
    try:
        return at.replace(year=at.year + 1)
    except ValueError:
        return at.replace(year=at.year + 1, day=28)


def cycle_ended(started_at: datetime, now: datetime) -> bool:
    """The one cycle rule: a cycle that started at ``started_at`` is over from
    :func:`add_year` of it on. The scheduler's plan (:class:`Cycle`) and the runner's decision
    (:func:`engine.jobs.planning.decide`) both ask this, so they agree at the boundary."""
    return utc(now) >= add_year(started_at)


def new_cycle_id(now: datetime) -> str:
    """A deterministic id for a cycle opened by a job planned at ``now`` (UTC, seconds)."""
    return f"cycle-{utc(now):%Y%m%dT%H%M%S}Z"


@dataclass(frozen=True)
class Cycle:
    """One backup cycle.

    Attributes:
        id: the cycle id its jobs carry.
        full_job_id: the committed full job that opened it.
        started_at: when that full job committed (:func:`opened_at`); the cycle covers
            ``[started_at, ends_at)``.
    """

    id: str
    full_job_id: str
    started_at: datetime

    @property
    def ends_at(self) -> datetime:
        return add_year(self.started_at)

    def ended(self, now: datetime) -> bool:
        """True from the end instant on (:func:`cycle_ended`)."""
        return cycle_ended(self.started_at, now)


def cycle_key(job: JobFact) -> str:
    """The cycle a job belongs to: its recorded ``cycle_id`` (a legacy full opens its own)."""
    return job.cycle_id or job.id


def opened_at(full: JobFact) -> datetime:
    """The instant a committed full job opened its cycle: its commit (``finished_at``), the
    instant the runner counts the cycle's year from too (the manifest's ``created_at``); its
    start for a row that records no end."""
    return full.finished_at or full.began_at


def cycles(jobs: Iterable[JobFact]) -> list[Cycle]:
    """Every opened cycle, oldest first: one per cycle id that has a committed full job."""
    first_full: dict[str, JobFact] = {}
    for job in jobs:
        if job.kind is JobKind.FULL and job.state.committed:
            key = cycle_key(job)
            seen = first_full.get(key)
            if seen is None or utc(job.began_at) < utc(seen.began_at):
                first_full[key] = job
    found = [Cycle(key, j.id, opened_at(j)) for key, j in first_full.items()]
    return sorted(found, key=lambda c: (utc(c.started_at), c.id))


def current_cycle(jobs: Iterable[JobFact]) -> Cycle | None:
    """The newest opened cycle (it stays current after its year until a new full commits)."""
    found = cycles(jobs)
    return found[-1] if found else None


def has_full_backup(jobs: Iterable[JobFact]) -> bool:
    return current_cycle(jobs) is not None


def rollover_full(jobs: Iterable[JobFact]) -> JobFact | None:
    """An active full job of a newer cycle running beside the current one, if any."""
    jobs = tuple(jobs)
    cur = current_cycle(jobs)
    if cur is None:
        return None
    for job in _by_start(jobs):
        if job.state.active and job.kind is JobKind.FULL and cycle_key(job) != cur.id:
            return job
    return None


def lane(job: JobFact) -> JobKind:
    """The job's lane: :attr:`JobKind.FULL` for a full of every object, else incremental (an
    object-scoped job is an incremental that may extract its objects in full)."""
    return lane_of(job.kind, job.requested_objects)


def blocking_job(jobs: Iterable[JobFact], kind: JobKind = JobKind.INCREMENTAL) -> JobFact | None:
    """The active job that keeps a job of ``kind`` of the org from starting, if any.

    With an opened cycle, an active job of the same lane (:func:`lane`): an incremental runs
    beside a new cycle's full and a full beside an incremental, never two of one lane. Without
    one (the first full has not committed), every active job blocks.
    """
    jobs = tuple(jobs)
    active = [job for job in _by_start(jobs) if job.state.active]
    if current_cycle(jobs) is None:
        return active[0] if active else None
    wanted = JobKind.FULL if kind is JobKind.FULL else JobKind.INCREMENTAL
    return next((job for job in active if lane(job) is wanted), None)


def objects_to_redo(jobs: Iterable[JobFact]) -> frozenset[str]:
    """Objects that hit an exception and were not backed up cleanly since (rule above)."""
    finished = [j for j in jobs if j.state.finished_and_ran]
    finished.sort(key=lambda j: (utc(j.finished_at or j.began_at), j.id))
    pending: set[str] = set()
    for job in finished:
        if job.state.committed:
            pending = {o for o in pending if not job.covers(o)}
        pending |= job.failed_objects
    return frozenset(pending)


@dataclass(frozen=True)
class JobPlan:
    """What kind of job to create and how.

    Attributes:
        kind: full or incremental.
        cycle_id: the cycle the job belongs to (recorded on the job).
        new_cycle: True when this full opens a new cycle.
        objects: the chosen objects, None = all objects in scope.
        full_objects: objects an incremental extracts in full (they hit exceptions before).
        beside_job_id: the new cycle's full this incremental runs beside, if any.
    """

    kind: JobKind
    cycle_id: str
    new_cycle: bool = False
    objects: frozenset[str] | None = None
    full_objects: frozenset[str] = frozenset()
    beside_job_id: str | None = None


def plan_backup(
    jobs: Iterable[JobFact], now: datetime, objects: Iterable[str] | None = None, *, full: bool = False
) -> JobPlan:
    """The job to run at ``now`` under the cycle rules (the gates are checked before).

    Args:
        jobs: the org's jobs (see :class:`engine.policy.facts.OrgFacts`).
        now: decision time.
        objects: a chosen set of objects (manual, object-scoped), or None for all.
        full: a full was asked for: with all objects, the full of a new cycle.

    Raises:
        ValueError: ``objects`` given but the org has no full backup (callers check first and
            raise :class:`engine.errors.FullBackupRequired`).
    """
    jobs = tuple(jobs)
    chosen = None if objects is None else frozenset(objects)
    cur = current_cycle(jobs)
    if cur is None:
        if chosen is not None:
            raise ValueError("an object-scoped job needs a full backup first")
        return JobPlan(JobKind.FULL, new_cycle_id(now), new_cycle=True)
    beside = rollover_full(jobs)
    if chosen is None and (full or (beside is None and cur.ended(now))):
        return JobPlan(JobKind.FULL, new_cycle_id(now), new_cycle=True)
    redo = objects_to_redo(jobs)
    return JobPlan(
        JobKind.INCREMENTAL,
        cur.id,
        objects=chosen,
        full_objects=redo if chosen is None else redo & chosen,
        beside_job_id=beside.id if beside else None,
    )


def next_full_at(jobs: Iterable[JobFact], now: datetime) -> datetime:
    """When the next full job is due: the current cycle's end, or ``now`` without one."""
    cur = current_cycle(jobs)
    if cur is None or cur.ended(now):
        return utc(now)
    return cur.ends_at


def _by_start(jobs: Iterable[JobFact]) -> list[JobFact]:
    return sorted(jobs, key=lambda j: (utc(j.created_at), j.id))
