"""pipeline.embeddings.pretrained: word2vec files in, project-format Embeddings out."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError, DataError
from pipeline.embeddings.pretrained import (
    SPECIALS,
    PretrainedConfig,
    PretrainedSource,
    detect_format,
    import_pretrained,
)
from pipeline.embeddings.vectors import Embeddings

WORDS = ["the", "King", "king", "queen", "Paris", "paris", "apple"]


def _vectors(n: int = len(WORDS), dim: int = 5) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)


def _write(tmp_path, binary: bool = True, words=WORDS, vectors=None):
    vectors = _vectors(len(words)) if vectors is None else vectors
    path = tmp_path / ("vecs.bin" if binary else "vecs.txt")
    Embeddings(words, vectors).save_word2vec(path, binary=binary)
    return path, vectors


def test_binary_round_trip_keeps_order_and_prepends_zero_specials(tmp_path):
    path, vectors = _write(tmp_path)
    emb, stats = import_pretrained(PretrainedSource(path=str(path)))
    assert emb.words == (*SPECIALS, *WORDS)
    assert np.array_equal(emb.vectors[3:], vectors)  # bit-exact float32
    assert not emb.vectors[:3].any()
    assert stats["words"] == len(WORDS) and stats["dim"] == 5 and stats["rows"] == len(WORDS) + 3
    assert stats["format"] == "word2vec_binary" and stats["duplicates_dropped"] == 0
    assert stats["mixed_case_words"] == 2
    # the saved folder loads back identically (the artifact every later stage reads)
    again = Embeddings.load(emb.save(tmp_path / "out"))
    assert again.words == emb.words and np.array_equal(again.vectors, emb.vectors)


def test_text_format_detected_and_auto(tmp_path):
    path, vectors = _write(tmp_path, binary=False)
    assert detect_format(path) == "word2vec_text"
    emb, stats = import_pretrained(PretrainedSource(path=str(path), format="auto"))
    assert stats["format"] == "word2vec_text"
    assert np.allclose(emb.vectors[3:], vectors)


def test_declared_format_mismatch_is_an_error_naming_the_file(tmp_path):
    path, _ = _write(tmp_path, binary=False)
    with pytest.raises(DataError, match=r"vecs\.txt.*declared format 'word2vec_binary'"):
        import_pretrained(PretrainedSource(path=str(path), format="word2vec_binary"))
    bin_path, _ = _write(tmp_path, binary=True)
    with pytest.raises(DataError, match="looks like 'word2vec_binary'"):
        import_pretrained(PretrainedSource(path=str(bin_path), format="word2vec_text"))


def test_lowercase_merges_duplicates_first_one_wins(tmp_path):
    path, vectors = _write(tmp_path)
    emb, stats = import_pretrained(PretrainedSource(path=str(path), lowercase=True))
    assert emb.words == (*SPECIALS, "the", "king", "queen", "paris", "apple")
    assert stats["duplicates_dropped"] == 2
    assert np.array_equal(emb.vector("king"), vectors[WORDS.index("King")])  # earlier row
    assert np.array_equal(emb.vector("paris"), vectors[WORDS.index("Paris")])


def test_max_words_and_no_specials(tmp_path):
    path, vectors = _write(tmp_path)
    emb, stats = import_pretrained(PretrainedSource(path=str(path), max_words=3, specials=False))
    assert emb.words == tuple(WORDS[:3]) and stats["source_words"] == 3
    assert np.array_equal(emb.vectors, vectors[:3])


def test_source_special_tokens_do_not_clash(tmp_path):
    path, vectors = _write(tmp_path, words=["<unk>", "a", "b"], vectors=_vectors(3))
    emb, stats = import_pretrained(PretrainedSource(path=str(path)))
    assert emb.words == (*SPECIALS, "a", "b") and stats["special_like_dropped"] == 1
    assert not emb.vector("<unk>").any()


def test_truncated_binary_names_the_file(tmp_path):
    path, _ = _write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 13])
    with pytest.raises(DataError, match=r"vecs\.bin.*truncated"):
        import_pretrained(PretrainedSource(path=str(path)))


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty file"), (b"PK\x03\x04 not vectors\n", "not a word2vec file")],
)
def test_not_word2vec(tmp_path, content, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"bad\.bin.*{message}"):
        import_pretrained(PretrainedSource(path=str(path)))


def test_missing_file_and_nan(tmp_path):
    with pytest.raises(DataError, match=r"nope\.bin: not found"):
        import_pretrained(PretrainedSource(path=str(tmp_path / "nope.bin")))
    vectors = _vectors()
    vectors[4, 2] = np.nan
    path, _ = _write(tmp_path, vectors=vectors)
    with pytest.raises(DataError, match="'Paris' \\(record 5\\) is NaN"):
        import_pretrained(PretrainedSource(path=str(path)))


def test_config_validation_names_the_key():
    cfg = from_mapping(
        PretrainedConfig, {"sources": {"g": {"path": "x.bin", "max_words": 10}}}, "pretrained"
    )
    assert cfg.sources["g"].max_words == 10 and cfg.sources["g"].format == "word2vec_binary"
    with pytest.raises(ConfigError, match=r"pretrained\.sources\.g\.format"):
        from_mapping(
            PretrainedConfig, {"sources": {"g": {"path": "x", "format": "glove"}}}, "pretrained"
        )
    with pytest.raises(ConfigError, match=r"pretrained\.sources\.g\.max_words"):
        from_mapping(
            PretrainedConfig, {"sources": {"g": {"path": "x", "max_words": 0}}}, "pretrained"
        )
