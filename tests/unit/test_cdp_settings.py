"""The start time and interval of continuous data protection (decision 0033): parsing and bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import CdpTimingRefused
from engine.jobs.cdp_settings import (
    MAX_INTERVAL_S,
    MIN_INTERVAL_S,
    CdpSetting,
    parse_interval,
    parse_start,
)


@pytest.mark.parametrize(("text", "seconds"), [("1h", 3600), ("15m", 900), ("90s", 90), ("120", 120),
                                               (" 24h ", 86_400), ("1m", 60)])  # fmt: skip
def test_intervals(text: str, seconds: int) -> None:
    assert parse_interval("acme", text) == seconds


@pytest.mark.parametrize("text", ["59s", "25h", "0", "1d", "h", "-1h", "1.5h", ""])
def test_bad_intervals_are_sfv_624(text: str) -> None:
    with pytest.raises(CdpTimingRefused) as err:
        parse_interval("acme", text)
    assert err.value.code == "SFV-624" and err.value.http_status == 422


@given(st.integers(min_value=0, max_value=10 * MAX_INTERVAL_S))
def test_any_seconds_inside_the_bounds_are_kept(n: int) -> None:
    if MIN_INTERVAL_S <= n <= MAX_INTERVAL_S:
        assert parse_interval("acme", str(n)) == n
    else:
        with pytest.raises(CdpTimingRefused):
            parse_interval("acme", str(n))


def test_start_times_are_utc_instants_with_a_zone() -> None:
    paris = timezone(timedelta(hours=1))
    assert parse_start("acme", "2026-12-07T03:00:00+01:00") == datetime(2026, 12, 7, 2, tzinfo=UTC)
    assert parse_start("acme", datetime(2026, 12, 7, 3, tzinfo=paris).isoformat()).tzinfo == UTC
    for bad in ("2026-12-07T03:00:00", "tomorrow", "1999-12-31T23:00:00Z", "2100-01-01T00:00:00Z"):
        with pytest.raises(CdpTimingRefused):
            parse_start("acme", bad)


def test_the_heartbeat_is_at_most_a_minute_and_never_above_the_interval() -> None:
    assert CdpSetting(True, ("Account",), None, 3600).heartbeat_s == 60
    assert CdpSetting(True, ("Account",), None, 60).heartbeat_s == 60
