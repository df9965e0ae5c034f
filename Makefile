# nianbao: `make demo` runs a whole collection year end to end; `make test` runs the test suite.
# Each target creates .venv and installs what it needs on a fresh machine.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo serve test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)
	scripts/system-packages

demo: install
	$(BIN)/nianbao demo

serve: install
	$(BIN)/nianbao serve

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy .

bench: install
	$(BIN)/python -m bench.run --units 1000

clean:
	rm -rf $(VENV) var build *.egg-info bench/out tests/output
