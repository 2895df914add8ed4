"""(being written) the scheduler loop."""

from __future__ import annotations

from api.context import AppContext


class Scheduler:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass
