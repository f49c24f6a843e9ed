"""Resuming the Lightning stages (sentiment, NER, language models) after ``kill -9``.

A stage run with the default ``resume: false`` is SIGKILLed in a subprocess once its
first epoch's checkpoint is written; a rerun with ``resume: true`` continues it and must
end exactly as an uninterrupted run (same metrics, same weights), on CPU. A checkpoint of
other settings is never continued, and the time of the killed run does not count against
``max_time_s``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import write_params
from tests.test_sentiment import _negation_data

REPO = Path(__file__).resolve().parents[1]
MARK = "first_epoch_checkpointed"

# Runs a stage with a callback that, at the start of the second epoch (the first epoch's
# checkpoint is on disk by then), leaves a mark and waits to be killed.
_CHILD = f"""
import pathlib, sys, time
from lightning.pytorch.callbacks import Callback
from pipeline.seq import lm, ner_lit, sentiment, training

class WaitForKill(Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            pathlib.Path("{MARK}").touch()
            time.sleep(300)

def build(s, d, logger=None, callbacks=None):
    return training_build(s, d, logger, [*(callbacks or []), WaitForKill()])

training_build = training.build_trainer
for module in (training, lm, ner_lit, sentiment):  # wherever it is looked up
    if hasattr(module, "build_trainer"):
        module.build_trainer = build
__import__("stages." + sys.argv[1], fromlist=["main"]).main(sys.argv[2:])
"""

# metrics that differ between any two runs (wall time) or between a fresh and a resumed one
_VOLATILE = ("time", "seconds", "resumed")


def _kill_after_first_epoch(root: Path, stage: str, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, stage, *args], cwd=root, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (root / MARK).exists():
            if child.poll() is not None:
                pytest.fail(f"{stage} ended before it could be killed: {child.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{stage}: no first-epoch checkpoint in time")
            time.sleep(0.1)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stderr.close()
    (root / MARK).unlink()


def _stable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not any(w in k for w in _VOLATILE)}


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _kill_resume_and_compare(root, params, stage, args, section, metrics_file, model_file):
    """Kill a default run after epoch 1, resume it, then train uninterrupted; compare."""
    section["resume"] = False
    write_params(root, params)
    _kill_after_first_epoch(root, stage, *args)
    interim = root / "data/interim" / metrics_file.stem
    assert (interim / "last.ckpt").is_file() and (interim / "fingerprint.txt").is_file()
    assert not metrics_file.exists()  # killed before any output

    main = __import__(f"stages.{stage}", fromlist=["main"]).main
    section["resume"] = True
    write_params(root, params)
    main(list(args))
    resumed = json.loads(metrics_file.read_text())
    resumed_weights = _weights(model_file)
    assert resumed["resumed"] is True

    section["resume"] = False  # uninterrupted, from scratch
    write_params(root, params)
    main(list(args))
    fresh = json.loads(metrics_file.read_text())
    assert fresh["resumed"] is False
    assert _stable(resumed) == _stable(fresh)
    fresh_weights = _weights(model_file)
    assert resumed_weights.keys() == fresh_weights.keys()
    for k, v in fresh_weights.items():
        torch.testing.assert_close(resumed_weights[k], v, rtol=0, atol=0)
    return fresh


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def sentiment_repo(tmp_path, monkeypatch, smoke_params):
    texts, labels = _negation_data(300, seed=2)
    raw = tmp_path / "data/raw/rt_polarity"
    raw.mkdir(parents=True)
    rows = [
        f"{i + 1}\t{1.5 if y else -1.5}\t{t}"
        for i, (t, y) in enumerate(zip(texts, labels, strict=True))
    ]
    (raw / "movieReviewSnippets_GroundTruth.txt").write_text("\n".join(rows) + "\n")
    sent = smoke_params["sentiment"]
    sent["avg"]["dropout"] = 0.3  # the resumed epochs must draw the same dropout masks
    sent["trainer"].update(max_epochs=3, patience=2)
    sent["probe"]["lexicon"] = None  # no fetched lexicon here: resume is what is tested
    monkeypatch.chdir(tmp_path)
    return tmp_path, smoke_params


def test_sentiment_killed_with_default_settings_resumes_to_the_uninterrupted_result(
    sentiment_repo,
):
    root, params = sentiment_repo
    fresh = _kill_resume_and_compare(
        root, params, "train_sentiment", ["avg"], params["sentiment"],
        root / "metrics/train_sentiment_avg.json",
        root / "data/processed/models/sentiment_avg/model.ckpt",
    )  # fmt: skip
    assert fresh["epochs"] == 3


@pytest.mark.slow
def test_ner_killed_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, smoke_params):
    import random

    from tests.test_stage_train_ner import _conll

    rng = random.Random(0)
    names = ["Bako", "Lemi", "Sudo", "Pira", "Kantu", "Redo", "Mosa", "Tilu"]
    raw = tmp_path / "data/raw/conll2003"
    raw.mkdir(parents=True)
    for split, n in (("train", 120), ("valid", 30), ("test", 30)):
        (raw / f"{split}.txt").write_text(_conll(rng, n, names))
    smoke_params["ner"]["encoder"]["dropout"] = 0.3
    monkeypatch.chdir(tmp_path)
    fresh = _kill_resume_and_compare(
        tmp_path, smoke_params, "train_ner", [], smoke_params["ner"],
        tmp_path / "metrics/train_ner.json", tmp_path / "data/processed/models/ner/model.ckpt",
    )  # fmt: skip
    assert fresh["epochs"] == 2


@pytest.mark.slow
def test_language_model_killed_resumes_to_the_uninterrupted_result(
    tmp_path, monkeypatch, smoke_params
):
    from tests.test_stage_train_lm import _corpus

    folder = tmp_path / "data/processed/brown"
    folder.mkdir(parents=True)
    _corpus(folder)
    smoke_params["lm"]["common"]["arch"]["dropout"] = 0.3
    monkeypatch.chdir(tmp_path)
    fresh = _kill_resume_and_compare(
        tmp_path, smoke_params, "train_lm", ["word"], smoke_params["lm"]["common"],
        tmp_path / "metrics/train_lm_word.json",
        tmp_path / "data/processed/models/lm_word/model.ckpt",
    )  # fmt: skip
    assert fresh["epochs"] == 2


# ----------------------------------------------------------------- library-level cases
def _sentiment_cfg(**kw):
    import dataclasses

    from tests.test_sentiment import _cfg

    return dataclasses.replace(_cfg(max_epochs=2), **kw)


def test_checkpoint_of_other_settings_is_never_resumed(tmp_path):
    """The old failure: a run with ``resume: false`` left its checkpoint beside the stamp
    of an earlier ``resume: true`` run, and a third run resumed the wrong checkpoint."""
    import dataclasses

    from pipeline.seq.sentiment import ModelSettings, fit_sentiment

    texts, labels = _negation_data(100, seed=3)
    ours = _sentiment_cfg(resume=True)
    other = dataclasses.replace(ours, resume=False, avg=ModelSettings(lr=0.5, dropout=0.0))
    fit_sentiment("avg", ours, texts, labels, checkpoint_dir=tmp_path)  # stamps ours
    fit_sentiment("avg", other, texts, labels, checkpoint_dir=tmp_path)  # other settings
    again = fit_sentiment("avg", ours, texts, labels, checkpoint_dir=tmp_path)
    assert not again.metrics["resumed"] and again.metrics["epochs"] == 2
    fresh = fit_sentiment("avg", ours, texts, labels, checkpoint_dir=tmp_path / "fresh")
    assert np.array_equal(again.test_prob, fresh.test_prob)


def test_resumed_run_gets_its_own_time_budget(tmp_path):
    """A checkpoint says its run already spent 10^6 s: the resumed run, with
    ``max_time_s: 3600``, still trains its remaining epoch."""
    import dataclasses

    from pipeline.seq.sentiment import fit_sentiment
    from pipeline.seq.training import last_checkpoint_file

    texts, labels = _negation_data(100, seed=4)
    one = _sentiment_cfg(resume=True)
    one = dataclasses.replace(one, trainer=dataclasses.replace(one.trainer, max_epochs=1,
                                                               max_time_s=3600.0))  # fmt: skip
    first = fit_sentiment("avg", one, texts, labels, checkpoint_dir=tmp_path)
    assert first.metrics["epochs"] == 1
    last = last_checkpoint_file(tmp_path)
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    timers = [k for k in ckpt["callbacks"] if "Timer" in k and "Epoch" not in k]
    assert timers, list(ckpt["callbacks"])
    for k in timers:
        ckpt["callbacks"][k]["time_elapsed"] = {"train": 1e6, "validate": 0.0, "test": 0.0}
    torch.save(ckpt, last)

    two = dataclasses.replace(one, trainer=dataclasses.replace(one.trainer, max_epochs=2))
    more = fit_sentiment("avg", two, texts, labels, checkpoint_dir=tmp_path)
    assert more.metrics["resumed"] and more.metrics["epochs"] == 2
