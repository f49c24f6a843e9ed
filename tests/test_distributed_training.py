"""Data-parallel training (Lightning DDP, gloo on CPU): sharding, rank-0-only outputs and
tracking, and the smoke-profile stages on two processes against one."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.core import distributed, tracking
from pipeline.seq.distributed import RankShard, shard_loader
from pipeline.seq.ner import BucketBatchSampler
from pipeline.seq.training import TrainerSettings, build_trainer, world_size
from tests.conftest import write_params
from tests.test_sentiment import _negation_data
from tests.test_stage_train_lm import _corpus
from tests.test_stage_train_ner import _conll

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------ sharding
@pytest.mark.parametrize("n, world", [(10, 2), (11, 2), (7, 3), (2, 2)])
def test_rank_shards_are_disjoint_contiguous_and_equal(n, world):
    items = list(range(100, 100 + n))
    shards = [list(RankShard(items, r, world)) for r in range(world)]
    per = n // world
    assert all(len(s) == per == len(RankShard(items, r, world)) for r, s in enumerate(shards))
    assert sum(shards, []) == items[: per * world]  # contiguous blocks, in order, no repeats


def _batches(loader) -> list[tuple[int, ...]]:
    return [tuple(torch.as_tensor(b).ravel().tolist()) for b in loader]


def test_shard_loader_splits_each_kind_of_training_loader():
    data = [torch.tensor([i]) for i in range(20)]
    makers = {  # fresh loaders (fresh seeded samplers) yield the same batches every time
        "bucket": lambda: DataLoader(data, batch_sampler=BucketBatchSampler([1] * 20, 3, True, 4)),
        "lm_chunks": lambda: DataLoader(data, batch_size=None),  # every item is a whole batch
        "shuffled": lambda: DataLoader(
            data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0)
        ),
    }
    for kind, make in makers.items():
        whole = _batches(make())
        shards = [_batches(shard_loader(make(), r, 2)) for r in range(2)]
        half = len(whole) // 2
        assert shards[0] == whole[:half] and shards[1] == whole[half : 2 * half], kind
        assert len(shard_loader(make(), 1, 2)) == half


def test_build_trainer_is_ddp_only_with_several_processes(tmp_path):
    one = build_trainer(TrainerSettings(accelerator="cpu", progress_bar=False), tmp_path / "a")
    assert one.world_size == 1 and "DDP" not in type(one.strategy).__name__
    settings = TrainerSettings(accelerator="cpu", strategy="ddp", devices=2, progress_bar=False)
    assert world_size(settings) == 2
    two = build_trainer(settings, tmp_path / "b")  # built, not launched
    assert type(two.strategy).__name__ == "ShardingDDPStrategy"
    assert two.world_size == 2 and two.num_nodes == 1


# ------------------------------------------------------------------------ rank 0 only
@pytest.mark.parametrize(
    "env, zero",
    [({}, True), ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True), ({"LOCAL_RANK": "1"}, False),
     ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False), ({"RANK": "3"}, False),
     ({"SLURM_PROCID": "2"}, False)],
)  # fmt: skip
def test_rank_zero_from_launcher_environment(monkeypatch, env, zero):
    for name in distributed.RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert distributed.is_rank_zero() is zero


def test_other_ranks_record_nothing(tmp_path, monkeypatch, capsys):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LOCAL_RANK", "1")
    with tracking.stage_run("train_ner", {"a": 1}) as tr:
        tr.log_metrics({"x": 1.0})
        assert not tr.enabled and tr.lightning_logger() is None
    assert "warning" not in capsys.readouterr().err
    assert not (tmp_path / "m.db").exists()  # not even a store was opened


# ------------------------------------------------------------------------ the stages
STAGES = [("train_ner",), ("train_sentiment", "rnn"), ("train_lm", "word")]
DDP = {"strategy": "ddp", "accelerator": "cpu", "devices": 2}


def _repo(root: Path, params: dict, ddp: bool) -> None:
    rng = random.Random(0)
    names = [
        "".join(rng.choice("bcdfgklmnprst") + rng.choice("aeiou") for _ in range(3)).capitalize()
        for _ in range(60)
    ]
    raw = root / "data/raw/conll2003"
    raw.mkdir(parents=True)
    for split, n in (("train", 240), ("valid", 60), ("test", 60)):
        (raw / f"{split}.txt").write_text(_conll(rng, n, names))
    (root / "data/processed/brown").mkdir(parents=True)
    _corpus(root / "data/processed/brown")
    texts, labels = _negation_data(300, seed=2)
    raw = root / "data/raw/rt_polarity"
    raw.mkdir(parents=True)
    lines = [
        f"{i + 1}\t{1.5 if y else -1.5}\t{t}"
        for i, (t, y) in enumerate(zip(texts, labels, strict=True))
    ]
    (raw / "movieReviewSnippets_GroundTruth.txt").write_text("\r\n".join(lines))
    params["sentiment"]["probe"]["lexicon"] = None  # no fetched lexicon in this repo
    if ddp:  # 2 processes x half the batch: the same global batch and steps per epoch
        params["ner"]["trainer"].update(DDP)
        params["ner"]["data"]["batch_size"] //= 2
        params["sentiment"]["trainer"].update(DDP)
        params["sentiment"]["batch_size"] //= 2
        params["lm"]["common"]["trainer"].update(DDP)
        params["lm"]["common"]["batch_size"] //= 2
    write_params(root, params)


def _run_stages(root: Path) -> dict[str, float]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'm.db'}",
    }
    seconds = {}
    for stage in STAGES:
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", f"stages.{stage[0]}", *stage[1:]],
            cwd=root, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        seconds["_".join(stage)] = time.perf_counter() - t0
    return seconds


def _metrics(root: Path, name: str) -> dict:
    return json.loads((root / "metrics" / f"{name}.json").read_text())


def _tree(root: Path) -> list[str]:
    skip = ("data/raw", "data/interim", "m.db", "params.yaml", "mlruns")
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not str(p.relative_to(root)).startswith(skip)
    )


@pytest.mark.slow
def test_smoke_stages_on_two_processes_match_one(tmp_path, smoke_params):
    import copy

    one, two = tmp_path / "one", tmp_path / "two"
    _repo(one, copy.deepcopy(smoke_params), ddp=False)
    _repo(two, copy.deepcopy(smoke_params), ddp=True)
    t_one, t_two = _run_stages(one), _run_stages(two)
    print(f"\nwall seconds, one process: {t_one}\nwall seconds, two processes: {t_two}")

    # one set of outputs: the same files as the single run, nothing per rank
    assert _tree(two) == _tree(one)
    preds = (two / "reports/sentiment/rnn/predictions.tsv").read_text().splitlines()
    assert len(preds) == 1 + _metrics(two, "train_sentiment_rnn")["test_size"]

    ner1, ner2 = _metrics(one, "train_ner"), _metrics(two, "train_ner")
    sen1, sen2 = _metrics(one, "train_sentiment_rnn"), _metrics(two, "train_sentiment_rnn")
    lm1, lm2 = _metrics(one, "train_lm_word"), _metrics(two, "train_lm_word")
    print({"ner_test_f1": (ner1["test_f1"], ner2["test_f1"]),
           "sentiment_test_acc": (sen1["test_acc"], sen2["test_acc"]),
           "lm_valid_ppl": (lm1["valid_ppl"], lm2["valid_ppl"]),
           "lm_test_ppl": (lm1["test_ppl"], lm2["test_ppl"])})  # fmt: skip
    # Tolerances: the same global batch, but other sentences meet in a batch.
    assert abs(ner2["test_f1"] - ner1["test_f1"]) <= 2.0 and ner2["test_f1"] > 90
    assert abs(ner2["valid_f1"] - ner1["valid_f1"]) <= 2.0
    assert abs(sen2["test_acc"] - sen1["test_acc"]) <= 0.05
    assert abs(sen2["valid_acc"] - sen1["valid_acc"]) <= 0.05
    for split in ("valid", "test"):  # whole sets, each token once
        assert lm2[f"{split}_tokens"] == lm1[f"{split}_tokens"]
        assert abs(lm2[f"{split}_ppl"] / lm1[f"{split}_ppl"] - 1) <= 0.05
    assert ner2["epochs"] == ner1["epochs"] and lm2["epochs"] == lm1["epochs"]

    # one MLflow run per stage; the validation F1 of the best epoch, computed during fit
    # on rank 0 over the whole validation set, is the F1 reported after training
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{two / 'm.db'}")
    exp = client.get_experiment_by_name(tracking.EXPERIMENT_NAME)
    runs = [
        r
        for r in client.search_runs([exp.experiment_id])
        if r.data.tags.get("wordpipe.kind") == "stage"
    ]
    assert sorted(r.data.tags["dvc.stage"] for r in runs) == sorted(
        ["train_ner", "train_sentiment_rnn", "train_lm_word"]
    )
    run_of = {r.data.tags["dvc.stage"]: r.info.run_id for r in runs}
    history = client.get_metric_history(run_of["train_ner"], "val_f1")
    assert len(history) == ner2["epochs"]
    assert max(m.value for m in history) == pytest.approx(ner2["valid_f1"], abs=1e-4)
    # the same for the LM's validation loss, which half of the validation stream would
    # change: the best epoch's val_loss is the whole-stream nll computed after training
    history = client.get_metric_history(run_of["train_lm_word"], "val_loss")
    assert min(m.value for m in history) == pytest.approx(lm2["valid_nll"], rel=1e-5)
