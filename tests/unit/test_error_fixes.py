"""Every error's documented fix names only commands, options and routes that exist (issue 15).

For each code of the error tree, the message template and its entry in docs/TROUBLESHOOTING.md
are searched for the commands they name (`` `sfvault ...` ``), the bare options (`` `--x` ``)
and the API routes (``GET /v1/...``); each must exist in the Typer app (engine/cli/__init__.py,
parsed from the click tree it builds) or in the API's OpenAPI document. A group named without a
subcommand (`` `sfvault catalog` ``) is not a command an operator can run. The same check runs
over every string literal of engine/ and api/ that names a command in backticks (runtime
messages built outside the templates), so a fix text cannot drift from the CLI unseen.

The codes an operator meets on the main path must name at least one command or route in their
fix; tests/integration/test_error_fix_walk.py runs those commands against the emulator.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil

import pytest

import engine
from engine.errors import SfvaultError, all_error_classes
from tests.helpers.fix_texts import (
    PLACEHOLDER,
    ROOT,
    ROUTE,
    command_problems,
    fix_paragraph,
    guide_entry,
    mentions,
    problems_of,
    routes,
)

MAIN_PATH = (
    "SFV-402", "SFV-503", "SFV-506", "SFV-803", "SFV-603", "SFV-604", "SFV-605", "SFV-702", "SFV-714",
)  # fmt: skip
"""Codes an operator meets on the main path: their fix must name something to run."""


def _import_every_engine_module() -> list[type[SfvaultError]]:
    for mod in pkgutil.walk_packages(engine.__path__, "engine."):
        if ".migrations" not in mod.name and not mod.name.endswith("__main__"):
            importlib.import_module(mod.name)
    return sorted(all_error_classes(), key=lambda c: c.code)


ALL_ERRORS = _import_every_engine_module()


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.code)
def test_the_fix_names_only_commands_options_and_routes_that_exist(cls: type[SfvaultError]) -> None:
    problems = [f"template: {p}" for p in problems_of(cls.template)]
    problems += [f"TROUBLESHOOTING.md: {p}" for p in problems_of(guide_entry(cls.code))]
    assert not problems, f"{cls.code} {cls.__name__}: " + "; ".join(problems)


@pytest.mark.parametrize("code", MAIN_PATH)
def test_a_main_path_fix_names_something_to_run(code: str) -> None:
    commands, _, named_routes = mentions(fix_paragraph(code))
    assert commands or named_routes, f"the fix of {code} in TROUBLESHOOTING.md names no command or route"


def _source_strings() -> list[tuple[str, str]]:
    """(where, text) of every string literal of engine/ and api/ (f-strings with ``{}`` holes),
    docstrings left out (they describe code, in reST's double backticks)."""
    out = []
    for path in sorted([*(ROOT / "engine").rglob("*.py"), *(ROOT / "api").rglob("*.py")]):
        tree = ast.parse(path.read_text())
        inner = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        inner |= {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
        for node in ast.walk(tree):
            if id(node) in inner:
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            elif isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            else:
                continue
            if "`sfvault " in text or ROUTE.search(text):
                out.append((f"{path.relative_to(ROOT)}:{node.lineno}", text))
    return out


def test_runtime_messages_name_only_commands_that_exist() -> None:
    """Messages built in code (``NoStorageLocation(f"...")``) are held to the same rule. Module
    docstrings name command groups (``sfvault export records|files``); they are not fixes."""
    problems = []
    for where, text in _source_strings():
        commands, _, named_routes = mentions(text)
        for c in commands:
            if "|" not in c:
                problems += [f"{where}: {p}" for p in command_problems(c)]
        for method, path in named_routes:
            if (method, PLACEHOLDER.sub("{}", path.rstrip(".,;'\""))) not in routes():
                problems.append(f"{where}: {method} {path}: no such route")
    assert not problems, "\n".join(problems)


def test_the_checker_sees_what_is_wrong() -> None:
    """The checker itself: each kind of mistake is found, a correct mention passes."""
    assert command_problems("sfvault org update ORG --password-file F") == []
    assert command_problems("sfvault export ... --out PATH") == []
    assert command_problems("sfvault catalog")  # a group
    assert command_problems("sfvault org edit ORG")  # no such subcommand
    assert command_problems("sfvault backup ORG --everything")  # no such option
    assert command_problems("sfvault jobs ORG JOB")  # one argument too many
    assert problems_of("`sfvault backup ORG` with `--no-such`")
    assert problems_of("PATCH /v1/orgs/{org}/no-such")
    assert not problems_of("PATCH /v1/orgs/{name}/settings and `sfvault backup ORG --full`")
