"""The job layer stays easy to change: small functions, a thin Dask driver, a pure state machine.

Issue 14's structural targets, checked on the source: no function in ``engine/jobs/`` is over 80
lines; the Dask driver's module is well under half of the 864-line ``runner.py`` it came from; the
job state machine imports nothing that does I/O (no Dask, no clock, no threads, no catalog).
"""

from __future__ import annotations

import ast
from pathlib import Path

import engine.jobs

JOBS = Path(engine.jobs.__file__).parent
MAX_FUNCTION_LINES = 80
OLD_RUNNER_LINES = 864


def _functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (f"{path.name}:{node.lineno} {node.name}", (node.end_lineno or node.lineno) - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def test_no_function_in_the_job_layer_is_over_80_lines() -> None:
    long = {
        name: n
        for path in sorted(JOBS.rglob("*.py"))
        for name, n in _functions(path)
        if n > MAX_FUNCTION_LINES
    }
    assert long == {}


def test_the_dask_driver_is_well_under_half_of_the_old_runner() -> None:
    lines = len((JOBS / "driver.py").read_text(encoding="utf-8").splitlines())
    assert lines < 0.45 * OLD_RUNNER_LINES, lines


def test_the_state_machine_imports_nothing_that_does_io() -> None:
    tree = ast.parse((JOBS / "machine.py").read_text(encoding="utf-8"))
    imported = {
        alias.name if isinstance(node, ast.Import) else (node.module or "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "collections.abc", "dataclasses", "typing"}, imported
