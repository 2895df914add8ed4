"""One router per resource; ``ROUTERS`` is what the app mounts, ``TAGS`` documents them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.routes import cdp, compares, data, exports, jobs, orgs, permissions, recovery_points, system, usage

ROUTERS: list[APIRouter] = [
    system.router,
    orgs.router,
    cdp.router,
    jobs.router,
    usage.router,
    data.router,
    compares.router,
    recovery_points.router,
    exports.router,
    permissions.router,
]

TAGS: list[dict[str, Any]] = [
    {"name": "system", "description": "Health and the calling token."},
    {"name": "orgs", "description": "Connect, list (tiles), hide and disconnect orgs; their settings."},
    {"name": "jobs", "description": "Back up now, job lists and details, cancel, XLSX reports."},
    {"name": "usage", "description": "Salesforce API usage per job and per day."},
    {"name": "data", "description": "Per-job statistics, compare jobs and export jobs."},
    {"name": "permissions", "description": "Permission checks of the integration user."},
]
