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

.PHONY: install system-deps test-system-deps quickstart test test-integration test-all lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[all,dev]" "$(TORCH)"
	touch $(STAMP)

install: $(STAMP) system-deps

# Debian packages, as command:package. bubblewrap sandboxes the code agents write (CodeAct,
# code-v1); chromium runs the viewer's browser tests (Playwright drives /usr/bin/chromium:
# its own browser download does not work offline). Installed when we can (root with apt);
# otherwise the sandbox falls back to `unshare`, the browser tests skip, and we say what to
# install. .ci/run installs these (and the integration tier's) before `make test`.
SYSTEM_DEPS := bwrap:bubblewrap
TEST_SYSTEM_DEPS := $(SYSTEM_DEPS) chromium:chromium

define apt_install
	@missing=""; for dep in $(1); do command -v "$${dep%%:*}" >/dev/null || missing="$$missing $${dep#*:}"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing:$$missing"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } || \
	    echo "note: apt-get install$$missing failed"; \
	else echo "note: not installed:$$missing; sudo apt-get install$$missing"; fi
endef

system-deps:
	$(call apt_install,$(SYSTEM_DEPS))

test-system-deps:
	$(call apt_install,$(TEST_SYSTEM_DEPS))

# The main job end to end on CPU: SFT the tiny model on expert demonstrations, evaluate,
# one evolve iteration (refinement data vs an expert-only control arm), evaluate, report.
# Resumable: re-run to continue. Report: runs/quickstart/report/evolve.html
quickstart: install
	$(BIN)/palaestra evolve -c configs/quickstart.yaml --out runs/quickstart

test: install test-system-deps
	$(BIN)/pytest

# Third-party environment adapters (TextWorld, TextWorld-Express, ScienceWorld, BabyAI,
# TextArena, MiniWoB++): their extras, then their integration tests. Needs Java 17, gcc and
# chromium from apt (.ci/run installs them).
test-integration: install
	$(BIN)/python -m pip install --quiet -e ".[external]" "$(TORCH)"
	$(BIN)/pytest -m "integration and not slow" tests/env/external tests/env/test_conformance.py

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
	$(BIN)/python bench/sandbox.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
