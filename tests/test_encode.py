"""Two-pass streaming encoder: hand-checked ids, splits, chunk invariance, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.atomic import load_npy
from pipeline.core.errors import ConfigError, DataError
from pipeline.data.corpora import open_corpus
from pipeline.data.encode import (
    EncodeSettings,
    PrepareSection,
    iter_blocks,
    prepare_corpus,
    resolve,
)
from pipeline.data.text import NormalizeConfig
from pipeline.data.vocab import EOS, UNK, Vocabulary


def _sotu(tmp_path, text: str):
    root = tmp_path / "raw"
    (root / "speeches").mkdir(parents=True)
    (root / "speeches" / "a.txt").write_text(text, encoding="utf-8")
    return open_corpus("sotu", root)


def _load(out):
    return {s: load_npy(out / f"{s}.npy") for s in ("train", "valid", "test")}, Vocabulary.load_tsv(
        out / "vocab.tsv"
    )


def test_iter_blocks_ends_every_line():
    assert list(iter_blocks(["a", "bb", "c"], chunk_chars=4)) == ["a\nbb\n", "c\n"]
    assert list(iter_blocks([], chunk_chars=4)) == []


def test_hand_checked_encoding_no_split(tmp_path):
    corpus = _sotu(tmp_path, "The cat sat.\n\nthe CAT ran, the end\n")
    out = tmp_path / "out"
    res = prepare_corpus(corpus, EncodeSettings(min_count=2), out)
    arrays, vocab = _load(out)
    # the: 3, cat: 2 -> kept; sat, ran, end: 1 -> <unk>
    assert vocab.tokens == ["<pad>", "<unk>", "<eos>", "the", "cat"]
    assert vocab.counts.tolist() == [0, 3, 2, 3, 2]
    assert arrays["train"].dtype == np.int32
    assert arrays["train"].tolist() == [3, 4, UNK, EOS, 3, 4, UNK, 3, UNK, EOS]
    assert arrays["valid"].shape == (0,) and arrays["test"].shape == (0,)
    m = res.metrics()
    assert (m["tokens"], m["words"], m["types"], m["vocab_size"], m["lines"]) == (10, 8, 5, 5, 2)
    assert m["oov_rate"] == pytest.approx(3 / 8)
    assert m["seconds"] >= 0 and m["decode_errors"] == 0


def test_output_does_not_depend_on_chunk_size(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(50)]
    lines = [" ".join(rng.choice(words, size=rng.integers(1, 12))) for _ in range(300)]
    corpus = _sotu(tmp_path, "\n".join(lines) + "\n")
    settings = dict(min_count=3, split="bengio2003", split_sizes=(900, 400))
    ref = None
    for chunk in (7, 100, 1 << 20):
        out = tmp_path / f"out{chunk}"
        prepare_corpus(corpus, EncodeSettings(chunk_chars=chunk, **settings), out)
        arrays, vocab = _load(out)
        got = (vocab.tokens, {k: a.tolist() for k, a in arrays.items()})
        ref = ref or got
        assert got == ref
    # the split is counted in words: <eos> does not count
    for name, n in (("train", 900), ("valid", 400)):
        assert np.count_nonzero(np.asarray(ref[1][name]) != EOS) == n


def test_vocabulary_comes_from_train_split_only(tmp_path):
    # train: 4 words, valid: 2 words, test: the rest
    corpus = _sotu(tmp_path, "apple apple\napple apple\nbanana cherry\ncherry durian durian\n")
    out = tmp_path / "out"
    res = prepare_corpus(
        corpus, EncodeSettings(min_count=1, split="bengio2003", split_sizes=(4, 2)), out
    )
    arrays, vocab = _load(out)
    assert vocab.tokens[3:] == ["apple"]  # banana/cherry/durian only outside train
    assert arrays["train"].tolist() == [3, 3, EOS, 3, 3, EOS]
    assert arrays["valid"].tolist() == [UNK, UNK, EOS]
    assert arrays["test"].tolist() == [UNK, UNK, UNK, EOS]
    m = res.metrics()
    assert (m["train_oov_rate"], m["valid_oov_rate"], m["test_oov_rate"]) == (0.0, 1.0, 1.0)


def test_tail10_holds_out_last_tenth_of_characters(tmp_path):
    root = tmp_path / "raw" / "texts"
    root.mkdir(parents=True)
    text = "abcdefghi\n" * 10  # 100 characters, line breaks included
    (root / "x_gut.txt").write_text(text, encoding="utf-8")
    corpus = open_corpus("shakespeare", root.parent)
    settings = EncodeSettings(
        level="char", split="tail10", normalize=NormalizeConfig(lowercase=False)
    )
    out = tmp_path / "out"
    prepare_corpus(corpus, settings, out)
    arrays, vocab = _load(out)
    assert [len(arrays[s]) for s in ("train", "valid", "test")] == [90, 5, 5]
    assert "".join(vocab.decode(arrays["test"])) == "fghi<eos>"
    assert len(vocab) == 3 + 9  # a..i, '\n' is <eos>


def test_empty_corpus_is_a_data_error_and_writes_nothing(tmp_path):
    corpus = _sotu(tmp_path, "\n  \n!!! ...\n")
    out = tmp_path / "out"
    with pytest.raises(DataError, match="empty"):
        prepare_corpus(corpus, EncodeSettings(), out)
    assert not out.exists() or not any(out.iterdir())


def test_min_count_leaving_nothing_names_the_key(tmp_path):
    corpus = _sotu(tmp_path, "a b c\n")
    out = tmp_path / "out"
    settings = EncodeSettings(min_count=9, min_count_key="prepare.corpora.x.min_count")
    with pytest.raises(ConfigError, match=r"^prepare\.corpora\.x\.min_count: 9 leaves no word"):
        prepare_corpus(corpus, settings, out)
    assert not out.exists() or not any(out.iterdir())


def test_decode_error_fail_writes_nothing_replace_counts(tmp_path):
    root = tmp_path / "raw"
    (root / "speeches").mkdir(parents=True)
    (root / "speeches" / "a.txt").write_bytes(b"fine words\nbad \xff words\n")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"a.txt:2"):
        prepare_corpus(open_corpus("sotu", root), EncodeSettings(), out)
    assert not out.exists() or not any(out.iterdir())
    res = prepare_corpus(
        open_corpus("sotu", root, on_decode_error="replace"), EncodeSettings(), out
    )
    assert res.metrics()["decode_errors"] == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "test.npy",
        "train.npy",
        "valid.npy",
        "vocab.tsv",
    ]


def test_resolve_merges_globals_and_overrides():
    section = PrepareSection(
        normalize={"nfkc": True, "lowercase": True, "digits": "0"},
        min_count=5,
        corpora={
            "sotu": {"dataset": "sotu", "reader": "sotu"},
            "shk": {
                "dataset": "s",
                "reader": "shakespeare",
                "level": "char",
                "min_count": 1,
                "normalize": {"lowercase": False},
            },
        },
    )
    _, s = resolve(section, "sotu")
    assert (s.min_count, s.min_count_key, s.normalize.lowercase) == (5, "prepare.min_count", True)
    _, s = resolve(section, "shk")
    assert (s.min_count, s.min_count_key) == (1, "prepare.corpora.shk.min_count")
    assert (s.normalize.lowercase, s.normalize.digits) == (False, "0")
    with pytest.raises(ConfigError, match="prepare.corpora.nope"):
        resolve(section, "nope")
    bad = PrepareSection(corpora={"x": {"dataset": "x", "reader": "sotu", "levle": "word"}})
    with pytest.raises(ConfigError, match=r"prepare\.corpora\.x\.levle: unknown key"):
        resolve(bad, "x")
