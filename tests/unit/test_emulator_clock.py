"""The emulator clock: frozen, advanced, millisecond precision, aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from emulator.clock import EmulatorClock


def test_frozen_clock_stays_until_advanced() -> None:
    start = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    clock = EmulatorClock(start)
    assert clock.frozen
    assert clock.now() == datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert clock.now() == clock.now()
    assert clock.advance(1.5) == datetime(2025, 3, 1, 12, 0, 1, 623000, tzinfo=UTC)
    assert clock.now() == datetime(2025, 3, 1, 12, 0, 1, 623000, tzinfo=UTC)


def test_set_converts_to_utc_and_freezes() -> None:
    clock = EmulatorClock()
    assert not clock.frozen
    clock.set(datetime(2025, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))))
    assert clock.now() == datetime(2025, 1, 1, tzinfo=UTC)
    assert clock.now().tzinfo is not None
    with pytest.raises(ValueError):
        clock.set(datetime(2025, 1, 1))  # naive


def test_running_clock_offset_and_freeze() -> None:
    clock = EmulatorClock()
    real = datetime.now(UTC)
    moved = clock.advance(86400)
    assert moved - real > timedelta(hours=23)
    frozen = clock.freeze()
    assert clock.now() == frozen
    assert frozen.microsecond % 1000 == 0
    clock.unfreeze()
    assert clock.now() >= frozen
