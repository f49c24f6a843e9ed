"""A DVC remote in a local folder: one checkout runs a tiny pipeline and `make push`es; a
second clean clone `make pull`s, and `dvc repro` then has nothing to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

DVC_YAML = """\
stages:
  words:
    cmd: python -c "open('data/words.txt', 'w').write('one two three\\n' * 50)"
    outs:
      - data/words.txt
  count:
    cmd: >-
      python -c "import json; n = len(open('data/words.txt').read().split());
      open('data/count.txt', 'w').write(str(n));
      json.dump({'words': n}, open('metrics/count.json', 'w'))"
    deps:
      - data/words.txt
    outs:
      - data/count.txt
    metrics:
      - metrics/count.json:
          cache: false
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_REMOTE", "MAKEFLAGS")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", DVC_NO_ANALYTICS="1")
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com")
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    return env


def _sh(cwd: Path, *cmd: str, **env: str) -> str:
    done = subprocess.run(
        cmd, cwd=cwd, env={**_env(), **env}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None, reason="make, git")
def test_push_from_one_clone_pull_into_another_and_nothing_to_reproduce(tmp_path):
    store, first, second = tmp_path / "store", tmp_path / "first", tmp_path / "second"
    first.mkdir()
    _sh(first, "git", "init", "-q")
    _sh(first, "dvc", "init", "-q")
    (first / "dvc.yaml").write_text(DVC_YAML)
    (first / "data").mkdir()
    (first / "metrics").mkdir()
    shutil.copy(REPO / "Makefile", first / "Makefile")
    (first / ".gitignore").write_text(".venv\n")
    (first / ".venv").symlink_to(Path(sys.prefix))  # the Makefile runs $(VENV)/bin/...
    _sh(first, "dvc", "repro")
    assert (first / "data/count.txt").read_text() == "150"

    # the remote given by an environment variable (a folder: saved in .dvc/config.local)
    out = _sh(first, "make", "push", DVC_REMOTE=str(store))
    assert "2 files pushed" in out, out
    assert "env" in (first / ".dvc/config.local").read_text()
    _sh(first, "git", "add", "dvc.yaml", "dvc.lock", ".gitignore", "Makefile", "metrics", "data")
    _sh(first, "git", "commit", "-q", "-m", "pipeline")

    _sh(tmp_path, "git", "clone", "-q", str(first), str(second))
    assert not (second / "data/count.txt").exists()
    (second / ".venv").symlink_to(Path(sys.prefix))
    # the remote named in .dvc/config.local, as the default: plain `make pull`
    _sh(second, "dvc", "remote", "add", "--local", "-d", "shared", str(store))
    _sh(second, "make", "pull")
    assert (second / "data/count.txt").read_text() == "150"
    assert "Data and pipelines are up to date." in _sh(second, "dvc", "status")
    repro = _sh(second, "dvc", "repro")
    assert "Running stage" not in repro and "Data and pipelines are up to date." in repro, repro
