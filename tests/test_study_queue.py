"""The study end to end: a real two-point queued sweep (smoke profile) in a throw-away
git repository: `dvc exp run --queue`, `dvc exp run --run-all`, the report; the report's
numbers are checked against each experiment's own metrics files, and MLflow holds one
tagged parent run per experiment with its stages as children, in the repository's store.

The copy keeps only the stages the smoke grid needs (fetch of two local files and
train_sentiment with random embeddings), so that it runs without downloads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from tests.conftest import REPO
from tests.test_sentiment import _negation_data

pytestmark = pytest.mark.slow

LEXICON = "good\t1.9\t0.9\t[]\ngreat\t3.1\t0.7\t[]\nbad\t-2.5\t0.6\t[]\nawful\t-2.0\t0.8\t[]\n"


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for key in ("WORDPIPE_PIPELINE_ID", "MLFLOW_TRACKING_URI", "PYTHONPATH"):
        env.pop(key, None)  # the stages find their parent run and the store themselves
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["DVC_NO_ANALYTICS"] = "1"
    proc = subprocess.run(
        [sys.executable, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def study_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pipeline", "stages", "conf"):
        shutil.copytree(REPO / name, repo / name, ignore=ignore)
    (repo / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc" / "config", repo / ".dvc" / "config")
    # local data: rt-polarity-format sentences and a four-word lexicon
    src = tmp_path / "src"
    src.mkdir()
    texts, labels = _negation_data(240, seed=3)
    texts = [
        t.replace("good", "great").replace("bad", "awful") if i % 3 else t
        for i, t in enumerate(texts)
    ]
    lines = [
        f"{i + 1}\t{1.5 if y else -1.5}\t{t}"
        for i, (t, y) in enumerate(zip(texts, labels, strict=True))
    ]
    (src / "movieReviewSnippets_GroundTruth.txt").write_text("\n".join(lines) + "\n")
    (src / "vader_lexicon.txt").write_text(LEXICON)
    (repo / "conf" / "fetch" / "default.yaml").write_text(
        yaml.safe_dump(
            {
                "cache_dir": str(tmp_path / "cache"),
                "datasets": {
                    "rt_polarity": {
                        "source": "path",
                        "path": str(src / "movieReviewSnippets_GroundTruth.txt"),
                    },
                    "vader": {"source": "path", "path": str(src / "vader_lexicon.txt")},
                },
            }
        )
    )
    config = (repo / "conf" / "config.yaml").read_text()
    (repo / "conf" / "config.yaml").write_text(config.replace("profile: cpu", "profile: smoke"))
    dag = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stages = {k: dag["stages"][k] for k in ("validate", "fetch", "train_sentiment")}
    deps = stages["train_sentiment"]["do"]["deps"]
    deps.remove("data/processed/embeddings")  # random embeddings only: no upstream training
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    from stages.compose_params import compose

    compose(repo / "params.yaml", [], conf_dir=repo / "conf")
    (repo / ".gitignore").write_text("/data/\n/reports/\n/mlflow.db\n/mlruns/\n")
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "tests@example.invalid")
    _git(repo, "config", "user.name", "wordpipe tests")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "init")
    # the baseline run (`make run`): fills the DVC cache and run-cache
    _run(repo, "-m", "dvc", "repro")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "baseline")
    return repo


def _exp_metrics(repo: Path) -> dict[str, dict[str, dict]]:
    """{experiment name: {model: metrics}} read from each experiment's own commit."""
    out = {}
    for ref in _git(repo, "for-each-ref", "--format=%(refname)", "refs/exps").split():
        name = ref.rsplit("/", 1)[-1]
        if name.startswith("study-"):
            out[name] = {
                m: json.loads(_git(repo, "show", f"{ref}:metrics/train_sentiment_{m}.json"))
                for m in ("avg", "rnn")
            }
    return out


def test_two_point_queued_sweep_and_report(study_repo: Path):
    repo = study_repo
    _run(repo, "-m", "stages.study", "all")

    report = (repo / "reports" / "study" / "embeddings.md").read_text()
    names = ["study-transfer-random-finetuned-s0", "study-transfer-random-finetuned-s1"]
    exps = _exp_metrics(repo)
    assert sorted(exps) == names
    # the two points differ in the seed and nothing else
    for model in ("avg", "rnn"):
        scores = np.array([exps[n][model]["test_acc"] for n in names])
        cell = f"{scores.mean():.3f} ± {scores.std(ddof=1):.3f}"
        assert cell in report, (cell, report)
        probe = np.array([exps[n][model]["probe_acc"] for n in names])
        assert f"{probe.mean():.3f} ± {probe.std(ddof=1):.3f}" in report
    results = (repo / "reports" / "study" / "results.csv").read_text().splitlines()
    assert len(results) == 1 + 4  # 2 points x 2 models
    assert "Skipped (embedding not in the workspace): 2 points" in report
    assert (repo / "reports" / "study" / "transfer_sentiment_avg.png").stat().st_size > 1000
    for n in names:
        assert n in report

    # MLflow: in the repository's store, one parent per experiment, tagged with its point
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("wordpipe")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = {r.data.tags.get("study.point"): r for r in runs if "study.point" in r.data.tags}
    assert sorted(parents) == names
    for name, parent in parents.items():
        assert parent.data.tags["study.seed"] == name[-2:]
        assert parent.data.tags["dvc.exp_name"] == name
        assert parent.info.run_id[:8] in report
        children = [
            r.data.tags["dvc.stage"]
            for r in runs
            if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
        ]
        if name.endswith("s0"):
            # seed 0 is the baseline's setting: every stage restored from the run-cache,
            # nothing logged by the stages; the study gives it a parent of its own
            assert children == [] and parent.data.tags["wordpipe.restored"] == "true"
        else:
            # fetch was restored from the cache, not run again inside the experiment
            assert sorted(children) == ["train_sentiment@avg", "train_sentiment@rnn"]
    assert not list((repo / ".dvc" / "tmp" / "exps").glob("tmp*/mlflow.db"))
