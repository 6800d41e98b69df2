# aicloud: `make up` runs the platform locally, `make test` runs the whole suite.
# Both set everything up first and are safe to run again.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.aicloud-installed
HOST ?= 127.0.0.1
PORT ?= 8888

.PHONY: setup up test lint format bench clean

$(STAMP): pyproject.toml
	@# The tests start a real PostgreSQL server: install Debian's when it is missing.
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[lab,test,dev]"
	touch $(STAMP)

setup: $(STAMP)

up: setup
	@echo "aicloud: starting JupyterLab on http://$(HOST):$(PORT)/ (the URL with its token follows)"
	$(BIN)/jupyter lab --ServerApp.ip=$(HOST) --ServerApp.port=$(PORT) --no-browser --allow-root

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: setup lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/api.py
	$(BIN)/python bench/train_overhead.py
	$(BIN)/python bench/elastic.py
	$(BIN)/python bench/gpu_check.py
	$(BIN)/python bench/notebook_jobs.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
