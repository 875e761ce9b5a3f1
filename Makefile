# Rostra — `make run` starts the server on http://127.0.0.1:8080; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages: what the server needs at run time, then what the tests and benchmarks use.
RUN_DEBS := ffmpeg libopus0
TEST_DEBS := chromium fonts-noto-color-emoji espeak-ng sox redis-server nginx coturn varnish icecast2
BENCH_DEBS := wrk icecast2 libnginx-mod-rtmp mpv

.PHONY: install run test lint typecheck pytest bench clean system-deps system-test-deps

install: system-deps $(BIN)/rostra node_modules/.installed

# Installs Debian packages only when run as root and only those missing.
system-deps:
	@./scripts/apt-install $(RUN_DEBS)

system-test-deps:
	@./scripts/apt-install $(TEST_DEBS)

$(BIN)/rostra: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: install
	$(BIN)/rostra serve

lint: $(BIN)/rostra
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(BIN)/rostra
	$(BIN)/mypy

pytest: install system-test-deps
	$(BIN)/pytest -q -ra

test: install system-test-deps lint typecheck pytest

bench: install system-test-deps
	@./scripts/apt-install $(BENCH_DEBS)
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/cost.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
