# The README's two commands: `make quickstart` and `make test`. Each works on a
# fresh machine by itself: it creates .venv if missing and installs into it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.palaestra-installed
# torch is pinned: on machines without CUDA, pip takes the 2.13.0 CPU wheel;
# an unpinned torch would pull a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: install quickstart test test-all lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[all,dev]" "$(TORCH)"
	touch $(STAMP)

install: $(STAMP)

quickstart: install
	$(BIN)/palaestra demo --tasks 20

test: install
	$(BIN)/pytest

# Every tier, including slow and integration tests.
test-all: install
	$(BIN)/pytest -m ""

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/pyright

bench: install
	$(BIN)/python bench/env_throughput.py
	$(BIN)/python bench/rollout_batching.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
