# The two commands of the README:
#   make demo   installs tokenbrake into .venv and runs `tokenbrake demo` (no keys, no network)
#   make test   installs it with the test extras and runs the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/tokenbrake demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/overhead.py
