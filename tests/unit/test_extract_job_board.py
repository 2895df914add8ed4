"""The job board (decision 0045): one list call answers the status of every Bulk API 2.0 job a
worker waits for, and the board asks nothing it need not ask (pure: a fake lister and clock)."""

from __future__ import annotations

from collections.abc import Collection

from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.extract.bulk2 import JobInfo
from engine.extract.job_board import JobBoard


def _job(job_id: str, state: str) -> JobInfo:
    return JobInfo(id=job_id, state=state, object="Account", operation="query", api_version="62.0")


class _Org:
    """The org's job list: ``states`` by id; ``hidden`` ids are not on the pages read."""

    def __init__(self, **states: str) -> None:
        self.states = dict(states)
        self.hidden: set[str] = set()
        self.calls = 0

    def list_jobs(self, wanted: Collection[str]) -> tuple[dict[str, JobInfo], int]:
        self.calls += 1
        return {i: _job(i, s) for i, s in self.states.items() if i in wanted and i not in self.hidden}, 1


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _board(clock: _Clock, **kw: object) -> JobBoard:
    return JobBoard(fresh=1.0, clock=clock, **kw)  # type: ignore[arg-type]


def test_jobs_waiting_together_share_one_list_call_while_it_is_fresh() -> None:
    org, clock = _Org(a="InProgress", b="UploadComplete", c="InProgress"), _Clock()
    board = _board(clock)
    for j in "abc":
        board.enter(j)
    clock.now += 10  # jobs 10 s old: a list up to ``fresh`` (1 s) old answers them
    assert board.status("a", org.list_jobs) == _job("a", "InProgress")
    clock.now += 0.9
    assert board.status("b", org.list_jobs) == _job("b", "UploadComplete")
    assert board.status("c", org.list_jobs) == _job("c", "InProgress")
    assert org.calls == 1
    org.states["a"] = "JobComplete"
    clock.now += 0.2  # the list is stale now
    assert board.status("b", org.list_jobs) == _job("b", "UploadComplete")
    assert org.calls == 2 and board.ended("a") and not board.ended("b")
    # an ended job is answered from the list whatever its age: its state is final
    clock.now += 60
    assert board.status("a", org.list_jobs) == _job("a", "JobComplete")
    assert org.calls == 2


def test_a_young_job_takes_a_list_only_as_old_as_a_share_of_its_age() -> None:
    """A job 0.4 s old is not told "in progress" by a list of 0.3 s ago (``share`` 0.25 of its
    age: 0.1 s): on a quick org its end would be seen up to ``every`` seconds late (measured on a
    2M-record ``fast`` incremental: jobs read 1.3-1.5 s after their end, the job 50% longer)."""
    org, clock = _Org(a="InProgress", b="InProgress"), _Clock()
    board = _board(clock)
    board.enter("a")
    board.enter("b")
    clock.now += 0.1
    assert board.status("a", org.list_jobs) == _job("a", "InProgress")
    org.states["b"] = "JobComplete"
    clock.now += 0.3
    # a new list: the old one is 0.3 s old, more than a quarter of b's 0.4 s
    assert board.status("b", org.list_jobs) == _job("b", "JobComplete")
    assert org.calls == 2
    clock.now += 0.05  # 0.05 s: within a quarter of a's 0.45 s
    assert board.status("a", org.list_jobs) == _job("a", "InProgress")
    assert org.calls == 2


def test_a_job_alone_or_listed_failed_or_missing_is_asked_about_on_its_own() -> None:
    org, clock = _Org(a="InProgress", b="Failed", c="InProgress"), _Clock()
    board = _board(clock)
    board.enter("a")
    assert board.status("a", org.list_jobs) is None and org.calls == 0  # alone: one call either way
    board.enter("b")
    board.enter("c")
    org.hidden.add("c")
    assert board.status("b", org.list_jobs) is None  # Failed: the list has no error message
    assert board.ended("b")
    assert board.status("c", org.list_jobs) is None  # not on the pages read
    assert org.calls == 1


def test_a_job_the_list_no_longer_shows_is_not_answered_with_its_older_state() -> None:
    """The list's order is indeterminate: a job on the pages read once may be past them later."""
    org, clock = _Org(a="InProgress", b="InProgress"), _Clock()
    board = _board(clock)
    board.enter("a")
    board.enter("b")
    assert board.status("a", org.list_jobs) == _job("a", "InProgress")
    org.hidden.add("a")
    org.states["a"] = "JobComplete"
    clock.now += 2
    assert board.status("b", org.list_jobs) == _job("b", "InProgress")
    assert board.status("a", org.list_jobs) is None  # asked on its own, not "InProgress"
    assert org.calls == 2


def test_a_job_created_after_the_list_call_is_not_taken_as_missing() -> None:
    org, clock = _Org(a="InProgress", b="InProgress", c="UploadComplete"), _Clock()
    board = _board(clock)
    board.enter("a")
    board.enter("b")
    board.status("a", org.list_jobs)
    board.enter("c")
    assert board.status("c", org.list_jobs) == _job("c", "UploadComplete")
    assert org.calls == 2


def test_a_board_whose_lists_answer_too_little_stops_listing() -> None:
    """A busy org lists its jobs over more pages than a list call saves: after three list calls
    that each answered no more waiting jobs than the pages they read, the board asks no more."""
    org, clock = _Org(a="InProgress", b="InProgress"), _Clock()
    org.hidden.update({"a", "b"})
    board = _board(clock, unhelpful_limit=3)
    board.enter("a")
    board.enter("b")
    for _ in range(5):
        clock.now += 2
        assert board.status("a", org.list_jobs) is None
    assert org.calls == 3 and not board.active


STEPS = st.sampled_from(["enter", "leave", "ask", "tick", "end"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcd"), STEPS)))
# a young job that ended after the list: not answered from it 0.6 s later (a quarter of its age)
@example([("a", "enter"), ("b", "enter"), ("a", "ask"), ("a", "end"), ("a", "tick"), ("a", "ask")])
def test_the_board_never_calls_more_than_it_is_asked_and_never_answers_a_stale_or_failed_state(
    steps: list[tuple[str, str]],
) -> None:
    org, clock = _Org(a="InProgress", b="UploadComplete", c="InProgress", d="InProgress"), _Clock()
    board = _board(clock)
    asked = 0
    waiting: set[str] = set()
    ended_at: dict[str, float] = {}
    entered_at: dict[str, float] = {}
    for job, step in steps:
        if step == "enter":
            board.enter(job)
            waiting.add(job)
            entered_at[job] = clock.now
        elif step == "leave":
            board.leave(job)
            waiting.discard(job)
        elif step == "tick":
            clock.now += 0.6
        elif step == "end" and job not in ended_at:
            org.states[job] = "JobComplete" if job != "d" else "Failed"
            ended_at[job] = clock.now
        elif step == "ask" and job in waiting:
            asked += 1
            info = board.status(job, org.list_jobs)
            if info is not None:
                assert info.state != "Failed"
                # the state now, or the state of a list call made at most ``fresh`` seconds ago,
                # and at most ``share`` of the job's age (since its last enter)
                stale_by = clock.now - ended_at.get(job, clock.now)
                age = clock.now - entered_at[job]
                assert info.state == org.states[job] or stale_by <= min(board.fresh, board.share * age)
    assert org.calls <= asked


def test_the_queue_a_list_call_saw_is_not_taken_for_processing() -> None:
    """A listed job has no processing time: the pace learns its time from creation to end, less
    the time the list calls saw it queued (taken whole, a long queue made every later job look
    slow, and the worker looked late)."""
    org, clock = _Org(a="UploadComplete", b="InProgress"), _Clock()
    board = _board(clock)
    board.enter("a")
    board.enter("b")
    assert board.queued_for("a") == 0.0
    clock.now += 3
    board.status("a", org.list_jobs)  # a is queued 3 s after it was created
    org.states["a"] = "InProgress"
    clock.now += 2
    board.status("a", org.list_jobs)
    assert board.queued_for("a") == 3.0 and board.queued_for("b") == 0.0
    board.leave("a")
    assert board.queued_for("a") == 0.0


def test_waiting_jobs_look_at_the_list_at_least_every_few_seconds() -> None:
    """The jobs' own polls fall in step once one list answers them all; ``next_list`` bounds how
    long a job that ended waits to be seen, while the board lists at all."""
    org, clock = _Org(a="InProgress", b="InProgress"), _Clock()
    board = JobBoard(fresh=1.0, every=1.5, clock=clock)
    board.enter("a")
    assert board.next_list() is None  # nothing listed yet
    board.enter("b")
    board.status("a", org.list_jobs)
    assert board.next_list() == clock.now + 1.5
    board.leave("b")
    assert board.next_list() is None  # a job alone is asked about on its own
    assert JobBoard(fresh=2.0, every=0.5).every == 2.0  # never more often than a list is fresh
