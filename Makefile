# reeldb developer commands. `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= ./reeldb-data
PYTEST_WORKERS ?= auto

.PHONY: install run test lint format bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Serve reeldb on 127.0.0.1:8000, embedded default (SQLite + local files), demo DataStore loaded.
run: $(STAMP)
	$(BIN)/reeldb --database sqlite:///$(DATA)/reel.db serve --demo

## Lint, type-check and run the whole test suite.
test: $(STAMP) lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs/docs_helpers.py
	$(BIN)/ruff format --check src tests benchmarks docs/docs_helpers.py
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks docs/docs_helpers.py
	$(BIN)/ruff format src tests benchmarks docs/docs_helpers.py

## Benchmarks print JSON; see benchmarks/README.md.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_validation.py
	$(BIN)/python benchmarks/bench_write.py
	$(BIN)/python benchmarks/http_bench.py

clean:
	rm -rf $(VENV) $(DATA) build dist .mypy_cache .ruff_cache .pytest_cache .hypothesis
