"""Health and identity."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import Viewer
from api.errors import error_responses

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Me(BaseModel):
    name: str = Field(examples=["ops-dashboard"])
    role: str = Field(examples=["operator"])


@router.get("/healthz", response_model=Health, summary="Liveness (no token needed)")
def healthz() -> Health:
    return Health(status="ok")


@router.get("/v1/me", response_model=Me, responses=error_responses(401), summary="The calling token")
def me(principal: Viewer) -> Me:
    return Me(name=principal.name, role=principal.role.value)
