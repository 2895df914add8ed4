"""The job state machine (:mod:`engine.jobs.machine`), fed events without a cluster (STYLE rule 13).

A few worked examples first, then a Hypothesis rule-based test over random orders of cuts, results,
timeouts, bisections, failures, lost workers, API limits, cancels and late or repeated events. It
checks every instruction against what was given before: every object ends in exactly one terminal
state; nothing is finished (or committed) before all of its partitions ended; bisection depth is
bounded; a cancel never commits; an API-limit stop fails every unfinished object; an event after the
end is ignored.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from engine.jobs.machine import (
    ApiLimitReached,
    Bisect,
    CancelPartition,
    CancelRequested,
    Commit,
    FailObject,
    FinishObject,
    JobMachine,
    KeepResult,
    ObjectCut,
    ObjectFailed,
    PartitionBisected,
    PartitionDone,
    PartitionFailed,
    PartitionTimedOut,
    Stop,
    Submit,
    WorkerLost,
)

Machine = JobMachine[str, int]
PARTITION_EVENTS = ["done", "timeout", "done", "timeout", "failed", "lost", "limit"]
"""Kinds of event on an open partition (results and timeouts twice as often as the rest)."""


def test_a_job_of_two_objects_runs_to_its_commit() -> None:
    m: Machine = JobMachine(["A", "B"], max_bisect_depth=2)
    assert m.handle(ObjectCut("A", ("a1", "a2"))) == [Submit(0, "A", "a1", 0), Submit(1, "A", "a2", 0)]
    assert m.handle(ObjectCut("B", ())) == [FinishObject("B")]
    assert m.handle(PartitionDone(1, 10)) == [KeepResult(1, "A", 10)]
    assert m.handle(PartitionDone(0, 20)) == [KeepResult(0, "A", 20), FinishObject("A"), Commit()]
    assert m.finished and m.objects == {"A": "succeeded", "B": "succeeded"}
    assert m.handle(PartitionDone(0, 20)) == []


def test_the_then_parts_of_an_object_run_only_after_its_first_ones() -> None:
    """An Id sweep is cut as ``then`` parts: they read after the object's data (decision 0031)."""
    m: Machine = JobMachine(["A", "B"], max_bisect_depth=1)
    assert m.handle(ObjectCut("A", ("a1", "a2"), ("s1", "s2"))) == [
        Submit(0, "A", "a1", 0),
        Submit(1, "A", "a2", 0),
    ]
    assert m.handle(PartitionDone(0, 1)) == [KeepResult(0, "A", 1)]
    assert m.handle(PartitionDone(1, 2)) == [
        KeepResult(1, "A", 2),
        Submit(2, "A", "s1", 0),
        Submit(3, "A", "s2", 0),
    ]
    assert m.handle(ObjectCut("B", (), ("t",))) == [Submit(4, "B", "t", 0)]  # nothing new: the sweep at once
    m.handle(PartitionDone(2, 3))
    assert m.handle(PartitionDone(3, 4)) == [KeepResult(3, "A", 4), FinishObject("A")]
    assert m.handle(PartitionDone(4, 5)) == [KeepResult(4, "B", 5), FinishObject("B"), Commit()]


def test_a_timeout_is_bisected_until_the_depth_bound_then_fails_the_object() -> None:
    m: Machine = JobMachine(["A"], max_bisect_depth=1)
    m.handle(ObjectCut("A", ("a",)))
    assert m.handle(PartitionTimedOut(0, "SFV-405", "slow")) == [Bisect(0, "A", "a", "SFV-405", "slow")]
    assert m.handle(PartitionBisected(0, ("a<", "a>"))) == [Submit(1, "A", "a<", 1), Submit(2, "A", "a>", 1)]
    assert m.partitions("A") == 2
    assert m.handle(PartitionDone(2, 5)) == [KeepResult(2, "A", 5)]
    assert m.handle(PartitionTimedOut(1, "SFV-405", "slow")) == [FailObject("A", "SFV-405", "slow"), Commit()]


def test_an_api_limit_fails_every_unfinished_object_and_commits_the_others() -> None:
    m: Machine = JobMachine(["A", "B", "C", "D"], max_bisect_depth=2)
    m.handle(ObjectCut("A", ("a",)))
    m.handle(ObjectCut("B", ("b1", "b2")))
    m.handle(ObjectCut("C", ("c",)))
    m.handle(PartitionDone(0, 1))  # A succeeded
    got = m.handle(ApiLimitReached("SFV-403", "limit", pid=2))
    assert got == [
        CancelPartition(1),
        FailObject("B", "SFV-403", "limit"),
        CancelPartition(3),
        Stop(cancelled=False, code="SFV-403", message="limit"),
        FailObject("C", "SFV-403", "limit"),
        FailObject("D", "SFV-403", "limit"),
        Commit(),
    ]
    assert m.handle(PartitionDone(3, 1)) == []  # a result after the stop is ignored


def test_a_cancel_never_commits_and_ignores_late_results() -> None:
    m: Machine = JobMachine(["A"], max_bisect_depth=2)
    m.handle(ObjectCut("A", ("a1", "a2")))
    m.handle(PartitionDone(0, 1))
    assert m.handle(CancelRequested()) == [
        CancelPartition(1),
        Stop(cancelled=True, code="", message="the job was cancelled"),
    ]
    assert m.finished and not m.committed and m.objects == {"A": "cancelled"}
    assert m.handle(PartitionDone(1, 1)) == []


def test_a_lost_worker_or_a_planning_error_fails_only_its_object() -> None:
    m: Machine = JobMachine(["A", "B", "C"], max_bisect_depth=2)
    m.handle(ObjectCut("A", ("a1", "a2")))
    assert m.handle(WorkerLost(0, "SFV-000", "KilledWorker")) == [
        CancelPartition(1),
        FailObject("A", "SFV-000", "KilledWorker"),
    ]
    assert m.handle(ObjectFailed("B", "SFV-404", "bad")) == [FailObject("B", "SFV-404", "bad")]
    assert m.handle(ObjectCut("C", ("c",))) == [Submit(2, "C", "c", 0)]
    assert m.handle(PartitionDone(1, 1)) == []  # A's cancelled partition finished anyway
    assert m.handle(PartitionDone(2, 1)) == [KeepResult(2, "C", 1), FinishObject("C"), Commit()]


class JobRun(RuleBasedStateMachine):
    """Random event orders against the machine; each instruction is checked against the history."""

    def __init__(self) -> None:
        super().__init__()
        self.m: Machine = JobMachine([], max_bisect_depth=0)
        self.max_depth = 0
        self.objects: list[str] = []
        self.part_obj: dict[int, str] = {}
        self.depth: dict[int, int] = {}
        self.kept: set[int] = set()
        self.split: set[int] = set()
        self.cancelled: set[int] = set()
        self.failed: set[int] = set()
        self.bisecting: set[int] = set()
        self.ended: dict[str, str] = {}  # object -> "succeeded" | "failed", from the instructions
        self.stop: Stop | None = None
        self.committed = False
        self.then_cut: dict[str, int] = {}  # object -> parts cut to run after its first ones
        self.then_submitted: dict[str, int] = {}

    @initialize(n=st.integers(1, 4), max_depth=st.integers(0, 3))
    def start(self, n: int, max_depth: int) -> None:
        self.part_name: dict[int, str] = {}
        self.objects = [f"O{i}" for i in range(n)]
        self.max_depth = max_depth
        self.m = JobMachine(self.objects, max_bisect_depth=max_depth)

    # -- feeding events and checking what comes out

    def feed(self, event: Any) -> list[Any]:
        over = self.committed or (self.stop is not None and self.stop.cancelled)
        out = self.m.handle(event)
        if over or (self.stop is not None and not isinstance(event, CancelRequested)):
            assert out == [], f"{event} after the end gave {out}"
        if isinstance(event, PartitionBisected) and out:
            self.split.add(event.pid)
            self.bisecting.discard(event.pid)
        failing = getattr(event, "pid", None)
        if failing is not None and not isinstance(event, PartitionDone | PartitionBisected):  # noqa: SIM102
            if any(isinstance(i, FailObject) and i.obj == self.part_obj[failing] for i in out):
                self.failed.add(failing)  # the failed task is over: its object fails, no cancel needed
                self.bisecting.discard(failing)
        for ins in out:
            self.check(event, ins)
        if self.stop is not None and not self.stop.cancelled:
            assert set(self.ended) == set(self.objects), "an API-limit stop left an object unfinished"
        return out

    def check(self, event: Any, ins: Any) -> None:
        match ins:
            case Submit():
                assert ins.pid not in self.part_obj and ins.obj not in self.ended
                assert ins.depth <= self.max_depth, "bisected deeper than max_bisect_depth"
                if isinstance(event, PartitionBisected):
                    assert ins.depth == self.depth[event.pid] + 1
                if ".then" in ins.part and not isinstance(event, PartitionBisected | ObjectCut):
                    first = [p for p in self.parts_of(ins.obj) if ".then" not in self.part_name[p]]
                    assert all(p in self.kept | self.split for p in first), (
                        "a then part before the first ones"
                    )
                    self.then_submitted[ins.obj] = self.then_submitted.get(ins.obj, 0) + 1
                elif ".then" in ins.part and isinstance(event, ObjectCut):  # no first parts: at once
                    assert not event.parts
                    self.then_submitted[ins.obj] = self.then_submitted.get(ins.obj, 0) + 1
                self.part_obj[ins.pid], self.depth[ins.pid] = ins.obj, ins.depth
                self.part_name[ins.pid] = ins.part
            case KeepResult():
                assert isinstance(event, PartitionDone) and event.pid == ins.pid
                assert ins.pid not in self.kept | self.cancelled | self.split | self.bisecting
                assert ins.obj not in self.ended
                self.kept.add(ins.pid)
            case Bisect():
                assert self.depth[ins.pid] < self.max_depth
                self.bisecting.add(ins.pid)
            case CancelPartition():
                assert ins.pid not in self.kept | self.split | self.cancelled | self.failed
                self.cancelled.add(ins.pid)
                self.bisecting.discard(ins.pid)
            case FinishObject():
                assert ins.obj not in self.ended, "an object ended twice"
                assert all(p in self.kept | self.split for p in self.parts_of(ins.obj)), "finished early"
                assert self.then_submitted.get(ins.obj, 0) == self.then_cut.get(ins.obj, 0), (
                    "then parts skipped"
                )
                self.ended[ins.obj] = "succeeded"
            case FailObject():
                assert ins.obj not in self.ended, "an object ended twice"
                ended = self.kept | self.split | self.cancelled | self.failed
                assert all(p in ended for p in self.parts_of(ins.obj)), "failed with a partition running"
                if self.stop is not None:
                    assert (ins.code, ins.message) == (self.stop.code, self.stop.message)
                self.ended[ins.obj] = "failed"
            case Stop():
                assert self.stop is None
                self.stop = ins
            case Commit():
                assert not self.committed and (self.stop is None or not self.stop.cancelled)
                assert set(self.ended) == set(self.objects), "committed before every object ended"
                self.committed = True
            case _:
                raise AssertionError(f"unknown instruction {ins!r}")

    def parts_of(self, obj: str) -> list[int]:
        return [p for p, o in self.part_obj.items() if o == obj]

    # -- rules

    def open_pids(self) -> list[int]:
        ended = self.kept | self.split | self.cancelled | self.failed | self.bisecting
        return [] if self.m.finished else sorted(set(self.part_obj) - ended)

    def ended_pids(self) -> list[int]:
        return sorted(set(self.part_obj) - set(self.open_pids()) - self.bisecting)

    @precondition(lambda self: not self.m.finished)
    @rule(data=st.data(), how=st.sampled_from([2, 1, 3, 0, "fails"]), then=st.sampled_from([0, 0, 1, 2]))
    def planned(self, data: st.DataObject, how: int | str, then: int) -> None:
        """Planning cuts an object (maybe again: ignored) into ``how`` partitions and ``then``
        partitions to run after them (an Id sweep after the data), or fails it."""
        obj = data.draw(st.sampled_from(self.objects))
        if how == "fails":
            self.feed(ObjectFailed(obj, "SFV-404", "planning"))
        else:
            assert isinstance(how, int)
            accepted = self.m.stopped is None and self.m.objects[obj] == "planning"
            if accepted:
                self.then_cut[obj] = then
            parts = tuple(f"{obj}.{i}" for i in range(how))
            self.feed(ObjectCut(obj, parts, tuple(f"{obj}.then{i}" for i in range(then))))

    @precondition(lambda self: bool(self.open_pids()))
    @rule(
        data=st.data(),
        kind=st.sampled_from(["done", "timeout", "done", "timeout", "failed", "lost", "limit"]),
    )
    def partition_event(self, data: st.DataObject, kind: str) -> None:
        pid = data.draw(st.sampled_from(self.open_pids()))
        self.feed(self.partition_events(pid)[kind])

    @precondition(lambda self: bool(self.ended_pids()))
    @rule(data=st.data(), kind=st.sampled_from(["done", "timeout", "failed", "lost"]))
    def late_partition_event(self, data: st.DataObject, kind: str) -> None:
        """A result, timeout or failure of a partition that ended (done, split, cancelled, failed)."""
        pid = data.draw(st.sampled_from(self.ended_pids()))
        event = self.partition_events(pid)[kind]
        assert self.feed(event) == [], f"{event} on an ended partition was not ignored"

    def partition_events(self, pid: int) -> dict[str, Any]:
        return {
            "done": PartitionDone(pid, 1),
            "timeout": PartitionTimedOut(pid, "SFV-405", "timeout"),
            "failed": PartitionFailed(pid, "SFV-409", "failed"),
            "lost": WorkerLost(pid, "SFV-000", "KilledWorker"),
            "limit": ApiLimitReached("SFV-403", "limit", pid=pid),
        }

    @precondition(lambda self: bool(self.bisecting))
    @rule(data=st.data(), splits=st.sampled_from([True, True, False]))
    def bisection_answered(self, data: st.DataObject, splits: bool) -> None:
        pid = data.draw(st.sampled_from(sorted(self.bisecting)))
        if splits:
            self.feed(PartitionBisected(pid, (f"{pid}<", f"{pid}>")))
        else:
            self.feed(PartitionFailed(pid, "SFV-405", "cannot bisect"))

    @precondition(lambda self: not self.m.finished)
    @rule(cancel=st.booleans())
    def job_stops(self, cancel: bool) -> None:
        """A cancel, or the API limit met while planning (no partition involved)."""
        self.feed(CancelRequested() if cancel else ApiLimitReached("SFV-403", "limit"))

    @precondition(lambda self: self.m.finished)
    @rule(data=st.data(), kind=st.sampled_from(["cut", "planning", "cancel", "limit"]))
    def event_after_the_end(self, data: st.DataObject, kind: str) -> None:
        obj = data.draw(st.sampled_from(self.objects))
        event: Any = {
            "cut": ObjectCut(obj, ("late",)),
            "planning": ObjectFailed(obj, "SFV-404", "late"),
            "cancel": CancelRequested(),
            "limit": ApiLimitReached("SFV-403", "late"),
        }[kind]
        assert self.feed(event) == []

    # -- what holds after every step

    @invariant()
    def machine_agrees_with_its_instructions(self) -> None:
        for obj, state in self.m.objects.items():
            if obj in self.ended:
                assert state == self.ended[obj]
            else:
                assert state in ("planning", "running", "cancelled")
                assert state != "cancelled" or (self.stop is not None and self.stop.cancelled)

    def teardown(self) -> None:
        """Run the job out: every object ends in exactly one terminal state, and the job commits
        exactly once unless it was cancelled."""
        for _ in range(200):
            if self.m.finished:
                break
            if self.bisecting:
                self.feed(PartitionFailed(min(self.bisecting), "SFV-405", "cannot bisect"))
            elif open_ := self.m.open_parts():
                self.feed(PartitionDone(open_[0], 1))
            else:
                planning = [o for o, s in self.m.objects.items() if s == "planning"]
                self.feed(ObjectCut(planning[0], ("last",)))
        assert self.m.finished
        cancelled = self.stop is not None and self.stop.cancelled
        assert self.committed != cancelled
        for obj in self.objects:
            terminal = self.ended.get(obj) or "cancelled"
            assert self.m.objects[obj] == terminal
            assert terminal != "cancelled" or cancelled
        assert self.m.open_parts() == []


JobRun.TestCase.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)
test_job_machine_over_random_event_orders = JobRun.TestCase
