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

Two back ends:

- CPU (numba): one SGD step per non-zero, as the C tool. The non-zeros are split into
  ``T x T`` blocks by ``(row % T, col % T)`` (``T = threads``) and each epoch runs ``T``
  strata of ``T`` blocks that share no parameter row (stratified SGD, Gemulla et al.
  2011) instead of the C tool's lock-free Hogwild: just as fast, and bit-identical run to
  run for a given seed and thread count (a different ``threads`` gives a different,
  equally good, order). The non-zeros are streamed from disk (:mod:`pipeline.glove.pages`):
  each block is cut once into random pages of about 65,536 entries, and every epoch
  visits the pages of a block in a new random order and the entries of a page in a new
  random order, both drawn from ``(seed, epoch, block)``. Memory: the parameters and one
  page per thread, whatever the number of non-zeros (Stanford's tool likewise reads a
  once-shuffled file in pieces, in the same order every epoch).
- GPU (torch, chosen when ``device`` resolves to cuda): the whole matrix on the device,
  minibatches of ``batch_size`` non-zeros of an order shuffled every epoch with a
  generator seeded by ``(seed, epoch)``; every row's updates within a batch are computed
  from the same parameters and summed with ``index_add_`` (a synchronous version of
  Hogwild).

Either way an epoch's order is a function of the seed and the epoch only, so an epoch
can be replayed (and resumed) on its own.

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
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numba
import numpy as np

from pipeline.core import checkpoint
from pipeline.core.devices import resolve_device
from pipeline.core.divergence import check_loss, check_weights
from pipeline.core.errors import DataError
from pipeline.glove.pages import PAGE_ENTRIES, READ_CHUNK, PageReader, Pages, build_pages
from pipeline.glove.triples import ArrayTriples, NpzTriples, TriplesDigest

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


def load_kernel(precision: str = "float32") -> None:
    """Load the CPU kernel for ``precision`` from numba's cache (compiling it the first
    time) now, on empty arrays: part of a process's footprint, the same for any corpus."""
    dtype = np.dtype(precision)
    ids, x, w = np.zeros(0, np.int32), np.zeros(0, dtype), np.zeros((0, 1), dtype)
    _sgd_range(ids, ids, x, x, ids, 0, 0, w, w, x, x, w, w, x, x, dtype.type(0), dtype.type(1))


# --------------------------------------------------------------------------- helpers
def fingerprint(cfg: GloveConfig, device: str, digest: str, vocab_size: int,
                page_entries: int = PAGE_ENTRIES) -> str:  # fmt: skip
    """sha256 of the settings that change the result and of the input matrix (its
    :class:`~pipeline.glove.triples.TriplesDigest`)."""
    keys = ("dim", "x_max", "alpha", "lr", "seed", "grad_clip", "precision", "threads")
    settings = {k: asdict(cfg)[k] for k in keys}
    if device != "cpu":
        settings["backend"] = "torch"
        settings["batch_size"] = cfg.batch_size
    else:
        settings["backend"] = "numba-pages"
        settings["page_entries"] = page_entries
    settings["vocab_size"] = vocab_size
    return checkpoint.fingerprint(settings, texts=(digest,))


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
    """Train GloVe on the co-occurrence matrix given as arrays ``(rows, cols, values)``;
    see :func:`train_glove_on`."""
    triples = ArrayTriples(rows, cols, values, vocab_size)
    return train_glove_on(triples, cfg, on_epoch_end=on_epoch_end, progress=progress)


def train_glove_file(
    path: str | os.PathLike,
    cfg: GloveConfig,
    on_epoch_end: Callable[[int, float], None] | None = None,
    progress: bool = True,
) -> GloveResult:
    """Train GloVe on a ``cooccur.npz``, read a chunk at a time; see :func:`train_glove_on`."""
    return train_glove_on(NpzTriples(path), cfg, on_epoch_end=on_epoch_end, progress=progress)


def train_glove_on(
    triples: ArrayTriples | NpzTriples,
    cfg: GloveConfig,
    on_epoch_end: Callable[[int, float], None] | None = None,
    progress: bool = True,
    *,
    page_entries: int = PAGE_ENTRIES,
    read_chunk: int = READ_CHUNK,
) -> GloveResult:
    """Train GloVe on the co-occurrence triples of ``triples``.

    On the CPU the triples are read ``read_chunk`` at a time and written once as shuffled
    pages of about ``page_entries`` entries (:mod:`pipeline.glove.pages`) into a temporary
    folder inside ``cfg.checkpoint_dir`` (the system's temporary folder when checkpoints
    are off), removed at the end; the result does not depend on ``read_chunk``, nor on
    where the triples come from.

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

    if triples.nnz == 0:
        raise DataError(f"{triples.where}: the matrix is empty (no word pairs in the corpus)")
    device = resolve_device(cfg.device, "glove.device")
    dtype = np.dtype(cfg.precision)
    vocab_size, nnz = triples.vocab_size, triples.nnz
    ckpt = Path(cfg.checkpoint_dir) / CHECKPOINT_FILE if cfg.checkpoint_dir else None

    def constants(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-entry ``log x`` and ``f(x)``, computed in float64, in the parameter dtype."""
        logx = np.log(values.astype(np.float64)).astype(dtype)
        return logx, weighting(values, cfg.x_max, cfg.alpha).astype(dtype)

    with tempfile.TemporaryDirectory(prefix="glove-pages-", dir=_scratch_parent(cfg)) as tmp:
        backend = _BACKENDS["cpu" if device == "cpu" else "torch"]
        step = backend(triples, cfg, device, constants, scratch=Path(tmp),
                       page_entries=page_entries, read_chunk=read_chunk)  # fmt: skip
        try:
            fp = fingerprint(cfg, device, step.digest, vocab_size, page_entries)
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
            step.start(params)

            seconds: list[float] = []
            bar = tqdm(range(start, cfg.epochs), desc="glove", unit="epoch",
                       disable=not progress, initial=start, total=cfg.epochs)  # fmt: skip
            for epoch in bar:
                t0 = time.perf_counter()
                total = step(epoch)
                loss = float(total) / nnz
                when = f"in epoch {epoch + 1}"
                check_loss(loss, step.reference, where="glove", lr_key="glove.lr",
                           lr=cfg.lr, when=when)  # fmt: skip
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
        finally:
            step.close()

    W = final["W"].astype(np.float32, copy=False)
    C = final["C"].astype(np.float32, copy=False)
    if cfg.output == "sum":
        vectors = W + C
    elif cfg.output == "w":
        vectors = W.copy()
    else:
        vectors = np.concatenate([W, C], axis=1)
    # words with no co-occurrence (specials, words never inside a window) were never
    # trained: zero rows, so they never come out as neighbours
    vectors[~step.seen] = 0.0
    return GloveResult(
        vectors=vectors,
        losses=losses,
        seconds_per_epoch=seconds,
        device=device,
        resumed_from=start,
        params={k: final[k] for k in ("W", "C", "bw", "bc")},
    )


def _scratch_parent(cfg: GloveConfig) -> str | None:
    """Where the pages go: inside the checkpoint folder (next to the data), if any.

    Pages a killed run left there are removed first: one run owns the folder at a time.
    """
    if not cfg.checkpoint_dir:
        return None
    Path(cfg.checkpoint_dir).mkdir(parents=True, exist_ok=True)
    for stale in Path(cfg.checkpoint_dir).glob("glove-pages-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return cfg.checkpoint_dir


class _PagedEpoch:
    """One epoch of per-non-zero AdaGrad with the numba kernel, streaming the pages of
    :mod:`pipeline.glove.pages` (parameters updated in place).

    Epoch ``e`` runs ``T`` strata; in stratum ``s`` thread ``t`` trains block
    ``b = t * T + (t + s) % T``: its pages in the order of a permutation drawn from
    ``(seed, e, b)``, each page's entries in the order of the next permutation drawn from
    the same generator. Concurrent blocks share no row of ``W`` or ``C`` and every draw is
    a function of ``(seed, e, b)``, so the result does not depend on thread timing.
    """

    def __init__(self, triples, cfg, device, constants, *, scratch: Path,
                 page_entries: int = PAGE_ENTRIES, read_chunk: int = READ_CHUNK):  # fmt: skip
        self.cfg = cfg
        self.pages: Pages = build_pages(triples, scratch, threads=cfg.threads, seed=cfg.seed,
                                        constants=constants, page_entries=page_entries,
                                        read_chunk=read_chunk)  # fmt: skip
        self.digest, self.seen, self.reference = (
            self.pages.digest, self.pages.seen, self.pages.reference)  # fmt: skip
        self.readers: list[PageReader] = []
        self.pool: ThreadPoolExecutor | None = None

    def start(self, params: dict[str, np.ndarray]) -> None:
        dtype = params["W"].dtype
        self.p = params
        self.eta, self.clip = dtype.type(self.cfg.lr), dtype.type(self.cfg.grad_clip)
        self.readers = [PageReader(self.pages) for _ in range(self.cfg.threads)]
        if self.cfg.threads > 1:
            self.pool = ThreadPoolExecutor(self.cfg.threads, thread_name_prefix="glove")

    def __call__(self, epoch: int) -> float:
        T = self.cfg.threads
        costs = np.zeros(T * T)
        for s in range(T):
            blocks = [t * T + (t + s) % T for t in range(T)]
            if self.pool is None:
                done = [self._block(blocks[0], self.readers[0], epoch)]
            else:
                done = list(self.pool.map(self._block, blocks, self.readers, [epoch] * T))
            costs[blocks] = done
            if not all(math.isfinite(c) for c in done):
                break  # diverged: the caller raises
        total = 0.0
        for c in costs.tolist():  # block order: the same sum whatever the timing
            total += c
        return total

    def _block(self, block: int, reader: PageReader, epoch: int) -> float:
        p = self.p
        tail = (p["W"], p["C"], p["bw"], p["bc"], p["gW"], p["gC"], p["gbw"], p["gbc"],
                self.eta, self.clip)  # fmt: skip
        rng = np.random.default_rng(np.random.SeedSequence([self.cfg.seed, epoch, block]))
        cost = 0.0
        for page in rng.permutation(self.pages.pages_per_block).tolist():
            start, stop = self.pages.page(block, page)
            if stop == start:
                continue
            rows, cols, logx, fx = reader.read(start, stop)
            order = rng.permutation(stop - start).astype(np.int32)
            # nogil kernel: the other threads run meanwhile
            cost += _sgd_range(rows, cols, logx, fx, order, 0, order.size, *tail)
            if not math.isfinite(cost):
                break
        return cost

    def state(self) -> dict[str, np.ndarray]:
        return self.p

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        for reader in self.readers:
            reader.close()
        self.readers = []


class _TorchEpoch:
    """Minibatch AdaGrad on a torch device (the GPU back end; also runs on CPU)."""

    def __init__(self, triples, cfg, device, constants, **_paging):
        import torch

        self.torch = torch
        self.cfg = cfg
        self.device = torch.device(device)
        rows, cols, values = triples.arrays()  # the whole matrix goes to the device
        digest = TriplesDigest(triples.vocab_size)
        digest.update(rows, cols, values)
        self.digest = digest.hexdigest()
        self.seen = np.zeros(triples.vocab_size, bool)
        self.seen[rows] = True
        logx, fx = constants(values)
        self.reference = untrained_loss(logx, fx)
        self.rows, self.cols = self._to(rows.astype(np.int64)), self._to(cols.astype(np.int64))
        self.logx, self.fx = self._to(logx), self._to(fx)

    def _to(self, array: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def start(self, params: dict[str, np.ndarray]) -> None:
        self.p = {k: self._to(v) for k, v in params.items()}

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

    def close(self) -> None:
        pass


# "cpu": numba per non-zero over pages; "torch": minibatches on the resolved torch device
# (tests swap "cpu" for the torch back end to run it on a CPU)
_BACKENDS = {"cpu": _PagedEpoch, "torch": _TorchEpoch}


def threads_available() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1
