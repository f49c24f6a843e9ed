"""word2vec trainer: planted structure is learnt by every output layer, seeds, resume, NaN."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.errors import DataError, TrainingDivergedError
from pipeline.word2vec.config import SkipGramConfig
from pipeline.word2vec.corpus import huffman_tree, make_corpus, make_jobs
from pipeline.word2vec.train import train_word2vec

GROUPS, CTX, POOL = 8, 6, 24


def planted_corpus(sentences: int = 1500, length: int = 8, seed: int = 0):
    """Sentences of group g: one of g's twins (a_g or b_g) among context words drawn from
    g's context set (6 of a pool of 24; every context word belongs to two groups). The
    twins never co-occur but have exactly the same contexts, unlike any other word, so
    each must be the other's nearest neighbour."""
    rng = np.random.default_rng(seed)
    vocab = 3 + 2 * GROUPS + POOL
    out: list[int] = []
    for i in range(sentences):
        g = rng.integers(GROUPS)
        sent = 3 + 2 * GROUPS + (3 * g + rng.integers(0, CTX, length)) % POOL
        sent[rng.integers(0, length)] = 3 + 2 * g + rng.integers(0, 2)
        if i % 7 == 0:
            sent[0] = 1  # an <unk>: dropped before windowing
        out.extend(sent.tolist())
        out.append(2)
    return np.array(out, dtype=np.int32), vocab


def twins_found(vectors: np.ndarray) -> int:
    """How many twins (a_g, b_g) are each other's nearest neighbour (cosine)."""
    u = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    found = 0
    for g in range(GROUPS):
        a = 3 + 2 * g
        sims = u[3:] @ u[a]
        sims[a - 3] = -np.inf
        found += int(np.argmax(sims) + 3 == a + 1)
    return found


def cfg(**kw) -> SkipGramConfig:
    base = dict(dim=20, epochs=4, sample=0.0, workers=1, device="cpu", seed=3)
    base.update(kw)
    return SkipGramConfig(**base)


IDS, VOCAB = planted_corpus()


def test_make_corpus_drops_specials_and_splits_sentences():
    ids = np.array([5, 1, 6, 2, 0, 7, 8, 9, 2, 2, 4], dtype=np.int32)
    c = make_corpus(ids, 10, max_sentence_length=2)
    assert c.words.tolist() == [5, 6, 7, 8, 9, 4]
    assert c.bounds.tolist() == [0, 2, 4, 5, 6]  # [5 6] [7 8] [9] [4]
    assert c.counts[:3].tolist() == [0, 0, 0] and c.counts[7] == 1
    assert make_jobs(c.bounds, 3).tolist() == [0, 2, 4]
    with pytest.raises(DataError, match="outside the vocabulary"):
        make_corpus(np.array([3, 12], np.int32), 10)


def _reference_corpus(ids, max_len):
    """make_corpus by hand: sentences end at <eos>, specials dropped, long ones cut."""
    sentences, cur = [], []
    for t in ids.tolist():
        if t >= 3:
            cur.append(t)
        if t == 2:
            sentences.append(cur)
            cur = []
    sentences.append(cur)
    pieces = [s[a : a + max_len] for s in sentences for a in range(0, len(s), max_len)]
    pieces = [p for p in pieces if p]
    bounds = np.cumsum([0] + [len(p) for p in pieces])
    return [w for p in pieces for w in p], bounds.tolist()


def test_make_corpus_matches_a_plain_reference_on_random_corpora():
    rng = np.random.default_rng(5)
    for _ in range(300):
        ids = rng.choice(8, size=int(rng.integers(0, 30)), p=rng.dirichlet(np.ones(8)))
        max_len = int(rng.integers(1, 5))
        c = make_corpus(ids.astype(np.int32), 8, max_sentence_length=max_len)
        words, bounds = _reference_corpus(ids, max_len)
        assert c.words.tolist() == words and c.bounds.tolist() == bounds, (ids, max_len)
        assert c.counts.tolist() == np.bincount(np.array(words, int), minlength=8).tolist()
        assert c.words.dtype == np.int32 and c.bounds.dtype == c.counts.dtype == np.int64


@pytest.mark.parametrize(
    "arch,out",
    [
        ("sg", "ns"),
        ("sg", "hs"),
        ("cbow", "ns"),
        ("cbow", "hs"),
        ("sg", "softmax"),
        ("cbow", "softmax"),
    ],
)
def test_words_sharing_contexts_become_nearest_neighbours(arch, out):
    res = train_word2vec(IDS, VOCAB, cfg(architecture=arch, output=out), progress=False)
    assert twins_found(res.vectors) >= GROUPS - 1
    assert res.loss_per_epoch[-1] < res.loss_per_epoch[0]
    assert len(res.loss_per_epoch) == 4


def test_untrained_vectors_do_not_show_the_structure():
    res = train_word2vec(IDS, VOCAB, cfg(epochs=1, lr=1e-6), progress=False)
    assert twins_found(res.vectors) <= 2


def test_seeded_runs_are_identical_with_one_worker():
    a = train_word2vec(IDS, VOCAB, cfg(sample=1e-2), progress=False)
    b = train_word2vec(IDS, VOCAB, cfg(sample=1e-2), progress=False)
    c = train_word2vec(IDS, VOCAB, cfg(sample=1e-2, seed=4), progress=False)
    assert np.array_equal(a.vectors, b.vectors)
    assert a.loss_per_epoch == b.loss_per_epoch
    assert not np.array_equal(a.vectors, c.vectors)


def test_two_hogwild_workers_learn_the_structure():
    res = train_word2vec(IDS, VOCAB, cfg(workers=2, batch_words=500), progress=False)
    assert res.workers == 2
    assert twins_found(res.vectors) >= GROUPS - 1


@pytest.mark.parametrize("workers", [1, 2])
def test_centre_drawn_negatives_learn_the_structure(workers):
    c = cfg(negative_draw="centre", workers=workers, batch_words=500)
    res = train_word2vec(IDS, VOCAB, c, progress=False)
    assert twins_found(res.vectors) >= GROUPS - 1
    assert res.loss_per_epoch[-1] < res.loss_per_epoch[0]
    if workers == 1:  # one worker: reproducible, and not the per-pair draw's result
        again = train_word2vec(IDS, VOCAB, c, progress=False)
        assert np.array_equal(again.vectors, res.vectors)
        pair = train_word2vec(IDS, VOCAB, cfg(batch_words=500), progress=False)
        assert not np.array_equal(pair.vectors, res.vectors)


@pytest.mark.parametrize(
    "kw", [dict(architecture="cbow"), dict(output="hs"), dict(backend="torch")]
)
def test_centre_drawn_negatives_are_refused_where_they_do_not_apply(kw):
    from pipeline.core.errors import ConfigError

    with pytest.raises(ConfigError, match="skipgram.negative_draw"):
        train_word2vec(IDS, VOCAB, cfg(negative_draw="centre", epochs=1, **kw), progress=False)


class Stop(Exception):
    pass


def test_resume_equals_uninterrupted(tmp_path):
    c = cfg(epochs=3, batch_words=2000)
    full = train_word2vec(IDS, VOCAB, c, progress=False)

    def stop_after_two(stats):
        if stats["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        train_word2vec(
            IDS, VOCAB, c, checkpoint_dir=tmp_path, callback=stop_after_two, progress=False
        )
    assert (tmp_path / "checkpoint.npz").exists()
    seen = []
    resumed = train_word2vec(
        IDS, VOCAB, c, checkpoint_dir=tmp_path, callback=seen.append, progress=False
    )
    assert resumed.resumed_from_epoch == 2
    assert [s["epoch"] for s in seen] == [3]
    assert np.array_equal(resumed.vectors, full.vectors)
    assert resumed.loss_per_epoch == full.loss_per_epoch
    assert not (tmp_path / "checkpoint.npz").exists()  # removed once finished


def test_checkpoint_of_other_settings_is_ignored(tmp_path):
    def stop(stats):
        raise Stop

    with pytest.raises(Stop):
        train_word2vec(
            IDS, VOCAB, cfg(epochs=2), checkpoint_dir=tmp_path, callback=stop, progress=False
        )
    res = train_word2vec(
        IDS, VOCAB, cfg(epochs=2, window=3), checkpoint_dir=tmp_path, progress=False
    )
    assert res.resumed_from_epoch == 0


def test_divergence_raises_naming_epoch_and_lr():
    with pytest.raises(TrainingDivergedError, match=r"epoch 1 .*learning rate"):
        train_word2vec(IDS, VOCAB, cfg(lr=1e30), progress=False)


def test_metrics_report_speed_and_settings():
    res = train_word2vec(IDS, VOCAB, cfg(epochs=1, sample=1e-3), progress=False)
    m = res.metrics()
    assert m["vocab_size"] == VOCAB and m["device"] == "cpu" and m["model"] == "sgns"
    assert 0 < m["effective_words"] < m["raw_words"]
    assert m["raw_words_per_sec"] > m["effective_words_per_sec"] > 0
    assert m["settings"]["lr"] == 0.025 and m["settings"]["min_lr"] == pytest.approx(2.5e-6)
    assert SkipGramConfig(architecture="cbow").start_lr == 0.05


@pytest.mark.parametrize(
    "arch,out", [("sg", "ns"), ("sg", "hs"), ("cbow", "ns"), ("sg", "softmax")]
)
def test_torch_path_learns_the_same_structure_on_cpu(arch, out):
    c = cfg(architecture=arch, output=out, backend="torch", torch_batch_pairs=256)
    res = train_word2vec(IDS, VOCAB, c, progress=False)
    assert res.backend == "torch"
    assert twins_found(res.vectors) >= GROUPS - 1
    ref = train_word2vec(IDS, VOCAB, cfg(architecture=arch, output=out), progress=False)
    # same objective, same order of magnitude as the numba kernels
    assert res.loss_per_epoch[-1] == pytest.approx(ref.loss_per_epoch[-1], rel=0.25)


def test_torch_row_cap_keeps_large_batches_stable():
    # 8192 pairs per step on a 43-word vocabulary: each row is hit ~1000 times per step
    big = dict(backend="torch", torch_batch_pairs=8192)
    capped = train_word2vec(IDS, VOCAB, cfg(**big, torch_dup_cap=64.0), progress=False)
    assert twins_found(capped.vectors) >= GROUPS - 1
    try:
        uncapped = train_word2vec(IDS, VOCAB, cfg(**big, torch_dup_cap=0.0), progress=False)
        blown = uncapped.loss_per_epoch[-1]
    except TrainingDivergedError:  # corpus-ordered 8192-pair steps blow up to inf
        blown = float("inf")
    assert blown > 100 * capped.loss_per_epoch[-1]  # summed steps blow up


def test_torch_path_is_seeded_on_cpu():
    c = cfg(epochs=1, backend="torch", torch_batch_pairs=512)
    a = train_word2vec(IDS, VOCAB, c, progress=False)
    b = train_word2vec(IDS, VOCAB, c, progress=False)
    assert np.array_equal(a.vectors, b.vectors)


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_torch_path_on_cuda():
    c = cfg(device="cuda", torch_batch_pairs=4096)
    res = train_word2vec(IDS, VOCAB, c, progress=False)
    assert res.device == "cuda"
    assert twins_found(res.vectors) >= GROUPS - 1


def test_huffman_ties_in_corpus_order_like_word2vec():
    # ids 3..6 all occur twice, first seen in the order 6, 4, 5, 3: word2vec's vocabulary
    # is in first-occurrence order, so the pairs of equal-count siblings follow the corpus
    # ({5, 3} and {6, 4}), not the ids ({5, 6} and {3, 4}); <pad>/<unk>/<eos> get no code.
    ids = np.array([6, 4, 2, 5, 3, 1, 2, 3, 4, 5, 6, 2], dtype=np.int32)
    tree = huffman_tree(make_corpus(ids, 7))
    assert tree.lengths.tolist() == [0, 0, 0, 2, 2, 2, 2]
    pairs = sorted(
        tuple(w for w in range(3, 7) if tree.path(w) == tree.path(v)) for v in range(3, 7)
    )
    assert pairs == [(3, 5), (3, 5), (4, 6), (4, 6)]


def zipf_corpus(vocab: int = 5000, words: int = 300_000, seed: int = 0) -> np.ndarray:
    """Zipf-distributed words in 300-word paragraphs: enough repeated frequent words for
    too high a learning rate to run away without ever reaching NaN."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab - 2)
    ids = 3 + rng.choice(vocab - 3, size=words, p=p / p.sum())
    ids[::300] = 2
    return ids.astype(np.int32)


def test_diverged_but_finite_run_stops_and_writes_no_checkpoint(tmp_path):
    # lr 0.3: before the check, 3 epochs ended with exit 0, loss 6e3 per update (the
    # untrained model's is 6 log 2 = 4.16) and vectors entries up to 229
    ids = zipf_corpus()
    with pytest.raises(TrainingDivergedError, match=r"skipgram: training diverged in epoch 1: "
                       r"loss .* more than 10x .*\(skipgram\.lr = 0\.3\); lower skipgram\.lr"):  # fmt: skip
        train_word2vec(ids, 5000, cfg(dim=100, epochs=3, lr=0.3, sample=1e-3, seed=1),
                       checkpoint_dir=tmp_path, keep_checkpoint=True, progress=False)  # fmt: skip
    assert not (tmp_path / "checkpoint.npz").exists()


def test_hierarchical_softmax_divergence_is_measured_against_its_own_start():
    with pytest.raises(TrainingDivergedError, match=r"skipgram\.lr = 1\)"):
        train_word2vec(IDS, VOCAB, cfg(epochs=2, lr=1.0, output="hs"), progress=False)


def test_untrained_loss_is_where_training_starts():
    from pipeline.word2vec.train import untrained_loss_per_update

    corpus = make_corpus(IDS, VOCAB, 10000)
    for out in ("ns", "hs", "softmax"):
        c = cfg(epochs=1, output=out, lr=1e-9)  # no learning: the first epoch's loss
        res = train_word2vec(IDS, VOCAB, c, progress=False)
        start = untrained_loss_per_update(corpus, c, VOCAB)
        assert res.epoch_stats[0]["loss_per_update"] == pytest.approx(start, rel=0.05), out
