"""Stages log to a shared `mlflow server` (the one `make mlflow-server` starts, here on a
free loopback port): runs nested as with the local store, artifacts in the server's
artifact root, nothing in the checkout's own mlruns/."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from pipeline.core import tracking

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_command(port: int, folder: Path) -> str:
    """The recipe of `make mlflow-server` (dry run: make executes nothing)."""
    out = subprocess.run(
        ["make", "-n", "mlflow-server", f"MLFLOW_PORT={port}", f"MLFLOW_SERVER_DIR={folder}"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    lines = out.replace("\\\n", " ").splitlines()
    (command,) = [ln for ln in lines if " server " in ln and "mlflow" in ln]
    return command


@pytest.fixture
def server(tmp_path):
    port, folder = _free_port(), tmp_path / "server"
    (folder / "artifacts").mkdir(parents=True)
    command = _server_command(port, folder)
    assert "--workers 1" in command and "--host 127.0.0.1" in command
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in command
    proc = subprocess.Popen(
        ["bash", "-c", f"exec env {command}"], cwd=REPO, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not start in 120 s"
            time.sleep(0.5)
        yield url, folder
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_stages_log_to_a_server_nested_with_artifacts_in_its_root(server, tmp_path, monkeypatch):
    url, folder = server
    work = tmp_path / "checkout"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("WORDPIPE_PIPELINE_ID", "shared-1")
    for stage in ("prepare@sotu", "cooccur"):
        monkeypatch.setenv("DVC_STAGE", stage)
        with tracking.stage_run(stage.split("@")[0], {"a": 1}) as tr:
            assert tr.enabled, "tracking was disabled"
            (work / "report.txt").write_text(f"report of {stage}")
            tr.log_artifact(work / "report.txt", "reports")
            tr.log_metrics({"tokens": 5})
        assert tr.enabled, "tracking failed during the run"

    client = mlflow.MlflowClient(tracking_uri=url)
    exp = client.get_experiment_by_name(tracking.EXPERIMENT_NAME)
    assert exp.artifact_location.startswith("mlflow-artifacts:")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("wordpipe.kind") == "pipeline"]
    stages = [r for r in runs if r.data.tags.get("wordpipe.kind") == "stage"]
    assert {r.data.tags["dvc.stage"] for r in stages} == {"prepare@sotu", "cooccur"}
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in stages)
    assert all(r.info.status == "FINISHED" and r.data.metrics["tokens"] == 5 for r in stages)

    stored = sorted(folder.joinpath("artifacts").rglob("report.txt"))
    assert len(stored) == 2
    assert {p.read_text() for p in stored} == {"report of prepare@sotu", "report of cooccur"}
    assert not (work / "mlruns").exists()
