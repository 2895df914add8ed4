"""The start time and interval of continuous data protection (decision 0033): parsing and checks.

For a streaming subscriber the two settings of PRODUCT.md mean:

* **start time** (``cdp_start_at``): the instant the service's subscriber of the org begins to
  stream (its chain's ``since`` is at or after it); before it, nothing is subscribed. None: as soon
  as protection is on.
* **interval** (``cdp_interval_s``, default 1 hour): the longest a received change waits in the
  subscriber before its segment is sealed (``CdpOptions.segment_age_s``), i.e. the bound of the
  recovery-point objective beyond delivery. Segments are sealed earlier at every keep-alive that
  finds events buffered and every ``segment_events`` events, so under churn a change is durable
  within seconds; the interval only bounds a quiet stream. The heartbeat (how often an idle chain
  proves itself complete) is ``min(60 s, interval)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.errors import CdpTimingRefused

DEFAULT_INTERVAL_S = 3600
MIN_INTERVAL_S = 60
MAX_INTERVAL_S = 86_400
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_UNITS = {"s": 1, "m": 60, "h": 3600}
_DURATION = re.compile(r"^\s*(\d+)\s*([smh]?)\s*$")


@dataclass(frozen=True)
class CdpSetting:
    """One org's continuous data protection setting, as the catalog holds it."""

    enabled: bool
    objects: tuple[str, ...]
    start_at: datetime | None
    interval_s: int

    @property
    def heartbeat_s(self) -> float:
        return float(min(60, self.interval_s))


def parse_interval(org: str, text: str) -> int:
    """``"1h"``, ``"15m"``, ``"90s"`` or plain seconds -> seconds, checked (SFV-624)."""
    m = _DURATION.match(text)
    if m is None:
        raise CdpTimingRefused(org=org, what=f"interval {text!r} is not a duration like 1h, 15m or 90s")
    return check_interval(org, int(m.group(1)) * _UNITS[m.group(2) or "s"])


def check_interval(org: str, seconds: int) -> int:
    if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
        raise CdpTimingRefused(
            org=org,
            what=f"interval {seconds} s is outside {MIN_INTERVAL_S} s to {MAX_INTERVAL_S} s "
            "(1 minute to 24 hours)",
        )
    return seconds


def parse_start(org: str, text: str) -> datetime:
    """An ISO 8601 instant with a time zone -> UTC, checked (SFV-624)."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CdpTimingRefused(org=org, what=f"start {text!r} is not an ISO 8601 instant") from None
    return check_start(org, at)


def check_start(org: str, at: datetime) -> datetime:
    if at.tzinfo is None:
        raise CdpTimingRefused(
            org=org, what="the start time needs a time zone (e.g. 2026-12-07T02:00:00+00:00)"
        )
    at = at.astimezone(UTC)
    if not _EARLIEST <= at < _LATEST:
        raise CdpTimingRefused(org=org, what=f"start {at.isoformat()} is outside 2000-01-01 to 2100-01-01")
    return at


def setting_of(st: object) -> CdpSetting:
    """The :class:`CdpSetting` of an ``OrgSettings`` row."""
    start = getattr(st, "cdp_start_at", None)
    return CdpSetting(
        enabled=bool(getattr(st, "cdp_enabled", False)),
        objects=tuple(getattr(st, "cdp_objects", None) or ()),
        start_at=start.astimezone(UTC) if start is not None else None,
        interval_s=int(getattr(st, "cdp_interval_s", None) or DEFAULT_INTERVAL_S),
    )
