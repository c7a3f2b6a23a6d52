# Herald developer tasks. GNU make; every target works from a fresh clone.
#
#   make run        serve the embedded default (SQLite, in-process bus) on 127.0.0.1:8000
#   make test       run the test suite (PYTEST_ARGS="..." to pass flags, e.g. -k or -x)
#   make lint       ruff check, ruff format --check, mypy
#   make services   start the local PostgreSQL and Redis the tests use, if they are not running
#   make venv       create .venv with Herald and the test and lint tools (done on demand)
#   make lock       refresh requirements.lock and requirements-dev.lock from pyproject.toml
#   make clean      remove the venv and caches (keeps herald.db and the dev secret)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        ?= .venv
PYTEST_ARGS ?=
RUN_ARGS    ?=
LINT_PATHS  ?= app tests loadtests

# Two installs from the lock files (exact versions, hashes checked): `make run` needs only
# Herald's own dependencies; `make test` and `make lint` add the test and lint tools. Each is
# redone when its lock or the packaging metadata changes; otherwise reruns are instant.
RUN_STAMP  := $(VENV)/.installed-run
STAMP      := $(VENV)/.installed-dev
PKG_FILES  := pyproject.toml
# app/ is the herald_server package (pyproject.toml's package-dir); mypy finds it by that name
# through this link, since it cannot follow the editable install's import hook.
TYPECHECK  := $(VENV)/typecheck/herald_server

SERVICE_WAIT ?= 60

.PHONY: help venv run test lint format lock services clean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

venv: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): requirements.lock $(PKG_FILES) | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --disable-pip-version-check --require-hashes -r requirements.lock
	$(VENV)/bin/python -m pip install --disable-pip-version-check --no-deps -e .
	touch $@

$(STAMP): requirements-dev.lock $(PKG_FILES) | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(VENV)/bin/python -m pip install --disable-pip-version-check --no-deps -e .
	mkdir -p $(dir $(TYPECHECK)) && ln -sfn $(CURDIR)/app $(TYPECHECK)
	touch $@ $(RUN_STAMP)

# uv resolves for Linux and Python 3.11 with every file's hash; the versions already in a lock
# are kept unless UPGRADE=--upgrade.
UPGRADE ?=
lock: | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --disable-pip-version-check --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml $(UPGRADE) --generate-hashes --python-version 3.11 \
	  --python-platform linux --no-header --quiet -o requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --extra lint $(UPGRADE) --generate-hashes \
	  --python-version 3.11 --python-platform linux --no-header --quiet -o requirements-dev.lock

run: $(RUN_STAMP)
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
	rm -rf $(VENV) build dist *.egg-info app/*.egg-info .mypy_cache .ruff_cache .pytest_cache
	find app tests loadtests -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
