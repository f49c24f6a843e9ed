"""The cooccur stage end to end on a tiny generated corpus in tmp_path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.data.vocab import Vocabulary
from pipeline.glove.cooccur import load_cooccur
from stages import cooccur as stage
from tests.conftest import write_params


def make_corpus(root, name="tiny", vocab_size=50, n=3000, seed=0):
    folder = root / "data" / "processed" / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    ids = (rng.zipf(1.4, n) % (vocab_size - 2) + 2).astype(np.int32)  # 2..V-1
    ids[-1] = 2
    np.save(folder / "train.npy", ids)
    words = [f"w{i}" for i in range(vocab_size - 3)]
    Vocabulary(
        ["<pad>", "<unk>", "<eos>", *words], np.bincount(ids, minlength=vocab_size)
    ).save_tsv(folder / "vocab.tsv")
    return folder, ids


def test_stage_writes_matrix_and_metrics(tmp_path, monkeypatch, smoke_params):
    folder, ids = make_corpus(tmp_path)
    smoke_params["cooccur"]["corpus"] = "tiny"
    write_params(tmp_path, smoke_params)
    monkeypatch.chdir(tmp_path)
    stage.main([])
    rows, cols, values, v = load_cooccur(folder / "cooccur.npz")
    assert v == 50 and rows.size > 100 and (values > 0).all()
    metrics = json.loads((tmp_path / "metrics" / "cooccur.json").read_text())
    for key in ("nnz", "tokens", "seconds", "peak_mem_mb", "interpreter_mem_mb"):
        assert key in metrics
    # the budget bounds what the counting adds to the interpreter's footprint
    assert metrics["count_mem_mb"] == metrics["peak_mem_mb"] - metrics["interpreter_mem_mb"]
    assert metrics["within_budget"] == (metrics["count_mem_mb"] <= metrics["memory_budget_mb"])
    assert metrics["nnz"] == rows.size and metrics["tokens"] == ids.size
    assert metrics["spills"] > 0  # smoke profile's tiny budget


def test_stage_bad_config_key_exits_cleanly(tmp_path, monkeypatch, smoke_params, capsys):
    make_corpus(tmp_path)
    smoke_params["cooccur"]["corpus"] = "tiny"
    smoke_params["cooccur"]["window"] = 0
    write_params(tmp_path, smoke_params)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        stage.main([])
    assert exc.value.code == 1
    assert "cooccur.window" in capsys.readouterr().err
    assert not (tmp_path / "data/processed/tiny/cooccur.npz").exists()
