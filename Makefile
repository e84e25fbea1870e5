# The two commands of the README:
#   make demo   installs tokenbrake (the base install, no extras) into .venv and runs `tokenbrake demo`
#   make test   installs it with the test extras (which include the router's embedding model) and runs
#               the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/tokenbrake demo

test: install-test
	$(BIN)/python -m pytest -q

bench: install-test
	$(BIN)/python bench/overhead.py
