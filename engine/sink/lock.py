"""One writer per org: lock objects under ``locks/`` with stale-lock detection.

A lock is a small plain JSON object ``locks/<scope>/<token>.<seq>.json``::

    {"format": "sfvault-lock", "version": 1, "scope": ..., "token": ..., "seq": n, "holder": ...,
     "host": ..., "pid": ..., "acquired_at": ..., "refreshed_at": ...}

``scope`` is the org id for a backup writer, or ``_exclusive`` for ``prune`` (which conflicts with
every other lock). A backup writer holds one *lane* of its org (version 2, decision 0016):
``incremental`` or ``full``; two locks of one org conflict when they hold the same lane or when
either holds the whole org (no lane: a version 1 lock, or a writer that asked for the whole org),
so an incremental runs beside a new cycle's full while two jobs of one lane never do. ``job`` is
the holder's job id when it knew it at acquisition (an incremental reads it back to find the fulls
in flight beside it). ``token`` is the acquisition time plus a random part. Objects are write-once,
so a refresh writes ``seq + 1`` and then deletes ``seq``.

A lock is *stale* (ignored, and removed by the next writer) when it was not refreshed for
``stale_after`` (30 minutes by default), or at once when it was taken on this host by a process
that no longer exists. Acquiring: list the live locks of conflicting scopes (any → ``RepositoryLocked``
naming the holder), put our lock, list again and back off (delete ours, ``RepositoryLocked``) if
any other conflicting lock is visible. Two racing writers can never both win (the listing after
the later put sees the earlier lock); both may back off and retry.

Locks are not encrypted: holder, host and pid are visible to whoever can list the storage.
"""

from __future__ import annotations

import io
import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any
from uuid import uuid4

import structlog

from engine.clock import Clock, SystemClock
from engine.errors import BackendError, LockLost, ObjectNotFound, RepositoryLocked
from engine.sink.backend import Backend, Handle, Kind
from engine.sink.manifest import check_segment

EXCLUSIVE = "_exclusive"
LOCK_FORMAT = "sfvault-lock"
LOCK_VERSION = 2
LANES = ("incremental", "full")
"""The lanes of an org's backup writers (decision 0016)."""
CDP_LANE_PREFIX = "cdp:"
"""``cdp:<object>``: the lane of the change event subscriber of one object (decision 0036): one
subscriber per object of an org at a time, beside any backup job; ``prune`` (exclusive) waits for it."""


def cdp_lane(obj: str) -> str:
    """The lock lane of the change event subscriber of ``obj``."""
    return f"{CDP_LANE_PREFIX}{obj}"


def _is_lane(lane: str) -> bool:
    return lane in LANES or (lane.startswith(CDP_LANE_PREFIX) and len(lane) > len(CDP_LANE_PREFIX))
DEFAULT_STALE_AFTER = timedelta(minutes=30)
DEFAULT_REFRESH_EVERY = timedelta(minutes=5)
MAX_LOCK_BYTES = 64 * 1024

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class LockInfo:
    """One lock object as read from the repository."""

    name: str
    scope: str
    token: str
    seq: int
    holder: str
    host: str
    pid: int
    acquired_at: datetime
    refreshed_at: datetime
    lane: str | None = None
    """The lane held (None: the whole org, as every version 1 lock)."""
    job: str | None = None
    """The holder's job id, when known at acquisition."""

    def describe(self) -> str:
        return f"{self.holder} on {self.host} (pid {self.pid})"

    def conflicts_with(self, scope: str, lane: str | None) -> bool:
        """Whether this lock keeps a writer of ``scope`` / ``lane`` out (stale or not)."""
        if EXCLUSIVE in (scope, self.scope):
            return True
        if self.scope != scope:
            return False
        return lane is None or self.lane is None or lane == self.lane


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(info: LockInfo, now: datetime, stale_after: timedelta) -> bool:
    """Not refreshed for ``stale_after``, or taken on this host by a process that is gone."""
    if now - info.refreshed_at > stale_after:
        return True
    return info.host == socket.gethostname() and not _pid_alive(info.pid)


def read_locks(backend: Backend) -> list[LockInfo]:
    """Every readable lock object (unreadable ones are logged and skipped: they cannot hold anything)."""
    out: list[LockInfo] = []
    for obj in backend.list(Kind.LOCK):
        try:
            if obj.size > MAX_LOCK_BYTES:
                raise ValueError("lock object too large")
            with backend.get(obj.handle) as fh:
                doc = json.loads(fh.read(MAX_LOCK_BYTES))
            if doc.get("format") != LOCK_FORMAT:
                raise ValueError("not a lock")
            out.append(
                LockInfo(
                    name=obj.handle.name,
                    scope=str(doc["scope"]),
                    token=str(doc["token"]),
                    seq=int(doc["seq"]),
                    holder=str(doc["holder"]),
                    host=str(doc["host"]),
                    pid=int(doc["pid"]),
                    acquired_at=datetime.fromisoformat(doc["acquired_at"]),
                    refreshed_at=datetime.fromisoformat(doc["refreshed_at"]),
                    lane=str(doc["lane"]) if doc.get("lane") is not None else None,
                    job=str(doc["job"]) if doc.get("job") is not None else None,
                )
            )
        except ObjectNotFound:
            continue  # released meanwhile
        except (ValueError, KeyError, TypeError) as err:
            log.warning("unreadable lock object ignored", name=obj.handle.path, error=str(err))
    return out


class RepoLock:
    """An exclusive lock of one scope (an org, or :data:`EXCLUSIVE` for the whole repository), or
    of one lane of an org (``lane``: one of :data:`LANES`, or :func:`cdp_lane`).

    Use as a context manager; call :meth:`refresh_if_due` regularly while writing (the
    repository's chunk writers do, after each chunk) and :meth:`check` before committing.
    """

    def __init__(
        self,
        backend: Backend,
        scope: str,
        holder: str,
        *,
        clock: Clock | None = None,
        stale_after: timedelta = DEFAULT_STALE_AFTER,
        refresh_every: timedelta = DEFAULT_REFRESH_EVERY,
        lane: str | None = None,
        job: str | None = None,
    ) -> None:
        if scope != EXCLUSIVE:
            check_segment(scope, "org")
        if lane is not None and (not _is_lane(lane) or scope == EXCLUSIVE):
            raise ValueError(f"lane must be one of {LANES} or cdp:<object> of an org's lock, not {lane!r}")
        self.lane = lane
        self.job = job
        self.backend = backend
        self.scope = scope
        self.holder = holder
        self.clock = clock or SystemClock()
        self.stale_after = stale_after
        self.refresh_every = refresh_every
        self.token = ""
        self.seq = 0
        self.acquired_at: datetime | None = None
        self.refreshed_at: datetime | None = None
        self.held = False

    @property
    def handle(self) -> Handle:
        return Handle(Kind.LOCK, f"{self.scope}/{self.token}.{self.seq:06d}.json")

    def _conflicts(self, infos: list[LockInfo], now: datetime) -> list[LockInfo]:
        out = []
        for info in infos:
            if info.token == self.token:
                continue
            if not info.conflicts_with(self.scope, self.lane):
                continue
            if is_stale(info, now, self.stale_after):
                self._remove_stale(info)
                continue
            out.append(info)
        return sorted(out, key=lambda i: i.token)

    def _remove_stale(self, info: LockInfo) -> None:
        log.warning("removing stale lock", name=info.name, holder=info.describe())
        try:
            self.backend.delete(Handle(Kind.LOCK, info.name))
        except ObjectNotFound:
            pass

    def _raise_locked(self, info: LockInfo) -> None:
        # the error reaches API answers and job rows: the holder (a job description) and since, never
        # the lock's path, host or pid, which go to the log only (issue 15, finding 22)
        log.warning("repository locked", lock=f"locks/{info.name}", holder=info.describe())
        raise RepositoryLocked(name=self.scope, holder=info.holder, since=info.acquired_at.isoformat())

    def _put(self) -> None:
        assert self.acquired_at is not None and self.refreshed_at is not None
        doc: dict[str, Any] = {
            "format": LOCK_FORMAT,
            "version": LOCK_VERSION,
            "scope": self.scope,
            "token": self.token,
            "seq": self.seq,
            "holder": self.holder,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": self.acquired_at.isoformat(),
            "refreshed_at": self.refreshed_at.isoformat(),
        }
        if self.lane is not None:
            doc["lane"] = self.lane
        if self.job is not None:
            doc["job"] = self.job
        body = json.dumps(doc, sort_keys=True).encode()
        self.backend.put(self.handle, io.BytesIO(body), len(body))

    def acquire(self) -> RepoLock:
        """Take the lock or raise ``RepositoryLocked`` naming the current holder."""
        now = self.clock.now()
        conflicts = self._conflicts(read_locks(self.backend), now)
        if conflicts:
            self._raise_locked(conflicts[0])
        self.token = f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid4().hex[:12]}"
        self.seq = 0
        self.acquired_at = self.refreshed_at = now
        self._put()
        self.held = True
        # Back off if any other conflicting lock is visible now, whatever its token: of two writers
        # whose puts raced, the later put's listing sees the earlier one, so two cannot both win
        # (both may back off, and retry later).
        others = self._conflicts(read_locks(self.backend), now)
        if others:
            self.release()
            self._raise_locked(others[0])
        return self

    def refresh(self) -> None:
        """Write the next lock object with a new ``refreshed_at`` and delete the previous one."""
        self.check()
        old = self.handle
        self.seq += 1
        self.refreshed_at = self.clock.now()
        self._put()
        try:
            self.backend.delete(old)
        except ObjectNotFound:
            pass

    def refresh_if_due(self) -> None:
        if (
            self.held
            and self.refreshed_at is not None
            and self.clock.now() - self.refreshed_at >= self.refresh_every
        ):
            self.refresh()

    def check(self) -> None:
        """``LockLost`` unless our lock object is still there and not stale."""
        if not self.held:
            raise LockLost(name=f"locks/{self.scope}", what="never acquired or already released")
        try:
            self.backend.stat(self.handle)
        except ObjectNotFound:
            raise LockLost(name=self.handle.path, what="the lock object was removed") from None
        assert self.refreshed_at is not None
        if self.clock.now() - self.refreshed_at > self.stale_after:
            raise LockLost(name=self.handle.path, what="not refreshed within the stale timeout")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            self.backend.delete(self.handle)
        except (ObjectNotFound, BackendError) as err:
            log.warning("could not remove lock", name=self.handle.path, error=str(err))

    def holders(self, lane: str) -> list[LockInfo]:
        """The live locks of this lock's org that hold ``lane`` or the whole org (ours excepted),
        oldest first: e.g. the full in flight beside an incremental."""
        now = self.clock.now()
        found = [
            info for info in read_locks(self.backend)
            if info.token != self.token and info.scope == self.scope and info.lane in (lane, None)
            and not is_stale(info, now, self.stale_after)
        ]  # fmt: skip
        return sorted(found, key=lambda i: i.token)

    def __enter__(self) -> RepoLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
