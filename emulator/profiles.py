"""Load profiles (``fast``, ``realistic``) and fault injection.

A :class:`Profile` holds every shaping knob; ``fast`` turns them all off. ``realistic`` keeps
the proportions of a real org (fixed latency : processing time : transfer time) at rates this
machine can absorb (DESIGN.md "Calibrating the realistic profile"): about 4 MB/s per result
stream, about 5 MB/s of processing per job, a 1-3 s queue delay and at most 8 running jobs.

:class:`FaultInjector` holds admin-armed faults: fail the next N requests whose path matches a
regex with a status and Salesforce error body, or cut the next N result downloads half way.
"""

from __future__ import annotations

import dataclasses
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Profile:
    """Shaping knobs. Zero means "off" for every rate, delay and cap."""

    name: str = "fast"
    latency_ms: float = 0.0
    """Added to every API request before it is handled."""
    stream_bytes_per_s: float = 0.0
    """Bandwidth cap of one Bulk result download (0 = unlimited)."""
    job_bytes_per_s: float = 0.0
    """Server-side processing rate of a query job: it spends result_bytes / rate in InProgress."""
    queue_delay_min_s: float = 0.0
    queue_delay_max_s: float = 0.0
    """A job waits a random delay in this range in UploadComplete before it starts."""
    max_running_jobs: int = 0
    """Cap on query jobs in InProgress at once (0 = no cap); others wait in UploadComplete."""
    error_rate: float = 0.0
    """Probability that an API request answers 503 SERVER_UNAVAILABLE."""
    timeout_rate: float = 0.0
    """Probability that an API request stalls ``timeout_s`` and then answers 503."""
    timeout_s: float = 30.0
    query_timeout_rows: int = 0
    """A query job over this many rows ends Failed with a QUERY_TIMEOUT-style message (0 = off)."""
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, values: dict[str, Any]) -> None:
        """Set knobs from a dict (admin API, CLI flags); unknown keys raise ``KeyError``."""
        names = {f.name: f for f in dataclasses.fields(self)}
        for key, value in values.items():
            if key not in names:
                raise KeyError(key)
            if key == "name":
                self.name = str(value)
            elif key == "seed":
                self.seed = None if value is None else int(value)
            elif key in ("max_running_jobs", "query_timeout_rows"):
                setattr(self, key, int(value))
            else:
                setattr(self, key, float(value))


def fast_profile() -> Profile:
    return Profile(name="fast")


def realistic_profile() -> Profile:
    return Profile(
        name="realistic",
        latency_ms=80.0,
        stream_bytes_per_s=4_000_000.0,
        job_bytes_per_s=5_000_000.0,
        queue_delay_min_s=1.0,
        queue_delay_max_s=3.0,
        max_running_jobs=8,
        error_rate=0.002,
        timeout_rate=0.0005,
        timeout_s=30.0,
        query_timeout_rows=5_000_000,
    )


PROFILES = {"fast": fast_profile, "realistic": realistic_profile}


def profile_by_name(name: str) -> Profile:
    try:
        return PROFILES[name]()
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}") from None


class Randomness:
    """The profile's random source (seeded when the profile has a seed)."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def chance(self, p: float) -> bool:
        if p <= 0:
            return False
        with self._lock:
            return self._rng.random() < p

    def uniform(self, a: float, b: float) -> float:
        with self._lock:
            return self._rng.uniform(a, b)


@dataclass
class Fault:
    """One armed fault.

    ``kind`` is ``error`` (answer ``status`` with a Salesforce error body instead of handling the
    request), ``cut`` (send half of a Bulk result page, then drop the connection) or ``delay``
    (stall ``delay_s`` seconds, then handle the request normally) or ``fail_job`` (the query job
    that this create request makes ends ``Failed`` with ``message`` as its ``errorMessage``) or
    ``hold`` (stall until released with ``POST /__admin/faults/{id}/release``, or ``delay_s``
    seconds when given, else :data:`HOLD_MAX_S`; then handle the request normally: a test
    parks a client at a known step and lets it go on an event, with no sleep) or ``hold_job``
    (the Bulk API work this create request makes stays ``Queued``, a Bulk 2.0 job
    ``UploadComplete``, until the fault is released, or as long as ``hold`` would stall: a test
    sees a job or batch still pending, with no sleep).

    ``subrequests``: the fault (``error``, ``delay`` or ``hold``) also meets the subrequests of a
    composite request, matched by their own method and path: a test that arms a fault on one
    object's call meets it whether the client asks alone or inside ``/composite``. Off by default,
    so a fault armed for a plain request is never spent by a composite's subrequest.
    """

    path_regex: str
    kind: str = "error"
    status: int = 503
    error_code: str = "SERVER_UNAVAILABLE"
    message: str = "Server temporarily unavailable"
    method: str | None = None
    remaining: int = 1
    delay_s: float = 0.0
    subrequests: bool = False
    fired: int = 0
    id: int = 0
    released: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    _rx: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def matches(self, method: str, path: str) -> bool:
        if self._rx is None:
            self._rx = re.compile(self.path_regex)
        if self.method and self.method.upper() != method.upper():
            return False
        return self._rx.search(path) is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path_regex": self.path_regex,
            "kind": self.kind,
            "status": self.status,
            "error_code": self.error_code,
            "message": self.message,
            "method": self.method,
            "remaining": self.remaining,
            "delay_s": self.delay_s,
            "subrequests": self.subrequests,
            "fired": self.fired,
        }


FAULT_KINDS = ("error", "cut", "delay", "fail_job", "hold", "hold_job")
HOLD_MAX_S = 300.0
"""A ``hold`` fault without ``delay_s`` lets its request go after this long at the latest."""


class FaultInjector:
    """Armed faults, consumed in the order they were added. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1
        self._fired_total = 0

    def add(self, fault: Fault) -> Fault:
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}")
        re.compile(fault.path_regex)
        with self._lock:
            fault.id = self._next_id
            self._next_id += 1
            self._faults.append(fault)
        return fault

    def take(
        self, method: str, path: str, kinds: tuple[str, ...], *, subrequest: bool = False
    ) -> Fault | None:
        """Consume one shot of the first armed fault of ``kinds`` matching the request (a composite
        request's subrequest: only the faults armed with ``subrequests``)."""
        with self._lock:
            for fault in self._faults:
                if subrequest and not fault.subrequests:
                    continue
                if fault.kind in kinds and fault.remaining > 0 and fault.matches(method, path):
                    fault.remaining -= 1
                    fault.fired += 1
                    self._fired_total += 1
                    return fault
        return None

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def release(self, fault_id: int) -> bool:
        """Let the requests a ``hold`` fault stalls (and any it stalls later) go; False if unknown."""
        with self._lock:
            found = [f for f in self._faults if f.id == fault_id]
        for f in found:
            f.released.set()
        return bool(found)

    def clear(self) -> int:
        with self._lock:
            n = len(self._faults)
            for f in self._faults:
                f.released.set()  # a cleared hold stalls nobody any more
            self._faults.clear()
            return n

    @property
    def fired_total(self) -> int:
        with self._lock:
            return self._fired_total


class Throttle:
    """Paces one byte stream to ``bytes_per_s`` (token bucket without burst). 0 = no pacing."""

    def __init__(self, bytes_per_s: float) -> None:
        self.rate = bytes_per_s
        self._start = time.monotonic()
        self._sent = 0

    def delay_for(self, nbytes: int) -> float:
        """Seconds to wait before sending the next ``nbytes``."""
        if self.rate <= 0:
            return 0.0
        self._sent += nbytes
        due = self._start + self._sent / self.rate
        return max(0.0, due - time.monotonic())
