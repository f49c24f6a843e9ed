# Two commands do everything: `make run` (the whole pipeline) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
# The lock is made for CPython 3.11; other versions (3.12, 3.13) work from the ranges in
# pyproject.toml: `make setup PYTHON=python3.12 LOCK=`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
LOCK ?= requirements.lock
# the CPU build of torch: a plain `torch` from PyPI is a CUDA build of several GB
LOCK_TORCH ?= 2.13.0+cpu
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

STUDY_PROFILE ?=

.DEFAULT_GOAL := help
.PHONY: help setup lock run lab study test test-all lint format params mlflow-ui mlflow-server push pull clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
ifneq ($(LOCK),)
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
else
	$(PY) -m pip install -q -e '.[dev]'
endif
	@touch $(STAMP)

setup: $(STAMP) ## create or refresh .venv: exactly the versions and hashes of requirements.lock

lock: ## regenerate requirements.lock from the ranges in pyproject.toml (CPython 3.11)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(VENV)/bin/pip-compile || $(PY) -m pip install -q pip-tools
	$(VENV)/bin/pip-compile --quiet --extra dev --extra gpu --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --upgrade-package "torch==$(LOCK_TORCH)" \
	  --output-file requirements.lock pyproject.toml

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

study: setup ## the embedding study (conf/study): queue the grid, run it, write reports/study/embeddings.md
	nice -n 10 $(PY) -m stages.study all $(if $(STUDY_PROFILE),--profile $(STUDY_PROFILE))

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
