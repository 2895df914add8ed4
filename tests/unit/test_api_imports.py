"""The API package has no import cycle (issue 14): ``api.context`` imports the job runner,
``api.background`` imports only the engine (the org's settings come from the job service, not
from a route module), and routes import ``api.deps`` / ``api.context``, never the reverse."""

from __future__ import annotations

import grimp


def test_no_import_cycle_inside_api() -> None:
    graph = grimp.build_graph("api")
    modules = sorted(m for m in graph.modules if m.startswith("api"))
    cycles = [
        (a, b)
        for i, a in enumerate(modules)
        for b in modules[i + 1 :]
        if graph.chain_exists(importer=a, imported=b) and graph.chain_exists(importer=b, imported=a)
    ]
    assert cycles == []
