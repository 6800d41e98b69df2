# aicloud: `make up` runs the local JupyterHub with aicloud, `make test` runs the whole suite.
# Both set everything up first and are safe to run again.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.aicloud-installed
HOST ?= 127.0.0.1
PORT ?= 8000
LAB_PORT ?= 8888
CHP_VERSION := 5.3.0
# The real-hub tests also run against JupyterHub 5.5 (what z2jh ships): an overlay of that
# version alone, first on PYTHONPATH for the hub and its servers (see tests/hub_helpers.py).
HUB55_VERSION := 5.5.4
HUB55 := $(VENV)/hub-5.5

.PHONY: setup up lab test lint format bench clean hub-5.5

$(STAMP): pyproject.toml labextension/package.json kernels/python3-pytorch/kernel.json kernels/python3-tensorflow/kernel.json
	@# The tests start a real PostgreSQL server: install Debian's when it is missing.
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql)
	@# pip install builds the JupyterLab sidebar (labextension/) with Node.js >= 18.
	@command -v node >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[lab,test,dev,hub]"
	@# The hub's proxy, from npm, inside the venv (so `make clean` removes it).
	npm install --silent --no-audit --no-fund --prefix $(VENV)/node configurable-http-proxy@$(CHP_VERSION)
	@# The browser tests drive Debian's chromium through Playwright (no browser download).
	@command -v chromium >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	@# The GPU/TPU kernels: "Python 3 (PyTorch)" and "Python 3 (TensorFlow)".
	$(BIN)/jupyter kernelspec install --sys-prefix kernels/python3-pytorch >/dev/null
	$(BIN)/jupyter kernelspec install --sys-prefix kernels/python3-tensorflow >/dev/null
	touch $(STAMP)

setup: $(STAMP)

$(HUB55)/.installed-$(HUB55_VERSION): | $(STAMP)
	rm -rf $(HUB55)
	$(BIN)/python -m pip install --quiet --no-deps --target $(HUB55) jupyterhub==$(HUB55_VERSION)
	touch $@

hub-5.5: $(HUB55)/.installed-$(HUB55_VERSION)

up: setup
	@echo "aicloud: starting JupyterHub on http://$(HOST):$(PORT)/"
	@echo "aicloud: log in with any user name (and any password, or \$$AICLOUD_HUB_PASSWORD if set);"
	@echo "aicloud: 'admin' is the hub admin and an aicloud admin. Ctrl-C stops the hub and all servers."
	@echo "aicloud: as root, each user is a Unix user of their own (AICLOUD_HUB_USERS=system; see docs/operators/hub.md)."
	AICLOUD_HUB_IP=$(HOST) AICLOUD_HUB_PORT=$(PORT) \
		$(BIN)/jupyterhub -f spawner_config/jupyterhub_config.py

lab: setup
	@echo "aicloud: starting JupyterLab on http://$(HOST):$(LAB_PORT)/ (the URL with its token follows)"
	$(BIN)/jupyter lab --ServerApp.ip=$(HOST) --ServerApp.port=$(LAB_PORT) --no-browser --allow-root

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# One pytest run on 3 xdist workers (on 2 cores: much of a test is waiting for a hub, a kernel
# or a child process), a group per worker at a time, longest first
# (tests/conftest.py groups by file, and puts the `serial` files (timing-sensitive, DDP) in one
# group, so they run one after another on one worker while the other worker runs the rest).
PYTEST_WORKERS ?= 3
test: setup lint hub-5.5
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/api.py
	$(BIN)/python bench/train_overhead.py
	$(BIN)/python bench/elastic.py
	$(BIN)/python bench/gpu_check.py
	$(BIN)/python bench/notebook_jobs.py
	$(BIN)/python bench/hub_spawn.py
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/log_streaming.py
	$(BIN)/python bench/chaos.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
	rm -rf labextension/node_modules labextension/lib labextension/test-build extension/aicloud/labextension
