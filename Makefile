# Two commands for a fresh machine with Python 3.11:
#   make run   - install into .venv, start the embedded stack, workers and generator, show it live
#   make test  - install into .venv and run the whole test suite (it starts its own stack)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/dharma up

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy streams agents sinks topologies infra bench cli synthetic
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy streams agents sinks topologies infra bench cli synthetic
	$(BIN)/lint-imports

bench: install
	$(BIN)/dharma bench ingest

clean:
	-$(BIN)/dharma stack down
	rm -rf .dharma
