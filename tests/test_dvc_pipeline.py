"""The real DVC + Hydra + MLflow wiring, end to end on a tiny local corpus.

A throw-away copy of the repository (dvc.yaml, conf/, pipeline/, stages/) whose `sotu`
dataset is a local folder: `dvc repro` fetches and prepares it, a second repro is a
no-op, `dvc exp run -S prepare.min_count=...` recomposes params.yaml from conf/ and
changes the metrics, and every stage run lands in MLflow under one parent per execution.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.conftest import REPO

WORDS = "the nation union people state government congress war peace law year world".split()


def _corpus(folder: Path) -> None:
    """A few speeches in the sotu layout: one paragraph per line."""
    (folder / "speeches").mkdir(parents=True)
    for k in range(3):
        lines = [
            " ".join(WORDS[(i * 7 + j * 3 + k) % len(WORDS)] for j in range(12 + i % 5))
            + (f" rare{chr(97 + i // 4)}{chr(97 + k)}" if i % 4 == 0 else "")  # seen once
            for i in range(40)
        ]
        (folder / "speeches" / f"18{k}0-President-{k}.txt").write_text("\n".join(lines) + "\n")


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("WORDPIPE_PIPELINE_ID", None)  # the stages must find their dvc parent themselves
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(repo)
    env["DVC_NO_ANALYTICS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pipeline", "stages", "conf", ".dvc"):
        shutil.copytree(REPO / name, repo / name, ignore=ignore)
    shutil.rmtree(repo / ".dvc" / "tmp", ignore_errors=True)
    shutil.rmtree(repo / ".dvc" / "cache", ignore_errors=True)
    shutil.copy(REPO / "dvc.yaml", repo / "dvc.yaml")
    # as in the repository: caches written next to the code (bytecode, compiled numba
    # kernels) are not part of a stage's code dependencies
    shutil.copy(REPO / ".dvcignore", repo / ".dvcignore")
    corpus = tmp_path / "corpus"
    _corpus(corpus)
    # Only a local `sotu` dataset; the smoke profile by default.
    (repo / "conf" / "fetch" / "default.yaml").write_text(
        yaml.safe_dump(
            {
                "cache_dir": str(tmp_path / "cache"),
                "datasets": {"sotu": {"source": "path", "path": str(corpus)}},
            }
        )
    )
    config = (repo / "conf" / "config.yaml").read_text()
    (repo / "conf" / "config.yaml").write_text(config.replace("profile: cpu", "profile: smoke"))
    from stages.compose_params import compose

    compose(repo / "params.yaml", [], conf_dir=repo / "conf")
    (repo / ".gitignore").write_text("/data/\n/mlflow.db\n/mlruns/\n")
    _git(repo, "init", "-q")
    # dvc exp run commits internally: give the throw-away repo its own identity.
    _git(repo, "config", "user.email", "tests@example.invalid")
    _git(repo, "config", "user.name", "wordpipe tests")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "init")
    return repo


def test_repro_noop_exp_run_and_mlflow(tiny_repo: Path, monkeypatch):
    uri = f"sqlite:///{tiny_repo / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)

    _dvc(tiny_repo, "repro", "prepare@sotu")
    metrics = json.loads((tiny_repo / "metrics" / "prepare_sotu.json").read_text())
    assert metrics["tokens"] > 0 and metrics["vocab_size"] > 3
    assert (tiny_repo / "data" / "raw" / "sotu" / "MANIFEST.json").exists()

    again = _dvc(tiny_repo, "repro", "prepare@sotu")
    assert "didn't change" in again.stdout and "Running stage" not in again.stdout

    _git(tiny_repo, "add", "-A")
    _git(tiny_repo, "commit", "-qm", "lock")
    _dvc(tiny_repo, "exp", "run", "prepare@sotu", "-S", "prepare.min_count=1")
    after = json.loads((tiny_repo / "metrics" / "prepare_sotu.json").read_text())
    assert yaml.safe_load((tiny_repo / "params.yaml").read_text())["prepare"]["min_count"] == 1
    assert after["vocab_size"] > metrics["vocab_size"]  # the rare words now have ids

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("wordpipe")
    runs = client.search_runs([exp.experiment_id])
    parents = {r.info.run_id: r for r in runs if r.data.tags.get("wordpipe.kind") == "pipeline"}
    stages = [r for r in runs if r.data.tags.get("wordpipe.kind") == "stage"]
    # first repro: fetch + prepare under one parent; exp run: prepare under another.
    assert len(parents) == 2
    assert sorted(r.data.tags["dvc.stage"] for r in stages) == [
        "fetch@sotu",
        "prepare@sotu",
        "prepare@sotu",
    ]
    assert all(r.data.tags.get("mlflow.parentRunId") in parents for r in stages)
    assert any(r.data.tags.get("dvc.exp_name") for r in stages)


def _dvc_fails(repo: Path, *args: str) -> str:
    env = dict(os.environ)
    env.pop("WORDPIPE_PIPELINE_ID", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(repo)
    env["DVC_NO_ANALYTICS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True, text=True
    )
    assert proc.returncode != 0, f"dvc {' '.join(args)} succeeded:\n{proc.stdout}"
    return proc.stdout + proc.stderr


def _outputs(repo: Path) -> dict[str, bytes]:
    folders = [repo / "data" / "raw" / "sotu", repo / "data" / "processed" / "sotu"]
    files = [p for f in folders for p in f.rglob("*") if p.is_file()]
    files.append(repo / "metrics" / "prepare_sotu.json")
    return {str(p.relative_to(repo)): p.read_bytes() for p in files}


@pytest.mark.slow
def test_a_bad_setting_fails_in_validate_before_any_output_is_deleted(tiny_repo: Path):
    _dvc(tiny_repo, "repro", "prepare@sotu")
    _git(tiny_repo, "add", "-A")
    _git(tiny_repo, "commit", "-qm", "lock")
    good = _outputs(tiny_repo)
    assert len(good) > 5
    for override, key in [
        ("+prepare.bogus=1", "prepare.bogus: unknown key"),
        ("prepare.min_count=0", "prepare.min_count: 0 is below the minimum 1"),
        ("+glove.bogus=1", "glove.bogus: unknown key"),
    ]:
        out = _dvc_fails(tiny_repo, "exp", "run", "prepare@sotu", "-S", override)
        assert "Running stage 'validate'" in out and "Running stage 'prepare@sotu'" not in out
        assert key in out
        assert "git checkout params.yaml && dvc checkout" in out
        assert "make params && dvc checkout" in out
        assert _outputs(tiny_repo) == good  # nothing deleted
        # The message's two ways back. `git checkout` alone can miss the bad file when a
        # failed exp run rewrote it within one second of refreshing git's index (same size,
        # same second); `make params` rewrites it from conf/ in any case.
        _git(tiny_repo, "checkout", "params.yaml")
        subprocess.run(
            [sys.executable, "-m", "stages.compose_params"], cwd=tiny_repo, check=True,
            env={**os.environ, "PYTHONPATH": str(tiny_repo)}, capture_output=True,
        )  # fmt: skip
        head = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=tiny_repo,
                              capture_output=True, check=True).stdout  # fmt: skip
        assert (tiny_repo / "params.yaml").read_bytes() == head
        _dvc(tiny_repo, "checkout", "--with-deps", "prepare@sotu")  # this repo built no more
        assert (tiny_repo / "metrics" / "validate.json").is_file()
        status = _dvc(tiny_repo, "status", "prepare@sotu")
        assert "changed" not in status.stdout, status.stdout  # back to the last good state
    # A valid change reruns validate, whose output stays the same: fetch does not rerun.
    ran = _dvc(tiny_repo, "exp", "run", "prepare@sotu", "-S", "prepare.min_count=1").stdout
    assert "Running stage 'validate'" in ran and "Running stage 'prepare@sotu'" in ran
    assert "Running stage 'fetch@sotu'" not in ran
