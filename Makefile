# chainwatch — two commands from a fresh clone:
#   make dev    install everything, then run the offline demo
#   make test   install everything, then lint, type-check and run the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: install dev test lint typecheck pytest bench chaos stress contracts clean

install: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

dev: install
	$(BIN)/chainwatch dev

lint: $(PY_STAMP)
	$(BIN)/ruff check chainwatch tests benchmarks
	$(BIN)/ruff format --check chainwatch tests benchmarks

typecheck: $(PY_STAMP)
	$(BIN)/mypy chainwatch

pytest: install
	$(BIN)/pytest -q -m "not chaos_long"

test: install lint typecheck pytest

bench: install
	$(BIN)/python -m benchmarks

chaos: install
	CHAINWATCH_CHAOS=long $(BIN)/pytest -q tests/chaos

# The hostile-load attacks of tests/server/test_hostile.py at full size (minutes); figures printed.
stress: install
	CHAINWATCH_STRESS=1 $(BIN)/pytest -q -s tests/server/test_hostile.py

contracts: $(NODE_STAMP)
	node contracts/build.mjs

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
