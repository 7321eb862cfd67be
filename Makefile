# `make benchmark` runs the default leaderboard; `make test` runs the test suite.
# Both create .venv on first use (scripts/setup.sh).
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: setup benchmark test test-all lint format bench

$(STAMP): pyproject.toml scripts/setup.sh
	scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

benchmark: $(STAMP)
	$(PY) run_benchmark.py run default

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

format: $(STAMP)
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

bench: $(STAMP)
	$(PY) bench/bench_foundation.py
