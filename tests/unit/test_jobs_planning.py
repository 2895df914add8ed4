"""The pure job planner: cycles, full vs incremental per object, retries, refusals, cursors."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.jobs.errors import FullBackupRequired
from engine.jobs.planning import (
    BackupRequest,
    JobDecision,
    JobOptions,
    decide,
    merge_cursor,
    needed_manifests,
    redo_in_full,
    warned_at_last_capture,
)
from engine.model import Cursor, JobRecord, Manifest, ObjectEntry, ObjectError, ObjectWarning

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SCOPE = {"Account": "SystemModstamp", "Contact": "SystemModstamp", "Organization": None}


def manifest(
    job: str, at: datetime, kind: str, cycle: str, objs: dict[str, str], failed: tuple[str, ...] = ()
) -> Manifest:
    objects: dict[str, ObjectEntry] = {}
    for name, mode in objs.items():
        last = at - timedelta(minutes=1)
        # where its delete-log window ends, as every job since decision 0010 records it
        cursor = Cursor("SystemModstamp", last, frozenset({("001x", last)}), deletes_through=last)
        objects[name] = ObjectEntry(rows=1, cursor=cursor, mode=mode)  # type: ignore[arg-type]
    for name in failed:
        objects[name] = ObjectEntry(errors=[ObjectError("SFV-403", "limit")])
    return Manifest(org="acme", job_id=job, created_at=at, kind=kind, cycle_id=cycle,  # type: ignore[arg-type]
                    objects=objects)  # fmt: skip


def test_first_job_is_full_and_starts_a_cycle() -> None:
    d = decide(BackupRequest("acme"), [], SCOPE, now=T0)
    assert d.kind == "full" and d.cycle_id is None
    assert {w.mode for w in d.objects.values()} == {"full"}


def test_object_scoped_job_is_refused_before_a_full_backup() -> None:
    with pytest.raises(FullBackupRequired):
        decide(BackupRequest("acme", objects=("Account",)), [], SCOPE, now=T0)


def test_incremental_after_full_uses_the_committed_cursor() -> None:
    full = manifest("j1", T0, "full", "j1", {"Account": "full", "Contact": "full", "Organization": "full"})
    d = decide(BackupRequest("acme"), [full], SCOPE, now=T0 + timedelta(days=1))
    assert d.kind == "incremental" and d.cycle_id == "j1"
    acc = d.objects["Account"]
    assert acc.mode == "incremental" and acc.cursor is not None
    assert acc.cursor.last == T0 - timedelta(minutes=1)
    assert acc.window_start(timedelta(minutes=5)) == T0 - timedelta(minutes=6)
    assert d.objects["Organization"].mode == "full"  # no timestamp field


def test_failed_objects_are_redone_in_full_and_new_objects_start_full() -> None:
    full = manifest("j1", T0, "full", "j1", {"Account": "full"}, failed=("Contact",))
    d = decide(BackupRequest("acme"), [full], SCOPE, failed_last=["Account"], now=T0 + timedelta(hours=1))
    assert d.objects["Account"].mode == "full" and d.objects["Account"].reason == "failed in the last job"
    assert d.objects["Contact"].mode == "full"  # never captured in this cycle


def test_a_warning_counts_only_on_the_objects_newest_capture() -> None:
    full = manifest("j1", T0, "full", "j1", {"Account": "full", "Contact": "full"})
    for name in ("Account", "Contact"):
        full.objects[name].warning = ObjectWarning("SFV-805", "m")
    inc = manifest("j2", T0 + timedelta(hours=1), "incremental", "j1", {"Contact": "incremental"})
    # newest first, as needed_manifests reads them: the order must not matter
    assert warned_at_last_capture([inc, full], ["Account", "Contact", "Organization"], "SFV-805") == [
        "Account"
    ]
    assert warned_at_last_capture([full, inc], ["Account"], "SFV-999") == []

    d = decide(BackupRequest("acme"), [inc, full], SCOPE, now=T0 + timedelta(hours=2))
    redone = redo_in_full(d, ["Account", "Organization", "Missing"], "why")
    assert redone.objects["Account"].mode == "full" and redone.objects["Account"].reason == "why"
    assert redone.objects["Account"].cursor is None
    assert redone.objects["Contact"] == d.objects["Contact"]
    assert redone.objects["Organization"] == d.objects["Organization"]  # already full, reason kept
    assert "Missing" not in redone.objects and d.objects["Account"].mode == "incremental"


def test_cursor_comes_from_the_newest_manifest_that_captured_the_object() -> None:
    full = manifest("j1", T0, "full", "j1", {"Account": "full", "Contact": "full"})
    inc = manifest("j2", T0 + timedelta(days=1), "incremental", "j1", {"Contact": "incremental"},
                   failed=("Account",))  # fmt: skip
    d = decide(BackupRequest("acme"), [inc, full], SCOPE, now=T0 + timedelta(days=2))
    assert d.objects["Account"].cursor is not None
    assert d.objects["Account"].cursor.last == T0 - timedelta(minutes=1)
    assert d.objects["Contact"].cursor is not None
    assert d.objects["Contact"].cursor.last == T0 + timedelta(days=1) - timedelta(minutes=1)


def test_a_cycle_lasts_one_year() -> None:
    full = manifest("j1", T0, "full", "j1", {"Account": "full"})
    assert decide(BackupRequest("acme"), [full], SCOPE, now=T0 + timedelta(days=364)).kind == "incremental"
    assert decide(BackupRequest("acme"), [full], SCOPE, now=T0 + timedelta(days=365)).kind == "full"


def test_full_flag_and_object_scoped_full() -> None:
    full = manifest("j1", T0, "full", "j1", {"Account": "full", "Contact": "full"})
    assert decide(BackupRequest("acme", full=True), [full], SCOPE, now=T0).kind == "full"
    d = decide(BackupRequest("acme", full=True, objects=("account",)), [full], SCOPE, now=T0)
    assert d.kind == "incremental" and list(d.objects) == ["Account"] and d.objects["Account"].mode == "full"


def test_id_sweep_every_n_jobs_of_the_cycle() -> None:
    full = manifest("j1", T0, "full", "j1", {"Account": "full"})
    opts = JobOptions(id_sweep_every=2)
    assert not decide(BackupRequest("acme"), [full], SCOPE, now=T0, options=opts).objects["Account"].sweep
    inc = manifest("j2", T0 + timedelta(hours=1), "incremental", "j1", {"Account": "incremental"})
    assert decide(BackupRequest("acme"), [full, inc], SCOPE, now=T0, options=opts).objects["Account"].sweep


def test_merge_cursor_keeps_exactly_the_boundary_pairs() -> None:
    lag = timedelta(minutes=5)
    a = T0
    b = T0 + timedelta(minutes=10)
    merged = merge_cursor(
        "SystemModstamp",
        [
            (a, [("1", a), ("2", a - timedelta(minutes=1))], False),
            (b, [("3", b), ("4", b - timedelta(minutes=6))], False),
        ],
        lag,
        None,
    )
    assert merged.last == b
    assert merged.seen == frozenset({("3", b)})
    prev = Cursor("SystemModstamp", b + timedelta(minutes=1), frozenset({("9", b + timedelta(minutes=1))}))
    kept = merge_cursor("SystemModstamp", [(None, [], False)], lag, prev)
    assert kept.last == prev.last and ("9", prev.last) in kept.seen


def _committed(d: JobDecision, job: str, at: datetime, failed: frozenset[str]) -> Manifest:
    """The manifest a job of decision ``d`` commits, its ``failed`` objects not captured."""
    modes = {n: w.mode for n, w in d.objects.items() if n not in failed}
    m = manifest(job, at, d.kind, d.cycle_id or job, modes, failed=tuple(sorted(failed)))
    if d.position() is not None:
        m.job = JobRecord(cycle=d.position(), fulls_beside=d.fulls_beside)
    return m


@settings(max_examples=60)
@given(
    jobs=st.lists(
        st.tuples(
            st.frozensets(st.sampled_from(sorted(SCOPE))),
            st.integers(0, 200),
            st.integers(1, 999_999),
            st.booleans(),
            st.text("0123456789abcdef", min_size=12, max_size=12),
        ),
        min_size=1,
        max_size=12,
    ),
    legacy=st.integers(0, 12),
)
def test_needed_manifests_decide_like_every_manifest(
    jobs: list[tuple[frozenset[str], int, int, bool, str]], legacy: int
) -> None:
    """Whatever failed, however long the cycle, the newest manifests decide like all of them; the
    first ``legacy`` manifests carry no recorded cycle position (written before it existed).

    Job ids are named as the catalog names them (``<second>Z-<hex>``): jobs that start within the
    same second may list in any order (ids written before the suffix was time-ordered had a random
    one), so the repository's newest-first listing is only ordered to the second."""
    opts = JobOptions(id_sweep_every=3)
    history: list[Manifest] = []
    at = T0
    for i, (failed, days, micros, full, suffix) in enumerate(jobs):
        at += timedelta(days=days, microseconds=micros)
        request = BackupRequest("acme", full=full and i % 4 == 0)
        everything = decide(request, history, SCOPE, failed_last=failed, now=at, options=opts)
        newest_first = iter(sorted(history, key=lambda m: m.job_id, reverse=True))
        needed = needed_manifests(newest_first, SCOPE)
        assert decide(request, needed, SCOPE, failed_last=failed, now=at, options=opts) == everything
        m = _committed(everything, f"{at:%Y%m%dT%H%M%SZ}-{suffix}", at, failed)
        if i < legacy:
            m.job = JobRecord()
        history.append(m)


# --- concurrent jobs: a new cycle's full beside incrementals (decision 0016) ----------------------


def _id(at: datetime, n: int) -> str:
    """A job id as the catalog makes one (``new_job_id``): creation second, microsecond, a suffix."""
    return f"{at:%Y%m%dT%H%M%SZ}-{at.microsecond:05x}{n:07x}"


def _newest_first(history: list[Manifest]) -> list[Manifest]:
    """The repository's listing: job-id (creation) order, newest first, whatever the commit order."""
    return sorted(history, key=lambda m: m.job_id, reverse=True)


def test_an_incremental_committed_before_a_full_created_earlier_does_not_hide_the_new_cycle() -> None:
    """full2 is created first, an incremental of cycle 1 runs beside it and commits first: the next
    job lists the incremental first (newer id) but belongs to full2's cycle and reads its cursors."""
    full1 = manifest(_id(T0, 1), T0, "full", _id(T0, 1), {"Account": "full", "Contact": "full"})
    full2_id = _id(T0 + timedelta(days=1), 2)
    at = T0 + timedelta(days=1, minutes=1)
    d = decide(BackupRequest("acme"), [full1], SCOPE, now=at)
    assert d.kind == "incremental" and d.cycle_id == full1.job_id
    inc = _committed(replace(d, fulls_beside=(full2_id,)), _id(at, 3), at + timedelta(minutes=5), frozenset())
    full2 = manifest(full2_id, T0 + timedelta(days=1, hours=3), "full", full2_id,
                     {"Account": "full", "Contact": "full", "Organization": "full"})  # fmt: skip
    history = [full1, inc, full2]
    now = T0 + timedelta(days=2)
    everything = decide(BackupRequest("acme"), history, SCOPE, now=now)
    assert everything.cycle_id == full2_id and everything.index_in_cycle == 1
    assert everything.cycle_started_at == full2.created_at
    assert everything.objects["Account"].cursor == full2.objects["Account"].cursor
    needed = needed_manifests(_newest_first(history), SCOPE)
    assert [m.job_id for m in needed] == [inc.job_id, full2_id], "read back past the full beside it"
    assert decide(BackupRequest("acme"), needed, SCOPE, now=now) == everything
    # without the record of the full beside it, the listing would stop at the incremental
    inc.job = JobRecord(cycle=d.position())
    assert [m.job_id for m in needed_manifests(_newest_first(history), SCOPE)] == [inc.job_id]


def test_an_old_cycle_incremental_committed_after_the_new_full_keeps_the_new_cycle_current() -> None:
    """The incremental planned before full2 committed and commits after it: the newest manifest is
    the old cycle's, the current cycle is still full2's (its full committed last)."""
    full1 = manifest(_id(T0, 1), T0, "full", _id(T0, 1), {"Account": "full"})
    full2_id = _id(T0 + timedelta(days=1), 2)
    plan_at = T0 + timedelta(days=1, minutes=1)
    d = decide(BackupRequest("acme"), [full1], SCOPE, now=plan_at)
    full2 = manifest(full2_id, plan_at + timedelta(minutes=1), "full", full2_id, {"Account": "full"})
    inc = _committed(replace(d, fulls_beside=(full2_id,)), _id(plan_at, 3), plan_at + timedelta(hours=1),
                     frozenset())  # fmt: skip
    history = [full1, full2, inc]
    assert max(history, key=lambda m: m.created_at) is inc
    now = plan_at + timedelta(days=1)
    everything = decide(BackupRequest("acme"), history, SCOPE, now=now)
    assert everything.cycle_id == full2_id and everything.index_in_cycle == 1
    needed = needed_manifests(_newest_first(history), SCOPE)
    assert decide(BackupRequest("acme"), needed, SCOPE, now=now) == everything


def _valid(full: str | None, inc: object, has_full: bool) -> list[str]:
    """The events the two lanes allow next (an incremental needs a committed full)."""
    out = ["commit_full", "fail_full"] if full is not None else ["start_full"]
    if inc is not None:
        out += ["commit_inc", "fail_inc"]
    elif has_full:
        out.append("start_inc")
    return out


@settings(max_examples=300)
@given(data=st.data(), length=st.integers(1, 40))
def test_planning_with_concurrently_committed_manifests(data: st.DataObject, length: int) -> None:
    """Random runs of the two lanes (at most one full and one incremental in flight, each planned
    when created; a job id sorts by creation, its manifest by commit): every incremental planned
    from the manifests the listing reads decides like one planned from all of them, joins the
    cycle whose full committed last and reads the newest cursor of that cycle."""
    history: list[Manifest] = []
    full: str | None = None
    inc: tuple[str, JobDecision] | None = None
    at = T0
    for n in range(length):
        event = data.draw(st.sampled_from(_valid(full, inc, any(m.kind == "full" for m in history))))
        at += timedelta(seconds=data.draw(st.integers(0, 3)), microseconds=data.draw(st.integers(0, 999_999)))
        if event == "start_full":
            full = _id(at, n)
        elif event == "commit_full" and full is not None:
            history.append(manifest(full, at, "full", full, {"Account": "full", "Contact": "full"}))
            full = None
        elif event == "fail_full":
            full = None
        elif event == "start_inc":
            request = BackupRequest("acme")
            everything = decide(request, history, SCOPE, now=at)
            needed = needed_manifests(_newest_first(history), SCOPE)
            assert decide(request, needed, SCOPE, now=at) == everything
            newest_full = max(
                (m for m in history if m.kind == "full"), key=lambda m: (m.created_at, m.job_id)
            )
            assert (everything.kind, everything.cycle_id) == ("incremental", newest_full.job_id)
            chain = sorted(
                (m for m in history if m.cycle_id == newest_full.job_id), key=lambda m: m.created_at
            )
            assert everything.objects["Account"].cursor == chain[-1].objects["Account"].cursor
            inc = (_id(at, n), replace(everything, fulls_beside=(full,) if full else ()))
        elif event == "commit_inc" and inc is not None:
            history.append(_committed(inc[1], inc[0], at, frozenset()))
            inc = None
        elif event == "fail_inc":
            inc = None


def test_a_full_that_lacks_objects_of_the_current_cycle_joins_it_as_a_partial_job() -> None:
    """Issue 15, finding 3: a full where objects failed that the current cycle holds does not
    start a cycle; it commits as a partial (incremental) job of the current cycle, index n+1."""
    from engine.jobs.planning import ObjectWork, partial_full
    from engine.model import CyclePosition

    day = datetime(2026, 1, 1, tzinfo=UTC)
    cid = "20260101T000000Z-a"
    full = Manifest(org="o", job_id=cid, created_at=day, kind="full", cycle_id=cid,
                    objects={"A": ObjectEntry(), "B": ObjectEntry()},
                    job=JobRecord(cycle=CyclePosition(day, 0)))  # fmt: skip
    decision = JobDecision(kind="full", cycle_id=None,
                           objects={"A": ObjectWork("A", "full"), "B": ObjectWork("B", "full")})  # fmt: skip
    joined = partial_full(decision, [full], ["B"])
    assert (joined.kind, joined.cycle_id, joined.index_in_cycle, joined.cycle_started_at) == (
        "incremental",
        "20260101T000000Z-a",
        1,
        day,
    )
    assert joined.position() == CyclePosition(day, 1)
    assert partial_full(decision, [full], []) is decision  # nothing failed: a new cycle
    assert partial_full(decision, [], ["B"]) is decision  # no cycle yet
    failed_b = Manifest(org="o", job_id="x", created_at=day, kind="full", cycle_id="x",
                        objects={"B": ObjectEntry(errors=[ObjectError("SFV-409", "m")])},
                        job=JobRecord(cycle=CyclePosition(day, 0)))  # fmt: skip
    assert partial_full(decision, [failed_b], ["B"]) is decision  # the cycle never held B


# --- selections (issue 15, findings 5 and 22) ------------------------------------------------------


def test_unknown_objects_in_a_selection_are_refused_by_name() -> None:
    """``--objects Account,Nope,Contcat`` used to back up Account alone and exit 0; the API's
    back-up-now dropped ``NoSuchObj__c`` silently. Both now refuse the job, naming every unknown."""
    from engine.jobs.errors import UnknownObjects

    full = manifest("j1", T0, "full", "c1", {"Account": "full", "Contact": "full", "Organization": "full"})
    with pytest.raises(UnknownObjects) as err:
        decide(BackupRequest("acme", objects=("Account", "Nope", "Contcat")), [full], SCOPE, now=T0)
    assert err.value.code == "SFV-806" and "Nope, Contcat" in err.value.message
    with pytest.raises(UnknownObjects, match="NoSuchObj__c"):
        decide(BackupRequest("acme", objects=("NoSuchObj__c",)), [full], SCOPE, now=T0)
    ok = decide(BackupRequest("acme", objects=("account", "Contact")), [full], SCOPE, now=T0)
    assert set(ok.objects) == {"Account", "Contact"}  # names match case-insensitively, as Salesforce's


def test_an_empty_selection_is_refused_not_read_as_every_object() -> None:
    from engine.jobs.errors import NoObjectsInScope

    for empty in ((), ("",), (" ", "")):
        with pytest.raises(NoObjectsInScope, match="empty"):
            BackupRequest("acme", objects=empty)
    assert BackupRequest("acme", objects=None).objects is None  # no selection: every object


# --- the delete log's start after an upgrade (decision 0010, weak point (d) of session 7) --------


def _pre_0010(
    job: str, at: datetime, kind: str, started: datetime | None, *, swept: bool = False
) -> Manifest:
    """A manifest as a job written before decision 0010 commits it: no ``deletes_through``."""
    m = manifest(job, at, kind, "j0", {"Account": "full" if kind == "full" else "incremental"})
    acc = m.objects["Account"]
    assert acc.cursor is not None
    m.objects["Account"] = replace(acc, swept=swept, cursor=replace(acc.cursor, deletes_through=None))
    m.job = JobRecord(started_at=started)
    return m


def test_the_first_incremental_after_an_upgrade_asks_the_log_from_the_last_exact_job() -> None:
    """No incremental recorded where its delete window ends: the log starts just before the full
    (the last job whose backup held every deletion), instead of sweeping every object."""
    full = _pre_0010("j0", T0 + timedelta(hours=2), "full", T0 + timedelta(seconds=30))
    inc = _pre_0010("j1", T0 + timedelta(days=1), "incremental", T0 + timedelta(days=1, minutes=-5))
    at = T0 + timedelta(days=2)
    everything = decide(BackupRequest("acme"), [full, inc], SCOPE, now=at)
    cur = everything.objects["Account"].cursor
    assert cur is not None and cur.deletes_through == T0 - timedelta(minutes=1)
    needed = needed_manifests(iter([inc, full]), SCOPE)
    assert [m.job_id for m in needed] == ["j1", "j0"]
    assert decide(BackupRequest("acme"), needed, SCOPE, now=at) == everything


@settings(max_examples=80)
@given(
    jobs=st.lists(
        st.tuples(st.integers(1, 48), st.booleans(), st.booleans(), st.booleans()), min_size=1, max_size=10
    ),
    recorded_from=st.integers(0, 11),
)
def test_the_delete_log_starts_where_the_backup_last_held_every_deletion(
    jobs: list[tuple[int, bool, bool, bool]], recorded_from: int
) -> None:
    """Random chains of incrementals after a full, the first ``recorded_from`` of them written
    before decision 0010 (no ``deletes_through``), some swept, some without a recorded start:
    the window starts at the newest recorded ``deletes_through``, else a minute before the start
    minute of the newest job that swept or fully read the object (None when that job recorded no
    start), and the newest manifests that :func:`needed_manifests` reads decide the same."""
    full_start = T0 + timedelta(seconds=17)
    history = [_pre_0010("j00", T0 + timedelta(minutes=30), "full", full_start)]
    expected: datetime | None = T0 - timedelta(minutes=1)
    at = T0 + timedelta(hours=1)
    for i, (hours, swept, knows_start, _) in enumerate(jobs, start=1):
        at += timedelta(hours=hours)
        started = at - timedelta(minutes=3, seconds=i) if knows_start else None
        m = _pre_0010(f"j{i:02d}", at, "incremental", started, swept=swept)
        if i > recorded_from:  # written by this version: it records where its window ends
            through = at - timedelta(minutes=7)
            acc = m.objects["Account"]
            assert acc.cursor is not None
            m.objects["Account"] = replace(acc, cursor=replace(acc.cursor, deletes_through=through))
            expected = through
        elif swept:
            expected = None if started is None else started.replace(second=0) - timedelta(minutes=1)
        history.append(m)
    now = at + timedelta(hours=1)
    everything = decide(BackupRequest("acme"), history, SCOPE, now=now)
    cur = everything.objects["Account"].cursor
    assert cur is not None and cur.deletes_through == expected
    needed = needed_manifests(iter(sorted(history, key=lambda m: m.job_id, reverse=True)), SCOPE)
    assert decide(BackupRequest("acme"), needed, SCOPE, now=now) == everything
