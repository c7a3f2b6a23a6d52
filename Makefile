# Herald developer tasks. GNU make; every target works from a fresh clone.
#
#   make run        serve the embedded default (SQLite, in-process bus) on 127.0.0.1:8000
#   make test       run the test suite (PYTEST_ARGS="..." to pass flags, e.g. -k or -x)
#   make lint       ruff check, ruff format --check, mypy
#   make services   start the local PostgreSQL and Redis the tests use, if they are not running
#   make venv       create .venv and install Herald with its dev extras (done on demand)
#   make clean      remove the venv and caches (keeps herald.db and the dev secret)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        ?= .venv
PYTEST_ARGS ?=
RUN_ARGS    ?=
LINT_PATHS  ?= app tests loadtests

# Re-install when the packaging metadata changes; touching nothing else keeps reruns instant.
STAMP      := $(VENV)/.installed
PKG_FILES  := setup.cfg $(wildcard pyproject.toml setup.py)

SERVICE_WAIT ?= 60

.PHONY: help venv run test lint format services clean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

venv: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PKG_FILES) | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --disable-pip-version-check --upgrade pip
	$(VENV)/bin/python -m pip install --disable-pip-version-check -e '.[dev]'
	touch $@

run: $(STAMP)
	$(VENV)/bin/herald serve $(RUN_ARGS)

# pytest's own exit status goes through unchanged: 5 (no tests collected) fails the target.
test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# All three checks run even when one fails, so one pass shows every problem.
lint: $(STAMP)
	@status=0; \
	echo "+ ruff check $(LINT_PATHS)"; $(VENV)/bin/ruff check $(LINT_PATHS) || status=1; \
	echo "+ ruff format --check $(LINT_PATHS)"; $(VENV)/bin/ruff format --check $(LINT_PATHS) || status=1; \
	echo "+ mypy"; $(VENV)/bin/mypy || status=1; \
	exit $$status

# Rewrites files: ruff's import sorting and formatting.
format: $(STAMP)
	$(VENV)/bin/ruff check --fix --select I $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

# Idempotent: starts what is not answering, then waits (at most SERVICE_WAIT seconds each).
services:
	@command -v pg_isready >/dev/null && command -v pg_ctlcluster >/dev/null \
	  || { echo "services: PostgreSQL is not installed (apt-get install -y postgresql)" >&2; exit 1; }
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
	  || { echo "services: Redis is not installed (apt-get install -y redis-server)" >&2; exit 1; }
	@if pg_isready -q -h 127.0.0.1 -p 5432; then \
	  echo "postgresql: already running on 127.0.0.1:5432"; \
	else \
	  version=$$(ls /etc/postgresql | sort -V | tail -n 1); \
	  echo "postgresql: starting cluster $$version/main"; \
	  pg_ctlcluster --skip-systemctl-redirect "$$version" main start \
	    || echo "postgresql: pg_ctlcluster start failed; waiting in case it is already starting" >&2; \
	fi
	@if [ "$$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; then \
	  echo "redis: already running on 127.0.0.1:6379"; \
	else \
	  echo "redis: starting"; \
	  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no; \
	fi
	@deadline=$$(( $$(date +%s) + $(SERVICE_WAIT) )); \
	until pg_isready -q -h 127.0.0.1 -p 5432 -t 2; do \
	  if [ "$$(date +%s)" -ge "$$deadline" ]; then \
	    echo "postgresql: not ready on 127.0.0.1:5432 after $(SERVICE_WAIT) s" >&2; \
	    pg_lsclusters >&2 || true; \
	    tail -n 30 /var/log/postgresql/*.log >&2 2>/dev/null || true; \
	    exit 1; \
	  fi; \
	  sleep 1; \
	done; \
	echo "postgresql: ready"; \
	until [ "$$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; do \
	  if [ "$$(date +%s)" -ge "$$deadline" ]; then \
	    echo "redis: not answering PING on 127.0.0.1:6379 after $(SERVICE_WAIT) s" >&2; \
	    exit 1; \
	  fi; \
	  sleep 1; \
	done; \
	echo "redis: ready"

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	find app tests loadtests -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
