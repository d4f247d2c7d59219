# Two commands on a fresh machine (Python 3.11+, Java 17+, Maven):
#   make run    the pipeline end to end on a local Kafka broker the project starts itself
#   make test   lint, type checks and every test (integration tests on a real broker)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test lint bench clean-state

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

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
