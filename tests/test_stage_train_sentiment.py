"""Stages train_sentiment (avg with a pretrained artifact, rnn random) and
sentiment_compare on a tiny planted-negation corpus in tmp_path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import write_params
from tests.test_sentiment import _negation_data


@pytest.fixture
def repo(tmp_path, monkeypatch, smoke_params):
    texts, labels = _negation_data(300, seed=2)
    # a second word of each polarity for the probe (same labels)
    texts = [t.replace("good", "great").replace("bad", "awful") if i % 3 else t
             for i, t in enumerate(texts)]  # fmt: skip
    raw = tmp_path / "data/raw/rt_polarity"
    raw.mkdir(parents=True)
    lines = [
        f"{i + 1}\t{1.5 if y else -1.5}\t{t}"
        for i, (t, y) in enumerate(zip(texts, labels, strict=True))
    ]
    lines.insert(5, "999\t0\ta perfectly neutral line")  # zero score: dropped
    (raw / "movieReviewSnippets_GroundTruth.txt").write_text("\r\n".join(lines))
    lexicon = tmp_path / "data/raw/vader/vader_lexicon.txt"
    lexicon.parent.mkdir(parents=True)
    lexicon.write_text(
        "good\t1.9\t0.9\t[2]\ngreat\t3.1\t0.7\t[3]\nbad\t-2.5\t0.6\t[-2]\n"
        "awful\t-2.0\t0.8\t[-2]\n:)\t2.0\t0.5\t[2]\nmovie\t0.2\t0.4\t[0]\n"
    )
    from pipeline.embeddings.vectors import Embeddings

    words = ["good", "bad", "not", "movie", "film", "was"]
    vecs = np.random.default_rng(0).normal(size=(len(words), 16)).astype(np.float32)
    Embeddings(words, vecs).save(tmp_path / "data/processed/embeddings/sgns")
    monkeypatch.chdir(tmp_path)
    return tmp_path, smoke_params


def test_train_both_models_then_compare(repo):
    from stages import sentiment_compare, train_sentiment

    root, params = repo
    params["sentiment"]["embedding"] = "sgns"
    write_params(root, params)
    train_sentiment.main(["avg"])
    m_avg = json.loads((root / "metrics/train_sentiment_avg.json").read_text())
    assert m_avg["embedding"] == "sgns"
    # vocabulary words absent from the artifact: the, this, plot, cast, it, really, ...
    assert 5 <= m_avg["embedding_missing"] < m_avg["vocab_size"]
    assert m_avg["train_size"] + m_avg["valid_size"] + m_avg["test_size"] == 300
    for key in ("test_acc", "test_f1", "valid_acc", "valid_f1"):
        assert 0.0 <= m_avg[key] <= 1.0
    # the probe: 2 words per polarity, 5 negations each + 4 contrasts per pair
    assert m_avg["probe_size"] == 2 * 2 * 5 + 2 * 4
    assert 0.0 <= m_avg["probe_acc"] <= 1.0 and "probe_not_x_acc" in m_avg
    probe = (root / "reports/sentiment/avg/probe.tsv").read_text().splitlines()
    assert probe[0] == "template\tlabel\tpred\ttext" and len(probe) == 29
    assert "not_x\t0\t" in probe[1] or "not_x\t1\t" in probe[1]

    params["sentiment"]["embedding"] = "random"
    write_params(root, params)
    train_sentiment.main(["rnn"])
    m_rnn = json.loads((root / "metrics/train_sentiment_rnn.json").read_text())
    assert m_rnn["embedding_missing"] == 0
    model = root / "data/processed/models/sentiment_rnn"
    assert sorted(p.name for p in model.iterdir()) == ["hparams.json", "model.ckpt", "vocab.tsv"]
    preds = (root / "reports/sentiment/rnn/predictions.tsv").read_text().splitlines()
    assert preds[0] == "index\tlabel\tpred\tprob_pos\ttext" and len(preds) == 31

    sentiment_compare.main([])
    report = (root / "reports/sentiment/word_order.md").read_text()
    assert "Right by the recurrent model" in report
    numbers = json.loads((root / "metrics/sentiment_compare.json").read_text())
    assert numbers["cue_sentences"] > 0


def test_bad_model_and_dim_mismatch_are_clear_errors(repo, capsys):
    from stages import train_sentiment

    root, params = repo
    write_params(root, params)
    with pytest.raises(SystemExit) as exc:
        train_sentiment.main(["cnn"])
    assert exc.value.code == 1 and "sentiment.models" in capsys.readouterr().err

    params["sentiment"]["embedding"] = "sgns"
    params["sentiment"]["embedding_dim"] = 32
    write_params(root, params)
    with pytest.raises(SystemExit):
        train_sentiment.main(["avg"])
    assert "sentiment.embedding_dim" in capsys.readouterr().err
    assert not (root / "metrics/train_sentiment_avg.json").exists()


def test_diverging_run_stops_naming_the_lr_and_writes_nothing(repo, capsys):
    from stages import train_sentiment

    root, params = repo
    params["sentiment"]["avg"]["lr"] = 50.0  # AdamW steps of 50: the loss climbs, finite
    write_params(root, params)
    with pytest.raises(SystemExit) as exc:
        train_sentiment.main(["avg"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "sentiment: training diverged by step" in err, err
    assert "(sentiment.avg.lr = 50); lower sentiment.avg.lr" in err
    assert not (root / "metrics/train_sentiment_avg.json").exists()
    assert not (root / "data/processed/models/sentiment_avg").exists()
    assert not (root / "reports/sentiment/avg").exists()


def test_pretrained_words_frozen_rows_and_the_artifact_dimension(repo):
    import torch

    from pipeline.embeddings.vectors import Embeddings
    from stages import train_sentiment

    root, params = repo
    words = ["good", "bad", "not", "unseenword", "Capital"]  # never in training: the last two
    vecs = np.random.default_rng(1).normal(size=(len(words), 12)).astype(np.float32)
    Embeddings(words, vecs).save(root / "data/processed/embeddings/wide")
    params["sentiment"].update(embedding="wide", embedding_dim=None, add_embedding_words=True,
                               tune_embeddings="listed")  # fmt: skip
    write_params(root, params)
    train_sentiment.main(["avg"])
    m = json.loads((root / "metrics/train_sentiment_avg.json").read_text())
    model = root / "data/processed/models/sentiment_avg"
    tokens = [line.split("\t")[1] for line in (model / "vocab.tsv").read_text().splitlines()[1:]]
    # the unseen lower-case word gets a row (tokens are lower-cased: "Capital" never matches)
    assert m["vocab_size"] == len(tokens) and tokens[-1] == "unseenword"
    hp = json.loads((model / "hparams.json").read_text())
    assert hp["config"]["embedding_dim"] == 12  # taken from the artifact
    state = torch.load(model / "model.ckpt", weights_only=True)["state_dict"]
    frozen = state["model.embedding.frozen"]
    assert frozen.shape == (len(tokens), 12)
    np.testing.assert_allclose(frozen[-1].numpy(), vecs[3], rtol=1e-6)
    # every row but <pad> and the added word has a delta, plus the shared zero entry
    assert state["model.embedding.delta.weight"].shape[0] == len(tokens) - 1
