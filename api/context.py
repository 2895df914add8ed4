"""What every request handler needs: settings, the catalog, the sealer, the clock, the job service
and the job runner.

One :class:`AppContext` lives on ``app.state.ctx`` for the life of the process; handlers get it
through :func:`api.deps.get_ctx`. Handlers open short transactions with :meth:`AppContext.tx`
and never hold a session across a call to Salesforce or the repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.background import JobRunner
from engine.catalog.db import transaction
from engine.catalog.secrets import Sealer
from engine.clock import Clock
from engine.config import Settings
from engine.jobs.service import JobService

if TYPE_CHECKING:
    from api.cdp_supervisor import CdpSupervisor


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    sealer: Sealer
    clock: Clock
    runner: JobRunner
    cdp: CdpSupervisor | None = None
    """The change event subscribers (decision 0033); None when the service runs without them."""

    @property
    def jobs(self) -> JobService:
        """The job service (the one door to a backup job; stateless, made per use)."""
        return JobService(self.settings, self.sessions, clock=self.clock, sealer=self.sealer)

    @contextmanager
    def tx(self) -> Iterator[Session]:
        """One catalog transaction: committed on success, rolled back on any exception."""
        with transaction(self.sessions) as session:
            yield session
