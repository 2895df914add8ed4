"""Every ``sfvault`` command and subcommand over a table of bad inputs, each in its own process.

The commands are enumerated from the Typer app (the mounted ``serve``, ``token`` and ``emulator``
ones too), so a new command is covered without touching this file. Each bad input is one case: a
config file that is missing, a directory, binary, not TOML-shaped, of the wrong types, a /proc
file; a catalog, scratch or key path that cannot be written; unknown names; a wrong type on the
command line; ``/dev/full``, a directory or a /proc path where a file is written. Every run must
end non-zero with a code (``error [SFV-NNN]``, or Typer's usage error, exit 2) and print no
traceback; the catalog, the repository and the key are byte for byte what they were before.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main

from engine.cli import app

ROOT = Path(__file__).resolve().parents[2]
UNWRITABLE = "/proc/sfvault-no-such-dir"  # cannot be created, even by root
HANG_GUARD_S = 300  # a command that never returns is itself a failure (serve on a bad input)


def leaf_commands() -> list[tuple[tuple[str, ...], Any]]:
    """Every command of the app as (path, command), from the Typer app itself."""
    out: list[tuple[tuple[str, ...], Any]] = []

    def walk(group: Any, prefix: tuple[str, ...]) -> None:
        for name, cmd in sorted(group.commands.items()):
            if hasattr(cmd, "commands"):
                walk(cmd, (*prefix, name))
            else:
                out.append(((*prefix, name), cmd))

    walk(typer.main.get_command(app), ())
    return out


def _kind(param: Any) -> str:
    ann = str(param.type_descriptor.annotation)
    for k in ("int", "float", "Path", "bool"):
        if k in ann:
            return k
    return "str"


def _params(cmd: Any) -> list[Any]:
    return [p for p in cmd.params if p.name != "help"]


def _has_config(cmd: Any) -> bool:
    return any("--config" in p.opts for p in _params(cmd))


@dataclass
class Home:
    root: Path
    config: Path
    files: dict[str, Path]

    def state(self) -> dict[str, str]:
        """SHA-256 of the catalog, the key, the config and every repository file."""
        out: dict[str, str] = {}
        watched = [self.root / "sfvault-data" / "catalog.db", self.root / "repo.key", self.config]
        watched += sorted(p for p in (self.root / "repo").rglob("*") if p.is_file())
        for p in watched:
            out[str(p.relative_to(self.root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        return out


def _sfvault(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SFVAULT_")}
    full_env |= {"PYTHONPATH": str(ROOT), "COLUMNS": "200"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        cwd=cwd,
        env=full_env,
        text=True,
        capture_output=True,
        timeout=HANG_GUARD_S,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return make_home(tmp_path_factory.mktemp("cli-bad-input"))


def make_home(root: Path) -> Home:
    """A repository, its key, a config and a catalog with one token, plus the bad config files."""
    cfg = root / "sfvault.toml"
    init = _sfvault(
        ["init", "--repo", str(root / "repo"), "--key-file", str(root / "repo.key"), "--config", str(cfg)],
        root,
    )
    assert init.returncode == 0, init.stderr
    # init wrote absolute paths (catalog under root/sfvault-data)
    # no retries: an unreachable org fails at once
    with cfg.open("a") as fh:
        fh.write("retry_max_seconds = 0\nretry_wait_max = 0\n")
    assert _sfvault(["catalog", "upgrade", "--config", str(cfg)], root).returncode == 0
    tok = _sfvault(["token", "create", "--name", "ci", "--role", "viewer", "--config", str(cfg)], root)
    assert tok.returncode == 0, tok.stderr
    files = {
        "binary": b"\x00\xff\xfe\x80 not toml",
        "not_table": b'sfvault = "string"\n',
        "bad_types": b'[sfvault]\napi_port = "abc"\nchunk_target_bytes = -1\njob = 3\n',
        "unknown_knob": b"[sfvault.job]\nno_such_knob = 1\n",
        "bad_catalog": _with(cfg, catalog_url=f"sqlite:///{UNWRITABLE}/catalog.db"),
        "bad_scratch": _with(cfg, scratch_dir=f"{UNWRITABLE}/scratch", export_dir=f"{UNWRITABLE}/exports"),
        "bad_key": _with(cfg, key_file=f"{UNWRITABLE}/repo.key"),
    }
    paths = {}
    for name, body in files.items():
        paths[name] = root / f"{name}.toml"
        paths[name].write_bytes(body)
    (root / "a-directory").mkdir()
    return Home(root=root, config=cfg, files=paths)


def _with(cfg: Path, **values: str) -> bytes:
    """The valid config with these settings replaced."""
    import json

    lines = [ln for ln in cfg.read_text().splitlines() if ln.split(" = ")[0] not in values]
    return ("\n".join(lines + [f"{k} = {json.dumps(v)}" for k, v in values.items()]) + "\n").encode()


def fill(cmd: Any, home: Home, *, config: str | None, override: dict[str, str] | None = None) -> list[str]:
    """Arguments that satisfy the command's required parameters (plausible but unknown names)."""
    override = override or {}
    plausible = {
        "--out": str(home.root / "out.zip"),
        "--instance-url": "https://127.0.0.1:9",
        "--name": "ci",
        "--role": "viewer",
        "--url": "http://127.0.0.1:9",
        "--admin-secret": "x",
    }
    args: list[str] = []
    for p in _params(cmd):
        opt = p.opts[0]
        if p.param_type_name == "argument":
            args.append(override.get(p.name, "999999" if _kind(p) == "int" else "nope"))
        elif opt in override:
            args += [opt, override[opt]]
        elif p.required:
            args += [opt, plausible.get(opt, "nope")]
    if any(p.opts[0] == "--all" for p in _params(cmd)) and "--objects" not in override:
        args.append("--all")
    if config is not None and _has_config(cmd):
        args += ["--config", config]
    return args


Case = Callable[[tuple[str, ...], Any, Home], "list[str] | None"]


# commands that never open the catalog, the key, or the scratch and export folders: for them the
# matching setting is not a bad input (they succeed, as they should)
KEY_COMMANDS = {("key", c) for c in ("add", "export", "list", "remove", "rotate")}
NO_CATALOG: set[tuple[str, ...]] = {("init",), ("verify",), ("prune",), ("repair",), *KEY_COMMANDS}
NO_KEY = {
    ("catalog", "upgrade"),
    ("jobs",),
    ("job", "show"),
    ("job", "cancel"),
    ("token", "create"),
    ("token", "list"),
    ("token", "revoke"),
    ("org", "list"),
    ("org", "remove"),
    ("org", "update"),
    ("settings", "show"),
    ("settings", "set"),
}
NO_SCRATCH = NO_KEY | NO_CATALOG | {("org", "add"), ("catalog", "rebuild")}
NOT_BAD_FOR: dict[str, set[tuple[str, ...]]] = {
    "bad_catalog": NO_CATALOG,
    "bad_key": NO_KEY,
    "bad_scratch": NO_SCRATCH,
}


def _config_case(key: str | None, path: str | None = None) -> Case:
    def make(name: tuple[str, ...], cmd: Any, home: Home) -> list[str] | None:
        if not _has_config(cmd) or name in NOT_BAD_FOR.get(key or "", set()):
            return None
        return fill(cmd, home, config=path or str(home.files[key or ""]))

    return make


def _names(name: tuple[str, ...], cmd: Any, home: Home) -> list[str] | None:
    """Unknown orgs, jobs, token ids; an org or emulator that cannot be reached."""
    if not any(p.param_type_name == "argument" or "--url" in p.opts for p in _params(cmd)):
        return None
    return fill(cmd, home, config=str(home.config))


def _wrong_type(name: tuple[str, ...], cmd: Any, home: Home) -> list[str] | None:
    numeric = [p for p in _params(cmd) if _kind(p) in ("int", "float")]
    if not numeric:
        return None
    p = numeric[0]
    over = {p.name: "abc"} if p.param_type_name == "argument" else {p.opts[0]: "abc"}
    return fill(cmd, home, config=str(home.config), override=over)


def _path_case(target: str) -> Case:
    def make(name: tuple[str, ...], cmd: Any, home: Home) -> list[str] | None:
        opts = [p.opts[0] for p in _params(cmd) if _kind(p) == "Path" and p.opts[0] != "--config"]
        opts = [o for o in opts if o not in ("--key-file", "--repo")]  # init: covered by the config cases
        if not opts:
            return None
        if target == "dir":  # a folder is what --data and --details take
            opts = [o for o in opts if o not in ("--data", "--details")]
        if not opts:
            return None
        value = str(home.root / "a-directory") if target == "dir" else target
        return fill(cmd, home, config=str(home.config), override={o: value for o in opts})

    return make


def _empty_objects(name: tuple[str, ...], cmd: Any, home: Home) -> list[str] | None:
    if name != ("backup",):
        return None
    return fill(cmd, home, config=str(home.config), override={"--objects": ""})


def _port(name: tuple[str, ...], cmd: Any, home: Home) -> list[str] | None:
    if not any(p.opts[0] == "--port" for p in _params(cmd)):
        return None
    return fill(cmd, home, config=str(home.config), override={"--port": "99999"})


CASES: dict[str, Case] = {
    "config-missing": _config_case(None, f"{UNWRITABLE}/sfvault.toml"),
    "config-is-a-directory": _config_case(None, "/tmp"),
    "config-proc-file": _config_case(None, "/proc/self/status"),
    "config-dev-null": _config_case(None, "/dev/null"),
    "config-binary": _config_case("binary"),
    "config-sfvault-is-a-string": _config_case("not_table"),
    "config-wrong-types": _config_case("bad_types"),
    "config-unknown-job-knob": _config_case("unknown_knob"),
    "catalog-unwritable": _config_case("bad_catalog"),
    "unknown-names": _names,
    "wrong-type": _wrong_type,
    "out-dev-full": _path_case("/dev/full"),
    "out-directory": _path_case("dir"),
    "out-proc": _path_case(f"{UNWRITABLE}/out"),
    "objects-empty": _empty_objects,
    "port-out-of-range": _port,
}
# `serve` opens the key only when a job runs: with it, it would start and serve (not a bad input for it)
CASES_NOT_FOR_SERVE = {"key-unwritable"}
CASES |= {
    "scratch-unwritable": _config_case("bad_scratch"),
    "key-unwritable": _config_case("bad_key"),
}
SERVES = {("serve",), ("emulator", "serve")}


def runs() -> Iterator[tuple[str, tuple[str, ...], Any, Case]]:
    for path, cmd in leaf_commands():
        for case, make in CASES.items():
            if path in SERVES and case in CASES_NOT_FOR_SERVE:
                continue
            yield case, path, cmd, make


def test_the_table_covers_every_command() -> None:
    """Each command except ``version`` gets at least one bad input (a new one is picked up here)."""
    names = {path for path, _ in leaf_commands()}
    assert {("backup",), ("token", "list"), ("emulator", "serve"), ("org", "add")} <= names
    dummy = Home(
        root=Path("/x"),
        config=Path("/x/c.toml"),
        files={
            k: Path("/x")
            for k in (
                "binary",
                "not_table",
                "bad_types",
                "unknown_knob",
                "bad_catalog",
                "bad_scratch",
                "bad_key",
            )
        },
    )
    covered = {path for case, path, cmd, make in runs() if make(path, cmd, dummy) is not None}
    assert names - covered == {("version",)}


def _verdict(args: list[str], res: subprocess.CompletedProcess[str]) -> str | None:
    out = res.stdout + res.stderr
    if "Traceback (most recent call last)" in out:
        return f"traceback:\n{out[-3000:]}"
    if res.returncode == 0:
        return f"exit 0:\n{out[-1500:]}"
    usage = res.returncode == 2 and "Usage:" in out
    if "error [SFV-" not in res.stderr and not usage:
        return f"exit {res.returncode} without a coded error:\n{out[-1500:]}"
    if (
        "error [SFV-" in res.stderr
        and len([ln for ln in res.stderr.splitlines() if "error [SFV-" in ln]) != 1
    ):
        return f"not one coded line:\n{res.stderr[-1500:]}"
    return None


def run_forked(runs: list[list[str]], cwd: Path) -> list[dict[str, Any]]:
    """Each command line in its own process (:mod:`tests.helpers.cli_fork`), two batches at once."""
    import json

    def batch(part: list[list[str]]) -> list[dict[str, Any]]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SFVAULT_")} | {
            "PYTHONPATH": str(ROOT)
        }
        res = subprocess.run(
            [sys.executable, "-m", "tests.helpers.cli_fork"],
            cwd=ROOT,
            env=env,
            text=True,
            input=json.dumps({"cwd": str(cwd), "runs": part, "guard_s": HANG_GUARD_S}),
            capture_output=True,
            check=True,
        )
        return list(json.loads(res.stdout))

    halves = [runs[0::2], runs[1::2]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(batch, halves)
    return [r for pair in zip(first, second, strict=False) for r in pair] + first[len(second) :]


@pytest.mark.timeout(3600)
def test_every_command_refuses_every_bad_input_with_a_code_and_writes_nothing(home: Home) -> None:
    before = home.state()
    todo = [(case, [*path, *args]) for case, path, cmd, make in runs() if (args := make(path, cmd, home))]
    results = run_forked([argv for _, argv in todo], home.root / "a-directory")
    failures = []
    for (case, argv), res in zip(todo, results, strict=True):
        assert res["argv"] == argv
        why = (
            "did not exit"
            if res["code"] == -9
            else _verdict(argv, subprocess.CompletedProcess(argv, res["code"], res["stdout"], res["stderr"]))
        )
        if why is not None:
            failures.append(f"{case}: sfvault {' '.join(argv)}\n  -> {why}")
    assert not failures, f"{len(failures)} of {len(results)} runs failed:\n\n" + "\n\n".join(failures)
    assert home.state() == before, "a refused command changed the catalog, the repository or the key"
    assert len(results) >= 100


def test_the_real_entry_point_prints_no_traceback(home: Home) -> None:
    """The same boundary in a plain ``python -m engine.cli`` process (no fork): a binary config."""
    res = _sfvault(["jobs", "acme", "--config", str(home.files["binary"])], home.root)
    assert res.returncode == 2 and "error [SFV-100]" in res.stderr and "binary.toml" in res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    debug = _sfvault(["--debug", "jobs", "acme", "--config", str(home.files["binary"])], home.root)
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr
