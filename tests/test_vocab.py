"""Vocabulary: specials, ordering, min_count / max_size, the vocab.tsv format."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from pipeline.core.errors import ConfigError, DataError
from pipeline.data.vocab import EOS, PAD, UNK, Vocabulary

COUNTS = Counter({"b": 3, "a": 3, "c": 5, "d": 1, "e": 2})


def test_specials_then_count_desc_then_token():
    v = Vocabulary.from_counts(COUNTS, min_count=1, eos_count=7)
    assert v.tokens == ["<pad>", "<unk>", "<eos>", "c", "a", "b", "e", "d"]
    assert (PAD, UNK, EOS) == (0, 1, 2)
    assert v.counts.dtype == np.int64
    assert v.counts.tolist() == [0, 0, 7, 5, 3, 3, 2, 1]


def test_min_count_merges_rare_words_into_unk():
    v = Vocabulary.from_counts(COUNTS, min_count=3)
    assert v.tokens[3:] == ["c", "a", "b"]
    assert v.counts[UNK] == 3  # d (1) + e (2)
    assert v.id_of("e") == UNK and v.id_of("zzz") == UNK
    assert v.id_of("a") == 4


def test_max_size_counts_the_specials():
    v = Vocabulary.from_counts(COUNTS, min_count=1, max_size=5)
    assert len(v) == 5
    assert v.tokens[3:] == ["c", "a"]
    assert v.counts[UNK] == 3 + 2 + 1


def test_min_count_that_leaves_nothing_is_a_config_error():
    with pytest.raises(ConfigError, match="min_count"):
        Vocabulary.from_counts(COUNTS, min_count=6)
    with pytest.raises(ConfigError, match="max_size"):
        Vocabulary.from_counts(COUNTS, max_size=3)


def test_encode_decode():
    v = Vocabulary.from_counts(COUNTS, min_count=2)
    ids = v.encode(["c", "x", "e"], eos=True)
    assert ids.dtype == np.int32
    assert ids.tolist() == [3, UNK, v.id_of("e"), EOS]
    assert v.decode(ids) == ["c", "<unk>", "e", "<eos>"]
    assert v.token_of(3) == "c"
    assert "c" in v and "x" not in v


def test_tsv_round_trip_and_format(tmp_path):
    v = Vocabulary.from_counts(Counter({"héllo": 4, "wörld": 2, "<eos>": 9}), min_count=1)
    path = tmp_path / "vocab.tsv"
    v.save_tsv(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id\ttoken\tcount"
    assert lines[1:4] == ["0\t<pad>\t0", "1\t<unk>\t0", "2\t<eos>\t9"]
    assert lines[4] == "3\théllo\t4"
    assert Vocabulary.load_tsv(path) == v
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.tsv"]  # no temp file left


def test_tsv_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\ttoken\tcount\n0\t<pad>\t0\n2\t<unk>\t0\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.tsv:3"):
        Vocabulary.load_tsv(bad)
    with pytest.raises(DataError, match="not found"):
        Vocabulary.load_tsv(tmp_path / "missing.tsv")
    v = Vocabulary(["<pad>", "<unk>", "<eos>", "a\tb"])
    with pytest.raises(DataError, match="tab"):
        v.save_tsv(tmp_path / "tab.tsv")
    assert not (tmp_path / "tab.tsv").exists()
