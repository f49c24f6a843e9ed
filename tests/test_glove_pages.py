"""GloVe's streamed input: chunked triples, shuffled pages, and what the result depends on."""

from __future__ import annotations

import tracemalloc
from dataclasses import replace

import numpy as np
import pytest

from pipeline.core.errors import DataError
from pipeline.glove.pages import FILES, build_pages
from pipeline.glove.train import GloveConfig, train_glove, train_glove_file, train_glove_on
from pipeline.glove.triples import ArrayTriples, NpzTriples, TriplesDigest

VOCAB = 60


def random_triples(nnz: int, vocab: int = VOCAB, seed: int = 0):
    """Distinct (row, col) cells with positive values, sorted as the cooccur stage writes."""
    rng = np.random.default_rng(seed)
    cells = np.unique(rng.integers(3, vocab, size=(nnz, 2)), axis=0)
    values = rng.gamma(1.0, 3.0, len(cells)).astype(np.float32) + 0.01
    return cells[:, 0].astype(np.int32), cells[:, 1].astype(np.int32), values


def save_npz(path, rows, cols, values, vocab: int = VOCAB):
    np.savez(path, rows=rows, cols=cols, values=values, shape=np.array([vocab, vocab]))
    return path


def cfg(**kw) -> GloveConfig:
    base = GloveConfig(dim=6, epochs=3, x_max=10.0, seed=5, device="cpu", threads=2,
                       checkpoint_dir=None)  # fmt: skip
    return replace(base, **kw)


def constants(values):
    return np.log(values.astype(np.float64)).astype(np.float32), np.ones_like(values)


@pytest.fixture(scope="module")
def triples():
    return random_triples(1500)


def test_npz_chunks_equal_the_arrays(tmp_path, triples):
    rows, cols, values = triples
    npz = NpzTriples(save_npz(tmp_path / "c.npz", *triples))
    assert (npz.nnz, npz.vocab_size) == (rows.size, VOCAB)
    parts = list(npz.chunks(100))
    assert len(parts) == -(-rows.size // 100)
    for got, want in zip(map(np.concatenate, zip(*parts, strict=True)), triples, strict=True):
        np.testing.assert_array_equal(got, want)
    a, b = TriplesDigest(VOCAB), TriplesDigest(VOCAB)
    for part in parts:
        a.update(*part)
    b.update(*triples)
    assert a.hexdigest() == b.hexdigest()  # any chunking, either source


def test_npz_errors_name_the_file(tmp_path, triples):
    rows, cols, values = triples
    with pytest.raises(DataError, match="none.npz: co-occurrence file not found"):
        NpzTriples(tmp_path / "none.npz")
    np.savez(tmp_path / "partial.npz", rows=rows, cols=cols)
    with pytest.raises(DataError, match=r"partial.npz: missing arrays \['values', 'shape'\]"):
        NpzTriples(tmp_path / "partial.npz")
    bad = values.copy()
    bad[-3] = -1.0  # in the last chunk
    npz = NpzTriples(save_npz(tmp_path / "bad.npz", rows, cols, bad))
    with pytest.raises(DataError, match="bad.npz: values must be positive"):
        list(npz.chunks(500))
    npz = NpzTriples(save_npz(tmp_path / "small.npz", rows, cols, values, vocab=10))
    with pytest.raises(DataError, match=r"small.npz: indices outside \[0, 10\)"):
        list(npz.chunks(500))


@pytest.mark.parametrize("threads", [1, 3])
def test_pages_hold_every_entry_once_inside_its_block(tmp_path, triples, threads):
    rows, cols, values = triples
    pages = build_pages(ArrayTriples(*triples, VOCAB), tmp_path, threads=threads, seed=1,
                        constants=constants, page_entries=40, read_chunk=64)  # fmt: skip
    t, n_pages = threads, pages.pages_per_block
    expected_pages = -(-rows.size // (t * t * 40))
    assert n_pages == expected_pages and pages.offsets[-1] == rows.size
    data = {n: np.fromfile(tmp_path / f"{n}.bin", np.int32 if n in ("rows", "cols") else
                           np.float32) for n in FILES}  # fmt: skip
    got = sorted(zip(data["rows"].tolist(), data["cols"].tolist(), data["logx"].tolist(),
                     strict=True))  # fmt: skip
    want = sorted(zip(rows.tolist(), cols.tolist(), constants(values)[0].tolist(), strict=True))
    assert got == want
    for b in range(t * t):
        for p in range(n_pages):
            start, stop = pages.page(b, p)
            assert np.all(data["rows"][start:stop] % t == b // t)
            assert np.all(data["cols"][start:stop] % t == b % t)
    assert pages.seen[rows].all() and not pages.seen[:3].any()


def test_same_seed_same_vectors_over_many_pages(triples):
    def train(**kw):
        return train_glove_on(ArrayTriples(*triples, VOCAB), cfg(**kw), progress=False,
                              page_entries=50)  # fmt: skip

    a, b, other = train(), train(), train(seed=6)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert a.losses == b.losses
    assert not np.array_equal(a.vectors, other.vectors)


@pytest.mark.parametrize("threads", [1, 2])
def test_read_chunk_and_source_do_not_change_the_result(tmp_path, triples, threads):
    """Streaming from a file in small chunks trains exactly as arrays in one piece."""
    c = cfg(threads=threads)
    whole = train_glove_on(ArrayTriples(*triples, VOCAB), c, progress=False,
                           page_entries=50, read_chunk=1 << 20)  # fmt: skip
    path = save_npz(tmp_path / "c.npz", *triples)
    for read_chunk in (7, 256):
        streamed = train_glove_on(NpzTriples(path), c, progress=False, page_entries=50,
                                  read_chunk=read_chunk)  # fmt: skip
        np.testing.assert_array_equal(streamed.vectors, whole.vectors)
        assert streamed.losses == whole.losses


def test_training_memory_does_not_grow_with_the_matrix(tmp_path):
    """Python-side allocations while training on a file stay far below the matrix's size."""
    rows, cols, values = random_triples(400_000, vocab=3000, seed=2)
    path = save_npz(tmp_path / "big.npz", rows, cols, values, vocab=3000)
    matrix_bytes = rows.nbytes + cols.nbytes + values.nbytes
    del rows, cols, values
    c = cfg(epochs=1, threads=2)
    train_glove_file(path, c, progress=False)  # compile outside the measurement
    tracemalloc.start()
    try:
        train_glove_on(NpzTriples(path), c, progress=False, page_entries=4096,
                       read_chunk=8192)  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < matrix_bytes / 4, (peak, matrix_bytes)


def test_empty_matrix_is_a_clear_error():
    empty = np.zeros(0, np.int32)
    with pytest.raises(DataError, match="the matrix is empty"):
        train_glove(empty, empty, empty.astype(np.float32), VOCAB, cfg(), progress=False)


def test_pages_a_killed_run_left_behind_are_removed(tmp_path, triples):
    path = save_npz(tmp_path / "c.npz", *triples)
    ckpt = tmp_path / "ckpt"
    stale = ckpt / "glove-pages-killed"
    stale.mkdir(parents=True)
    (stale / "block0.bin").write_bytes(b"x" * 100)
    train_glove_file(path, cfg(checkpoint_dir=str(ckpt), epochs=1), progress=False)
    assert not list(ckpt.glob("glove-pages-*"))  # neither the stale pages nor this run's
