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

.DEFAULT_GOAL := help
.PHONY: help setup run lab test test-all lint format params gpu-bundle mlflow-ui bench clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## create or refresh .venv (pinned dependencies from pyproject.toml)

run: setup ## run the whole pipeline (dvc repro) on the default data
	@test -d .git || git init -q
	dvc repro

lab: setup ## run the sequence-model lab (lab/dvc.yaml) and write reports/course/index.md
	@test -d .git || git init -q
	dvc repro lab/dvc.yaml

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

clean: ## remove caches (not data, not the venv)
	rm -rf .pytest_cache .ruff_cache
