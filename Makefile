# sfvault — the two commands that matter: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
DEMO_SCALE ?= 1000000
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help deps venv system-deps lint test test-fast demo bench clean

help:
	@echo "make demo   - emulated org -> full + incremental encrypted backup, verify, summary"
	@echo "make test   - install everything the tests need, lint, run the whole suite"
	@echo "make lint   - ruff, mypy (engine, emulator, api), import-linter contracts"
	@echo "make bench  - the benchmark scenarios at full scale"

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

system-deps:
	bash scripts/install-system-deps.sh

deps: venv system-deps

lint: venv
	$(VENV)/bin/ruff check engine api cluster emulator benchmarks tests scripts devkit
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Every real-service marker is required: a skipped emulator/Azurite/PostgreSQL/... test fails the run.
test: deps lint
	SFVAULT_TEST_REQUIRE=all $(PY) -m pytest

test-fast: venv
	$(PY) -m pytest tests/unit

# emulated org -> full backup on a LocalCluster -> churn -> incremental -> verify -> summary
demo: deps
	$(PY) scripts/backup_demo.py --scale $(DEMO_SCALE)

bench: deps
	$(PY) -m benchmarks all

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache sfvault-data
