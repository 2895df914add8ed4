"""API economy of a full backup (issue 16, decision 0019), counted on the emulator's request log.

A full asks Salesforce for each thing once and in as few calls as it can: the objects are sized by
``COUNT()`` queries five to a composite request (and the pieces of a cut, and an object's Id
bounds, likewise), small objects are read through REST pages, five to a composite request,
instead of a Bulk job each (create, polls, a page, delete), and a Bulk job's status is polled
when what Salesforce reported of the jobs already complete says it should be done, not on every
step of a backoff. The snapshot stays equal to the org.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
from simple_salesforce import Salesforce

from devkit.backup_env import TEST_OPTIONS, BackupEnv, backup_env
from devkit.groundtruth import compare_org
from tests.helpers.emulator_proc import poll_for, simple_salesforce

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackupEnv]:
    with backup_env(tmp_path_factory.mktemp("backup-economy"), scale=20_000, tls=True) as e:
        e.add_org("acme")
        yield e


def _sf(env: BackupEnv) -> Salesforce:
    return simple_salesforce(env.em)


def _kinds(env: BackupEnv, since: int) -> Counter[str]:
    """Salesforce calls after ``since``: ``query`` (one REST query page), ``composite`` (and
    ``composite deleted``: one of delete-log subrequests only), ``create``, ``list`` (the status of
    all jobs), ``poll``, ``page`` and ``delete`` (Bulk 2.0), ``other``."""
    out: Counter[str] = Counter()
    for r in env.em.admin("GET", "/requests", params={"since": since})["requests"]:
        path, method = str(r["path"]), str(r["method"])
        if r.get("category") == "admin" or not path.startswith("/services/data/v"):
            continue
        tail = path.split("/", 4)[4] if path.count("/") >= 4 else ""
        if tail.startswith(("query", "queryAll")):
            out["query"] += 1
        elif tail.startswith("composite"):
            subs = r.get("subrequests") or []
            deleted = subs and all(s.rstrip("/").endswith("/deleted") for s in subs)
            out["composite deleted" if deleted else "composite"] += 1
        elif tail.startswith("jobs/query"):
            parts = tail.rstrip("/").split("/")
            if len(parts) == 2:
                out["create" if method == "POST" else "list"] += 1
            elif parts[-1] == "results":
                out["page"] += 1
            else:
                out[{"GET": "poll", "DELETE": "delete"}.get(method, "other")] += 1
        else:
            out["other"] += 1
    return out


def test_a_full_asks_once_in_few_calls_and_stays_exact(env: BackupEnv) -> None:
    since = int(env.em.admin("GET", "/requests", params={"limit": 1})["last_seq"])
    full = env.backup("acme", options=TEST_OPTIONS)
    assert full.state == "succeeded", full.error_message
    calls = _kinds(env, since)
    objects = full.objects
    small = [n for n, o in objects.items() if o.records <= TEST_OPTIONS.rest_limit]
    bulk = [n for n, o in objects.items() if o.bulk_jobs > 0]
    assert small and bulk, (small, bulk)
    # a small object is one REST page, never a Bulk job
    assert [n for n in small if objects[n].bulk_jobs] == []
    # sizing: COUNT()s five to a composite request, not one query per object; the REST query pages
    # left are the small objects' data (one page each at this scale) and the sweeps' Ids
    assert calls["composite"] >= len(objects) // 5
    assert calls["query"] <= 2 * len(small) + len(objects), calls
    # polls: about one per Bulk job once a job has completed on each worker (the scouts poll
    # with the backoff until then)
    jobs = calls["create"]
    assert jobs == sum(o.bulk_jobs for o in objects.values())
    assert calls["poll"] <= 2 * jobs + 40, calls
    # a job read to the end is left to Salesforce's 7-day retention (decision 0037)
    assert calls["delete"] == 0, calls
    with env.repo() as repo:
        assert {k: v for k, v in compare_org(env.em, repo, "acme", sorted(objects)).items() if v} == {}


def test_a_full_reads_small_objects_five_to_a_composite_request(env: BackupEnv) -> None:
    """A full counts its objects five to a composite request; the objects small enough to be read
    through REST are then read five to a composite request too, from the first page of their own
    data query, and their tasks write those rows (decision 0043). Before, each small object cost a
    REST query call of its own."""
    since = int(env.em.admin("GET", "/requests", params={"limit": 1})["last_seq"])
    full = env.backup("acme", full=True, options=replace(TEST_OPTIONS, id_sweep_every=0))
    assert (full.kind, full.state) == ("full", "succeeded"), full.error_message
    calls = _kinds(env, since)
    objects = full.objects
    small = [n for n, o in objects.items() if 0 < o.records <= TEST_OPTIONS.rest_limit and o.bulk_jobs == 0]
    rest_only = [n for n, o in objects.items() if o.extraction and o.extraction.reason == "bulk_unsupported"]
    cut = [n for n, o in objects.items() if o.partitions > 1]
    assert len(small) >= 5, {n: o.records for n, o in objects.items()}
    # the plain queries left: the job's permission check and the REST paging of objects Bulk cannot
    # read; none for a small object, whose page came with four others'
    assert calls["query"] <= 1 + len(rest_only), (calls, rest_only)
    # composites: the describes, the COUNT()s and the small objects' pages (five each), and the Id
    # bounds and range counts of the objects cut
    assert calls["composite"] <= 1 + 2 * -(-len(objects) // 5) + 2 * len(cut), calls
    with env.repo() as repo:
        assert {k: v for k, v in compare_org(env.em, repo, "acme", sorted(objects)).items() if v} == {}


def test_a_small_changed_window_is_read_by_its_probe_alone(env: BackupEnv) -> None:
    """The window probe of an incremental reads a changed object's window with every field; when
    its one page holds the whole window, the object's task writes those rows and asks nothing
    more. A changed Account then costs the REST calls it costs when nothing changed (its probe,
    in a composite request with other objects' probes, and the delete log); before, its task read
    the same window again."""
    assert env.backup("acme").state == "succeeded"  # what the incremental continues
    sf = _sf(env)
    ids = [r["Id"] for r in sf.query("SELECT Id FROM Account ORDER BY Id LIMIT 3")["records"]]
    for n, i in enumerate(ids):
        sf.Account.update(i, {"Name": f"Probed {n}"})
    changed = env.backup("acme")
    assert (changed.kind, changed.state) == ("incremental", "succeeded"), changed.error_message
    unchanged = env.backup("acme")
    assert (unchanged.kind, unchanged.state) == ("incremental", "succeeded"), unchanged.error_message
    account, still = changed.objects["Account"], unchanged.objects["Account"]
    assert account.records == 3 and still.records == 0
    assert sum(account.calls.values()) == sum(still.calls.values()), (account.calls, still.calls)
    with env.repo() as repo:
        diffs = compare_org(env.em, repo, "acme", ["Account"])
    assert not any(diffs.values()), diffs


def test_an_incremental_probes_five_windows_per_call(env: BackupEnv) -> None:
    """Each incremental object read by its cursor through Bulk probes its window with one REST query;
    the probes' first pages go five to a composite request (one API call), not one call each."""
    options = replace(TEST_OPTIONS, id_sweep_every=0)  # no sweep: every object probes
    assert env.backup("acme", options=options).state == "succeeded"
    since = int(env.em.admin("GET", "/requests", params={"limit": 1})["last_seq"])
    inc = env.backup("acme", options=options)
    assert (inc.kind, inc.state) == ("incremental", "succeeded"), inc.error_message
    calls = _kinds(env, since)
    swept = [n for n, o in inc.objects.items() if "swept" in (o.reason or "")]  # not replicateable
    probed = [n for n, o in inc.objects.items() if o.extraction and o.extraction.reason != "bulk_unsupported"]
    rest_read = len(inc.objects) - len(probed)  # objects Bulk cannot read: one query page each
    assert len(probed) - len(swept) >= 15, inc.objects
    # left as plain queries: the job's permission check, the REST reads, and a swept object's
    # COUNT() and page of Ids
    assert calls["query"] <= 1 + rest_read + 2 * len(swept), (calls, swept)
    assert calls["composite"] <= 1 + -(-len(probed) // 5), calls
    # and the delete log of every replicateable one in at most four composite calls (decision 0041);
    # the other calls: describeGlobal and /limits
    assert 1 <= calls["composite deleted"] <= 4 and calls["other"] <= 2, calls


def test_the_workers_get_the_jobs_plugin_while_the_org_is_discovered(
    env: BackupEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """Decision 0046: the job's worker plugin is registered, and every worker opens the repository,
    in a thread of its own while the driver discovers the org; before, discovery and the delete
    log's calls ended first, and the first probes and counts waited for it (0.6-1.2 s of a 2-5 s
    incremental, traced on the emulator's request log). The global describe is held by a ``hold``
    fault: the plugin is on every worker before it is released."""
    describe = {"path_regex": r"/sobjects$", "method": "GET", "kind": "hold"}
    hold = env.em.admin("POST", "/faults", json=describe)
    with ThreadPoolExecutor(max_workers=1) as pool:
        job = pool.submit(env.backup, "acme", options=TEST_OPTIONS)
        try:
            poll_for(lambda: _fired(env, hold["id"]), timeout=120)
            plugins = poll_for(lambda: _job_plugins(env), timeout=120)
            assert all(plugins.values()), plugins  # registered while the describe is held
        finally:
            env.em.admin("POST", f"/faults/{hold['id']}/release")
        result = job.result(timeout=600)
    assert result.state == "succeeded", result.error_message
    assert not any(_job_plugins(env).values())  # unregistered when the job ended
    # once: a second unregister makes the scheduler log an error with its traceback (make demo)
    assert not [r for r in caplog.records if "unregister_worker_plugin" in r.getMessage()]


def test_the_objects_are_sized_while_the_workers_get_the_jobs_plugin(
    env: BackupEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's first sizing composite (``COUNT()`` queries, or an incremental's window probes)
    goes out while its worker plugin is still on its way;
    only the first submit waits for the workers. Before, ``execute`` waited for
    :func:`~engine.jobs.worker.prepare_workers` before planning, and an incremental's window probes
    started 0.9 s after its delete log (2M ``fast``, traced on the emulator's request log).

    The workers' preparation is held (it runs after the test saw a sizing request or gave up)."""
    import engine.jobs.runner as runner

    since = int(env.em.admin("GET", "/requests", params={"limit": 1})["last_seq"])
    seen: list[bool] = []
    prepare = runner.prepare_workers

    def held(*args: Any, **kwargs: Any) -> str:
        try:
            poll_for(lambda: _sizing_requests(env, since), timeout=120)
            seen.append(True)
        except TimeoutError:
            seen.append(False)
        return prepare(*args, **kwargs)

    monkeypatch.setattr(runner, "prepare_workers", held)
    result = env.backup("acme", options=TEST_OPTIONS)
    assert result.state == "succeeded", result.error_message
    assert seen == [True], "the objects were sized only once the workers had the job's plugin"
    assert not any(_job_plugins(env).values())


def _sizing_requests(env: BackupEnv, since: int) -> int:
    """Composite requests of queries after ``since`` (query subrequests only: the planner's)."""
    reqs = env.em.admin("GET", "/requests", params={"since": since})["requests"]
    queries = ("/query", "/queryAll")
    return sum(1 for r in reqs if r.get("subrequests") and all(s.endswith(queries) for s in r["subrequests"]))


def _fired(env: BackupEnv, fault_id: int) -> bool:
    return any(f["id"] == fault_id and f["fired"] for f in env.em.admin("GET", "/faults")["faults"])


def _job_plugins(env: BackupEnv) -> dict[str, list[str]]:
    """The job plugins (``sfvault-<job>``) on each worker; empty when there is none anywhere."""

    def names(dask_worker: Any) -> list[str]:
        return sorted(n for n in dask_worker.plugins if n.startswith("sfvault-"))

    found: dict[str, list[str]] = env.dask.run(names)
    return found if any(found.values()) else {}
