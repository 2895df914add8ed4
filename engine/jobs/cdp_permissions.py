"""What Change Data Capture needs, for the permission check of an org with protection on
(decision 0033). Entries have the shape of the report's ``user_permissions`` (``permission``,
``label``, ``granted``, ``needed_for`` = ``change data capture``, ``why``):

1. **API Enabled**: the Pub/Sub API authenticates with the user's session like REST;
2. per protected object, **View All Data, or View All on the object**: Salesforce delivers an
   object's change events only to a user who may see every record of it;
3. per protected object, **the object selected in Setup > Change Data Capture**, asked through the
   Pub/Sub API (``GetTopic`` of ``/data/<Object>ChangeEvent`` with the user's session, which also
   proves the Pub/Sub API answers the user): NOT_FOUND means not selected (SFV-622); any other
   refusal is reported with its code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.errors import CdcTopicNotFound, SfvaultError

NEEDED_FOR = "change data capture"


def _granted(user_permissions: list[dict[str, Any]], field: str) -> bool:
    return any(p.get("permission") == field and p.get("granted") for p in user_permissions)


def cdc_requirements(
    user_permissions: list[dict[str, Any]], objects: list[dict[str, Any]], protected: list[str],
    topic_check: Callable[[str], str | None],
) -> list[dict[str, Any]]:  # fmt: skip
    """The entries for ``protected``; ``topic_check(obj)`` answers None when the object's change
    event topic can be subscribed, else why not (a coded message)."""
    view_all_data = _granted(user_permissions, "PermissionsViewAllData")
    view_all = {str(o["object"]): bool(o.get("view_all_records")) for o in objects}
    out = [{
        "permission": "PermissionsApiEnabled", "label": "API Enabled", "needed_for": NEEDED_FOR,
        "granted": _granted(user_permissions, "PermissionsApiEnabled"),
        "why": "the Pub/Sub API (change events) authenticates with the user's session, as REST does",
    }]  # fmt: skip
    for obj in protected:
        out.append({
            "permission": f"PermissionsViewAllRecords:{obj}", "label": f"View All Data, or View All on {obj}",
            "needed_for": NEEDED_FOR, "granted": view_all_data or view_all.get(obj, False),
            "why": f"Salesforce delivers {obj} change events only to a user who may see every {obj} record",
        })  # fmt: skip
        problem = topic_check(obj)
        out.append({
            "permission": f"ChangeDataCapture:{obj}",
            "label": f"{obj} selected in Setup > Change Data Capture",
            "needed_for": NEEDED_FOR, "granted": problem is None,
            "why": problem or f"the org publishes {obj} change events and the Pub/Sub API answers the user",
        })  # fmt: skip
    return out


def pubsub_topic_check(client: Any) -> Callable[[str], str | None]:
    """``topic_check`` over an open :class:`engine.cdc.stream.PubSubClient`."""
    from engine.jobs.cdp import topic_of

    def check(obj: str) -> str | None:
        try:
            info = client.get_topic(topic_of(obj))
        except CdcTopicNotFound:
            return (f"[SFV-622] Change Data Capture is not enabled for {obj} in the org "
                    "(Setup > Change Data Capture)")  # fmt: skip
        except SfvaultError as err:
            return f"[{err.code}] {err.message}"
        return None if info.can_subscribe else f"the user may not subscribe to {topic_of(obj)}"

    return check
