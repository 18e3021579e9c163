# Two commands: `make run` (set up, then the main job) and `make test` (set up, then the suite).
SHELL := /bin/bash
VENV := .venv
UV = $(shell command -v uv 2>/dev/null || echo python3 -m uv)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export BENTOML_DO_NOT_TRACK := true

.PHONY: setup system run test bench ui stop clean

# pytest-xdist processes for `make test` (CI has 2 cores)
TEST_WORKERS ?= 2
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

setup: system $(VENV)/.installed  ## system packages, uv if missing, then the locked environment

system:  ## system packages (Debian): espeak-ng for the audio tasks, a C compiler to build pesq, PostgreSQL and sshd for `mlzoo cluster`
	@command -v espeak-ng >/dev/null 2>&1 && command -v cc >/dev/null 2>&1 && [ -x /usr/sbin/sshd ] \
		&& ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq espeak-ng gcc libc6-dev postgresql openssh-server >/dev/null; }

$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

run: setup  ## retrain image_classification (quick profile) through the whole lifecycle
	$(VENV)/bin/mlzoo run image_classification --profile quick
	@$(VENV)/bin/mlzoo status
	@echo "MLflow UI: make ui   Stop the local Prefect server: make stop"

test: setup  ## the whole suite: unit, contract, integration, end to end
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: setup  ## platform overhead, serving throughput (wrk), cluster fan-out -> bench/RESULTS.md
	@command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk >/dev/null; }
	$(VENV)/bin/python bench/overhead.py
	$(VENV)/bin/python bench/serving.py
	$(VENV)/bin/python bench/cluster.py

ui: setup
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.mlzoo/mlflow.db --host 127.0.0.1 --port 5000

stop:
	-$(VENV)/bin/mlzoo server stop

clean:
	rm -rf .mlzoo data/restored $(filter-out data/restored,$(wildcard data/*))
