# Two commands on a fresh machine (Python 3.11+, Java 17+, Maven):
#   make run    the pipeline end to end on a local Kafka broker the project starts itself
#   make test   lint, type checks and every test (integration tests on a real broker)
# and the benches (bench/README.md), every component against its ceiling, one at a time:
#   make bench        full size, about 20 minutes; make bench-quick: about 5
#                     (results in bench/results/, history in bench/HISTORY.md)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
BENCH_STAMP := $(VENV)/.bench-installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test lint bench bench-quick clean-state conformance

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	rm -f $(VENV)/.bench-installed-* && touch $@

run: $(STAMP)
	bash scripts/system-deps.sh
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check hookstream processors connectors tests bench examples scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	bash scripts/system-deps.sh --test
	$(VENV)/bin/pytest -q -ra --durations=10 $(PYTEST_ARGS)

# BENCH_ARGS go to bench/run.py, e.g. BENCH_ARGS=--only=processor,delivery
bench: $(BENCH_STAMP)
	bash scripts/system-deps.sh --bench
	$(PY) bench/run.py $(BENCH_ARGS)

bench-quick:
	$(MAKE) bench BENCH_ARGS="--quick $(BENCH_ARGS)"

# The conformance suite against a real GLPI 10 (README, "A real GLPI 10"): opt-in, needs
# GLPI's release tree; without it, it says it did not run and fails, never passes.
conformance: $(STAMP)
	@if [ -z "$(GLPI_SRC)" ] || [ ! -f "$(GLPI_SRC)/bin/console" ]; then \
	  echo "conformance: not run: give GLPI_SRC=DIR, a GLPI 10 release tree (README, \"A real GLPI 10\")" >&2; exit 2; fi
	bash scripts/system-deps.sh --test
	bash scripts/system-deps.sh --real-glpi
	GLPI_SRC="$(abspath $(GLPI_SRC))" $(VENV)/bin/pytest -q -ra -m real_glpi tests/real_glpi $(PYTEST_ARGS)
