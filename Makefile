# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSYNC := .venv-insync
# `make run PORT=8311 HOST=0.0.0.0` picks where the app listens.
HOST ?= 127.0.0.1
PORT ?= 8000

# Installs come from the lock files, never from pyproject's ranges: uv.lock for .venv,
# requirements/insync.txt for .venv-insync (docs/decisions.md, "Dependencies").
# uv itself is pinned here and lives in its own virtualenv, bootstrapped with pip.
UV_VERSION := 0.13.9
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
# uv makes the virtualenvs with $(PYTHON) and never downloads a Python of its own.
export UV_PYTHON_DOWNLOADS := never
# `make lock LOCK_ARGS=--upgrade` takes the newest allowed versions of everything.
LOCK_ARGS ?=

.PHONY: run test venv venv-insync lock lint bench clean

$(TOOLS)/.uv-$(UV_VERSION):
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"
	touch $@

$(VENV)/.installed: pyproject.toml uv.lock $(TOOLS)/.uv-$(UV_VERSION)
	test -x $(BIN)/python || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --quiet --locked --extra test --extra postgres --no-install-project \
		|| { echo "If uv.lock is out of date: make lock" >&2; exit 1; }
	touch $@

venv: $(VENV)/.installed

$(INSYNC)/.installed: requirements/insync.txt $(TOOLS)/.uv-$(UV_VERSION)
	test -x $(INSYNC)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(INSYNC)
	$(UV) pip sync --quiet --require-hashes --python $(INSYNC)/bin/python requirements/insync.txt
	touch $@

venv-insync: $(INSYNC)/.installed

# Re-resolve both lock files after changing pyproject's dependencies or requirements/insync.in.
lock: $(TOOLS)/.uv-$(UV_VERSION)
	$(UV) lock $(LOCK_ARGS) --python $(PYTHON)
	$(UV) pip compile $(LOCK_ARGS) --quiet --universal --python-version 3.11 --generate-hashes \
		--custom-compile-command "make lock" requirements/insync.in -o requirements/insync.txt

run: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py runapp --host $(HOST) --port $(PORT)

test:
	scripts/test

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# alerts_bench runs its failure stage for 2 minutes here; its default (no --seconds) is the
# issue's 10-minute run.
bench: venv
	$(BIN)/python bench/core_bench.py
	$(BIN)/python bench/engine_bench.py
	$(BIN)/python bench/warmup_bench.py
	$(BIN)/python bench/delivery_bench.py all
	$(BIN)/python bench/pages_bench.py
	$(BIN)/python bench/alerts_bench.py --seconds 120
	$(BIN)/python bench/hours_bench.py

clean:
	rm -rf $(VENV) $(INSYNC) $(TOOLS) .pytest_cache
