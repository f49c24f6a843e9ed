"""numba kernels: sigmoid tables, subsampling, the negative-sampling distribution, a job."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.word2vec import numba_kernels as K


def test_sigmoid_tables_match_word2vec():
    sig, logsig = K.sigmoid_tables()
    assert sig.shape == (K.EXP_TABLE_SIZE,)
    # entry i holds sigmoid((i / SIZE * 2 - 1) * MAX_EXP)
    assert sig[0] == pytest.approx(1 / (1 + math.exp(6.0)), rel=1e-5)
    assert sig[500] == pytest.approx(0.5)
    assert np.all(np.diff(sig) > 0)
    assert np.allclose(np.exp(logsig), sig, rtol=1e-5)


def test_keep_probability_formula():
    counts = np.array([1_000_000, 10_000, 10], dtype=np.int64)
    t = 1e-3
    thr = t * counts.sum()
    keep = K.keep_probabilities(counts, t)
    expected = (math.sqrt(1_000_000 / thr) + 1) * thr / 1_000_000
    assert keep[0] == pytest.approx(expected)
    assert 0 < keep[0] < 0.05  # the very frequent word is mostly dropped
    assert keep[2] == 1.0  # rare words are always kept (capped at 1)
    assert np.all(K.keep_probabilities(counts, 0.0) == 1.0)
    assert np.all(K.keep_probabilities(np.array([0, 5]), t) <= 1.0)


def _job_inputs(words, vocab, dim=8, out=K.OUT_NS, sample=0.0, seed=0):
    rng = np.random.default_rng(seed)
    counts = np.bincount(words, minlength=vocab)
    keep = K.keep_thresholds(K.keep_probabilities(counts, sample))
    prob, alias = K.build_alias(np.maximum(counts, 0) ** 0.75)
    syn0 = ((rng.random((vocab, dim), dtype=np.float32) - 0.5) / dim).astype(np.float32)
    syn1neg = np.zeros((vocab, dim), np.float32)
    syn1 = np.zeros((vocab if out == K.OUT_SOFTMAX else vocab - 1, dim), np.float32)
    codes, points, lengths = (
        np.zeros((1, 1), np.uint8),
        np.zeros((1, 1), np.int32),
        np.zeros(1, np.int32),
    )
    return syn0, syn1, syn1neg, keep, prob, alias, codes, points, lengths, counts


def _run(words, bounds, inputs, out=K.OUT_NS, seed=7, lr=0.025):
    syn0, syn1, syn1neg, keep, prob, alias, codes, points, lengths, _ = inputs
    return K.train_job(
        syn0, syn1, syn1neg, words, bounds, 0, bounds.shape[0] - 1, keep, prob, alias,
        codes, points, lengths, K.ARCH_SG, out, 5, 3, True, lr, lr * 1e-4, 0,
        words.shape[0], seed,
    )  # fmt: skip


def test_subsampling_keeps_the_expected_number_of_words():
    rng = np.random.default_rng(1)
    vocab = 50
    p = 1.0 / np.arange(1, vocab + 1)
    words = rng.choice(vocab, size=50_000, p=p / p.sum()).astype(np.int32)
    bounds = np.arange(0, words.shape[0] + 1, 50, dtype=np.int64)
    inputs = _job_inputs(words, vocab, sample=1e-3)
    counts = inputs[-1]
    keep = K.keep_probabilities(counts, 1e-3)
    expected = float((counts * keep).sum())
    sd = math.sqrt(float((counts * keep * (1 - keep)).sum()))
    _, effective, _ = _run(words, bounds, inputs)
    assert abs(effective - expected) < 5 * sd
    assert effective < 0.8 * words.shape[0]  # subsampling actually dropped words


def test_alias_table_is_exact():
    w = np.array([5.0, 1.0, 0.0, 3.0, 0.5, 10.0])
    prob, alias = K.build_alias(w)
    n = len(w)
    implied = prob.astype(np.float64) / n
    for j in range(n):
        implied[alias[j]] += (1.0 - prob[j]) / n
    assert np.allclose(implied, w / w.sum(), atol=1e-6)


def test_negative_samples_follow_unigram_to_the_075():
    counts = np.array([1000, 400, 200, 100, 50, 20, 10, 5, 1, 0], dtype=np.float64)
    weights = counts**0.75
    prob, alias = K.build_alias(weights)
    n = 400_000
    draws = K.sample_negatives(prob, alias, n, 12345)
    freq = np.bincount(draws, minlength=len(counts)) / n
    target = weights / weights.sum()
    sd = np.sqrt(target * (1 - target) / n)
    assert np.all(np.abs(freq - target) <= 5 * sd + 1e-12)
    assert freq[-1] == 0.0  # zero count: never drawn
    # and it is distinguishable from the raw unigram distribution
    raw = counts / counts.sum()
    assert abs(freq[0] - raw[0]) > 20 * sd[0]


def test_job_is_deterministic_for_a_seed_and_nan_shows_in_the_loss():
    rng = np.random.default_rng(2)
    words = rng.integers(0, 30, 3000).astype(np.int32)
    bounds = np.arange(0, 3001, 30, dtype=np.int64)
    a, b, c = (_job_inputs(words, 30) for _ in range(3))
    ra = _run(words, bounds, a, seed=5)
    rb = _run(words, bounds, b, seed=5)
    _run(words, bounds, c, seed=6)
    assert ra == rb and np.array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    assert ra[2] > 0 and np.isfinite(ra[0])
    d = _job_inputs(words, 30)
    d[0][3, 0] = np.nan
    loss, _, _ = _run(words, bounds, d)
    assert math.isnan(loss)


@pytest.mark.parametrize("arch", [K.ARCH_SG, K.ARCH_CBOW])
def test_left_contexts_never_use_a_right_neighbour(arch):
    # Word 9 only ever ends a sentence: with left contexts it is nobody's context, so its
    # input vector never moves; with symmetric ones it is its left neighbour's context.
    vocab = 10
    rng = np.random.default_rng(0)
    sents = [list(rng.integers(3, 9, size=int(rng.integers(2, 7)))) + [9] for _ in range(300)]
    words = np.array([w for s in sents for w in s], np.int32)
    bounds = np.cumsum([0] + [len(s) for s in sents]).astype(np.int64)
    moved = {}
    for left in (True, False):
        inputs = _job_inputs(words, vocab)
        syn0, syn1, syn1neg, keep, prob, alias, codes, points, lengths, _ = inputs
        before = syn0.copy()
        K.train_job(
            syn0, syn1, syn1neg, words, bounds, 0, bounds.shape[0] - 1, keep, prob, alias,
            codes, points, lengths, arch, K.OUT_NS, 5, 3, True, 0.025, 2.5e-6,
            0, words.shape[0], 7, left,
        )  # fmt: skip
        moved[left] = np.abs(syn0 - before).max(axis=1)
    assert moved[True][9] == 0.0
    assert moved[False][9] > 0.0
    assert (moved[True][3:9] > 0).all()  # the other words are still trained


def test_left_context_is_refused_by_the_torch_backend():
    from pipeline.core.errors import ConfigError
    from pipeline.word2vec.config import SkipGramConfig
    from pipeline.word2vec.train import train_word2vec

    ids = np.tile(np.arange(3, 20, dtype=np.int32), 20)
    cfg = SkipGramConfig(dim=4, epochs=1, device="cpu", backend="torch", context="left")
    with pytest.raises(ConfigError, match="skipgram.context"):
        train_word2vec(ids, 20, cfg, progress=False)


def test_max_vocab_drops_rarer_ids_and_keeps_their_rows_out():
    from pipeline.word2vec.config import SkipGramConfig
    from pipeline.word2vec.train import cap_vocabulary, to_embeddings, train_word2vec

    ids = np.array([3, 4, 5, 6, 7, 2, 3, 7, 4, 2] * 30, np.int32)
    assert cap_vocabulary(ids, 6).max() == 5 and (cap_vocabulary(ids, 6) == 1).sum() == 90
    cfg = SkipGramConfig(dim=4, epochs=1, device="cpu", workers=1, max_vocab=6)
    result = train_word2vec(ids, 8, cfg, progress=False)
    assert result.vectors.shape == (6, 4)

    class Vocab:
        tokens = ["<pad>", "<unk>", "<eos>", "a", "b", "c", "d", "e"]
        counts = np.arange(8)

        def __len__(self):
            return 8

    emb = to_embeddings(result, Vocab())
    assert list(emb.words) == Vocab.tokens[:6] and len(emb) == 6


def test_the_sentence_loop_counts_no_references_per_update():
    # numba counts a reference (an atomic add) for every array view or array passed to a
    # compiled call; the per-word loops must do neither, so the only increments left are
    # those of the array arguments on entry (compiled afresh: cached code has no IR).
    import re

    from numba import njit

    fresh = njit(nogil=True, fastmath=K.FASTMATH)(K._train_sentence.py_func)
    v, d = 10, 4
    f32 = np.float32
    arrays = (
        np.arange(3, 9, dtype=np.int32), np.zeros((v, d), f32), np.zeros((v, d), f32),
        np.zeros((v, d), f32), np.zeros((1, d), f32), np.zeros(d, f32), np.zeros(1, f32),
        np.ones(v, f32), np.arange(v, dtype=np.int32), np.zeros((1, 1), np.uint8),
        np.zeros((1, 1), np.int32), np.zeros(1, np.int32), np.zeros(3, np.int64),
        np.zeros((3, d), f32), np.zeros((3, d), f32),
    )  # fmt: skip
    (sent, syn0, syn1, syn1neg, h, neu1e, logits, prob, alias, codes, points, lengths,
     samp, stage, orig) = arrays  # fmt: skip
    syn0[:] = 0.1
    for centre_ns in (False, True):  # both loops are in the one function checked below
        loss, updates, _ = fresh(
            sent, 6, syn0, syn1, syn1neg, h, neu1e, logits, prob, alias, codes, points,
            lengths, K.ARCH_SG, K.OUT_NS, 2, 2, True, False, centre_ns, samp, stage, orig,
            f32(0.025), 1, 0.0, 0,
        )  # fmt: skip
        assert updates > 0 and loss > 0
    ir = fresh.inspect_llvm(fresh.signatures[0])
    assert len(re.findall(r"call void @NRT_incref", ir)) <= len(arrays)


def test_centre_negatives_train_every_pair_reproducibly():
    # Every (context, centre) pair is still one update, the output rows staged per centre
    # word reach the shared matrix, and a run is reproducible for its seed.
    rng = np.random.default_rng(4)
    words = rng.integers(3, 40, 4000).astype(np.int32)
    bounds = np.arange(0, 4001, 40, dtype=np.int64)
    runs = []
    for _ in range(2):
        inputs = _job_inputs(words, 40)
        syn0, syn1, syn1neg, keep, prob, alias, codes, points, lengths, _ = inputs
        res = K.train_job(
            syn0, syn1, syn1neg, words, bounds, 0, bounds.shape[0] - 1, keep, prob, alias,
            codes, points, lengths, K.ARCH_SG, K.OUT_NS, 5, 3, True, 0.025, 2.5e-6,
            0, words.shape[0], 7, False, True,
        )  # fmt: skip
        runs.append((res, syn0, syn1neg))
    (loss, effective, updates), syn0, syn1neg = runs[0]
    assert runs[1][0] == runs[0][0] and np.array_equal(runs[1][1], syn0)
    assert effective == words.shape[0] and np.isfinite(loss)
    # reduced windows 1..3 on both sides: between 2 and 6 context words per centre
    assert 2 * effective * 0.8 < updates < 6 * effective
    assert np.abs(syn1neg[3:]).max() > 0  # the output rows were written back
