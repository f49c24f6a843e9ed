"""The glove stage end to end on a tiny generated corpus in tmp_path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.data.vocab import Vocabulary
from pipeline.embeddings.vectors import Embeddings
from pipeline.glove.cooccur import count_cooccurrences
from stages import glove as stage
from tests.conftest import write_params


def make_inputs(root, name="tiny", vocab_size=40, n=4000, seed=0):
    folder = root / "data" / "processed" / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    ids = (rng.zipf(1.4, n) % (vocab_size - 2) + 2).astype(np.int32)  # 2..V-1
    words = [f"w{i}" for i in range(vocab_size - 3)]
    vocab = Vocabulary(["<pad>", "<unk>", "<eos>", *words], np.bincount(ids, minlength=vocab_size))
    vocab.save_tsv(folder / "vocab.tsv")
    count_cooccurrences(ids, vocab_size, folder / "cooccur.npz", window=5)
    return folder, vocab


def test_stage_trains_saves_and_logs(tmp_path, monkeypatch, smoke_params):
    _, vocab = make_inputs(tmp_path)
    smoke_params["cooccur"]["corpus"] = "tiny"
    write_params(tmp_path, smoke_params)
    monkeypatch.chdir(tmp_path)
    stage.main([])

    emb = Embeddings.load(tmp_path / "data/processed/embeddings/glove")
    assert emb.words == tuple(vocab.tokens) and emb.dim == smoke_params["glove"]["dim"]
    assert (emb.vectors[:3] == 0).all() and (emb.vectors[3:] != 0).any(axis=1).all()
    metrics = json.loads((tmp_path / "metrics/glove.json").read_text())
    epochs = smoke_params["glove"]["epochs"]
    assert len(metrics["loss_per_epoch"]) == epochs
    assert metrics["final_loss"] == metrics["loss_per_epoch"][-1]
    assert metrics["loss_per_epoch"][-1] < metrics["loss_per_epoch"][0]
    for key in ("seconds", "seconds_per_epoch", "device", "vocab_size", "nnz"):
        assert key in metrics
    assert 0 < metrics["rss_after_imports_mb"] <= metrics["rss_footprint_mb"]
    assert metrics["rss_footprint_mb"] <= metrics["peak_rss_mb"]
    assert metrics["device"] == "cpu" and metrics["vocab_size"] == len(vocab)
    assert (tmp_path / "data/interim/glove/glove.npz").is_file()

    import mlflow

    client = mlflow.MlflowClient()
    runs = client.search_runs(
        [mlflow.get_experiment_by_name("wordpipe").experiment_id],
        filter_string="tags.`dvc.stage` = 'glove'",
    )
    history = client.get_metric_history(runs[0].info.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1, epochs + 1))

    # a second run resumes from the finished checkpoint and writes the same vectors
    stage.main([])
    again = Embeddings.load(tmp_path / "data/processed/embeddings/glove")
    np.testing.assert_array_equal(again.vectors, emb.vectors)
    assert json.loads((tmp_path / "metrics/glove.json").read_text())["resumed_from_epoch"] == epochs


def test_stage_vocab_mismatch_is_a_clear_error(tmp_path, monkeypatch, smoke_params, capsys):
    folder, vocab = make_inputs(tmp_path)
    Vocabulary(vocab.tokens[:-1], vocab.counts[:-1]).save_tsv(folder / "vocab.tsv")
    smoke_params["cooccur"]["corpus"] = "tiny"
    write_params(tmp_path, smoke_params)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        stage.main([])
    assert exc.value.code == 1
    assert "vocab.tsv" in capsys.readouterr().err
    assert not (tmp_path / "data/processed/embeddings/glove").exists()


def test_diverged_run_exits_1_naming_glove_lr_and_writes_nothing(
    tmp_path, monkeypatch, smoke_params, capsys
):
    make_inputs(tmp_path)
    smoke_params["cooccur"]["corpus"] = "tiny"
    smoke_params["glove"].update(lr=100.0, epochs=2)
    write_params(tmp_path, smoke_params)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        stage.main([])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "glove: training diverged in epoch 1" in err and "lower glove.lr" in err
    assert not (tmp_path / "data/processed/embeddings/glove").exists()
    assert not (tmp_path / "metrics/glove.json").exists()
    assert not (tmp_path / "data/interim/glove/glove.npz").exists()
