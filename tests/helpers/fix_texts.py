"""What a fix text names (commands, options, routes) and whether each exists (issue 15).

A fix text is an error's message template and its entry in docs/TROUBLESHOOTING.md. The CLI's
commands are read from the click tree the Typer app of engine/cli/__init__.py builds; the routes
from the API's OpenAPI document. tests/unit/test_error_fixes.py checks every code with these;
tests/integration/test_error_fix_walk.py runs the commands a fix names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import typer

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "TROUBLESHOOTING.md"
ROUTE = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) (/v1/[^\s`)]*)")
PLACEHOLDER = re.compile(r"\{[^}]*\}")


@dataclass
class Cmd:
    """One node of the CLI: its options (True = takes a value), its positional arguments, its children."""

    options: dict[str, bool] = field(default_factory=dict)
    arguments: int = 0
    children: set[str] = field(default_factory=set)


@cache
def cli() -> dict[tuple[str, ...], Cmd]:
    """Every command path of ``sfvault`` (``()`` is the root) as the Typer app builds it."""
    from engine.cli import app

    root = typer.main.get_command(app)
    out: dict[tuple[str, ...], Cmd] = {}

    def walk(cmd: Any, path: tuple[str, ...], ctx: Any) -> None:
        node = Cmd()
        for p in cmd.params:
            if p.param_type_name == "argument":
                node.arguments += 1
            elif p.param_type_name == "option":
                for opt in (*p.opts, *p.secondary_opts):
                    node.options[opt] = not p.is_flag
        out[path] = node
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                node.children.add(name)
                walk(sub, (*path, name), type(ctx)(sub, parent=ctx, info_name=name))

    walk(root, (), type(root).context_class(root, info_name="sfvault"))
    return out


@cache
def routes() -> frozenset[tuple[str, str]]:
    """(METHOD, path with every ``{param}`` as ``{}``) of each operation in the OpenAPI document."""
    from api.app import create_app
    from engine.config import Settings

    settings = Settings(repository_url="/nonexistent/repo", key_file=Path("/nonexistent/repo.key"),
                        catalog_url="sqlite:////nonexistent/catalog.db")  # fmt: skip
    spec = create_app(settings, scheduler=False).openapi()
    return frozenset(
        (method.upper(), PLACEHOLDER.sub("{}", path)) for path, ops in spec["paths"].items() for method in ops
    )


def command_problems(text: str) -> list[str]:
    """What is wrong with one `` `sfvault ...` `` mention: unknown command or option, a bare group,
    more positional arguments than the command takes. ``...`` stands for anything."""
    words = text.replace("[", " ").replace("]", " ").split()[1:]  # [--opt VALUE]: optional
    tree = cli()
    path: tuple[str, ...] = ()
    while words and (*path, words[0]) in tree:
        path = (*path, words.pop(0))
    node = tree[path]
    wildcard = "..." in words
    if node.children and not wildcard:
        return [f"`{text}`: {' '.join(('sfvault', *path))} is a group, name one of {sorted(node.children)}"]
    known = {**tree[()].options, **node.options}
    if wildcard:  # `sfvault export ... --out PATH`: an option of any subcommand
        for p, sub in tree.items():
            if p[: len(path)] == path:
                known.update(sub.options)
    problems, positional = [], 0
    it = iter(words)
    for w in it:
        if w.startswith("-"):
            opt = w.split("=", 1)[0]
            if opt not in known:
                problems.append(f"`{text}`: no option {opt} on {' '.join(('sfvault', *path))}")
            elif known[opt] and "=" not in w:
                next(it, None)
        elif w not in ("...", "|") and not w.startswith("["):
            positional += 1
    if not wildcard and positional > node.arguments:
        problems.append(f"`{text}`: {' '.join(('sfvault', *path))} takes {node.arguments} argument(s)")
    return problems


def mentions(text: str) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """The commands, bare options and routes a text names (inline code spans, across line breaks)."""
    text = text.replace("\\`", "`")
    spans = [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", text, flags=re.S)]
    commands = [s for s in spans if s.startswith("sfvault ")]
    options = [s.split()[0].split("=")[0] for s in spans if s.startswith("--")]
    return commands, options, ROUTE.findall(text)


def problems_of(text: str) -> list[str]:
    commands, options, named_routes = mentions(text)
    problems = [p for c in commands for p in command_problems(c)]
    tree = cli()
    near: set[str] = set()
    for c in commands:
        words, path = c.split()[1:], ()
        while words and (*path, words[0]) in tree:
            path = (*path, words.pop(0))
        near |= set(tree[path].options)
    anywhere = {o for node in tree.values() for o in node.options}
    for opt in options:
        if opt not in (near or anywhere) and opt not in tree[()].options:
            where = "the commands named here" if near else "any command"
            problems.append(f"`{opt}`: no such option on {where}")
    for method, path in named_routes:
        if (method, PLACEHOLDER.sub("{}", path.rstrip(".,;"))) not in routes():
            problems.append(f"{method} {path}: no such route in the OpenAPI document")
    return problems


def guide_entry(code: str) -> str:
    """The guide's section of ``code`` without its ``message:`` line (the template, checked apart:
    its escaped backticks do not pair up as code spans)."""
    sections = {part.split()[0]: part for part in GUIDE.read_text().split("\n## ")[1:]}
    lines = sections.get(code, "").splitlines()[1:]
    return "\n".join(line for line in lines if "· message:" not in line)


def fix_paragraph(code: str) -> str:
    entry = guide_entry(code)
    return entry.split("**Fix.**", 1)[1] if "**Fix.**" in entry else ""


def command_path(text: str) -> tuple[tuple[str, ...], list[str]]:
    """The command path of a `` `sfvault ...` `` mention and the words after it."""
    words = text.replace("[", " ").replace("]", " ").split()[1:]
    path: tuple[str, ...] = ()
    while words and (*path, words[0]) in cli():
        path = (*path, words.pop(0))
    return path, words


def fix_commands(code: str, *texts: str) -> list[str]:
    """The commands named by ``code``'s Fix paragraph in the guide and by ``texts`` (a message)."""
    found: list[str] = []
    for text in (fix_paragraph(code), *texts):
        found += mentions(text)[0]
    return found


def named_by_fix(argv: list[str], code: str, *texts: str) -> bool:
    """Whether ``sfvault *argv`` is one of the commands the fix of ``code`` names: the same command
    path, and only options the named command shows (placeholders stand for any value)."""
    path, words = command_path(" ".join(["sfvault", *argv]))
    used = {w.split("=", 1)[0] for w in words if w.startswith("--")} - {"--config", "--scheduler", "--json"}
    for named in fix_commands(code, *texts):
        npath, nwords = command_path(named)
        shown = {w.split("=", 1)[0] for w in nwords if w.startswith("--")}
        if npath == path and used <= shown:
            return True
    return False
