"""pipeline.core.tracking: one MLflow run per stage, nested under one parent per pipeline run."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import mlflow
import pytest

from pipeline.core import tracking as tracking


def _runs(uri):
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(tracking.EXPERIMENT_NAME)
    return client.search_runs([exp.experiment_id]) if exp else []


def test_stages_of_one_pipeline_share_a_parent(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("WORDPIPE_PIPELINE_ID", "pipe-1")
    monkeypatch.chdir(tmp_path)
    for stage in ("prepare@sotu", "cooccur"):
        monkeypatch.setenv("DVC_STAGE", stage)
        with tracking.stage_run(stage.split("@")[0], {"a.b": 1}) as tr:
            tr.log_metrics({"tokens": 5, "nested": {"x": 2.5}, "name": "skip-me"})
            (tmp_path / "r.txt").write_text("report")
            tr.log_artifact(tmp_path / "r.txt")
    runs = _runs(uri)
    parents = [r for r in runs if r.data.tags.get("wordpipe.kind") == "pipeline"]
    stages = [r for r in runs if r.data.tags.get("wordpipe.kind") == "stage"]
    assert len(parents) == 1 and len(stages) == 2
    pid = parents[0].info.run_id
    assert all(r.data.tags["mlflow.parentRunId"] == pid for r in stages)
    assert {r.data.tags["dvc.stage"] for r in stages} == {"prepare@sotu", "cooccur"}
    assert all(r.info.status == "FINISHED" for r in stages)
    assert stages[0].data.metrics["nested.x"] == 2.5 and stages[0].data.params["a.b"] == "1"


def test_experiment_parents_are_tagged_with_their_grid_point(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"  # the checkout's own store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("WORDPIPE_PIPELINE_ID", "pipe-exp")
    monkeypatch.setenv("DVC_EXP_NAME", "st-a")
    monkeypatch.setenv("DVC_STAGE", "train_ner")
    monkeypatch.chdir(tmp_path)
    with tracking.stage_run("train_ner", {"ner.seed": 1}):
        pass
    out = tracking.tag_experiment_parents(
        {"st-a": {"study.point": "st-a", "study.seed": "s1"}, "st-b": {"study.point": "st-b"}},
        uri,
    )
    assert sorted(out) == ["st-a", "st-b"]
    runs = {r.info.run_id: r for r in _runs(uri)}
    (stage,) = [r for r in runs.values() if r.data.tags.get("wordpipe.kind") == "stage"]
    parent = runs[out["st-a"]]
    assert stage.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.data.tags["study.seed"] == "s1" and parent.data.tags["dvc.exp_name"] == "st-a"
    # an experiment whose stages all came from the run-cache gets a parent of its own
    assert runs[out["st-b"]].data.tags["wordpipe.restored"] == "true"


def test_failed_stage_is_marked_failed(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(ValueError), tracking.stage_run("glove"):
        raise ValueError("boom")
    (run,) = [r for r in _runs(uri) if r.data.tags.get("wordpipe.kind") == "stage"]
    assert run.info.status == "FAILED"


def test_unreachable_server_warns_once_and_quickly(monkeypatch, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    t0 = time.perf_counter()
    with tracking.stage_run("prepare", {"x": 1}) as tr:
        tr.log_metrics({"a": 1.0})
        tr.log_text("t", "t.txt")
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert err.count("MLflow tracking disabled") == 1
    assert not tr.enabled


def test_repo_root_from_queued_experiment_copy(tmp_path):
    queued = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpabc"
    assert tracking.repo_root(queued) == tmp_path / "repo"
    assert tracking.repo_root(tmp_path) == Path(tmp_path).resolve()


def test_default_uri_is_absolute_sqlite(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    uri = tracking.default_tracking_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_copied_checkout_writes_only_inside_itself(tmp_path, monkeypatch):
    """Copy a repository with runs; a stage run in the copy leaves the original as it was."""
    import shutil

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WORDPIPE_PIPELINE_ID", raising=False)
    original, copy = tmp_path / "original", tmp_path / "copy"
    original.mkdir()
    monkeypatch.chdir(original)
    (original / "r.txt").write_text("first")
    with tracking.stage_run("prepare") as tr:
        tr.log_artifact(original / "r.txt")
    shutil.copytree(original, copy)
    before = {"db": (original / "mlflow.db").read_bytes(), "runs": _snapshot(original / "mlruns")}

    monkeypatch.chdir(copy)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # a new process: mlflow sets it
    (copy / "r.txt").write_text("second")
    with tracking.stage_run("cooccur") as tr:
        tr.log_artifact(copy / "r.txt")
    assert tr.enabled
    assert (original / "mlflow.db").read_bytes() == before["db"]
    assert _snapshot(original / "mlruns") == before["runs"]
    new = [p for p in (copy / "mlruns").rglob("r.txt") if p.read_text() == "second"]
    assert len(new) == 1
    uri = f"sqlite:///{copy / 'mlflow.db'}"
    runs = {r.data.tags.get("dvc.stage"): r for r in _runs(uri)}
    assert runs["cooccur"].info.artifact_uri.startswith((copy / "mlruns").as_uri())
