"""Hard deletes at every job: the delete log of each incremental object, or a sweep (decision 0010).

Before the partitions are planned, each object that an incremental job reads by its cursor asks
Salesforce's delete log (:mod:`engine.extract.replication`) for the records deleted since the
previous job's delete window ended (``Cursor.deletes_through``). The objects ask in groups, one
``POST /composite`` call a group (decision 0041: Salesforce counts a composite request as one API
call, so 180 objects cost 8 calls instead of 180); the groups run at once, sized by
:func:`group_size` because Salesforce runs a composite's subrequests one after another, and each
object goes on to be planned as soon as its own group has answered (decision 0039). The composite
call is charged to its group's first object. A group's call that fails (beyond the client's
retries) asks its objects one by one; a subrequest that answered a transient error is asked again
alone (charged to its object). The answer becomes a deletion
chunk (``Id`` + ``deletedDate`` as the object's cursor field) listed in the object's
``deleted_ids_chunks``, so the recovery point drops records purged from the recycle bin or
hard-deleted, which ``queryAll ... IsDeleted = true`` never returns.

Where the log cannot answer for the window, the object's Ids are swept in the same job instead
(``ObjectWork.sweep``): no recorded start (the first incremental after a job that recorded none),
a start older than the log's 15 days, INVALID_REPLICATION_DATE or an ``earliestDateAvailable``
after the start (records were physically deleted), EXCEEDED_ID_LIMIT, an object that is not
replicateable, or any other refusal of the call. Objects already swept (the periodic backstop)
and objects read in full need no call.

Every object records where the next window starts: the log's ``latestDateCovered`` (the org's
own time) when it answered, else a minute before the job's start minute by the org's clock (a full
read or a sweep reflects every deletion before the job started; deletions after that are asked for
by the next job: an overlap, which is harmless, never a gap). ``now`` is the org's time as its
answers' ``Date`` header gave it (``ApiUsage.org_time``); the window ends at the first whole
minute after it (:func:`engine.extract.replication.window_end`, decision 0031).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from itertools import pairwise
from math import ceil
from typing import Any

import pyarrow as pa

from engine.errors import (
    ReplicationError,
    ReplicationNotSupported,
    ReplicationWindowNotCovered,
    SalesforceApiLimit,
    SalesforceAuthError,
    SfvaultError,
)
from engine.extract import replication
from engine.extract.client import SalesforceClient
from engine.extract.composite import COMPOSITE_MAX
from engine.extract.model import ObjectPlan
from engine.extract.usage import ApiUsage
from engine.jobs.discover import add_calls
from engine.jobs.planning import CLOCK_SLACK, JobDecision, ObjectWork
from engine.model import ChunkRef

log = logging.getLogger(__name__)

THREADS = 16
"""Composite calls at once (short REST calls, mostly waiting on the network)."""
GROUPS = 4
"""About this many composite calls when few objects ask (:func:`group_size`)."""
GROUP_MIN = 5
"""The fewest objects a composite call asks for when there are more."""
Answer = replication.DeletedRecords


@dataclass
class DeleteLog:
    """What one job learnt from the delete log, per object."""

    chunks: dict[str, list[ChunkRef]] = field(default_factory=dict)
    """Deletion chunks written from the log's answers."""
    deleted: dict[str, int] = field(default_factory=dict)
    through: dict[str, datetime] = field(default_factory=dict)
    """Where each object's next delete window starts (``Cursor.deletes_through``)."""
    swept: dict[str, dict[str, str]] = field(default_factory=dict)
    """Objects swept because the log could not answer: ``{"code", "message"}``."""
    calls: dict[str, dict[str, int]] = field(default_factory=dict)


def asks_the_log(work: ObjectWork) -> bool:
    """Whether the job asks the delete log for ``work``'s object (an incremental read by its
    cursor that does not already sweep)."""
    return work.mode == "incremental" and not work.sweep and work.cursor is not None


def _why_not(plan: ObjectPlan, work: ObjectWork, now: datetime) -> SfvaultError | tuple[datetime, datetime]:
    """The window to ask for, or the reason the object is swept instead (no call made)."""
    assert work.cursor is not None
    if not plan.spec.replicateable:
        return ReplicationNotSupported(object=plan.name, what="describe says replicateable: false")
    win = replication.window(work.cursor.deletes_through, now)
    if win is None:
        start = work.cursor.deletes_through
        return ReplicationWindowNotCovered(
            object=plan.name, start=start.isoformat() if start else "(not recorded)",
            end=replication.window_end(now).isoformat(),
            what="no recorded start" if start is None else "older than the delete log's 15 days",
        )  # fmt: skip
    return win


def _chunk(repo: object, plan: ObjectPlan, got: replication.DeletedRecords) -> ChunkRef | None:
    """The answer's deletion chunk (None when nothing was deleted)."""
    if not got.records:
        return None
    ts_field = plan.spec.cursor_field or "SystemModstamp"
    rows = sorted(got.records)
    table = pa.table(
        {
            "Id": pa.array([i for i, _ in rows], pa.string()),
            ts_field: pa.array([t for _, t in rows], pa.timestamp("ms", tz="UTC")),
        }
    )
    return repo.write_chunk(table, plan.name)  # type: ignore[attr-defined]


def _charge(out: DeleteLog, name: str, c: SalesforceClient) -> None:
    """Add the calls ``c`` spent to ``name``'s (only its group's thread writes them)."""
    add_calls(out.calls.setdefault(name, {}), c.usage.calls.items())


def _alone(base: SalesforceClient, out: DeleteLog, name: str, start: datetime, end: datetime) -> Answer:
    """One object's own call (with the client's retries), charged to it."""
    c = base.derive(usage=ApiUsage())
    try:
        base.check_reserve()
        return replication.get_deleted(c, name, start, end)
    finally:
        _charge(out, name, c)
        c.close()


def _ask_group(
    base: SalesforceClient, repo: object, plans: Mapping[str, ObjectPlan],
    group: Mapping[str, tuple[datetime, datetime]], out: DeleteLog,
) -> dict[str, tuple[Answer, ChunkRef | None] | SfvaultError]:  # fmt: skip
    """The answers of one group of objects: one composite call (charged to the group's first
    object; a subrequest that answered a transient error is asked again alone, charged to its
    object), or one call for a group of one. A composite call that fails with anything but what
    stops the job asks each object alone instead. Each answer's deletion chunk is written here."""
    names = list(group)
    for name in names:
        out.calls.setdefault(name, {})
    got: list[Answer | SfvaultError] = []
    if len(names) > 1:
        c = base.derive(usage=ApiUsage())
        try:
            base.check_reserve()
            got = replication.get_deleted_many(
                c, [(n, *group[n]) for n in names], alone=partial(_alone, base, out)
            )
        except (SalesforceApiLimit, SalesforceAuthError):
            raise
        except SfvaultError as err:
            log.warning("delete log composite call failed, asking each object alone",
                        extra={"objects": names, "error": str(err)})  # fmt: skip
        finally:
            _charge(out, names[0], c)
            c.close()
    for name in names[len(got) :]:
        try:
            got.append(_alone(base, out, name, *group[name]))
        except SfvaultError as err:
            got.append(err)
    return {
        name: (a, _chunk(repo, plans[name], a)) if isinstance(a, replication.DeletedRecords) else a
        for name, a in zip(names, got, strict=True)
    }


def replicate_deletes(
    base: SalesforceClient,
    repo: object,
    plans: Mapping[str, ObjectPlan],
    decision: JobDecision,
    now: datetime,
    answers: WorkAfterTheLog | None = None,
) -> tuple[JobDecision, DeleteLog]:
    """Ask the delete log for every incremental object of ``decision``; return the decision with
    the objects the log cannot serve switched to a sweep, and what was learnt.

    ``answers``: told each object's work as soon as its own group's answer is in, so that
    planning cuts it without waiting for the other groups' calls.

    Raises only what stops the job (the org's API allowance, refused credentials); any other
    failure of a call makes the object sweep.
    """
    out = DeleteLog()
    start_minute = replication.minute(now) - CLOCK_SLACK
    objects = dict(decision.objects)
    asks: dict[str, tuple[datetime, datetime]] = {}
    settle: Callable[[str, ObjectWork], None] = answers.settle if answers is not None else lambda n, w: None
    try:
        for name, work in objects.items():
            out.through[name] = start_minute
            if not asks_the_log(work):
                continue
            got = _why_not(plans[name], work, now)
            if isinstance(got, SfvaultError):
                objects[name] = _sweep(work, got, out)
                settle(name, objects[name])
            else:
                asks[name] = got
        if asks:
            _ask_all(base, repo, plans, asks, objects, out, settle)
    except BaseException as err:
        if answers is not None:
            answers.fail(err)
        raise
    return replace(decision, objects=objects), out


def group_size(n: int) -> int:
    """Objects per composite call when ``n`` objects ask the log: at least :data:`GROUP_MIN`, at
    most :data:`~engine.extract.composite.COMPOSITE_MAX`, else about a :data:`GROUPS`-th of them. Calls
    against latency: Salesforce runs a composite's subrequests one after another, so a few groups
    in parallel answer sooner than one long one, and ≤ 4 calls serve up to 20 objects."""
    return min(COMPOSITE_MAX, max(GROUP_MIN, ceil(n / GROUPS)))


def _ask_all(
    base: SalesforceClient, repo: object, plans: Mapping[str, ObjectPlan],
    asks: dict[str, tuple[datetime, datetime]], objects: dict[str, ObjectWork], out: DeleteLog,
    settle: Callable[[str, ObjectWork], None],
) -> None:  # fmt: skip
    """The objects of ``asks`` in ``ceil(n / group_size(n))`` groups of even sizes (none larger than
    :func:`group_size`), one composite call each, the groups at once; each object is settled as
    soon as its own group's answer is in (decision 0039)."""
    names = list(asks)
    k = ceil(len(names) / group_size(len(names)))  # calls; the groups as even as they can be
    cuts = [len(names) * i // k for i in range(k + 1)]
    groups = [{n: asks[n] for n in names[a:b]} for a, b in pairwise(cuts)]
    with ThreadPoolExecutor(max_workers=min(THREADS, len(groups)), thread_name_prefix="deletes") as pool:
        futs = [pool.submit(_ask_group, base, repo, plans, group, out) for group in groups]
        for fut in as_completed(futs):
            for name, got in fut.result().items():
                objects[name] = _learn(objects[name], got, out)
                settle(name, objects[name])


def _learn(
    work: ObjectWork, got: tuple[Answer, ChunkRef | None] | SfvaultError, out: DeleteLog
) -> ObjectWork:
    """Record one object's answer; a refusal or a failed call makes it sweep. Raises what stops
    the job (the org's API allowance, refused credentials)."""
    if isinstance(got, SalesforceApiLimit | SalesforceAuthError):
        raise got
    if isinstance(got, SfvaultError):
        if not isinstance(got, ReplicationError):
            log.warning("delete log call failed, sweeping", extra={"object": work.name, "error": str(got)})
        return _sweep(work, got, out)
    answer, chunk = got
    out.deleted[work.name] = len(answer.records)
    out.through[work.name] = answer.through
    if chunk is not None:
        out.chunks[work.name] = [chunk]
    return work


def _sweep(work: ObjectWork, err: SfvaultError, out: DeleteLog) -> ObjectWork:
    out.swept[work.name] = {"code": err.code, "message": err.message}
    return replace(work, sweep=True, reason=f"Ids swept: {err.message}")


class WorkAfterTheLog:
    """The delete log's run for one job, and how planning learns an object's work from it: at
    once, or, for an object that asks the log, once its own answer is in (it may be swept instead;
    :func:`replicate_deletes` settles it). Sizing never waits for the log, and an object never
    waits for another object's call."""

    def __init__(self, decision: JobDecision) -> None:
        self.decision = decision
        self._answers: dict[str, Future[ObjectWork]] = {
            name: Future() for name, work in decision.objects.items() if asks_the_log(work)
        }
        self._run: Future[tuple[JobDecision, DeleteLog]] | None = None

    def ask(
        self, pool: Executor, base: SalesforceClient, repo: object, plans: Mapping[str, ObjectPlan],
        now: datetime,
    ) -> None:  # fmt: skip
        """Start asking the log in ``pool`` (:func:`replicate_deletes`); ``now`` is the org's time."""
        self._run = pool.submit(replicate_deletes, base, repo, plans, self.decision, now, self)

    def settle(self, name: str, work: ObjectWork) -> None:
        fut = self._answers.get(name)
        if fut is not None and not fut.done():
            fut.set_result(work)

    def fail(self, err: BaseException) -> None:
        """The log's run stopped (the org's API allowance, refused credentials): every object
        still waiting gets the error."""
        for fut in self._answers.values():
            if not fut.done():
                fut.set_exception(err)

    def __call__(self, name: str) -> ObjectWork:
        fut = self._answers.get(name)
        return self.decision.objects[name] if fut is None else fut.result()

    def learnt(self, reports: Mapping[str, Any]) -> tuple[JobDecision, DeleteLog]:
        """The decision the log's answers left (objects swept) and what was learnt; the calls and
        sweep reasons go to the objects' reports (``ObjectReport``). Raises what stops the job (the
        org's API allowance, refused credentials)."""
        if self._run is None:
            raise RuntimeError("the delete log was not asked (WorkAfterTheLog.ask)")
        decision, log_ = self._run.result()
        for name, spent in log_.calls.items():
            add_calls(reports[name].calls, spent.items())
        for name in log_.swept:
            reports[name].reason = decision.objects[name].reason
        return decision, log_
