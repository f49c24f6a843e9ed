"""t-SNE picture: which words are drawn, determinism, a readable PNG."""

from __future__ import annotations

import time

import numpy as np

from pipeline.embeddings.vectors import Embeddings
from pipeline.evaluation.tsne_plot import select_words, tsne_coordinates, tsne_plot


def toy(n=80, dim=10, seed=0, counts=True):
    rng = np.random.default_rng(seed)
    words = ["<pad>", "<unk>", "<eos>"] + [f"w{i}" for i in range(n - 3)]
    c = np.r_[[0, 0, 0], np.arange(n - 3, 0, -1)] if counts else None
    return Embeddings(words, rng.standard_normal((n, dim)), c)


def test_select_words_frequent_first_then_probes_no_specials():
    emb = toy()
    rows = select_words(emb, 5, ["w40", "w2", "missing", "w40"])
    assert [emb.words[r] for r in rows] == ["w0", "w1", "w2", "w3", "w4", "w40"]
    # counts decide the order when present (here: reversed frequencies)
    words = ["a", "b", "c", "<unk>"]
    emb2 = Embeddings(words, np.eye(4), counts=[1, 5, 3, 100])
    assert [words[r] for r in select_words(emb2, 2)] == ["b", "c"]
    # without counts: row order
    assert [words[r] for r in select_words(Embeddings(words, np.eye(4)), 2)] == ["a", "b"]


def test_tsne_is_seeded_and_keeps_clusters_apart():
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((2, 20)) * 5
    x = np.vstack(
        [centers[0] + rng.standard_normal((20, 20)), centers[1] + rng.standard_normal((20, 20))]
    )
    a = tsne_coordinates(x, seed=3, perplexity=5)
    b = tsne_coordinates(x, seed=3, perplexity=5)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (40, 2)
    # each point's nearest neighbour in the map comes from its own cluster
    d = np.linalg.norm(a[:, None] - a[None], axis=-1) + np.eye(40) * 1e9
    nearest = d.argmin(axis=1)
    assert ((nearest < 20) == (np.arange(40) < 20)).mean() > 0.95


def test_tsne_plot_writes_png_fast(tmp_path):
    emb = toy(330, 50)
    t0 = time.process_time()  # CPU time: steadier than wall time on a shared machine
    info = tsne_plot(emb, tmp_path / "t.png", n_words=300, probe_words=["w320", "nope"], seed=0)
    cpu_seconds = time.process_time() - t0
    data = (tmp_path / "t.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert info == {"words": 301, "probes": 1}
    assert cpu_seconds < 15  # the default N must stay well under 15 s (about 3-4 s)
    assert not list(tmp_path.glob(".*tmp*"))  # nothing half-written left behind


def test_tsne_plot_tiny_inputs(tmp_path):
    emb = Embeddings(["a", "b"], np.eye(2))
    assert tsne_plot(emb, tmp_path / "t.png", n_words=10)["words"] == 2
    assert (tmp_path / "t.png").stat().st_size > 0
