# Two commands do everything: `make run` (the whole pipeline) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Stage commands in dvc.yaml call `python`: it must be the venv's.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
MLFLOW_PORT ?= 5000
# make push/pull: a remote's name (from .dvc/config.local or .dvc/config), or a URL or
# folder (anything with a "/"), which is then saved as the remote "env" in .dvc/config.local.
# Empty: DVC's default remote.
DVC_REMOTE ?=
REMOTE_IS_URL := $(findstring /,$(DVC_REMOTE))
REMOTE_FLAG := $(if $(DVC_REMOTE),-r $(if $(REMOTE_IS_URL),env,$(DVC_REMOTE)))
# make mlflow-server: where the server keeps its database and artifacts
MLFLOW_SERVER_DIR ?= $(CURDIR)/mlflow-server

.DEFAULT_GOAL := help
.PHONY: help setup run test test-all lint format params gpu-bundle mlflow-ui mlflow-server push pull bench clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## create or refresh .venv (pinned dependencies from pyproject.toml)

run: setup ## run the whole pipeline (dvc repro) on the default data
	@test -d .git || git init -q
	dvc repro

test: setup ## run the tests (without the slow and gpu ones)
	$(PY) -m pytest -m "not slow and not gpu" -q

test-all: setup ## run every test, slow ones included (downloads from PyPI/npm)
	$(PY) -m pytest -q

lint: setup ## ruff lint and format check
	$(VENV)/bin/ruff check pipeline stages tests benchmarks
	$(VENV)/bin/ruff format --check pipeline stages tests benchmarks

format: setup ## ruff autofix and format
	$(VENV)/bin/ruff check --fix pipeline stages tests benchmarks
	$(VENV)/bin/ruff format pipeline stages tests benchmarks

params: setup ## regenerate params.yaml from conf/ (dvc exp run does this itself)
	$(PY) -m stages.compose_params

gpu-bundle: setup ## pack .gpu/ (gpu params, raw data, wheels) for benchmarks/gpu_suite.py (docs/GPU.md)
	bash benchmarks/gpu_bundle.sh

mlflow-ui: setup ## open the MLflow UI on http://127.0.0.1:$(MLFLOW_PORT)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui \
	  --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --default-artifact-root $(CURDIR)/mlruns \
	  --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1

mlflow-server: setup ## a tracking server on 127.0.0.1:$(MLFLOW_PORT) (sqlite + artifacts in $(MLFLOW_SERVER_DIR))
	@mkdir -p $(MLFLOW_SERVER_DIR)/artifacts
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow server \
	  --backend-store-uri sqlite:///$(MLFLOW_SERVER_DIR)/mlflow.db \
	  --artifacts-destination $(MLFLOW_SERVER_DIR)/artifacts --serve-artifacts \
	  --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1

push: ## upload DVC-tracked data to the remote (DVC_REMOTE=name|url, else the default one)
	$(if $(REMOTE_IS_URL),dvc remote add --local --force env '$(DVC_REMOTE)' &&) dvc push $(REMOTE_FLAG)

pull: ## download DVC-tracked data from the remote (DVC_REMOTE=name|url, else the default one)
	$(if $(REMOTE_IS_URL),dvc remote add --local --force env '$(DVC_REMOTE)' &&) dvc pull $(REMOTE_FLAG)

clean: ## remove caches (not data, not the venv)
	rm -rf .pytest_cache .ruff_cache
