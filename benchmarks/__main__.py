"""``python -m benchmarks SCENARIO [--tiny]``: run one benchmark scenario, or ``all``.

Each scenario is a module of this package with its own ``main()``; it prints a table and
writes a JSON result file under ``benchmarks/results/``. ``--tiny`` runs every scenario at
a scale small enough for the test suite (the smoke test keeps the harness from rotting).
"""

from __future__ import annotations

import subprocess
import sys

# name -> (module, arguments for the real run, arguments for the tiny smoke run)
SCENARIOS: dict[str, tuple[str, list[str], list[str]]] = {
    "emulator": ("benchmarks.emulator_bench", [], ["--tiny"]),
    "seal": ("benchmarks.seal_bench", ["--gib", "2"], ["--tiny"]),
    "backup": ("benchmarks.backup_bench", [], ["--tiny"]),
    "api_load": ("benchmarks.api_load_bench", [], ["--tiny"]),
    "compare": ("benchmarks.compare_bench", ["--records", "5000000"], ["--tiny"]),
}


def run(name: str, tiny: bool) -> int:
    module, full_args, tiny_args = SCENARIOS[name]
    cmd = [sys.executable, "-m", module, *(tiny_args if tiny else full_args)]
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    return subprocess.call(cmd)


def main(argv: list[str]) -> int:
    tiny = "--tiny" in argv
    names = [a for a in argv if not a.startswith("--")] or ["all"]
    if names == ["all"]:
        names = list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    failed = [n for n in names if run(n, tiny) != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
