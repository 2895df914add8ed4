"""The pure state machine of a backup job's run: events in, instructions out (STYLE rule 13).

In the manner of distributed's worker state machine (``worker_state_machine.py``,
``handle_stimulus``): :class:`JobMachine` holds what the job knows of its objects and partitions
and decides what happens next; :mod:`engine.jobs.driver` does the I/O (Dask, Salesforce, the
catalog, the clock) and feeds back what happened. Nothing here sleeps, reads a clock, calls
Salesforce or touches Dask, so every rule is tested by feeding events (``tests/unit/test_jobs_machine.py``).

Objects::

    planning --ObjectCut(no parts, nothing then)--> succeeded
    planning --ObjectCut(parts)--> running --last PartitionDone--> succeeded
    running --last PartitionDone, ``then`` parts left--> running (the ``then`` parts submitted)
    planning | running --ObjectFailed / PartitionFailed / WorkerLost / timeout too deep--> failed
    planning | running --ApiLimitReached--> failed (every object not finished, with the limit's error)
    planning | running --CancelRequested--> cancelled

Partitions (numbered by the machine, ``pid``)::

    running --PartitionDone--> done
    running --PartitionTimedOut (depth < max_bisect_depth)--> bisecting --PartitionBisected--> split
                                                                  (two new running partitions, depth + 1)
    running | bisecting --failure, or its object failed, or the job stopped--> ended

The job: once every object is ``succeeded`` or ``failed``, :class:`Commit` (exactly once). A cancel
ends the job with :class:`Stop` (``cancelled``) and never a commit. After a stop or a commit every
event is ignored (``handle`` returns ``[]``): a partition result that arrives late changes nothing.

The partition payload (``T``, the driver's :class:`engine.jobs.tasks.PartitionTask`) and result
(``R``, its :class:`engine.jobs.tasks.PartitionResult`) are opaque here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Literal, TypeAlias, TypeVar

T = TypeVar("T")
R = TypeVar("R")

ObjectState = Literal["planning", "running", "succeeded", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
PartitionState = Literal["running", "bisecting", "done", "split", "ended"]


# ---- events (what happened) ------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectCut(Generic[T]):
    """Planning cut ``obj`` into ``parts`` (none: nothing new in its window), and ``then``: parts
    submitted only once every one of ``parts`` is done (an Id sweep, which must read after the
    object's data: decision 0031). With neither, the object succeeds."""

    obj: str
    parts: tuple[T, ...]
    then: tuple[T, ...] = ()


@dataclass(frozen=True)
class ObjectFailed:
    """Planning ``obj`` failed (sizing or cutting it raised)."""

    obj: str
    code: str
    message: str


@dataclass(frozen=True)
class PartitionDone(Generic[R]):
    """Partition ``pid``'s task returned ``result``."""

    pid: int
    result: R


@dataclass(frozen=True)
class PartitionTimedOut:
    """Partition ``pid``'s query timed out in Salesforce (bisect it, or fail its object)."""

    pid: int
    code: str
    message: str


@dataclass(frozen=True)
class PartitionBisected(Generic[T]):
    """The driver split partition ``pid`` (after :class:`Bisect`) into two halves."""

    pid: int
    halves: tuple[T, T]


@dataclass(frozen=True)
class PartitionFailed:
    """Partition ``pid`` failed for good (any other error, or a timeout that cannot be bisected)."""

    pid: int
    code: str
    message: str


@dataclass(frozen=True)
class WorkerLost:
    """The worker running partition ``pid`` died too often (Dask's ``KilledWorker``)."""

    pid: int
    code: str
    message: str


@dataclass(frozen=True)
class ApiLimitReached:
    """The org's API allowance is used up: no new work, every object not finished fails.

    ``pid`` is the partition that met the limit, or None when planning met it."""

    code: str
    message: str
    pid: int | None = None


@dataclass(frozen=True)
class CancelRequested:
    """The job was cancelled: stop everything, commit nothing."""


Event: TypeAlias = (
    ObjectCut[T]
    | ObjectFailed
    | PartitionDone[R]
    | PartitionTimedOut
    | PartitionBisected[T]
    | PartitionFailed
    | WorkerLost
    | ApiLimitReached
    | CancelRequested
)


# ---- instructions (what the driver must do) --------------------------------------------------


@dataclass(frozen=True)
class Submit(Generic[T]):
    """Run partition ``pid`` of ``obj`` (``part``) as a task."""

    pid: int
    obj: str
    part: T
    depth: int


@dataclass(frozen=True)
class KeepResult(Generic[R]):
    """Partition ``pid`` of ``obj`` counts: add its result to the object's."""

    pid: int
    obj: str
    result: R


@dataclass(frozen=True)
class Bisect(Generic[T]):
    """Split partition ``pid`` in two and answer :class:`PartitionBisected`, or
    :class:`PartitionFailed` (with ``code``/``message``, the timeout) when it cannot be split."""

    pid: int
    obj: str
    part: T
    code: str
    message: str


@dataclass(frozen=True)
class CancelPartition:
    """Partition ``pid``'s task is no longer wanted (its object failed or the job stopped)."""

    pid: int


@dataclass(frozen=True)
class FinishObject:
    """Every partition of ``obj`` is done: the object succeeded."""

    obj: str


@dataclass(frozen=True)
class FailObject:
    """``obj`` failed with ``code``/``message``; it is redone by the next job."""

    obj: str
    code: str
    message: str


@dataclass(frozen=True)
class Commit:
    """Every object ended: commit the succeeded ones."""


@dataclass(frozen=True)
class Stop:
    """Launch no more work and tell running tasks to stop; ``cancelled``: the job commits nothing."""

    cancelled: bool
    code: str
    message: str


Instruction: TypeAlias = (
    Submit[T] | KeepResult[R] | Bisect[T] | CancelPartition | FinishObject | FailObject | Commit | Stop
)


# ---- the machine -----------------------------------------------------------------------------


@dataclass
class _Part(Generic[T]):
    obj: str
    part: T
    depth: int
    state: PartitionState = "running"


class JobMachine(Generic[T, R]):
    """The run of one job: ``handle(event)`` returns the instructions the driver carries out, in order.

    Args:
        objects: the job's objects (each starts ``planning``).
        max_bisect_depth: a partition that timed out at this depth is not bisected again; its object fails.
    """

    def __init__(self, objects: Iterable[str], *, max_bisect_depth: int) -> None:
        self.max_bisect_depth = max_bisect_depth
        self.objects: dict[str, ObjectState] = dict.fromkeys(objects, "planning")
        """Each object's state (see the module docstring)."""
        self.parts: dict[int, _Part[T]] = {}
        """Every partition ever made, by pid."""
        self.then: dict[str, tuple[T, ...]] = {}
        """Parts of an object submitted once its current ones are done (:class:`ObjectCut`)."""
        self.stopped: Stop | None = None
        """Set once the job stopped (API limit or cancel)."""
        self.committed = False
        """Set once :class:`Commit` was given."""
        self._next_pid = 0

    @property
    def finished(self) -> bool:
        """The machine gave its last instruction (a commit, or a stop that cancelled the job)."""
        return self.committed or (self.stopped is not None and self.stopped.cancelled)

    def open_parts(self, obj: str | None = None) -> list[int]:
        """The pids still running or being bisected (of ``obj``, or of the job)."""
        return [
            pid
            for pid, p in self.parts.items()
            if p.state in ("running", "bisecting") and (obj is None or p.obj == obj)
        ]

    def partitions(self, obj: str) -> int:
        """How many partitions ``obj`` is made of now (a bisected one counts as its two halves)."""
        return sum(1 for p in self.parts.values() if p.obj == obj and p.state != "split")

    def handle(self, event: Event[T, R]) -> list[Instruction[T, R]]:
        """Apply ``event``; the instructions to carry out, in order (``[]`` when it is ignored)."""
        if self.finished:
            return []
        out: list[Instruction[T, R]] = self._handle(event)
        if not self.finished:
            out += self._maybe_commit()
        return out

    def _handle(self, event: Event[T, R]) -> list[Instruction[T, R]]:
        match event:
            case ObjectCut():
                return self._cut(event.obj, event.parts, event.then)
            case ObjectFailed():
                return self._fail(event.obj, event.code, event.message)
            case PartitionDone():
                return self._done(event.pid, event.result)
            case PartitionTimedOut():
                return self._timed_out(event)
            case PartitionBisected():
                return self._bisected(event.pid, event.halves)
            case PartitionFailed() | WorkerLost():
                p = self._live(event.pid) or self._live(event.pid, state="bisecting")
                return [] if p is None else self._end_with(p, event.code, event.message)
            case ApiLimitReached():
                return self._limit(event)
            case CancelRequested():
                return self._cancel()
        raise TypeError(f"not a job event: {event!r}")

    # -- objects

    def _cut(self, obj: str, parts: tuple[T, ...], then: tuple[T, ...]) -> list[Instruction[T, R]]:
        if self.stopped is not None or self.objects.get(obj) != "planning":
            return []
        if not parts:
            parts, then = then, ()
        if not parts:
            self.objects[obj] = "succeeded"
            return [FinishObject(obj)]
        self.objects[obj] = "running"
        if then:
            self.then[obj] = then
        return [self._submit(obj, part, 0) for part in parts]

    def _submit(self, obj: str, part: T, depth: int) -> Submit[T]:
        pid = self._next_pid
        self._next_pid += 1
        self.parts[pid] = _Part(obj, part, depth)
        return Submit(pid, obj, part, depth)

    def _fail(self, obj: str, code: str, message: str) -> list[Instruction[T, R]]:
        if self.stopped is not None or self.objects.get(obj) not in ("planning", "running"):
            return []
        self.objects[obj] = "failed"
        self.then.pop(obj, None)
        return [*self._end_parts(obj), FailObject(obj, code, message)]

    def _end_with(self, p: _Part[T], code: str, message: str) -> list[Instruction[T, R]]:
        """Partition ``p`` failed (its task is over, nothing to cancel): its object fails."""
        p.state = "ended"
        return self._fail(p.obj, code, message)

    def _end_parts(self, obj: str | None) -> list[Instruction[T, R]]:
        ended: list[Instruction[T, R]] = []
        for pid in self.open_parts(obj):
            self.parts[pid].state = "ended"
            ended.append(CancelPartition(pid))
        return ended

    # -- partitions

    def _live(self, pid: int, *, state: PartitionState = "running") -> _Part[T] | None:
        """The partition when an event about it still matters (else the event is ignored)."""
        p = self.parts.get(pid)
        if self.stopped is not None or p is None or p.state != state:
            return None
        return p

    def _done(self, pid: int, result: R) -> list[Instruction[T, R]]:
        p = self._live(pid)
        if p is None:
            return []
        p.state = "done"
        out: list[Instruction[T, R]] = [KeepResult(pid, p.obj, result)]
        if not self.open_parts(p.obj) and p.obj in self.then:
            out += [self._submit(p.obj, part, 0) for part in self.then.pop(p.obj)]
        elif not self.open_parts(p.obj):
            self.objects[p.obj] = "succeeded"
            out.append(FinishObject(p.obj))
        return out

    def _timed_out(self, event: PartitionTimedOut) -> list[Instruction[T, R]]:
        p = self._live(event.pid)
        if p is None:
            return []
        if p.depth >= self.max_bisect_depth:
            return self._end_with(p, event.code, event.message)
        p.state = "bisecting"
        return [Bisect(event.pid, p.obj, p.part, event.code, event.message)]

    def _bisected(self, pid: int, halves: tuple[T, T]) -> list[Instruction[T, R]]:
        p = self._live(pid, state="bisecting")
        if p is None:
            return []
        p.state = "split"
        return [self._submit(p.obj, half, p.depth + 1) for half in halves]

    # -- the job

    def _limit(self, event: ApiLimitReached) -> list[Instruction[T, R]]:
        if self.stopped is not None:
            return []
        first: list[Instruction[T, R]] = []
        p = None if event.pid is None else self.parts.get(event.pid)
        if p is not None and p.state in ("running", "bisecting"):
            first = self._end_with(p, event.code, event.message)  # the object that met the limit first
        self.stopped = Stop(cancelled=False, code=event.code, message=event.message)
        rest: list[Instruction[T, R]] = [*self._end_parts(None), self.stopped]
        for obj, state in self.objects.items():
            if state in ("planning", "running"):
                self.objects[obj] = "failed"
                rest.append(FailObject(obj, event.code, event.message))
        return first + rest

    def _cancel(self) -> list[Instruction[T, R]]:
        out: list[Instruction[T, R]] = self._end_parts(None)
        for obj, state in self.objects.items():
            if state in ("planning", "running"):
                self.objects[obj] = "cancelled"
        self.stopped = Stop(cancelled=True, code="", message="the job was cancelled")
        return [*out, self.stopped]

    def _maybe_commit(self) -> list[Instruction[T, R]]:
        if self.committed or any(s not in TERMINAL for s in self.objects.values()):
            return []
        self.committed = True
        return [Commit()]
