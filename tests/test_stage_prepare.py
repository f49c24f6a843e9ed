"""Stage `prepare` end to end on tiny corpora in the real layouts, in tmp_path."""

from __future__ import annotations

import json
import os
import sqlite3

import numpy as np
import pytest

from pipeline.core.atomic import load_npy
from pipeline.data.vocab import EOS, Vocabulary
from stages.prepare import main
from tests.conftest import write_params

SOTU = [
    "Fellow-Citizens of the Senate and House of Representatives:",
    "",
    "The state of the Union is strong, and the Senate agrees in 1790.",
    "We the people of the Union ask the House for peace.",
]
BROWN = "\n\n\tThe/at jury/nn said/vbd ./.\n\n\n\tThe/at jury/nn-tl ran/vbd far/rb ./.\n"


def _raw(tmp_path):
    speeches = tmp_path / "data" / "raw" / "sotu" / "speeches"
    speeches.mkdir(parents=True)
    (speeches / "1790-Washington-1.txt").write_text("\n".join(SOTU) + "\n", encoding="utf-8")
    (speeches / "1791-Washington-1.txt").write_text("The Union and the people.\n", encoding="utf-8")
    brown = tmp_path / "data" / "raw" / "brown"
    brown.mkdir(parents=True)
    for name in ("ca01", "ca02", "cb01"):
        (brown / name).write_text(BROWN, encoding="utf-8")
    (brown / "cats.txt").write_text("ca01 news\n", encoding="utf-8")
    texts = tmp_path / "data" / "raw" / "shakespeare" / "texts"
    texts.mkdir(parents=True)
    (texts / "hamlet_gut.txt").write_text(
        "To be, or not to be:\nthat is the question.\n" * 5, encoding="utf-8"
    )


@pytest.fixture
def workdir(tmp_path, monkeypatch, smoke_params):
    _raw(tmp_path)
    params = smoke_params
    params["prepare"]["corpora"]["brown"]["split_sizes"] = [16, 8]
    write_params(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    return tmp_path, params


@pytest.fixture
def no_tracking(monkeypatch):
    """An unreachable store (refused at once): the stage must still work, and fast."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")


def _metrics(tmp_path, corpus):
    return json.loads((tmp_path / "metrics" / f"prepare_{corpus}.json").read_text())


def test_stage_writes_outputs_and_metrics_for_each_corpus(workdir):
    tmp_path, _ = workdir
    for corpus in ("sotu", "brown", "shakespeare"):
        main([corpus])
        out = tmp_path / "data" / "processed" / corpus
        arrays = {s: load_npy(out / f"{s}.npy") for s in ("train", "valid", "test")}
        vocab = Vocabulary.load_tsv(out / "vocab.tsv")
        m = _metrics(tmp_path, corpus)
        for key in (
            "tokens",
            "types",
            "vocab_size",
            "oov_rate",
            "seconds",
            "lines",
            "decode_errors",
        ):
            assert key in m
        assert all(a.dtype == np.int32 for a in arrays.values())
        assert m["tokens"] == sum(len(a) for a in arrays.values())
        assert m["vocab_size"] == len(vocab)
        assert np.concatenate(list(arrays.values()))[-1] == EOS
        assert int(max(a.max(initial=0) for a in arrays.values())) < len(vocab)

        if corpus != "brown":  # Brown's split may fall inside a sentence
            assert arrays["train"][-1] == EOS

    sotu = _metrics(tmp_path, "sotu")
    assert sotu["lines"] == 4 and sotu["valid_tokens"] == 0 and sotu["test_tokens"] == 0
    words = Vocabulary.load_tsv(tmp_path / "data/processed/sotu/vocab.tsv").tokens
    assert words[3] == "the" and "union" in words  # lowercased, counted
    brown = _metrics(tmp_path, "brown")  # 6 sentences, 27 words: 16 / 8 / 3
    assert (brown["train_words"], brown["valid_words"], brown["test_words"]) == (16, 8, 3)
    shk = _metrics(tmp_path, "shakespeare")
    assert shk["train_tokens"] + shk["valid_tokens"] + shk["test_tokens"] == 5 * 43
    assert shk["test_tokens"] == round(0.1 * 5 * 43) - round(0.1 * 5 * 43) // 2
    shk_vocab = Vocabulary.load_tsv(tmp_path / "data/processed/shakespeare/vocab.tsv")
    assert "T" in shk_vocab and "t" in shk_vocab  # case kept

    # one finished MLflow run per corpus, with its metrics
    db = os.environ["MLFLOW_TRACKING_URI"][len("sqlite:///") :]
    with sqlite3.connect(db) as con:
        runs = dict(con.execute("SELECT name, status FROM runs").fetchall())
        sizes = con.execute("SELECT value FROM metrics WHERE key = 'vocab_size'").fetchall()
    assert {runs[f"prepare@{c}"] for c in ("sotu", "brown", "shakespeare")} == {"FINISHED"}
    expected = [
        float(_metrics(tmp_path, c)["vocab_size"]) for c in ("sotu", "brown", "shakespeare")
    ]
    assert sorted(v for (v,) in sizes) == sorted(expected)


def test_min_count_changes_the_metrics(workdir, no_tracking):
    tmp_path, params = workdir
    main(["sotu"])
    before = _metrics(tmp_path, "sotu")
    params["prepare"]["min_count"] = 3
    write_params(tmp_path, params)
    main(["sotu"])
    after = _metrics(tmp_path, "sotu")
    assert after["vocab_size"] < before["vocab_size"]
    assert after["oov_rate"] > before["oov_rate"]


def test_bad_input_exits_1_and_writes_nothing(workdir, no_tracking, capsys):
    tmp_path, params = workdir
    params["prepare"]["min_count"] = 1000
    write_params(tmp_path, params)
    with pytest.raises(SystemExit) as exc:
        main(["sotu"])
    assert exc.value.code == 1
    assert "prepare.min_count: 1000 leaves no word" in capsys.readouterr().err
    params["prepare"]["min_count"] = 1
    params["prepare"]["corpora"]["sotu"]["dataset"] = "missing"
    write_params(tmp_path, params)
    with pytest.raises(SystemExit):
        main(["sotu"])
    assert "data/raw/missing/speeches: corpus folder not found" in capsys.readouterr().err
    params["prepare"]["corpora"]["sotu"]["dataset"] = "sotu"
    params["prepare"]["corpora"]["sotu"]["level"] = "sentence"
    write_params(tmp_path, params)
    with pytest.raises(SystemExit):
        main(["sotu"])
    assert "prepare.corpora.sotu.level" in capsys.readouterr().err
    assert not (tmp_path / "data" / "processed").exists()
    assert not (tmp_path / "metrics").exists()


def test_concat_corpus_joins_the_parts_word_level(workdir, no_tracking, capsys):
    tmp_path, params = workdir
    corpora = params["prepare"]["corpora"]
    corpora["public"] = {
        "dataset": ".",
        "reader": "concat",
        "parts": ["sotu", "brown", "shakespeare"],
        "level": "word",
        "split": "none",
        "min_count": 1,
    }
    write_params(tmp_path, params)
    main(["public"])
    m = _metrics(tmp_path, "public")
    # sotu: 3 non-blank paragraphs + 1; brown: 2 sentences x 3 files; shakespeare: 10 lines
    assert m["lines"] == 4 + 6 + 10 and m["files"] == 2 + 3 + 1
    vocab = Vocabulary.load_tsv(tmp_path / "data/processed/public/vocab.tsv")
    assert {"union", "jury", "question"} <= set(vocab.tokens)  # one word from each part
    assert "T" not in vocab  # word level, not Shakespeare's character level
    train = load_npy(tmp_path / "data/processed/public/train.npy")
    words = [vocab.tokens[i] for i in train]
    # parts in order: sotu's first paragraph first, Shakespeare's last line last
    assert words[0].startswith("fellow") and "senate" in words[:6]
    assert words[-3:-1] == ["the", "question"] and words[-1] == vocab.tokens[EOS]
    assert words.count("jury") == 6

    corpora["public"]["parts"] = ["sotu", "gutenberg"]
    write_params(tmp_path, params)
    with pytest.raises(SystemExit) as exc:
        main(["public"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "prepare.corpora.public.parts: unknown corpus 'gutenberg'" in err
