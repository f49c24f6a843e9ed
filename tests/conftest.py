"""Shared fixtures: a throw-away MLflow store and params composed for the smoke profile."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_tracking(tmp_path_factory, monkeypatch):
    """Every test logs to its own sqlite store, never to the repository's mlflow.db."""
    store = tmp_path_factory.mktemp("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    monkeypatch.setenv("WORDPIPE_PIPELINE_ID", f"test-{os.getpid()}")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    yield


_SMOKE_CACHE: dict = {}


@pytest.fixture
def smoke_params(tmp_path_factory) -> dict:
    """``params.yaml`` composed from ``conf/`` with ``profile=smoke`` (a fresh deep copy)."""
    if "params" not in _SMOKE_CACHE:
        from stages.compose_params import compose

        out = tmp_path_factory.mktemp("params") / "params.yaml"
        compose(out, ["profile=smoke"], conf_dir=REPO / "conf")
        _SMOKE_CACHE["params"] = yaml.safe_load(out.read_text())
    return copy.deepcopy(_SMOKE_CACHE["params"])


def write_params(folder: Path, params: dict) -> Path:
    """Write ``params`` as ``folder/params.yaml`` (stages read it from the working folder)."""
    path = Path(folder) / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path
