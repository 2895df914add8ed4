"""What a backup job does, decided from committed manifests alone (pure: no I/O, no Dask, no clock).

The repository is the source of truth (STYLE rules 6-7): cursors live only in committed
manifests, so the planner reads them back from the manifests of the org's current cycle.

Rules (PRODUCT.md "Backup cycles and jobs", DESIGN.md "Incremental"):

* A cycle lasts one calendar year (:func:`engine.policy.cycles.cycle_ended`, the one cycle rule
  the scheduler predicts with too). Its first job is *full*; the cycle id is that job's id. A
  full job also starts when asked (``full=True`` without objects) or when the org has no full
  backup yet, or when the newest cycle has expired.
* Every later job is *incremental*: per object, ``cursor_field >= last - lag`` (closed start),
  rows already captured at the boundary dropped (the cursor's ``seen`` pairs and the digests of
  their values, decision 0009).
* An object is extracted in full inside an incremental job when it has no usable cursor in the
  cycle (new object, empty so far, no timestamp field), or when it failed in the org's last job.
* Object-scoped jobs (``objects=...``) are refused with :class:`FullBackupRequired` until the
  org has a full backup.
* Hard deletes are caught at every job by the delete log (:mod:`engine.jobs.deletes`, decision
  0010), which sweeps an object's Ids in the same job where the log does not cover its window;
  an Id-only sweep of every object every :attr:`JobOptions.id_sweep_every` jobs of a cycle (the
  n-th, 2n-th ... job counting the full one as 0) is the last backstop.

What the runner writes and this module reads back is the manifest's typed job record
(``engine.model``, docs/decisions/0011): per object ``ObjectEntry.mode`` (how the job captured
it), ``ObjectEntry.cursor`` (the exact boundary state), ``ObjectEntry.swept`` and
``ObjectEntry.errors`` (a failed object holds no data); per job ``Manifest.cycle_position()``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from engine.config import JobSettings
from engine.extract.replication import minute
from engine.jobs.errors import FullBackupRequired, NoObjectsInScope, UnknownObjects
from engine.model import Cursor, CyclePosition, Manifest, ObjectMode, ObjectWarning
from engine.policy.cycles import cycle_ended

CLOCK_SLACK = timedelta(minutes=1)
"""An object read in full or swept records its next delete-log window as starting this long before
the job's start minute by our clock: an org clock behind ours by up to this much leaves no gap (an
overlap only lists deletions again, which is harmless). Decision 0010."""


@dataclass(frozen=True)
class JobOptions:
    """Knobs of the orchestration (tests shrink them; defaults are production values)."""

    cursor_lag: timedelta = timedelta(minutes=5)
    id_sweep_every: int = 30
    """Sweep the live Ids of every object in every n-th job of a cycle, counting the full job as 0:
    the last backstop (decision 0010). Hard deletes are caught at every job by the delete log,
    which sweeps an object in the same job where the log does not cover its window; this catches
    only what the log never reports (deletions Salesforce does not log, such as a delete log
    trimmed without moving ``earliestDateAvailable``). A sweep reads every Id of every object, by
    far the largest cost of an incremental: 30 is about monthly for daily jobs, weekly at four a
    day. 1 = every job; 0 = never."""
    max_concurrent_bulk_jobs: int = 32
    """Bulk query jobs of the org open at once (created and not yet read to the end), across all
    workers. Salesforce runs a few at a time and queues the rest. At 16 (twice what the
    ``realistic`` profile runs), a 2M-record full's last jobs, often its largest, were created
    only once earlier ones had been read, and ended alone: 32 lets every partition of such a job
    queue in the org from the start (decision 0047; the partitions are cut by
    :attr:`partition_jobs`, not by this cap)."""
    partition_jobs: int = 16
    """With :attr:`partition_spread`, how many partitions a job is cut into at least (within the
    two bounds below; :func:`partition_rows`)."""
    page_rows: int = 50_000
    """The most rows per Bulk result page (``maxRecords``); :attr:`page_bytes` bounds it by size."""
    page_bytes: int = 16 * 1024 * 1024
    """About the most CSV bytes per Bulk result page: each page asks for the rows that fit at the
    row width seen so far (decision 0015). A page is held twice while it downloads and is parsed,
    once per thread of a worker, so it bounds memory whatever the width of the object's rows.
    Every page is an API call: 16 MiB halves the calls of 8 MiB for ~100 MiB more per worker
    (decision 0019)."""
    result_streams: int = 1
    """Result pages of one Bulk job downloaded at once through ``resultPages`` (API 58.0+); memory
    per task grows to this many pages."""
    chunk_target_bytes: int | None = 16 * 1024 * 1024
    chunk_buffer_bytes: int = 32 * 1024 * 1024
    """The most Arrow bytes a task buffers before it cuts a chunk, whatever the Parquet estimate
    (decision 0015): with :attr:`page_bytes`, what bounds a task's memory and, times the worker's
    threads, a worker's."""
    target_rows: int = 250_000
    """The largest partition (rows); a job cuts smaller ones when it is small, see
    :func:`partition_rows`."""
    min_partition_rows: int = 50_000
    """The smallest partition :func:`partition_rows` cuts for parallelism: below it a Bulk job's own
    cost (create, queue, polls, and a delete with :attr:`delete_bulk_jobs`) outweighs what running
    it beside others saves."""
    partition_spread: int = 1
    """A job is cut into at least this many times :attr:`partition_jobs` partitions
    (within the two bounds above), so the org never waits for one large query at the end. Each
    partition costs a Bulk job's calls (create, polls, a last page) and its COUNT(): 1
    keeps twice the jobs Salesforce runs at once (decision 0019; 2 before)."""
    max_bisect_depth: int = 8
    blob_threads: int = 8
    file_bodies: bool = True
    """Download Attachment/Document/ContentVersion/... bodies (off: records only)."""
    poll_first: float = 0.2
    poll_max: float = 5.0
    delete_bulk_jobs: bool = False
    """Delete each Bulk API 2.0 query job once its results are read (one API call a job).
    Salesforce deletes a finished job and its results 7 days after it ended, and they stay inside
    the org (only the backup user and admins see them); a delete costs a call of the org's daily
    allowance, a tenth of a full's calls once polls are paced (decision 0037). A job the backup
    stops early (cancel, failure) is always aborted."""
    rest_max_rows: int = 2_000
    """Incremental windows (and Id sweeps of objects) of at most this many rows go through REST
    query paging instead of a Bulk job: one REST page (2,000 rows) against a job to create, queue,
    poll and read. Larger windows go through Bulk: a REST page of wide rows costs Salesforce
    several times the CPU of the same rows in a Bulk CSV (measured: 8k Contact rows, 1.1 s over
    4 REST pages vs 0.19 s through one Bulk job), so REST stops paying beyond one page. 0 = always
    Bulk. Capped at a quarter of :attr:`target_rows` (see :attr:`rest_limit`)."""

    sweep_rest_rows: int = 8_000
    """An object's Id sweep of at most this many Ids reads REST pages (2,000 Ids a call, at most
    4 calls, about the cheapest Bulk job's create, poll and page) instead of a Bulk job: nothing
    to queue in the org (decision 0031)."""
    sweep_partition_rows: int = 500_000
    """Ids per Bulk job of a larger object's sweep: a large object is swept by several Bulk jobs
    over Id ranges, processed by the org at once (decision 0031)."""

    extraction_strategy: Literal["bulk2", "bulk1", "auto"] = "bulk2"
    """How Bulk reads run (decisions 0018, 0028): ``bulk2`` one Bulk API 2.0 query job per Id-range
    partition; ``bulk1`` one Bulk API 1.0 job per partition, PK-chunked by ``page_rows`` Ids (each
    chunk's result file is a page: the same chunks and cursors, and one batch per chunk against
    ``DailyBulkApiBatches``); ``auto`` decides per object by its size and what it supports
    (:mod:`engine.jobs.strategy`) and records why in the job's entry of the object."""
    pk_chunking_min_rows: int = 100_000_000
    """``auto`` reads an object of at least this many rows, in a full, with one Bulk API 1.0 job
    PK-chunked by Salesforce (``page_rows`` Ids a chunk) instead of Bulk API 2.0 Id ranges.
    High by default (decision 0040): one PK-chunked job is read by one task, after the org has
    processed every chunk, and a 5M-record object took 1.4x (``fast``) and 1.7x (``realistic``)
    the time of Bulk API 2.0 Id ranges, for more calls. Lower it where the org's Bulk API 2.0 job
    allowance, not time, is what runs out."""
    boundary_check_min_rows: int = 2_000
    """An incremental whose cursor boundary holds more rows than this (rows at the previous
    job's last timestamps, such as a mass update just before it) checks that boundary in a task
    of its own: by Id and timestamp only when the boundary is settled, otherwise by reading it in
    full once; see :func:`engine.jobs.tasks._extract_boundary`. 0 = always; a negative value = never."""

    @property
    def rest_limit(self) -> int:
        """The effective REST threshold: anything near a partition's size goes through Bulk."""
        return max(0, min(self.rest_max_rows, self.target_rows // 4))

    @classmethod
    def from_settings(cls, job: JobSettings, **overrides: Any) -> JobOptions:
        """The defaults above, with the knobs set in ``[sfvault.job]`` / ``SFVAULT_JOB__*`` and then
        ``overrides`` (what a caller such as the demo or a benchmark fixes) on top."""
        return cls(**{**job.overrides(), **overrides})


def partition_rows(job_rows: int, options: JobOptions) -> int:
    """Rows per partition for a job that extracts ``job_rows`` rows in all.

    Salesforce runs a few query jobs at once and a job's processing time grows with its result,
    so one large partition at the end is the job's critical path. A job is therefore cut into
    about ``partition_spread`` x ``partition_jobs`` partitions, each within
    ``[min_partition_rows, target_rows]``: a 2M-record org gets ~125k-row partitions, a 100M-record
    org the 250k cap. Pure.
    """
    wanted = -(-max(0, job_rows) // max(1, options.partition_spread * options.partition_jobs))
    return max(1, min(options.target_rows, max(options.min_partition_rows, wanted)))


@dataclass(frozen=True)
class BackupRequest:
    """What the caller asked for."""

    org: str
    full: bool = False
    objects: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        """An empty selection is refused, never read as "every object" (``--objects ""``)."""
        if self.objects is not None and not [o for o in self.objects if o.strip()]:
            raise NoObjectsInScope(org=self.org, what="the selection of objects is empty")


@dataclass(frozen=True)
class ObjectWork:
    """How one object is extracted by this job."""

    name: str
    mode: ObjectMode
    cursor: Cursor | None = None
    sweep: bool = False
    reason: str = ""

    def window_start(self, lag: timedelta) -> datetime | None:
        if self.mode == "full" or self.cursor is None:
            return None
        return self.cursor.window_start(lag)


@dataclass(frozen=True)
class JobDecision:
    kind: Literal["full", "incremental"]
    cycle_id: str | None
    """The cycle this job belongs to; None = a new cycle whose id is this job's id."""
    objects: dict[str, ObjectWork] = field(default_factory=dict)
    index_in_cycle: int = 0
    cycle_started_at: datetime | None = None
    """When the cycle's full job committed (None for a full job: its own manifest says so)."""
    fulls_beside: tuple[str, ...] = ()
    """New-cycle fulls in flight when this incremental planned (``JobRecord.fulls_beside``)."""

    def position(self) -> CyclePosition | None:
        """``job.cycle`` of this job's manifest: where the job stands in its cycle, so the next
        job need not read the cycle's older manifests (:func:`needed_manifests`). None for a full
        job: its cycle starts when it commits (``Manifest.cycle_position``)."""
        if self.kind == "full" or self.cycle_started_at is None:
            return None
        return CyclePosition(self.cycle_started_at, self.index_in_cycle)


def cycle_position(manifest: Manifest) -> tuple[datetime, int] | None:
    """``(when the manifest's cycle started, its index in the cycle)``; None when it does not say
    (manifests written before the position was recorded)."""
    pos = manifest.cycle_position()
    return None if pos is None else (pos.started_at, pos.index)


def needed_manifests(newest_first: Iterable[Manifest], objects: Collection[str]) -> list[Manifest]:
    """The newest manifests that :func:`decide` needs, read lazily from ``newest_first``.

    Reading stops at the cycle's full job, or sooner: once every object of ``objects`` was
    captured by a manifest already read and the newest manifest records its cycle position; in
    both cases only after the other manifests of the same id second (see :func:`id_second`), and
    never before the fulls that a manifest read names as in flight beside it
    (``JobRecord.fulls_beside``): the listing is in job-id (creation) order, and such a full,
    created before that job, may have committed after it and opened the newest cycle
    (decision 0016). A full read ends the reading (unless such a full is older still): one full
    runs at a time (the full lane of the org's lock), so an older full committed before it started.
    ``decide`` gives the same answer on this prefix as on every manifest of the org, and a job
    late in a year-long cycle does not read a thousand manifests (each costs tens of ms).
    """
    out: list[Manifest] = []
    pending = set(objects)
    enough_at: str | None = None
    floor: str | None = None
    """The oldest id second a full named beside a manifest read may list at."""
    for m in newest_first:
        if m.kind == "recovery_point":
            continue  # a recovery point is data as of a past instant, never a job's base (decision 0026)
        second = id_second(m.job_id)
        if enough_at is not None and second != enough_at and (floor is None or second < floor):
            break
        out.append(m)
        for beside in m.job.fulls_beside:
            floor = min(floor or id_second(beside), id_second(beside))
        if enough_at is not None:
            continue
        pending = {o for o in pending if not settles_deletes(m, o)}
        if m.kind == "full" or (not pending and cycle_position(ordered(out)[-1]) is not None):
            # the listing is ordered to the second only: read the rest of this second too
            enough_at = second
    return out


def id_second(job_id: str) -> str:
    """The creation second a job id starts with (``20260101T000000Z``); the listing order of job
    ids is only reliable between seconds, since the ids of jobs created before the catalog's
    time-ordered suffix end in random hex (:func:`engine.catalog.jobs.new_job_id`)."""
    return job_id.split("-", 1)[0]


def ordered(manifests: Iterable[Manifest]) -> list[Manifest]:
    """Manifests in commit order (creation time, then job id)."""
    return sorted(manifests, key=lambda m: (m.created_at, m.job_id))


def cycle_start(manifests: Sequence[Manifest]) -> tuple[datetime, str] | None:
    """``(start, cycle id)`` of the newest cycle: the one whose full committed last.

    A manifest says when its cycle started (``Manifest.cycle_position``: a full starts its own at
    its commit, an incremental records its cycle's start). The newest manifest is not enough:
    an incremental of the old cycle may commit after a new cycle's full that ran beside it
    (decision 0016), and the new cycle is still the current one. Legacy incrementals that record
    no position name no start; their cycle counts through its full.
    """
    starts: dict[str, datetime] = {}
    for m in manifests:
        pos = cycle_position(m)
        if pos is None or m.cycle_id is None:
            continue
        seen = starts.get(m.cycle_id)
        starts[m.cycle_id] = pos[0] if seen is None else min(seen, pos[0])
    if not starts:
        return None
    cycle, start = max(starts.items(), key=lambda kv: (kv[1], kv[0]))
    return start, cycle


def job_kind(
    request: BackupRequest, manifests: Sequence[Manifest], now: datetime
) -> Literal["full", "incremental"]:
    """The kind of job :func:`decide` plans, from the manifests alone (no object needed): a full
    when asked for one (all objects) or when no cycle is current at ``now``. The runner takes the
    org's lock lane by it before it discovers the objects (decision 0016).

    Raises:
        FullBackupRequired: ``request.objects`` given and no cycle is current.
    """
    started = cycle_start(manifests)
    current = started is not None and not cycle_ended(started[0], now)
    if request.objects is not None and not current:
        raise FullBackupRequired(org=request.org)
    return "full" if not current or (request.full and request.objects is None) else "incremental"


def cycle_chain(manifests: Sequence[Manifest], cycle_id: str) -> list[Manifest]:
    return [m for m in ordered(manifests) if m.cycle_id == cycle_id]


def settles_deletes(manifest: Manifest, obj: str) -> bool:
    """Whether ``manifest`` tells where ``obj``'s next delete-log window starts
    (:func:`delete_log_start`): it captured ``obj`` and recorded ``deletes_through``, or swept it,
    or read it in full. A capture by a job written before decision 0010 records none, so the
    reading goes on to the job that last swept or fully read the object."""
    if not captured(manifest, obj):
        return False
    entry = manifest.objects[obj]
    cur = entry.cursor
    recorded = cur is not None and cur.deletes_through is not None
    return recorded or entry.swept or object_mode(manifest, obj) == "full"


def delete_log_start(chain: Sequence[Manifest], obj: str) -> datetime | None:
    """Where ``obj``'s next delete-log window starts (``Cursor.deletes_through``), from ``chain``.

    The newest capture's recorded start. A capture written before decision 0010 recorded none:
    then hard deletes were caught only by sweeps, so the backup last reflected every deletion at
    the newest job that swept the object or read it in full, and the window starts just before
    that job's start (:data:`CLOCK_SLACK`, as :mod:`engine.jobs.deletes` records it), when the job
    recorded its start (``JobRecord.started_at``). None: not known (the object is swept). Pure.
    """
    for m in reversed(ordered(chain)):
        if not captured(m, obj):
            continue
        entry = m.objects[obj]
        if entry.cursor is not None and entry.cursor.deletes_through is not None:
            return entry.cursor.deletes_through
        if entry.swept or object_mode(m, obj) == "full":
            started = m.job.started_at
            return None if started is None else minute(started) - CLOCK_SLACK
    return None


def captured(manifest: Manifest, obj: str) -> bool:
    """True when ``manifest`` holds good data for ``obj`` (present, without errors)."""
    entry = manifest.objects.get(obj)
    return entry is not None and entry.captured


def object_mode(manifest: Manifest, obj: str) -> ObjectMode:
    entry = manifest.objects.get(obj)
    if entry is not None and entry.mode is not None:
        return entry.mode
    return "full" if manifest.kind == "full" else "incremental"


def last_cursor(chain: Sequence[Manifest], obj: str) -> Cursor | None:
    """The cursor of the newest manifest of ``chain`` that captured ``obj``."""
    for m in reversed(chain):
        if not captured(m, obj):
            continue
        return m.objects[obj].cursor
    return None


def decide(
    request: BackupRequest,
    manifests: Sequence[Manifest],
    in_scope: Mapping[str, str | None],
    *,
    failed_last: Iterable[str] = (),
    now: datetime,
    options: JobOptions = JobOptions(),
) -> JobDecision:
    """Plan a job.

    Args:
        request: full / object-scoped / default.
        manifests: the org's committed manifests (any order): all of them, or the newest ones
            that :func:`needed_manifests` read.
        in_scope: objects the scope rules include now, each with its cursor field (None when the
            object has no timestamp field: always extracted in full).
        failed_last: objects that failed in the org's last job (redone in full).
        now: the driver's clock.

    Raises:
        FullBackupRequired: ``request.objects`` given and the org has no full backup.
        UnknownObjects: ``request.objects`` names objects that are not in ``in_scope`` (all named).
    """
    # the newest cycle, unless its year (the scheduler's rule: engine.policy.cycles) is over at ``now``
    started = cycle_start(manifests)
    cycle = started[1] if started is not None and not cycle_ended(started[0], now) else None
    names = sorted(in_scope)
    if request.objects is not None:
        if cycle is None:
            raise FullBackupRequired(org=request.org)
        known = {n.lower() for n in names}
        unknown = [o for o in request.objects if o.lower() not in known]
        if unknown:
            raise UnknownObjects(org=request.org, names=", ".join(unknown))
        wanted = {o.lower() for o in request.objects}
        names = [n for n in names if n.lower() in wanted]
    if cycle is None or (request.full and request.objects is None):
        return JobDecision(
            kind="full",
            cycle_id=None,
            objects={n: ObjectWork(n, "full", reason="first job of a cycle") for n in names},
        )
    chain = cycle_chain(manifests, cycle)
    newest = cycle_position(chain[-1]) if chain else None
    index = newest[1] + 1 if newest is not None else len(chain)
    sweep = options.id_sweep_every > 0 and index % options.id_sweep_every == 0
    failed = set(failed_last)
    work: dict[str, ObjectWork] = {}
    for n in names:
        cursor_field = in_scope[n]
        cur = last_cursor(chain, n)
        if request.full:
            work[n] = ObjectWork(n, "full", reason="full extract requested")
        elif n in failed:
            work[n] = ObjectWork(n, "full", reason="failed in the last job")
        elif cursor_field is None:
            work[n] = ObjectWork(n, "full", reason="no timestamp field to select changes by")
        elif cur is None or cur.last is None or cur.field != cursor_field:
            work[n] = ObjectWork(n, "full", reason="no cursor in this cycle yet")
        else:
            if cur.deletes_through is None:  # the first incremental after jobs written before 0010
                cur = replace(cur, deletes_through=delete_log_start(chain, n))
            work[n] = ObjectWork(n, "incremental", cursor=cur, sweep=sweep)
    return JobDecision(
        kind="incremental",
        cycle_id=cycle,
        objects=work,
        index_in_cycle=index,
        cycle_started_at=started[0] if started is not None else None,
    )


def warned_at_last_capture(manifests: Sequence[Manifest], objects: Iterable[str], code: str) -> list[str]:
    """The objects of ``objects`` whose newest capture carried the warning ``code``
    (``ObjectEntry.warning``), sorted. ``manifests`` may be the prefix :func:`needed_manifests` read:
    it holds every object's newest capture."""
    history = ordered(manifests)
    out = []
    for obj in objects:
        newest = next((m for m in reversed(history) if captured(m, obj)), None)
        warning: ObjectWarning | None = newest.objects[obj].warning if newest is not None else None
        if warning is not None and warning.code == code:
            out.append(obj)
    return sorted(out)


def redo_in_full(decision: JobDecision, names: Iterable[str], reason: str) -> JobDecision:
    """``decision`` with the incremental objects among ``names`` extracted in full instead."""
    objects = dict(decision.objects)
    for n in names:
        work = objects.get(n)
        if work is not None and work.mode == "incremental":
            objects[n] = ObjectWork(n, "full", reason=reason)
    return replace(decision, objects=objects)


def merge_cursor(
    field_name: str,
    parts: Iterable[tuple[datetime | None, Iterable[tuple[Any, ...]], bool]],
    lag: timedelta,
    previous: Cursor | None,
) -> Cursor:
    """One object's closing cursor from its partitions' ``(last, seen, truncated)``.

    ``seen`` holds ``(Id, ts)`` pairs or ``(Id, ts, digest)`` triples (:meth:`Cursor.entries`; a
    None digest: the pair alone). Each partition kept the entries within ``lag`` of its own
    maximum, which is at most the global maximum, so the union cut at ``global last - lag`` is
    exactly the object's boundary set. When nothing new was captured the previous cursor stays.
    """
    lasts: list[datetime] = []
    pairs: set[tuple[str, datetime]] = set()
    digests: set[tuple[str, datetime, str]] = set()
    truncated = False
    for last, seen, trunc in parts:
        if last is not None:
            lasts.append(last)
        for entry in seen:
            pairs.add((entry[0], entry[1]))
            if len(entry) > 2 and entry[2] is not None:
                digests.add((entry[0], entry[1], entry[2]))
        truncated = truncated or trunc
    if previous is not None and previous.last is not None and previous.field == field_name:
        lasts.append(previous.last)
        pairs.update(previous.seen)
        digests.update(previous.digests)
        truncated = truncated or previous.truncated
    if not lasts:
        return Cursor(field=field_name)
    top = max(lasts)
    floor = top - lag
    return Cursor(
        field_name,
        top,
        frozenset(p for p in pairs if p[1] >= floor),
        truncated,
        frozenset(d for d in digests if d[1] >= floor),
    )


def partial_full(
    decision: JobDecision, manifests: Sequence[Manifest], failed: Collection[str]
) -> JobDecision:
    """The decision a full job commits under, given the objects that ``failed`` in it.

    A cycle never begins with a full that lacks objects the previous cycle holds (issue 15,
    finding 3): when an object failed in a full and the current cycle (the one the full would
    replace) captured it, the full is recorded as a *partial* job of the current cycle instead, an
    incremental whose objects were extracted in full (their entries say ``mode = full``); the
    next job completes it (failed objects are redone in full) and a later full starts the next
    cycle. ``manifests``: the org's manifests, or the prefix :func:`needed_manifests` read for
    ``failed``. Anything else is returned unchanged. Pure.
    """
    if decision.kind != "full" or not failed:
        return decision
    started = cycle_start(manifests)
    if started is None:
        return decision
    chain = cycle_chain(manifests, started[1])
    if not any(captured(m, obj) for m in chain for obj in failed):
        return decision
    newest = cycle_position(chain[-1]) if chain else None
    return replace(
        decision,
        kind="incremental",
        cycle_id=started[1],
        index_in_cycle=newest[1] + 1 if newest is not None else len(chain),
        cycle_started_at=started[0],
        fulls_beside=(),
    )
