"""API tokens: shown once at creation, stored as SHA-256 (tokens are 256 random bits, so a
fast hash is enough; there is nothing to brute-force)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.catalog.models import ApiToken, Role
from engine.clock import Clock, SystemClock

TOKEN_PREFIX = "sfv_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, *, name: str, role: Role | str, clock: Clock | None = None
) -> tuple[ApiToken, str]:
    """A new token; returns the row and the clear token, which is never stored."""
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        token_hash=hash_token(clear),
        role=Role(role).value,
        created_at=(clock or SystemClock()).now(),
    )
    session.add(row)
    session.flush()
    return row, clear


def find_token(session: Session, token: str, *, clock: Clock | None = None) -> ApiToken | None:
    """The live token matching ``token`` (and stamp its use), or ``None``."""
    row = session.scalar(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    )
    if row is not None:
        row.last_used_at = (clock or SystemClock()).now()
        session.flush()
    return row


def revoke_token(session: Session, token_id: int, *, clock: Clock | None = None) -> None:
    row = session.get(ApiToken, token_id)
    if row is None:
        from engine.errors import NotFound

        raise NotFound(kind="token", name=str(token_id))
    if row.revoked_at is None:
        row.revoked_at = (clock or SystemClock()).now()
        session.flush()
