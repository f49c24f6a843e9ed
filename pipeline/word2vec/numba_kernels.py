"""Numba CPU kernels of word2vec: skip-gram / CBOW x negative sampling / hierarchical /
full softmax, with word2vec's lock-free ("Hogwild") updates.

One call of :func:`train_job` trains a block of sentences (about ``batch_words`` words)
in place on the shared weight matrices. It releases the GIL (``nogil=True``), so the
driver (:mod:`pipeline.word2vec.train`) runs one Python thread per core, each pulling jobs from
a shared list and updating the same matrices without locks, as word2vec and gensim do.

Randomness is word2vec's 48-bit linear congruential generator, seeded per job from
(seed, epoch, job index): with one worker a run is bit-for-bit reproducible, and a resumed
run equals an uninterrupted one. Sigmoid and log-sigmoid come from 1,000-entry tables
over [-6, 6] like word2vec's ``expTable``; outside that range the gradient saturates and
the loss uses the asymptote of softplus.

Shapes: ``syn0`` (V, D) input vectors; ``syn1neg`` (V, D) output vectors for negative
sampling; ``syn1`` (V - 1, D) inner nodes for hierarchical softmax or (V, D) output
vectors for the full softmax. All float32, C-contiguous.

The loops over a sentence's words live in one compiled function
(:func:`_train_sentence`, called once per sentence) and call helpers with scalar
arguments only: numba counts a reference with an atomic add each time an array is passed
to a compiled function or sliced into a view, and done per (input, target) pair those
atomic adds cost about as much time as the arithmetic and serialise the threads' stores.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# fastmath without 'nnan'/'ninf': a diverging run must still produce NaN we can detect.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
EXP_TABLE_SIZE = 1000
MAX_EXP = 6.0
ARCH_SG, ARCH_CBOW = 0, 1
OUT_NS, OUT_HS, OUT_SOFTMAX = 0, 1, 2
_MASK48 = 0xFFFFFFFFFFFF
_LCG_A = 25214903917


def sigmoid_tables() -> tuple[np.ndarray, np.ndarray]:
    """(sigmoid, log-sigmoid) float32 tables over [-MAX_EXP, MAX_EXP) as in word2vec."""
    x = (np.arange(EXP_TABLE_SIZE, dtype=np.float64) / EXP_TABLE_SIZE * 2 - 1) * MAX_EXP
    sig = 1.0 / (1.0 + np.exp(-x))
    return sig.astype(np.float32), np.log(sig).astype(np.float32)


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """word2vec's subsampling keep probability per word (float64, capped at 1).

    ``p = (sqrt(f / (t * total)) + 1) * (t * total) / f`` with ``f`` the word's count,
    ``total`` the sum of counts; ``sample <= 0`` keeps every word.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    thr = sample * counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (np.sqrt(counts / thr) + 1.0) * thr / counts
    p[~np.isfinite(p)] = 1.0
    return np.minimum(p, 1.0)


def keep_thresholds(keep: np.ndarray) -> np.ndarray:
    """Keep probabilities as int64 thresholds on a 32-bit random number."""
    return np.round(np.asarray(keep, dtype=np.float64) * 2.0**32).astype(np.int64)


def build_alias(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table for sampling ids proportionally to ``weights``.

    Returns ``prob`` float32 (V,) and ``alias`` int32 (V,): draw a uniform id ``i`` and a
    uniform ``u``; the sample is ``i`` if ``u < prob[i]`` else ``alias[i]`` (O(1) per draw,
    against word2vec's 1e8-entry table or gensim's binary search).
    """
    w = np.asarray(weights, dtype=np.float64)
    n = w.shape[0]
    total = w.sum()
    if n == 0 or not total > 0:
        raise ValueError("build_alias: weights must have a positive sum")
    scaled = w * (n / total)
    prob = np.ones(n, dtype=np.float64)
    alias = np.arange(n, dtype=np.int64)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s = small.pop()
        g = large[-1]
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] -= 1.0 - scaled[s]
        if scaled[g] < 1.0:
            large.pop()
            small.append(g)
    # leftovers are 1 up to rounding
    return prob.astype(np.float32), alias.astype(np.int32)


# The tables are constants of the compiled kernels (numba freezes global arrays into the
# code), so no kernel takes them as an argument.
SIGMOID_TABLE, LOG_SIGMOID_TABLE = sigmoid_tables()


@njit(cache=True, nogil=True)
def _lcg(r):
    return (r * _LCG_A + 11) & _MASK48


@njit(cache=True, nogil=True)
def _alias_slot(r, n):
    """The two uniforms of one alias-table draw from ``n`` entries: (entry, u, new state);
    the sample is the entry if ``u < prob[entry]``, else ``alias[entry]``."""
    r = _lcg(r)
    idx = (((r >> 16) & 0xFFFFFFFF) * n) >> 32
    r = _lcg(r)
    u = np.float32(((r >> 24) & 0xFFFFFF) * (1.0 / 16777216.0))
    return idx, u, r


@njit(cache=True, nogil=True)
def sample_negatives(prob, alias, n, seed):
    """``n`` draws from the alias table with the kernels' own generator (for tests)."""
    out = np.empty(n, dtype=np.int64)
    r = np.int64(seed) & _MASK48
    for i in range(n):
        idx, u, r = _alias_slot(r, prob.shape[0])
        out[i] = idx if u < prob[idx] else alias[idx]
    return out


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _sig_loss(f, label):
    """(sigmoid(f), -log p(label | f)) from the tables; NaN propagates into the loss."""
    if f > -MAX_EXP and f < MAX_EXP:
        i = int((f + MAX_EXP) * (EXP_TABLE_SIZE / MAX_EXP / 2.0))
        s = SIGMOID_TABLE[i]
        if label == 1:
            loss = -LOG_SIGMOID_TABLE[i]
        else:
            loss = -LOG_SIGMOID_TABLE[EXP_TABLE_SIZE - 1 - i]
        return s, loss
    if f >= MAX_EXP:
        return np.float32(1.0), (0.0 if label == 1 else f)
    if f <= -MAX_EXP:
        return np.float32(0.0), (-f if label == 1 else 0.0)
    return np.float32(0.0), f + 0.0  # NaN


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _train_sentence(
    sent, n, syn0, syn1, syn1neg, h, neu1e, logits, prob, alias, codes, points, lengths,
    arch, out, negative, window, cbow_mean, left_only, centre_ns, samp, stage, orig,
    alpha, r, loss, updates,
):  # fmt: skip
    """Train the (subsampled) sentence ``sent[:n]`` at learning rate ``alpha``.

    ``h`` (1, D) holds the input vector of each update: a copy of the context word's row
    of ``syn0`` (skip-gram) or the mean / sum of the context rows (CBOW); ``neu1e`` (D,)
    the input's gradient; ``logits`` (V,) the full softmax's scores. With ``centre_ns``
    (skip-gram, negative sampling) each centre word draws its noise words once:
    ``samp`` (negative + 1,) holds the centre and its noise ids, ``stage`` and ``orig``
    (negative + 1, D) their output rows, updated in ``stage`` by every context word and
    added back to ``syn1neg`` once. Adds to ``loss`` and ``updates``; returns them with
    the new random state ``r``.
    """
    dim = syn0.shape[1]
    n_ids = prob.shape[0]
    for i in range(n):
        r = _lcg(r)
        b = ((r >> 16) & 0xFFFFFFFF) % window  # reduced window: window - b
        lo_j = i - window + b
        if lo_j < 0:
            lo_j = 0
        hi_j = i + window + 1 - b
        if left_only:
            hi_j = i  # words before the centre only
        if hi_j > n:
            hi_j = n
        target = sent[i]
        inputs = hi_j - lo_j  # skip-gram: one update per context word
        if centre_ns and arch == ARCH_SG and out == OUT_NS:
            if inputs - (1 if lo_j <= i and i < hi_j else 0) <= 0:
                continue  # no context word: nothing to draw noise for
            # The centre's noise words are drawn once and their output rows staged in
            # thread-local memory: the shared rows (the frequent words' above all) are
            # read and written once per centre word instead of once per context word,
            # so Hogwild workers fight over their cache lines far less often.
            m = 1
            samp[0] = target
            for _ in range(negative):
                w, u, r = _alias_slot(r, n_ids)
                if u >= prob[w]:
                    w = alias[w]
                if w == target:
                    continue
                samp[m] = w
                m += 1
            for s in range(m):
                w = samp[s]
                for d in range(dim):
                    stage[s, d] = syn1neg[w, d]
                    orig[s, d] = syn1neg[w, d]
            for k in range(inputs):
                if lo_j + k == i:
                    continue
                c = sent[lo_j + k]
                for d in range(dim):
                    h[0, d] = syn0[c, d]
                    neu1e[d] = 0.0
                lo = 0.0
                # the per-pair loop below, on the staged rows: written out again, since a
                # shared helper would take arrays (reference counts, see the docstring)
                for s in range(m):
                    label = 1 if s == 0 else 0
                    f = np.float32(0.0)
                    for d in range(dim):
                        f += h[0, d] * stage[s, d]
                    sg, ls = _sig_loss(f, label)
                    lo += ls
                    if f != f:
                        continue
                    g = np.float32((label - sg) * alpha)
                    for d in range(dim):
                        neu1e[d] += g * stage[s, d]
                        stage[s, d] += g * h[0, d]
                loss += lo
                updates += 1
                for d in range(dim):
                    syn0[c, d] += neu1e[d]
            for s in range(m):
                w = samp[s]
                for d in range(dim):
                    syn1neg[w, d] += stage[s, d] - orig[s, d]  # other workers' steps kept
            continue
        cw = 0
        if arch == ARCH_CBOW:
            for d in range(dim):
                h[0, d] = 0.0
            for j in range(lo_j, hi_j):
                if j == i:
                    continue
                c = sent[j]
                for d in range(dim):
                    h[0, d] += syn0[c, d]
                cw += 1
            if cw == 0:
                continue
            if cbow_mean:
                inv = np.float32(1.0 / cw)
                for d in range(dim):
                    h[0, d] *= inv
            inputs = 1
        for k in range(inputs):
            c = 0
            if arch == ARCH_SG:
                if lo_j + k == i:
                    continue
                c = sent[lo_j + k]
                for d in range(dim):
                    h[0, d] = syn0[c, d]
            for d in range(dim):
                neu1e[d] = 0.0
            lo = 0.0
            if out == OUT_NS:
                for s in range(negative + 1):
                    if s == 0:
                        w = target
                        label = 1
                    else:
                        w, u, r = _alias_slot(r, n_ids)
                        if u >= prob[w]:
                            w = alias[w]
                        if w == target:
                            continue
                        label = 0
                    f = np.float32(0.0)
                    for d in range(dim):
                        f += h[0, d] * syn1neg[w, d]
                    sg, ls = _sig_loss(f, label)
                    lo += ls
                    if f != f:
                        continue
                    g = np.float32((label - sg) * alpha)
                    for d in range(dim):
                        neu1e[d] += g * syn1neg[w, d]
                        syn1neg[w, d] += g * h[0, d]
            elif out == OUT_HS:
                for s in range(lengths[target]):
                    p = points[target, s]
                    label = 1 - np.int64(codes[target, s])  # word2vec: predict 1 - code
                    f = np.float32(0.0)
                    for d in range(dim):
                        f += h[0, d] * syn1[p, d]
                    sg, ls = _sig_loss(f, label)
                    lo += ls
                    if not (f > -MAX_EXP and f < MAX_EXP):
                        continue  # word2vec skips saturated nodes (and NaN)
                    g = np.float32((label - sg) * alpha)
                    for d in range(dim):
                        neu1e[d] += g * syn1[p, d]
                        syn1[p, d] += g * h[0, d]
            else:  # full softmax over all V output vectors: O(V * D) per update
                nv = syn1.shape[0]
                m = -np.inf
                for v in range(nv):
                    f = np.float32(0.0)
                    for d in range(dim):
                        f += h[0, d] * syn1[v, d]
                    logits[v] = f
                    if f > m:
                        m = f
                lt = logits[target]
                z = 0.0
                for v in range(nv):
                    e = np.exp(logits[v] - m)
                    logits[v] = e
                    z += e
                lo = -((lt - m) - np.log(z))  # -log p(target), stable when p underflows
                if lo == lo:
                    for v in range(nv):
                        g = np.float32(alpha * ((1.0 if v == target else 0.0) - logits[v] / z))
                        for d in range(dim):
                            neu1e[d] += g * syn1[v, d]
                            syn1[v, d] += g * h[0, d]
                else:
                    lo = lo + 0.0
            loss += lo
            updates += 1
            if arch == ARCH_SG:
                for d in range(dim):
                    syn0[c, d] += neu1e[d]
            else:
                if not cbow_mean:
                    inv = np.float32(1.0 / cw)
                    for d in range(dim):
                        neu1e[d] *= inv
                for j in range(lo_j, hi_j):
                    if j == i:
                        continue
                    c = sent[j]
                    for d in range(dim):
                        syn0[c, d] += neu1e[d]
    return loss, updates, r


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def train_job(
    syn0, syn1, syn1neg, words, bounds, s_begin, s_end, keep, prob, alias,
    codes, points, lengths, arch, out, negative, window, cbow_mean,
    lr, min_lr, done_before, total_words, seed, left_only=False, centre_negatives=False,
):  # fmt: skip
    """Train sentences ``s_begin..s_end`` (indices into ``bounds``) in place.

    ``words`` int32: all training words; sentence ``s`` is ``words[bounds[s]:bounds[s+1]]``.
    ``keep`` int64 (V,): subsampling thresholds on a 32-bit random number.
    The learning rate decays linearly from ``lr`` to ``min_lr`` over ``total_words`` raw
    words (all epochs); ``done_before`` is the number of raw words before this job.
    ``left_only``: contexts are the (reduced) window's words before the centre only, as
    the inputs of a left-to-right language model; never a word to its right.
    ``centre_negatives`` (skip-gram with negative sampling): one draw of ``negative`` noise
    words per centre word, shared by all its context words (pWord2Vec's scheme), whose
    output rows are updated in a thread-local copy and written back once per centre word.
    Returns ``(loss, effective_words, updates)``: the summed word2vec objective, the words
    kept after subsampling and the number of (input, target) updates.
    """
    dim = syn0.shape[1]
    maxlen = 0
    for s in range(s_begin, s_end):
        n = bounds[s + 1] - bounds[s]
        if n > maxlen:
            maxlen = n
    sent = np.empty(maxlen, dtype=np.int32)
    h = np.empty((1, dim), dtype=np.float32)
    neu1e = np.empty(dim, dtype=np.float32)
    logits = np.empty(syn1.shape[0] if out == OUT_SOFTMAX else 1, dtype=np.float32)
    samp = np.empty(negative + 1, dtype=np.int64)
    stage = np.empty((negative + 1, dim), dtype=np.float32)
    orig = np.empty((negative + 1, dim), dtype=np.float32)
    r = np.int64(seed) & _MASK48
    loss = 0.0
    effective = 0
    updates = 0
    raw = done_before
    for s in range(s_begin, s_end):
        a0 = bounds[s]
        a1 = bounds[s + 1]
        progress = raw / total_words
        alpha = np.float32(lr - (lr - min_lr) * progress)
        if alpha < min_lr:
            alpha = np.float32(min_lr)
        raw += a1 - a0
        # subsampling (word2vec: keep if threshold >= random)
        n = 0
        for a in range(a0, a1):
            w = words[a]
            if keep[w] < (1 << 32):
                r = _lcg(r)
                if keep[w] < ((r >> 16) & 0xFFFFFFFF):
                    continue
            sent[n] = w
            n += 1
        effective += n
        loss, updates, r = _train_sentence(
            sent, n, syn0, syn1, syn1neg, h, neu1e, logits, prob, alias, codes, points,
            lengths, arch, out, negative, window, cbow_mean, left_only, centre_negatives,
            samp, stage, orig, alpha, r, loss, updates,
        )  # fmt: skip
    return loss, effective, updates
