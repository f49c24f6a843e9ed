"""Stage skipgram end to end on a tiny generated corpus in tmp_path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.data.vocab import Vocabulary
from pipeline.embeddings.vectors import Embeddings
from stages import skipgram as stage
from tests.conftest import write_params
from tests.test_skipgram import planted_corpus, twins_found


def _write_corpus(root, name="toy"):
    ids, v = planted_corpus(sentences=1200)
    tokens = ["<pad>", "<unk>", "<eos>"] + [f"w{i}" for i in range(3, v)]
    counts = np.bincount(ids, minlength=v)
    folder = root / "data" / "processed" / name
    folder.mkdir(parents=True)
    np.save(folder / "train.npy", ids)
    Vocabulary(tokens, counts).save_tsv(folder / "vocab.tsv")
    return folder


@pytest.fixture
def stage_dir(tmp_path, monkeypatch, smoke_params):
    params = smoke_params
    params["skipgram"].update(corpus="toy", epochs=3, dim=20)
    write_params(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_stage_writes_embeddings_and_metrics(stage_dir):
    _write_corpus(stage_dir)
    stage.main([])
    emb = Embeddings.load(stage_dir / "data/processed/embeddings/sgns")
    assert emb.words[3] == "w3" and emb.vectors.shape == (3 + 16 + 24, 20)
    assert twins_found(np.array(emb.vectors)) >= 7
    metrics = json.loads((stage_dir / "metrics/skipgram.json").read_text())
    assert metrics["corpus"] == "toy" and metrics["model"] == "sgns"
    assert len(metrics["loss_per_epoch"]) == 3
    assert metrics["effective_words_per_sec"] > 0 and metrics["raw_words_per_sec"] > 0
    assert metrics["device"] == "cpu" and metrics["vocab_size"] == 43
    assert not (stage_dir / "data/interim/skipgram/checkpoint.npz").exists()


def test_stage_missing_corpus_fails_cleanly(stage_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        stage.main([])
    assert exc.value.code == 1
    assert "data/processed/toy/vocab.tsv" in capsys.readouterr().err
    assert not (stage_dir / "data/processed/embeddings/sgns").exists()
    assert not (stage_dir / "metrics/skipgram.json").exists()


def test_stage_bad_config_names_the_key(stage_dir, smoke_params, capsys):
    _write_corpus(stage_dir)
    smoke_params["skipgram"].update(corpus="toy", output="nce")
    write_params(stage_dir, smoke_params)
    with pytest.raises(SystemExit):
        stage.main([])
    assert "skipgram.output" in capsys.readouterr().err
