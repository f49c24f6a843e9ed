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


# -- GloVe text (no header line) ------------------------------------------------------------------
def _glove_text(path, words, vectors):
    lines = [
        " ".join([w, *(f"{x:.9g}" for x in row)]) for w, row in zip(words, vectors, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_glove_text_detected_with_a_spaced_word(tmp_path):
    words = [",", "the", ". . .", "at name@domain.com", "café"]
    vectors = _vectors(len(words), dim=4)
    path = _glove_text(tmp_path / "glove.840B.4d.txt", words, vectors)
    assert detect_format(path) == "glove_text"
    emb, stats = import_pretrained(PretrainedSource(path=str(path), format="auto", specials=False))
    assert emb.words == tuple(words) and stats["format"] == "glove_text"
    assert np.array_equal(emb.vectors, vectors)  # 9 significant digits: float32 exact
    assert stats["dim"] == 4 and stats["source_words"] == 5
    first3, _ = import_pretrained(
        PretrainedSource(path=str(path), format="glove_text", max_words=3)
    )
    assert first3.words == (*SPECIALS, ",", "the", ". . .")


@pytest.mark.parametrize(
    "content, message",
    [
        (
            b"the 0.1 0.2 0.3\nof 0.4 0.5\n",
            r"g\.txt:2: expected a word and 3 numbers, got 3 fields",
        ),
        (b"the 0.1 0.2 0.3\nof 0.4 x 0.5\n", r"g\.txt:2: could not convert"),
        (b"the 0.1 0.2 0.3\n\xff\xfe 1 2 3\n", r"g\.txt:2: not UTF-8"),
        (b"the 0.1 nan 0.3\n", r"g\.txt.*'the' \(record 1\) is NaN"),
        (b"the quick brown fox\n", r"g\.txt:1: not a word2vec file .* nor GloVe text"),
    ],
)
def test_glove_text_malformed_lines_name_the_line(tmp_path, content, message):
    path = tmp_path / "g.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        import_pretrained(PretrainedSource(path=str(path), format="auto"))


def test_glove_text_declared_but_word2vec_found_and_vice_versa(tmp_path):
    w2v, _ = _write(tmp_path, binary=False)
    with pytest.raises(DataError, match="declared format 'glove_text' but the file looks like"):
        import_pretrained(PretrainedSource(path=str(w2v), format="glove_text"))
    glove = _glove_text(tmp_path / "g.txt", ["a", "b"], _vectors(2))
    with pytest.raises(DataError, match="declared format 'word2vec_text'.*'glove_text'"):
        import_pretrained(PretrainedSource(path=str(glove), format="word2vec_text"))


# -- a .npy matrix + a parquet file of its words ----------------------------------------------------
def _npy_parquet(folder, words, vectors, column="index"):
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "emb.npy", vectors, allow_pickle=False)
    pd.DataFrame({column: words}).to_parquet(folder / "words.parquet")
    return PretrainedSource(
        path=str(folder),
        format="npy_parquet",
        vectors_file="emb.npy",
        words_file="words.parquet",
        words_column=column,
        specials=False,
    )


def test_npy_parquet_rows_are_words(tmp_path):
    words = ["the", ",", "king", "queen"]
    vectors = _vectors(len(words), dim=6)
    source = _npy_parquet(tmp_path / "g6", words, vectors)
    assert detect_format(source.path) == "npy_parquet"
    emb, stats = import_pretrained(source)
    assert emb.words == tuple(words) and np.array_equal(emb.vectors, vectors)
    assert stats["format"] == "npy_parquet" and stats["words"] == 4 and stats["dim"] == 6
    assert stats["words_sha256"] != stats["source_sha256"]
    # the only column is taken when none is named; max_words keeps the first rows
    emb2, _ = import_pretrained(
        PretrainedSource(**{**source.__dict__, "words_column": None, "max_words": 2})
    )
    assert emb2.words == ("the", ",") and np.array_equal(emb2.vectors, vectors[:2])
    # the artifact: no special tokens, vectors.txt read by gensim
    again = Embeddings.load(emb.save(tmp_path / "out"))
    assert again.words == tuple(words) and np.array_equal(again.vectors, vectors)


def test_npy_parquet_errors(tmp_path):
    import pandas as pd

    words = ["a", "b", "c"]
    source = _npy_parquet(tmp_path / "d", words, _vectors(3, dim=4))
    folder = tmp_path / "d"
    with pytest.raises(DataError, match=r"emb\.npy: 3 rows but .*words\.parquet lists 2 words"):
        pd.DataFrame({"index": ["a", "b"]}).to_parquet(folder / "words.parquet")
        import_pretrained(source)
    with pytest.raises(DataError, match=r"words\.parquet: no column 'index'"):
        pd.DataFrame({"word": words}).to_parquet(folder / "words.parquet")
        import_pretrained(source)
    with pytest.raises(DataError, match=r"words\.parquet: column 'index' holds int64"):
        pd.DataFrame({"index": [1, 2, 3]}).to_parquet(folder / "words.parquet")
        import_pretrained(source)
    with pytest.raises(DataError, match=r"words\.parquet: row 1 of column 'index' is empty"):
        pd.DataFrame({"index": ["a", None, "c"]}).to_parquet(folder / "words.parquet")
        import_pretrained(source)
    pd.DataFrame({"index": words}).to_parquet(folder / "words.parquet")
    with pytest.raises(DataError, match=r"emb\.npy: expected a 2-D float array"):
        np.save(folder / "emb.npy", np.zeros(3, np.float32))
        import_pretrained(source)
    with pytest.raises(DataError, match=r"emb\.npy: not a readable \.npy"):
        np.save(folder / "emb.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
        import_pretrained(source)
    with pytest.raises(DataError, match=r"words\.parquet: not a readable parquet"):
        np.save(folder / "emb.npy", _vectors(3, dim=4))
        (folder / "words.parquet").write_bytes(b"not parquet")
        import_pretrained(source)
    with pytest.raises(DataError, match=r"d: declared format 'word2vec_binary' but the folder"):
        import_pretrained(PretrainedSource(**{**source.__dict__, "format": "word2vec_binary"}))
    with pytest.raises(ConfigError, match="set vectors_file and words_file"):
        import_pretrained(PretrainedSource(path=str(folder), format="auto"))
