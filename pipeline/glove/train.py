"""GloVe (Pennington et al. 2014): weighted least squares on log co-occurrences.

Minimises ``sum_ij f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2`` with
``f(x) = min(1, (x / x_max)^alpha)`` over the non-zeros of ``X``, using AdaGrad exactly as
Stanford GloVe's C tool does it:

- initialisation: every weight and bias ``(U(0,1) - 0.5) / dim``, squared-gradient sums 1;
- per non-zero: ``fdiff = lr * f(x) * diff``; each vector gradient component is clipped to
  ``[-grad_clip, grad_clip]`` (100 by default); the step is ``g / sqrt(G)`` with ``G`` the
  sum of squares *before* this step, then ``G += g^2``;
- the loss of an epoch is ``sum 0.5 f(x) diff^2 / nnz``, accumulated in float64 while
  training (the C tool's "cost").

The order over the non-zeros is shuffled every epoch with a generator seeded by
``(seed, epoch)``, so an epoch can be replayed (and resumed) on its own.

Two back ends:

- CPU (numba): one SGD step per non-zero, as the C tool. With ``threads=T > 1`` the
  non-zeros are split into ``T x T`` blocks by ``(row % T, col % T)`` and each epoch runs
  ``T`` strata of ``T`` blocks that share no parameter row (stratified SGD, Gemulla et
  al. 2011) instead of the C tool's lock-free Hogwild: just as fast, and still
  bit-identical run to run for a given seed and thread count (a different ``threads``
  gives a different, equally good, order).
- GPU (torch, chosen when ``device`` resolves to cuda): shuffled minibatches of
  ``batch_size`` non-zeros; every row's updates within a batch are computed from the
  same parameters and summed with ``index_add_`` (a synchronous version of Hogwild).

Checkpoints (``checkpoint_dir``/``glove.npz``, written atomically after each epoch, no
pickle) hold the parameters, the AdaGrad sums, the losses so far and a fingerprint of
the settings and the input; a run whose fingerprint matches resumes after the last
completed epoch and ends with the same vectors as an uninterrupted run.

Output vectors: ``W + W~`` (``output="sum"``, the C tool's ``-model 2``), ``W`` only, or
their concatenation. Rows of words that have no co-occurrence (the specials ``<pad>``,
``<unk>``, ``<eos>`` and any word never seen inside a window) are set to zero, so they
never come out as neighbours.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numba
import numpy as np

from pipeline.core import checkpoint
from pipeline.core.devices import resolve_device
from pipeline.core.divergence import check_loss, check_weights
from pipeline.core.errors import DataError

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "glove.npz"
PARAM_NAMES = ("W", "C", "bw", "bc", "gW", "gC", "gbw", "gbc")
_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}  # no nnan/ninf: NaN checks must work


@dataclass(frozen=True)
class GloveConfig:
    """Settings of the GloVe trainer (``glove`` section of ``params.yaml``)."""

    dim: int = field(default=100, metadata={"min": 1})
    epochs: int = field(default=25, metadata={"min": 1})
    x_max: float = field(default=100.0, metadata={"gt": 0.0})
    alpha: float = field(default=0.75, metadata={"min": 0.0, "max": 1.0})
    lr: float = field(default=0.05, metadata={"gt": 0.0})
    seed: int = 1
    batch_size: int = field(default=65536, metadata={"min": 1})  # GPU minibatch
    output: Literal["sum", "w", "concat"] = "sum"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = field(default=1, metadata={"min": 1, "max": 256})
    grad_clip: float = field(default=100.0, metadata={"gt": 0.0})
    precision: Literal["float32", "float64"] = "float32"
    checkpoint_dir: str | None = "data/interim/glove"


@dataclass
class GloveResult:
    """What :func:`train_glove` returns."""

    vectors: np.ndarray  # (V, D) or (V, 2D) float32, rows of unseen words zero
    losses: list[float]  # one per epoch
    seconds_per_epoch: list[float]  # epochs trained in this call only
    device: str
    resumed_from: int  # epochs taken from a checkpoint (0: fresh start)
    params: dict[str, np.ndarray] = field(default_factory=dict)  # W, C, bw, bc


def weighting(x: np.ndarray, x_max: float, alpha: float) -> np.ndarray:
    """``f(x) = min(1, (x / x_max) ** alpha)``, elementwise (float64)."""
    x = np.asarray(x, dtype=np.float64)
    return np.minimum(1.0, (x / x_max) ** alpha)


# --------------------------------------------------------------------------- CPU kernels
@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _sgd_range(rows, cols, logx, fx, order, start, stop, W, C, bw, bc, gW, gC, gbw, gbc,
               eta, clip):  # fmt: skip
    """AdaGrad steps over ``order[start:stop]``; returns the float64 loss sum (stops
    early, returning a non-finite value, as soon as the loss is not finite)."""
    dim = W.shape[1]
    cost = 0.0
    for k in range(start, stop):
        e = order[k]
        i = rows[e]
        j = cols[e]
        diff = eta - eta  # zero of the parameter dtype
        for d in range(dim):
            diff += W[i, d] * C[j, d]
        diff += bw[i] + bc[j] - logx[e]
        fdiff = fx[e] * diff
        cost += 0.5 * np.float64(fdiff) * np.float64(diff)
        if not math.isfinite(cost):
            return cost
        fdiff *= eta
        for d in range(dim):
            t1 = fdiff * C[j, d]
            t2 = fdiff * W[i, d]
            t1 = min(max(t1, -clip), clip)
            t2 = min(max(t2, -clip), clip)
            W[i, d] -= t1 / math.sqrt(gW[i, d])
            C[j, d] -= t2 / math.sqrt(gC[j, d])
            gW[i, d] += t1 * t1
            gC[j, d] += t2 * t2
        bw[i] -= fdiff / math.sqrt(gbw[i])
        bc[j] -= fdiff / math.sqrt(gbc[j])
        fdiff *= fdiff
        gbw[i] += fdiff
        gbc[j] += fdiff
    return cost


@numba.njit(cache=True, parallel=True, nogil=True)
def _sgd_strata(rows, cols, logx, fx, order, offsets, n_threads, W, C, bw, bc, gW, gC, gbw,
                gbc, eta, clip):  # fmt: skip
    """One epoch over the blocks of ``order`` (see :func:`block_order`), ``n_threads``
    blocks at a time. In stratum ``s`` thread ``t`` trains block ``(t, (t + s) % T)``:
    concurrent blocks share no row of ``W`` and no row of ``C``, so the result does not
    depend on thread timing (bit-identical run to run)."""
    costs = np.zeros(n_threads * n_threads)
    for s in range(n_threads):
        for t in numba.prange(n_threads):
            b = t * n_threads + (t + s) % n_threads
            costs[b] = _sgd_range(rows, cols, logx, fx, order, offsets[b], offsets[b + 1],
                                  W, C, bw, bc, gW, gC, gbw, gbc, eta, clip)  # fmt: skip
    total = 0.0
    for b in range(n_threads * n_threads):
        total += costs[b]
    return total


# --------------------------------------------------------------------------- helpers
def fingerprint(cfg: GloveConfig, device: str, rows, cols, values, vocab_size: int) -> str:
    """sha256 of the settings that change the result and of the input matrix."""
    keys = ("dim", "x_max", "alpha", "lr", "seed", "grad_clip", "precision", "threads")
    settings = {k: asdict(cfg)[k] for k in keys}
    settings["backend"] = "torch" if device != "cpu" else "numba"
    if device != "cpu":
        settings["batch_size"] = cfg.batch_size
    settings["vocab_size"] = vocab_size
    return checkpoint.fingerprint(settings, arrays=(rows, cols, values))


def untrained_loss(logx: np.ndarray, fx: np.ndarray) -> float:
    """The loss per non-zero of the all-zero model, ``sum 0.5 f(x) log(x)^2 / nnz``: where
    training starts (the initial weights are within 0.5 / dim of zero) and what a
    diverging run ends far above."""
    total = 0.0
    for s in range(0, logx.size, 1 << 22):  # float64 in bounded pieces
        lx = logx[s : s + (1 << 22)].astype(np.float64)
        total += float(np.dot(fx[s : s + (1 << 22)].astype(np.float64) * lx, lx))
    return 0.5 * total / max(logx.size, 1)


def epoch_order(seed: int, epoch: int, nnz: int) -> np.ndarray:
    """The shuffled order of epoch ``epoch`` (0-based): a function of (seed, epoch) only."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, epoch]))
    order = rng.permutation(nnz)
    return order.astype(np.int32) if nnz < 2**31 else order


def block_order(rows, cols, n_blocks: int, seed: int, epoch: int):
    """Epoch order grouped by block ``(row % T, col % T)``, shuffled within each block.

    Returns ``(order, offsets)``: block ``b = (row % T) * T + col % T`` is
    ``order[offsets[b]:offsets[b + 1]]``. With ``T = 1`` this is :func:`epoch_order`.
    """
    order = epoch_order(seed, epoch, rows.size)
    if n_blocks == 1:
        return order, np.array([0, rows.size], np.int64)
    block = (rows[order] % n_blocks) * n_blocks + cols[order] % n_blocks
    grouped = np.argsort(block, kind="stable")  # keeps the shuffled order inside a block
    offsets = np.zeros(n_blocks * n_blocks + 1, np.int64)
    offsets[1:] = np.cumsum(np.bincount(block, minlength=n_blocks * n_blocks))
    return order[grouped], offsets


def init_params(vocab_size: int, dim: int, seed: int, dtype) -> dict[str, np.ndarray]:
    """The C tool's initialisation: U(-0.5, 0.5) / dim everywhere, AdaGrad sums 1."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31 - 1]))

    def uniform(*shape):
        return ((rng.random(shape) - 0.5) / dim).astype(dtype)

    return {
        "W": uniform(vocab_size, dim),
        "C": uniform(vocab_size, dim),
        "bw": uniform(vocab_size),
        "bc": uniform(vocab_size),
        "gW": np.ones((vocab_size, dim), dtype),
        "gC": np.ones((vocab_size, dim), dtype),
        "gbw": np.ones(vocab_size, dtype),
        "gbc": np.ones(vocab_size, dtype),
    }


def _check_input(rows, cols, values, vocab_size):
    if not (rows.shape == cols.shape == values.shape) or rows.ndim != 1:
        raise DataError("co-occurrences: rows, cols and values must be 1-D of equal length")
    if rows.size == 0:
        raise DataError("co-occurrences: the matrix is empty (no word pairs in the corpus)")
    if not np.all(values > 0) or not np.all(np.isfinite(values)):
        raise DataError("co-occurrences: values must be positive and finite")
    if min(rows.min(), cols.min()) < 0 or max(rows.max(), cols.max()) >= vocab_size:
        raise DataError(f"co-occurrences: indices outside [0, {vocab_size})")


# --------------------------------------------------------------------------- training
def train_glove(
    rows: np.ndarray,
    cols: np.ndarray,
    values: np.ndarray,
    vocab_size: int,
    cfg: GloveConfig,
    on_epoch_end: Callable[[int, float], None] | None = None,
    progress: bool = True,
) -> GloveResult:
    """Train GloVe on the co-occurrence matrix given as ``(rows, cols, values)``.

    ``on_epoch_end(epoch, loss)`` (1-based epoch) is called after each epoch, once its
    checkpoint is written (also for epochs replayed from a checkpoint, so a logger sees
    every epoch).

    Raises :class:`~pipeline.core.errors.TrainingDivergedError` naming ``glove.lr``, before
    the epoch's checkpoint is written, when an epoch's loss is not finite or more than
    :data:`~pipeline.core.divergence.LOSS_FACTOR` times the loss before training (the
    all-zero model's, :func:`untrained_loss`), or a weight or bias is beyond
    :data:`~pipeline.core.divergence.MAX_ABS_WEIGHT` (see :mod:`pipeline.core.divergence`).
    """
    from tqdm import tqdm

    _check_input(rows, cols, values, vocab_size)
    device = resolve_device(cfg.device, "glove.device")
    dtype = np.dtype(cfg.precision)
    rows = np.ascontiguousarray(rows, dtype=np.int32)
    cols = np.ascontiguousarray(cols, dtype=np.int32)
    values = np.ascontiguousarray(values, dtype=np.float32)
    nnz = rows.size
    fp = fingerprint(cfg, device, rows, cols, values, vocab_size)
    ckpt = Path(cfg.checkpoint_dir) / CHECKPOINT_FILE if cfg.checkpoint_dir else None

    start, losses, params = 0, [], None
    if ckpt is not None:
        loaded = checkpoint.load_npz(ckpt, fp, PARAM_NAMES, max_epoch=cfg.epochs)
        if loaded is not None:
            start, losses, params = loaded.epoch, loaded.state["losses"], loaded.arrays
            log.info("resuming from %s after epoch %d", ckpt, start)
    if params is None:
        params = init_params(vocab_size, cfg.dim, cfg.seed, dtype)
    if on_epoch_end is not None:
        for e, loss in enumerate(losses, start=1):
            on_epoch_end(e, loss)

    # (nnz,) per-entry constants, computed once
    logx = np.log(values.astype(np.float64)).astype(dtype)
    fx = weighting(values, cfg.x_max, cfg.alpha).astype(dtype)
    reference = untrained_loss(logx, fx)

    backend = _BACKENDS["cpu" if device == "cpu" else "torch"]
    step = backend(rows, cols, logx, fx, params, cfg, device)

    seconds: list[float] = []
    bar = tqdm(range(start, cfg.epochs), desc="glove", unit="epoch", disable=not progress,
               initial=start, total=cfg.epochs)  # fmt: skip
    for epoch in bar:
        t0 = time.perf_counter()
        total = step(epoch)
        loss = float(total) / nnz
        when = f"in epoch {epoch + 1}"
        check_loss(loss, reference, where="glove", lr_key="glove.lr", lr=cfg.lr, when=when)
        # the parameters where they live (numpy or torch tensors): no copy
        check_weights(((k, step.p[k]) for k in ("W", "C", "bw", "bc")),
                      where="glove", lr_key="glove.lr", lr=cfg.lr, when=when)  # fmt: skip
        seconds.append(time.perf_counter() - t0)
        losses.append(loss)
        if ckpt is not None:
            checkpoint.save_npz(ckpt, fp, epoch + 1, step.state(), {"losses": losses})
        bar.set_postfix(loss=f"{loss:.5f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, loss)
    bar.close()

    final = step.state()
    W, C = final["W"].astype(np.float32), final["C"].astype(np.float32)
    if cfg.output == "sum":
        vectors = W + C
    elif cfg.output == "w":
        vectors = W.copy()
    else:
        vectors = np.concatenate([W, C], axis=1)
    # words with no co-occurrence (specials, words never inside a window) were never
    # trained: zero rows, so they never come out as neighbours
    seen = np.zeros(vocab_size, bool)
    seen[rows] = True
    vectors[~seen] = 0.0
    return GloveResult(
        vectors=vectors,
        losses=losses,
        seconds_per_epoch=seconds,
        device=device,
        resumed_from=start,
        params={k: final[k] for k in ("W", "C", "bw", "bc")},
    )


class _CpuEpoch:
    """One epoch of per-non-zero AdaGrad with the numba kernels (parameters in place)."""

    def __init__(self, rows, cols, logx, fx, params, cfg, device="cpu"):
        dtype = params["W"].dtype
        self.args = (rows, cols, logx, fx)
        self.p = params
        self.cfg = cfg
        self.eta = dtype.type(cfg.lr)
        self.clip = dtype.type(cfg.grad_clip)

    def __call__(self, epoch: int) -> float:
        p, cfg = self.p, self.cfg
        tail = (p["W"], p["C"], p["bw"], p["bc"], p["gW"], p["gC"], p["gbw"], p["gbc"],
                self.eta, self.clip)  # fmt: skip
        rows, cols = self.args[0], self.args[1]
        if cfg.threads == 1:
            order = epoch_order(cfg.seed, epoch, rows.size)
            return _sgd_range(*self.args, order, 0, order.size, *tail)
        order, offsets = block_order(rows, cols, cfg.threads, cfg.seed, epoch)
        numba.set_num_threads(min(cfg.threads, numba.config.NUMBA_NUM_THREADS))
        return _sgd_strata(*self.args, order, offsets, cfg.threads, *tail)

    def state(self) -> dict[str, np.ndarray]:
        return self.p


class _TorchEpoch:
    """Minibatch AdaGrad on a torch device (the GPU back end; also runs on CPU)."""

    def __init__(self, rows, cols, logx, fx, params, cfg, device):
        import torch

        self.torch = torch
        self.cfg = cfg
        self.device = torch.device(device)
        to = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
        self.rows, self.cols = to(rows.astype(np.int64)), to(cols.astype(np.int64))
        self.logx, self.fx = to(logx), to(fx)
        self.p = {k: to(v) for k, v in params.items()}

    def __call__(self, epoch: int) -> float:
        torch, cfg, p = self.torch, self.cfg, self.p
        order = torch.from_numpy(epoch_order(cfg.seed, epoch, self.rows.numel()).astype(np.int64))
        order = order.to(self.device)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        eta, clip = cfg.lr, cfg.grad_clip
        for s in range(0, order.numel(), cfg.batch_size):
            idx = order[s : s + cfg.batch_size]
            i, j = self.rows[idx], self.cols[idx]
            wi, cj = p["W"][i], p["C"][j]  # (B, D)
            diff = (wi * cj).sum(1) + p["bw"][i] + p["bc"][j] - self.logx[idx]  # (B,)
            fdiff = self.fx[idx] * diff
            total += (0.5 * fdiff.double() * diff.double()).sum()
            fdiff = eta * fdiff
            g1 = (fdiff[:, None] * cj).clamp_(-clip, clip)  # (B, D) gradient for W[i]
            g2 = (fdiff[:, None] * wi).clamp_(-clip, clip)  # (B, D) gradient for C[j]
            p["W"].index_add_(0, i, -g1 / p["gW"][i].sqrt())
            p["C"].index_add_(0, j, -g2 / p["gC"][j].sqrt())
            p["gW"].index_add_(0, i, g1 * g1)
            p["gC"].index_add_(0, j, g2 * g2)
            p["bw"].index_add_(0, i, -fdiff / p["gbw"][i].sqrt())
            p["bc"].index_add_(0, j, -fdiff / p["gbc"][j].sqrt())
            p["gbw"].index_add_(0, i, fdiff * fdiff)
            p["gbc"].index_add_(0, j, fdiff * fdiff)
        return float(total.item())

    def state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.p.items()}


# "cpu": numba per non-zero; "torch": minibatches on the resolved torch device (tests
# swap "cpu" for the torch back end to run it on a CPU)
_BACKENDS = {"cpu": _CpuEpoch, "torch": _TorchEpoch}


def threads_available() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1
