# Two commands for a fresh machine with Python 3.11:
#   make run   - install into .venv, start the embedded stack, workers and generator, show it live
#   make test  - install into .venv and run the whole test suite (it starts its own stack)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Exact versions of every dependency (faust-streaming, aiokafka and mode-streaming
# above all: dharma.streams.faust_fork overrides their internals).
CONSTRAINTS := constraints.txt
PIP_INSTALL = python -m pip install --quiet --disable-pip-version-check
# The packages as `dharma.*`, through the links in typecheck/dharma (pyproject, [tool.mypy]).
TYPED := typecheck/dharma tests

.PHONY: install browser run test lint bench lock clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP_INSTALL) -c $(CONSTRAINTS) -e '.[dev,embedded]'
	touch $(STAMP)

install: $(STAMP)

# The page tests drive Debian's chromium through Playwright (no browser download works
# here): installed with apt where missing, when we may (root); otherwise they say how.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium missing: install Debian's chromium package for the page tests"

run: install
	$(BIN)/dharma up

test: install browser
	$(BIN)/ruff check .
	$(BIN)/mypy $(TYPED)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy $(TYPED)
	$(BIN)/lint-imports

bench: install
	$(BIN)/dharma bench ingest

# Re-resolve every dependency from PyPI, in a fresh virtualenv, into $(CONSTRAINTS)
# (its header kept); then `make test` tells whether an upgrade broke an override.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/$(PIP_INSTALL) '.[dev,embedded]'
	{ grep '^#' $(CONSTRAINTS); .lock-venv/bin/python -m pip freeze --exclude-editable \
		--exclude dharma-streams; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf .lock-venv

clean:
	-$(BIN)/dharma stack down
	rm -rf .dharma
