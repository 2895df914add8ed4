"""The FastAPI application of ``sfvault serve``: routers per resource, the job runner, the scheduler.

``create_app`` builds everything from :class:`~engine.config.Settings`; the lifespan opens the
catalog (migrating it to the newest schema), the sealer of org credentials, the background job
runner (recovering the exports and compares a previous process left behind:
:meth:`~api.background.JobRunner.recover_queued`) and, unless disabled, the scheduler loop, and
closes them in reverse order.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from api.background import DaskFactory, JobRunner
from api.cdp_supervisor import Backoff, CdpSupervisor
from api.context import AppContext
from api.errors import document_edge_responses, install_error_handlers
from api.limits import MAX_BODY_BYTES, BodyLimit
from api.routes import ROUTERS, TAGS
from engine.catalog.db import make_engine, migrate, session_factory
from engine.clock import Clock, SystemClock
from engine.config import Settings, load_settings
from engine.jobs.credentials import catalog_sealer
from engine.jobs.planning import JobOptions

log = logging.getLogger("sfvault.api")

DESCRIPTION = """\
The control plane of sfvault: connect Salesforce orgs, set their backup schedule and scope,
run and follow backup jobs, download job reports, compare jobs, export data and read API usage.

**Authentication.** Every endpoint under `/v1` needs `Authorization: Bearer <token>`; tokens are
made with `sfvault token create --name NAME --role admin|operator|viewer`. Roles: *viewer* reads;
*operator* also backs up now, compares and exports; *admin* may do everything.

**Errors.** Every error is `{"code": "SFV-xxx", "message": "...", "details": {...}}`; each code
has a section with cause and fix in `docs/TROUBLESHOOTING.md`. Invalid input answers 422 with
code SFV-903 and `details.errors` naming every field.
"""


@dataclass(frozen=True)
class _Services:
    """What ``create_app`` was given for the services its lifespan opens, the switches resolved."""

    settings: Settings
    clock: Clock
    dask_factory: DaskFactory | None
    client_overrides: dict[str, Any] | None
    job_options: JobOptions | None
    run_scheduler: bool
    run_cdp: bool
    cdp_backoff: Backoff | None

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Open the catalog, the job runner and (if on) the scheduler and the change event
        subscribers; close them in reverse order when the app stops."""
        from api.scheduler import Scheduler

        engine = make_engine(self.settings.catalog_url)
        migrate(engine)
        runner = JobRunner(
            self.settings, clock=self.clock, dask_factory=self.dask_factory,
            client_overrides=self.client_overrides, job_options=self.job_options,
        )  # fmt: skip
        ctx = AppContext(
            settings=self.settings,
            engine=engine,
            sessions=session_factory(engine),
            sealer=catalog_sealer(self.settings, create=True),
            clock=self.clock,
            runner=runner,
        )
        app.state.ctx = ctx
        _recover_queued(ctx)
        loop = Scheduler(ctx) if self.run_scheduler else None
        if loop is not None:
            loop.start()
        if self.run_cdp:
            ctx.cdp = CdpSupervisor(ctx, backoff=self.cdp_backoff)
            ctx.cdp.start()
        log.info("sfvault API ready (scheduler %s, change event subscribers %s)",
                 "on" if loop is not None else "off", "on" if self.run_cdp else "off")  # fmt: skip
        try:
            yield
        finally:
            if ctx.cdp is not None:
                ctx.cdp.stop()  # the streams cancelled, what they hold sealed
            if loop is not None:
                loop.stop()
            runner.shutdown()
            engine.dispose()


def _recover_queued(ctx: AppContext) -> None:
    """Close the exports and compares a dead process left running (SFV-713), resubmit queued ones."""
    recovered = ctx.runner.recover_queued(ctx.sessions, startup=True)
    if recovered.abandoned or recovered.queued or recovered.removed:
        log.info(
            "queued jobs at startup: %d closed as abandoned, %d resubmitted, %d files removed",
            len(recovered.abandoned), len(recovered.queued), len(recovered.removed),
        )  # fmt: skip


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    dask_factory: DaskFactory | None = None,
    client_overrides: dict[str, Any] | None = None,
    job_options: JobOptions | None = None,
    scheduler: bool | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    cdp: bool | None = None,
    cdp_backoff: Backoff | None = None,
) -> FastAPI:
    """The application. ``scheduler=None`` follows ``settings.scheduler_enabled``; ``dask_factory``,
    ``client_overrides`` and ``job_options`` let tests bring their own cluster and tuning.
    Request bodies over ``max_body_bytes`` are refused with 413 (SFV-906) before any route runs.
    ``cdp=None`` runs the change event subscribers of the protected orgs when the scheduler runs
    (:mod:`api.cdp_supervisor`); ``cdp_backoff`` is their retry backoff."""
    settings = settings or load_settings()
    run_scheduler = settings.scheduler_enabled if scheduler is None else scheduler
    services = _Services(
        settings=settings,
        clock=clock or SystemClock(),
        dask_factory=dask_factory,
        client_overrides=client_overrides,
        job_options=job_options,
        run_scheduler=run_scheduler,
        run_cdp=run_scheduler if cdp is None else cdp,
        cdp_backoff=cdp_backoff,
    )
    app = FastAPI(
        title="sfvault",
        version="1",
        summary="Backups of Salesforce orgs: schedule, run, report, compare, export.",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=services.lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    for router in ROUTERS:
        app.include_router(router)
    _document_edge_responses(app)
    return app


def _document_edge_responses(app: FastAPI) -> None:
    """Make the app's OpenAPI schema (once, on first use) with the edge responses every route shares."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_edge_responses(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
