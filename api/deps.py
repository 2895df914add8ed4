"""Request dependencies: the application context and token authentication with roles.

Roles are ordered ``viewer < operator < admin`` (PRODUCT.md, issue 7): viewer reads, operator
also backs up now, compares and exports, admin may do everything. Every endpoint declares the
lowest role it accepts with ``Depends(require(Role.X))``; the dependency object keeps that role
in ``.role`` so the authorisation-matrix test can read each route's rule from the app itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select, update

from api.context import AppContext
from engine.catalog.models import ApiToken, Role
from engine.catalog.tokens import hash_token
from engine.errors import Forbidden, Unauthenticated

RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
# last_used_at is stamped at most this often per token: a write per request would serialise
# every read on SQLite for a value nobody needs to the second
STAMP_EVERY = timedelta(minutes=1)


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, name and role (never the token itself)."""

    token_id: int
    name: str
    role: Role

    def at_least(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]

    @property
    def label(self) -> str:
        return f"token:{self.name}"


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated()
    return token.strip()


def authenticate(request: Request, ctx: Ctx) -> Principal:
    token = _bearer(request)
    now = ctx.clock.now()
    with ctx.tx() as s:
        row = s.scalar(
            select(ApiToken).where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
        )
        if row is None:
            raise Unauthenticated()
        if row.last_used_at is None or now - row.last_used_at > STAMP_EVERY:
            s.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        principal = Principal(token_id=row.id, name=row.name, role=Role(row.role))
    request.state.principal = principal  # the error handlers decide what an error may reveal
    return principal


class RoleRequirement:
    """``Depends(require(Role.OPERATOR))``: 401 without a valid token, 403 below the role."""

    def __init__(self, role: Role, action: str) -> None:
        self.role = role
        self.action = action

    def __call__(self, principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.at_least(self.role):
            raise Forbidden(role=principal.role.value, action=self.action, needed=self.role.value)
        return principal


def require(role: Role, action: str = "use this endpoint") -> RoleRequirement:
    return RoleRequirement(role, action)


Viewer = Annotated[Principal, Depends(require(Role.VIEWER, "read"))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR, "start jobs, compares or exports"))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN, "administer orgs, settings and tokens"))]


def storage_for(who: Principal, location: str | None) -> str | None:
    """An org's ``storage_location`` as ``who`` may see it: operators and admins see it; a viewer
    gets null (it names the storage account, container and path of the backups, which a
    read-only dashboard user has no need of). The schemas say so in the field's description."""
    return location if who.at_least(Role.OPERATOR) else None
