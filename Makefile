# Autan: `make up` to run it, `make test` to test it. See README.md.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed

ARGS        ?=
PYTEST_ARGS ?=
BENCH_ARGS  ?=

# The first Python >= 3.11 on PATH; override with `make install PYTHON=/path/to/python3.12`.
# Expanded only when the venv is created, after the system packages are in.
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && { echo $$p; break; }; done)

# Tests make throwaway databases on this server; set it to use another.
TEST_ENV := AUTAN_TEST_POSTGRES_URL="$${AUTAN_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"

.PHONY: help install system-deps services up test bench lint clean

help:
	@echo "make up      install what is missing, then start Autan (ARGS=\"--port 9000\")"
	@echo "make test    install what is missing, start PostgreSQL and Redis, run pytest and lint (PYTEST_ARGS=...)"
	@echo "make bench   run the benchmarks (BENCH_ARGS=...)"
	@echo "make lint    ruff check, ruff format --check, mypy"
	@echo "make install system packages, .venv and the package, only what is missing"
	@echo "make clean   remove caches (keeps .venv)"

install: system-deps $(STAMP)

system-deps:
	@bash infra/scripts/install-system-deps.sh

# pyvenv.cfg is new whenever the venv is, so a fresh venv always gets the package.
$(VENV)/pyvenv.cfg: | system-deps
	@if [ -z "$(PYTHON)" ]; then \
		echo "error: no Python >= 3.11 found; install one, or run make install PYTHON=/path/to/python3.11" >&2; \
		exit 1; \
	fi
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(VENV)/pyvenv.cfg
	PIP_ROOT_USER_ACTION=ignore $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

services: system-deps
	@bash infra/scripts/ensure-services.sh

up: install
	$(BIN)/autan up $(ARGS)

# Lint is part of the tests: CI runs only `make test`, and types are checked in CI.
test: install services
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory lint

bench: install services
	$(TEST_ENV) $(BIN)/python -m tests.bench $(BENCH_ARGS)

# All three run, so one pass shows every problem; any failure fails the target.
lint: $(STAMP)
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check . || status=1; \
	$(BIN)/mypy || status=1; \
	$(BIN)/python infra/scripts/unused_deps.py || status=1; \
	exit $$status

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache build
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
