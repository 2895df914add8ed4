"""Small incremental windows go through REST; task clients share one pool and keep their own counters."""

from __future__ import annotations

import httpx

from engine.clock import FrozenClock
from engine.extract.client import SalesforceClient
from engine.extract.usage import ApiUsage
from engine.jobs.planning import JobOptions
from tests.unit.test_extract_client import GRANT, OPTS, Script


def test_rest_limit_is_capped_by_a_quarter_partition() -> None:
    assert JobOptions().rest_limit == 10_000
    assert JobOptions(target_rows=4000).rest_limit == 1000
    assert JobOptions(rest_max_rows=0).rest_limit == 0


def test_derived_clients_share_the_pool_and_count_their_own_calls() -> None:
    ok = httpx.Response(200, json={"ok": 1}, headers={"Sforce-Limit-Info": "api-usage=5/100"})
    script = Script(ok, ok, ok)
    base = SalesforceClient(
        GRANT, OPTS, clock=FrozenClock(), sleep=lambda s: None, transport=httpx.MockTransport(script)
    )
    a = base.derive(usage=ApiUsage())
    b = base.derive(usage=ApiUsage(), timeout_seconds=3.0)
    assert a.http is base.http and b.http is base.http and a.session is base.session
    assert a.get_json("limits") == {"ok": 1}
    assert b.get_json("limits") == {"ok": 1}
    assert a.usage.calls["rest"] == 1 and b.usage.calls["rest"] == 1 and "rest" not in base.usage.calls
    a.close()
    b.close()
    assert not base.http.is_closed, "closing a derived client leaves the shared pool open"
    assert base.get_json("limits") == {"ok": 1}
    assert script.tokens == 1, "one login for all of them"
    base.close()
    assert base.http.is_closed
