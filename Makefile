# reeldb developer commands. `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= ./reeldb-data
PYTEST_WORKERS ?= auto

.PHONY: install run test lint format bench clean console browser

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP) console

## The web console (console/, Vite + Preact + TypeScript), built into the Python package.
CONSOLE_OUT := src/reeldb/console/static/index.html
CONSOLE_DEPS := console/node_modules/.package-lock.json
CONSOLE_SRC := $(wildcard console/src/*.ts console/src/*.tsx console/src/*.css) \
	console/index.html console/vite.config.ts console/tsconfig.json

console: $(CONSOLE_OUT)

$(CONSOLE_DEPS): console/package.json console/package-lock.json
	cd console && npm ci --no-audit --no-fund --loglevel=error
	touch $(CONSOLE_DEPS)

$(CONSOLE_OUT): $(CONSOLE_DEPS) $(CONSOLE_SRC)
	cd console && npm run --silent build

## Debian's Chromium for the console's browser tests (tests/console), when it is missing.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

## Serve reeldb on 127.0.0.1:8000, embedded default (SQLite + local files), demo DataStore loaded.
run: $(STAMP) console
	$(BIN)/reeldb --database sqlite:///$(DATA)/reel.db serve --demo

## Lint, type-check and run the whole test suite.
test: $(STAMP) console browser lint
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
	rm -rf $(VENV) $(DATA) build dist .mypy_cache .ruff_cache .pytest_cache .hypothesis \
		console/node_modules src/reeldb/console/static
