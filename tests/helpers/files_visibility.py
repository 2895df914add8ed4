"""The emulator's file-visibility rule for a user without "Query All Files", written out in plain
SQL over its store (independently of the SOQL translation in ``emulator/files.py``): a
ContentDocument the user owns or that a ContentDocumentLink shares with it, and the
ContentVersions of those documents. Shared by the emulator's own tests and the backup's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

QAF = "PermissionsQueryAllFiles"


@contextmanager
def without_query_all_files(em: Any) -> Iterator[str]:
    """The emulator's integration user loses Query All Files inside the block; yields its Id."""
    state = em.admin("POST", "/user-permissions", json={QAF: False})
    assert state["permissions"][QAF] is False
    try:
        yield str(state["user_id"])
    finally:
        assert em.admin("POST", "/user-permissions", json={QAF: True})["permissions"][QAF] is True


def visible_ids(em: Any, obj: str, user: str) -> set[str]:
    """Live Ids of ``obj`` (ContentDocument or ContentVersion) that ``user`` can see."""
    docs = (
        "SELECT Id FROM sf_contentdocument WHERE OwnerId = $1 OR Id IN "
        "(SELECT ContentDocumentId FROM sf_contentdocumentlink WHERE LinkedEntityId = $1)"
    )
    if obj == "ContentDocument":
        sql = f"SELECT Id FROM sf_contentdocument WHERE NOT IsDeleted AND Id IN ({docs})"
    else:
        sql = (
            f"SELECT Id FROM sf_contentversion WHERE NOT IsDeleted AND (ContentDocumentId IN ({docs}) "
            "OR (ContentDocumentId IS NULL AND OwnerId = $1))"
        )
    return {str(r[0]) for r in em.sql(sql, user)}


def live_ids(em: Any, obj: str) -> set[str]:
    """Every live Id of ``obj``."""
    return {str(r[0]) for r in em.sql(f"SELECT Id FROM sf_{obj.lower()} WHERE NOT IsDeleted")}
