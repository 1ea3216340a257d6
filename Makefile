# One-command entry points. `make ingest` and `make test` set up .venv on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_WORKERS ?= 2

.PHONY: setup ingest test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install newsflow with its dev tools

ingest: setup  ## poll the default tech-news feeds into ~/.local/share/newsflow/newsflow.duckdb
	$(BIN)/newsflow ingest

lint: setup  ## format check, lint, types
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint  ## format check, lint, types, then the test suite (TEST_WORKERS processes, one file each; then the `alone` tests)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile -m "not alone"
	$(BIN)/pytest -m alone

bench: setup  ## the ingest benchmark (minutes; not part of the tests)
	$(BIN)/python bench/ingest_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
