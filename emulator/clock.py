"""The emulator's controllable clock.

Every timestamp the emulated org writes (CreatedDate, SystemModstamp, deletion times, the
change log) comes from one :class:`EmulatorClock`, so tests can freeze and move time instead of
sleeping.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


def _ms(dt: datetime) -> datetime:
    """``dt`` in UTC, truncated to milliseconds (Salesforce keeps millisecond precision)."""
    if dt.tzinfo is None:
        raise ValueError("the emulator clock only takes aware datetimes")
    dt = dt.astimezone(UTC)
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


class EmulatorClock:
    """A UTC clock with millisecond precision that tests can control.

    By default it follows real time plus an offset. Once :meth:`set` (or :meth:`freeze`) has
    been called it is frozen: it only moves when :meth:`advance` or :meth:`set` moves it.
    :meth:`advance` on a running clock shifts its offset. Thread-safe.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._frozen: datetime | None = _ms(start) if start is not None else None

    @property
    def frozen(self) -> bool:
        with self._lock:
            return self._frozen is not None

    def now(self) -> datetime:
        """The current emulated time: aware, UTC, millisecond precision."""
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return _ms(datetime.now(UTC) + self._offset)

    def set(self, dt: datetime) -> None:
        """Jump to ``dt`` and freeze there."""
        with self._lock:
            self._frozen = _ms(dt)

    def freeze(self) -> datetime:
        """Stop the clock at the current time and return it."""
        with self._lock:
            if self._frozen is None:
                self._frozen = _ms(datetime.now(UTC) + self._offset)
            return self._frozen

    def unfreeze(self) -> None:
        """Follow real time again, continuing from the frozen time."""
        with self._lock:
            if self._frozen is not None:
                self._offset = self._frozen - datetime.now(UTC)
                self._frozen = None

    def advance(self, seconds: float) -> datetime:
        """Move the clock ``seconds`` forward (backwards if negative) and return the new time."""
        delta = timedelta(seconds=seconds)
        with self._lock:
            if self._frozen is not None:
                self._frozen = _ms(self._frozen + delta)
                return self._frozen
            self._offset += delta
            return _ms(datetime.now(UTC) + self._offset)
