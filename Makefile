# The two commands of the Quickstart: `make speedrun` and `make test`.
# Each creates .venv and installs what it needs on a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: speedrun test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

speedrun: $(VENV)/.installed
	$(BIN)/colossus speedrun --preset cpu $(ARGS)

test: $(VENV)/.installed-dev
	$(BIN)/ruff check colossus tests benchmarks
	$(BIN)/python -m pytest $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check colossus tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
