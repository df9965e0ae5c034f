# nianbao: `make demo` runs a whole collection year end to end; `make test` runs the test suite.
# Each target creates .venv and installs what it needs on a fresh machine.

FUZZ_SECONDS ?= 300

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo serve test lint bench fuzz clean

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

# two worker processes: the suite mostly waits on Prefect, PostgreSQL, mail servers and browsers (19 min in one
# process on 2 cores, 14 in two)
test: install
	$(BIN)/pytest -n 2

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy .

bench: install
	$(BIN)/python -m bench.run --units 1000,10000

# Damaged returns against the examination for FUZZ_SECONDS; inputs that break a promise go to bench/out/fuzz-crashes/.
# atheris (coverage-guided) needs a wheel for this platform: without it the seeded random engine runs instead.
fuzz: install
	$(BIN)/python -m pip install --quiet atheris || echo "atheris did not install: the random engine runs instead"
	$(BIN)/python -m bench.fuzz_reader --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) var build *.egg-info bench/out tests/output
