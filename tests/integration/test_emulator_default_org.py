"""An org served with default settings has a real org's shape: several hundred objects (issue 16).

A Sales and Service org describes 600 to 1,000 sObjects. ``sfvault emulator serve`` without
``--wide-org`` adds :data:`emulator.schema_data.REAL_ORG_OBJECTS` objects to the 27 core ones;
the test harness asks for none unless a test wants them (decision 0038).
"""

from __future__ import annotations

import pytest

from emulator.schema_data import REAL_ORG_OBJECTS
from tests.helpers.emulator_proc import bearer_client, running_emulator

pytestmark = pytest.mark.emulator

V = "/services/data/v62.0"


def test_an_org_served_with_default_settings_describes_several_hundred_objects() -> None:
    with (
        running_emulator(scale=500, seed=3, tls=True, timeout=300, wide_org=None) as em,
        bearer_client(em) as api,
    ):
        described = {o["name"]: o for o in api.get(f"{V}/sobjects").json()["sobjects"]}
        assert len(described) >= 27 + REAL_ORG_OBJECTS >= 300
        # the kinds a real org has, flagged as Salesforce flags them
        assert any(n.endswith("History") for n in described) and any(n.endswith("Share") for n in described)
        assert any(n.endswith("Feed") for n in described) and any(
            n.endswith("ChangeEvent") for n in described
        )
        assert not described["Vault_Key__c"]["queryable"]
        assert described["Sync_State__c"]["queryable"] and not described["Sync_State__c"]["retrieveable"]
        wide = api.get(f"{V}/sobjects/Wide__c/describe").json()
        assert len(wide["fields"]) == 800
        count = api.get(f"{V}/query", params={"q": "SELECT COUNT() FROM Wide__c"}).json()["totalSize"]
        assert count > 0


def test_the_harness_serves_the_core_objects_unless_asked() -> None:
    with running_emulator(scale=500, seed=3, tls=True, timeout=300) as em, bearer_client(em) as api:
        described = api.get(f"{V}/sobjects").json()["sobjects"]
        assert len(described) == 27
