"""The change event subscribers of ``sfvault serve``: one per org with protection on (decision 0033).

:class:`CdpSupervisor` mirrors the scheduler (:mod:`api.scheduler`): a daemon thread reconciles
every ``settings.scheduler_tick_seconds`` the running subscribers with the catalog (protection
turned on or off by the CLI, a changed object list, start time or interval); the API calls
:meth:`CdpSupervisor.sync` at once after ``PUT /v1/orgs/{org}/cdp``. Each org runs in an
:class:`OrgSubscriber` thread:

1. it waits until the org's start time (``cdp_start_at``), then logs in and runs one
   :class:`~engine.jobs.cdp.TopicSubscriber` per protected object on the org's Pub/Sub channel
   (``segment_age_s`` = the org's interval: the longest a received change waits to be sealed);
2. when any object's subscriber ends on an error (after its own reconnects), every object of the
   org is stopped: the streams are cancelled and what each holds is sealed, then the run ends;
3. an expired replay id (SFV-452) starts the catch-up incremental job of those objects through
   the job service (as ``sfvault cdp run`` does) and resubscribes at once (a new chain); any
   other failure is logged on one line (``cdp: org=... code=... error=... retry_in=...``), shown
   by ``GET /v1/orgs/{org}/cdp`` and retried after an exponential backoff. Nothing an org's
   subscriber raises leaves its thread: the service goes on.

Stopping (protection off, shutdown) cancels the streams, joins the threads and seals what they
hold: a crash between two seals loses only uncommitted events, which the next run receives
again after the last committed replay id (decision 0026), so nothing is lost or applied twice.
Do not run ``sfvault cdp run ORG`` for an org the service protects: two subscribers would write
two chains of the same events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from engine.catalog.models import Org
from engine.cdc.stream import PubSubClient, Subscription
from engine.errors import CdpSubscriberFailed, ReplayIdExpired, SfvaultError
from engine.jobs.cdp import CdpOptions, SubscriberLocks, TopicResult, TopicSubscriber, connect_pubsub
from engine.jobs.cdp_settings import CdpSetting, setting_of
from engine.sink.segments import SegmentStore

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sqlalchemy.orm import Session

    from api.background import JobRunner
    from engine.clock import Clock
    from engine.config import Settings
    from engine.jobs.service import JobService


class ServiceContext(Protocol):
    """What the supervisor uses of the service's ``api.context.AppContext`` (a protocol, so that
    ``api.context`` can hold the supervisor without the two modules importing each other)."""

    settings: Settings
    clock: Clock
    runner: JobRunner

    @property
    def jobs(self) -> JobService: ...

    def tx(self) -> AbstractContextManager[Session]: ...

log = logging.getLogger("sfvault.api.cdp")


@dataclass(frozen=True)
class Backoff:
    """Seconds before the n-th retry of a failed org: ``first * 2**(n-1)``, at most ``most``."""

    first: float = 5.0
    most: float = 900.0

    def delay(self, attempt: int) -> float:
        return float(min(self.most, self.first * 2 ** max(0, attempt - 1)))


@dataclass
class OrgStatus:
    """What ``GET /v1/orgs/{org}/cdp`` shows of the org's subscriber in this process."""

    state: str = "starting"
    """``waiting`` (start time ahead), ``running``, ``backoff`` (after a failure), ``stopped``."""
    started_at: datetime | None = None
    runs: int = 0
    failures: int = 0
    events: int = 0
    segments: int = 0
    last_error_code: str | None = None
    last_error_message: str | None = None
    last_error_at: datetime | None = None
    retry_at: datetime | None = None
    catch_up_jobs: list[str] = field(default_factory=list)


class _TrackedClient(PubSubClient):
    """The org's channel, remembering its open Subscribe calls so a stop can cancel them (a stream
    blocked until the next keep-alive, 270 s in production, must not hold a shutdown)."""

    def __init__(self, base: PubSubClient) -> None:
        super().__init__(base.channel, base.auth, base.org, base.schemas, base.timeout_s)
        self._open: list[Subscription] = []
        self._guard = threading.Lock()
        self.closed = False

    def subscribe(self, topic: str, **kw: Any) -> Subscription:
        with self._guard:
            if self.closed:  # a stop is under way: no new stream (not retried: not transient)
                raise CdpSubscriberFailed(org=self.org, what="stopping")
            sub = super().subscribe(topic, **kw)
            self._open.append(sub)
            return sub

    def cancel_all(self) -> None:
        with self._guard:
            self.closed = True
            subs, self._open = self._open, []
        for sub in subs:
            sub.close()


class OrgSubscriber:
    """One org's subscribers on a thread; see the module docstring."""

    def __init__(self, ctx: ServiceContext, org: str, setting: CdpSetting, backoff: Backoff) -> None:
        self.ctx, self.org, self.setting, self.backoff = ctx, org, setting, backoff
        self.status = OrgStatus()
        self.subscribers: list[TopicSubscriber] = []
        """The current run's per-object subscribers (read by tests and for the status)."""
        self._halt = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"sfvault-cdp-{self.org}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Cancel the streams, seal what they hold, end the thread."""
        self._halt.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.status.state = "stopped"

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- the loop ---------------------------------------------------------------------------

    def _loop(self) -> None:
        start = self.setting.start_at
        if start is not None:
            delay = (start - self.ctx.clock.now()).total_seconds()
            if delay > 0:
                self.status.state = "waiting"
                if self._halt.wait(delay):
                    return
        attempt = 0
        while not self._halt.is_set():
            began = time.monotonic()
            try:
                results = self._run_once()
                err = next((r.error for r in results if r.error is not None), None)
            except Exception as exc:  # login, repository, GetTopic: the same backoff
                results, err = [], exc
            if self._halt.is_set():
                return
            expired = [r.object for r in results if isinstance(r.error, ReplayIdExpired)]
            if expired:
                self._catch_up(expired, err)
                continue  # the restart segment began a new chain: resubscribe at once
            # a run that committed or lasted is not a repeated failure: the backoff starts over
            lasted = time.monotonic() - began >= self.backoff.most
            attempt = 1 if lasted or any(r.segments for r in results) else attempt + 1
            self._failed(err, attempt)
            if self._halt.wait(self.backoff.delay(attempt)):
                return

    def _run_once(self) -> list[TopicResult]:
        """Log in, stream every protected object until one fails or the org is stopped."""
        from engine.sink.repository import open_repository

        base, rest = connect_pubsub(self.ctx.settings, self.org)
        client = _TrackedClient(base)
        try:
            repo = open_repository(self.ctx.settings)
            try:
                return self._stream(repo, client, rest)
            finally:
                repo.close()
        finally:
            client.cancel_all()
            client.close()
            rest.close()

    def _stream(self, repo: Any, client: _TrackedClient, rest: Any) -> list[TopicResult]:
        s = self.setting
        opts = CdpOptions(segment_age_s=float(s.interval_s), heartbeat_s=s.heartbeat_s,
                          retry_wait_max=self.ctx.settings.retry_wait_max)  # fmt: skip
        store = SegmentStore(repo)
        subs = [TopicSubscriber(self.org, o, client, store, opts, clock=self.ctx.clock, rest=rest)
                for o in s.objects]  # fmt: skip
        for sub in subs:
            client.get_topic(sub.topic)  # NOT_FOUND (CDC turned off for the object) fails here
        self.subscribers = subs
        self._wake.clear()
        if self._halt.is_set():  # a stop that came before the clear must not be lost
            self._wake.set()
        with SubscriberLocks(repo, self.org, list(s.objects), opts.stop, wake=self._wake):  # decision 0036
            self._run_threads(subs, opts, client)
        self.status.events += sum(sub.result.events for sub in subs)
        self.status.segments += sum(sub.result.segments for sub in subs)
        return [sub.result for sub in subs]

    def _run_threads(self, subs: list[TopicSubscriber], opts: CdpOptions, client: _TrackedClient) -> None:
        threads = [threading.Thread(target=self._run_topic, args=(sub,), daemon=True,
                                    name=f"sfvault-cdp-{self.org}-{sub.obj}") for sub in subs]  # fmt: skip
        self.status.state, self.status.started_at = "running", self.ctx.clock.now()
        self.status.runs += 1
        for t in threads:
            t.start()
        self._wake.wait()  # an object's subscriber ended (an error), the lock was lost, or the org is stopped
        opts.stop.set()
        self._seal_all(subs)  # what they hold, before the cancel makes them drop it
        client.cancel_all()
        for t in threads:
            t.join()
        self._seal_all(subs)  # anything taken between the seal and the cancel

    def _seal_all(self, subs: list[TopicSubscriber]) -> None:
        for sub in subs:
            try:
                with sub._lock:
                    sub.seal()
            except Exception as exc:  # not sealed: received again by the next run
                log.error("cdp: org=%s object=%s step=seal code=%s error=%s", self.org, sub.obj,
                          *_coded(self.org, exc))  # fmt: skip

    def _run_topic(self, sub: TopicSubscriber) -> None:
        try:
            sub.run()
        finally:
            self._wake.set()

    # --- failures ---------------------------------------------------------------------------

    def _failed(self, err: BaseException | None, attempt: int) -> None:
        """One structured log line, the status, and when the next attempt is."""
        if err is None:
            err = CdpSubscriberFailed(org=self.org, what="the subscribers ended without an error")
        code, message = _coded(self.org, err)
        delay = self.backoff.delay(attempt)
        now = self.ctx.clock.now()
        st = self.status
        st.state, st.failures = "backoff", st.failures + 1
        st.last_error_code, st.last_error_message, st.last_error_at = code, message, now
        st.retry_at = datetime.fromtimestamp(now.timestamp() + delay, tz=now.tzinfo)
        log.error("cdp: org=%s step=subscriber code=%s attempt=%d retry_in=%.1fs error=%s",
                  self.org, code, attempt, delay, message.replace("\n", " "))  # fmt: skip

    def _catch_up(self, objects: list[str], err: BaseException | None) -> None:
        """SFV-452: the catch-up incremental backup of ``objects`` through the job service."""
        from engine.jobs.planning import BackupRequest

        st = self.status
        code, message = _coded(self.org, err) if err is not None else (ReplayIdExpired.code, "")
        st.last_error_code, st.last_error_message, st.last_error_at = code, message, self.ctx.clock.now()
        try:
            service = self.ctx.jobs
            job = service.admit(
                self.org, BackupRequest(org=self.org, objects=tuple(objects)), trigger="manual"
            )
            self.ctx.runner.start_backup(job, service)
        except Exception as exc:  # e.g. SFV-601 (a job of the org is running): said, not fatal
            c, m = _coded(self.org, exc)
            log.error("cdp: org=%s step=catch_up code=%s objects=%s error=%s", self.org, c, ",".join(objects),
                      m.replace("\n", " "))  # fmt: skip
            return
        st.catch_up_jobs.append(job.job_id)
        log.warning("cdp: org=%s step=catch_up code=%s objects=%s job=%s", self.org, ReplayIdExpired.code,
                    ",".join(objects), job.job_id)  # fmt: skip


def _coded(org: str, err: BaseException) -> tuple[str, str]:
    if isinstance(err, SfvaultError):
        return err.code, err.message
    wrapped = CdpSubscriberFailed(org=org, what=f"{type(err).__name__}: {err}")
    return wrapped.code, wrapped.message


class CdpSupervisor:
    """Every org's :class:`OrgSubscriber`, kept in step with the catalog."""

    def __init__(self, ctx: ServiceContext, *, backoff: Backoff | None = None,
                 on_change: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.ctx = ctx
        self.backoff = backoff or Backoff()
        self._orgs: dict[str, OrgSubscriber] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_change = on_change

    def start(self) -> None:
        """Start the subscribers of the protected orgs, then reconcile every tick."""
        self._stop.clear()
        self.sync()
        self._thread = threading.Thread(target=self._loop, name="sfvault-cdp-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """At shutdown: every org's streams cancelled and what they hold sealed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        with self._lock:
            subs, self._orgs = list(self._orgs.values()), {}
        for sub in subs:
            sub.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.ctx.settings.scheduler_tick_seconds):
            try:
                self.sync()
            except Exception:  # the next tick tries again
                log.exception("cdp: reconcile failed")

    def wanted(self) -> dict[str, CdpSetting]:
        """The orgs whose protection is on (with objects and stored credentials)."""
        with self.ctx.tx() as s:
            rows = s.scalars(select(Org).options(selectinload(Org.settings)))
            out = {o.name: setting_of(o.settings) for o in rows
                   if o.settings is not None and o.credentials_sealed is not None}  # fmt: skip
        return {name: st for name, st in out.items() if st.enabled and st.objects}

    def sync(self) -> None:
        """Start, restart (changed setting) and stop subscribers to match the catalog."""
        wanted = self.wanted()
        with self._lock:
            if self._stop.is_set():
                return
            for name in [n for n, sub in self._orgs.items() if wanted.get(n) != sub.setting]:
                self._orgs.pop(name).stop()
                log.info("cdp: org=%s subscriber stopped", name)
            for name, setting in wanted.items():
                if name not in self._orgs:
                    sub = OrgSubscriber(self.ctx, name, setting, self.backoff)
                    self._orgs[name] = sub
                    sub.start()
                    log.info("cdp: org=%s subscriber started objects=%s interval=%ds", name,
                             ",".join(setting.objects), setting.interval_s)  # fmt: skip

    def status(self, org: str) -> OrgStatus | None:
        with self._lock:
            sub = self._orgs.get(org)
            return replace(sub.status, catch_up_jobs=list(sub.status.catch_up_jobs)) if sub else None
