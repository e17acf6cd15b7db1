# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# `make run PORT=8311 HOST=0.0.0.0` picks where the app listens.
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test venv lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet ".[test]"
	touch $@

venv: $(VENV)/.installed

run: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py runapp --host $(HOST) --port $(PORT)

test:
	scripts/test

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

bench: venv
	$(BIN)/python bench/core_bench.py
	$(BIN)/python bench/engine_bench.py
	$(BIN)/python bench/delivery_bench.py all
	$(BIN)/python bench/pages_bench.py

clean:
	rm -rf $(VENV) .venv-insync .pytest_cache
