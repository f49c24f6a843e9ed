"""Stage train_lm on a tiny generated corpus in tmp_path (smoke profile)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.core.atomic import save_npy
from pipeline.data.vocab import Vocabulary
from tests.conftest import write_params

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran"]


def _corpus(folder, seed=0):
    rng = np.random.default_rng(seed)
    vocab = Vocabulary(["<pad>", "<unk>", "<eos>", *WORDS], [0, 3, 50] + [10] * len(WORDS))
    vocab.save_tsv(folder / "vocab.tsv")
    sentences = [[3, 4, 5, 6, 3, 7], [8, 9, 10, 6, 3, 7]]  # "the cat sat on the mat" ...
    for split, n in (("train", 120), ("valid", 20), ("test", 20)):
        ids = [t for i in rng.integers(0, 2, n) for t in [*sentences[i], 2]]
        save_npy(folder / f"{split}.npy", np.asarray(ids, dtype=np.int32))
    return vocab


@pytest.fixture
def lm_repo(tmp_path, monkeypatch, smoke_params):
    _corpus(
        (tmp_path / "data/processed/brown").mkdir(parents=True) or tmp_path / "data/processed/brown"
    )
    write_params(tmp_path, smoke_params)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_train_lm_word_writes_model_samples_metrics_and_cli_scores(lm_repo, capsys):
    from stages import score_lm, train_lm

    train_lm.main(["word"])
    metrics = json.loads((lm_repo / "metrics/train_lm_word.json").read_text())
    assert metrics["epochs"] >= 1
    # 2 sentence types, random order: a trained model is far below the 11-word uniform ppl
    assert 1.0 < metrics["test_ppl"] < 6.0, metrics
    assert metrics["valid_tokens"] > 0 and metrics["time_per_epoch_s"] > 0
    model = lm_repo / "data/processed/models/lm_word"
    assert sorted(p.name for p in model.iterdir()) == ["hparams.json", "model.ckpt", "vocab.tsv"]
    samples = (lm_repo / "reports/lm/word/samples.txt").read_text()
    # 2 samples x 3 temperatures, side by side; never a placeholder token
    rows = [line for line in samples.splitlines() if " | " in line]
    assert len(rows) == 6, samples
    assert [r.split("|")[0].split()[-1] for r in rows[:3]] == ["T=0.5", "T=0.8", "T=1"]
    assert rows[0].startswith("[0]") and rows[3].startswith("[1]")
    assert "<unk>" not in samples and "<pad>" not in samples and "<eos>" not in samples

    capsys.readouterr()
    score_lm.main(["--model-dir", str(model), "the cat sat on the mat", "mat the on sat cat the"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.lstrip().startswith(("1 ", "2 "))]
    assert len(rows) == 2
    assert "best: 1" in out


def test_train_lm_unknown_level_is_a_clear_error(lm_repo, capsys):
    from stages import train_lm

    with pytest.raises(SystemExit) as exc:
        train_lm.main(["phoneme"])
    assert exc.value.code == 1
    assert "lm.levels" in capsys.readouterr().err


def test_train_lm_missing_corpus_names_the_file(lm_repo, capsys):
    from stages import train_lm

    (lm_repo / "data/processed/brown/valid.npy").unlink()
    with pytest.raises(SystemExit):
        train_lm.main(["word"])
    assert "valid.npy" in capsys.readouterr().err
    assert not (lm_repo / "data/processed/models/lm_word").exists()


def test_train_lm_char_reports_bits_and_nats_per_char(tmp_path, monkeypatch, smoke_params):
    from stages import train_lm

    folder = tmp_path / "data/processed/shakespeare"
    folder.mkdir(parents=True)
    chars = sorted(set("to be or not"))
    vocab = Vocabulary(["<pad>", "<unk>", "<eos>", *chars])
    vocab.save_tsv(folder / "vocab.tsv")
    line = list(vocab.encode("to be or not to be")) + [2]
    for split, n in (("train", 60), ("valid", 10), ("test", 10)):
        save_npy(folder / f"{split}.npy", np.asarray(line * n, dtype=np.int32))
    write_params(tmp_path, smoke_params)
    monkeypatch.chdir(tmp_path)
    train_lm.main(["char"])
    m = json.loads((tmp_path / "metrics/train_lm_char.json").read_text())
    assert m["valid_bpc"] == pytest.approx(m["valid_nats_per_char"] / np.log(2))
    assert m["test_nats_per_char"] < np.log(len(vocab))  # better than uniform
    assert "test_ppl" not in m
    hp = json.loads((tmp_path / "data/processed/models/lm_char/hparams.json").read_text())
    assert hp["level"] == "char" and hp["vocab_size"] == len(vocab)
