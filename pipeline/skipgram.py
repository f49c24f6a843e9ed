"""word2vec: skip-gram and CBOW with negative sampling, hierarchical softmax or full softmax.

Settings and results follow word2vec and gensim (100 dims, window 5, k 5 negatives from
unigram^0.75, subsampling t = 1e-3, 5 epochs, lr 0.025 for skip-gram / 0.05 for CBOW
decaying linearly to 1e-4 x lr over all words of all epochs)::

    cfg = SkipGramConfig(output="ns")
    result = train_word2vec(ids, len(vocab), cfg)
    emb = to_embeddings(result, vocab)

Input ``ids`` is a processed corpus (int32 ids, ``<eos>`` = 2 ends every paragraph and
acts as a sentence boundary; ``<pad>`` = 0 and ``<unk>`` = 1 are dropped before windowing,
as gensim drops out-of-vocabulary words).

On CPU the numba kernels of :mod:`pipeline.w2v_kernels` run in ``workers`` Python threads
with shared weights (word2vec's lock-free updates); on CUDA (or ``backend: torch``) the
batched PyTorch path of :mod:`pipeline.w2v_torch` runs. With ``workers: 1`` on CPU a fixed
seed gives identical vectors; a checkpoint after every epoch makes a restart resume where
it stopped, with the same result as an uninterrupted run.

The loss of an epoch is word2vec's objective (-log sigmoid of every positive and negative
score, or -log p(target) for the softmaxes) summed over that epoch's updates in float64,
each measured just before its update; being measured online it need not fall in every
epoch (late epochs with a small learning rate can show a slightly higher sum).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.devices import resolve_device
from pipeline.errors import ConfigError, DataError, TrainingDivergedError

log = logging.getLogger(__name__)

PAD, UNK, EOS = 0, 1, 2
N_SPECIAL = 3
CHECKPOINT_FILE = "checkpoint.npz"


@dataclass(frozen=True)
class SkipGramConfig:
    """Settings of the word2vec trainer (defaults: word2vec / gensim).

    ``architecture``: ``sg`` (skip-gram) or ``cbow``. ``output``: ``ns`` (negative
    sampling), ``hs`` (hierarchical softmax over a Huffman tree) or ``softmax`` (full
    softmax, O(V) per update: for small vocabularies). ``lr`` None = 0.025 (sg) / 0.05
    (cbow); it decays linearly to ``min_lr_ratio * lr``. ``workers`` 0 = one per core.
    ``backend`` auto = numba on CPU, torch on CUDA; ``torch_*`` tune the batched torch
    path (:mod:`pipeline.w2v_torch`): ``torch_batch_pairs`` examples per step,
    ``torch_dup_cap`` most summed updates of one row per step (0 = no cap),
    ``torch_negatives`` ``pair`` (k own negatives per example, as word2vec) or ``shared``
    (``torch_shared_negatives`` negatives per block of ``torch_shared_block`` examples,
    weighted k / N: one matmul per block; output ns only), ``torch_damping`` (both
    modes) ``cap`` or ``curvature`` (summed steps of a row shrunk to what as many
    sequential SGD steps would move it; see :func:`pipeline.w2v_torch.curvature_damping`),
    ``torch_scatter`` how curvature damping sums the updates of each row (``atomic``
    ``index_add_`` or ``sorted`` segment sums: :class:`pipeline.w2v_torch.RowSums`),
    ``torch_precision``
    ``fp32``/``tf32``/``bf16`` (matmuls; weights stay fp32), ``torch_compile``
    (``torch.compile`` the shared step), ``torch_softmax_logits`` most (B x V) logits per
    full-softmax step. ``corpus`` names the processed corpus the stage reads (not used
    by the library).
    """

    corpus: str = "sotu"
    architecture: Literal["sg", "cbow"] = "sg"
    output: Literal["ns", "hs", "softmax"] = "ns"
    dim: int = field(default=100, metadata={"min": 1})
    window: int = field(default=5, metadata={"min": 1})
    negative: int = field(default=5, metadata={"min": 1})
    ns_exponent: float = 0.75
    sample: float = field(default=1e-3, metadata={"min": 0.0})
    epochs: int = field(default=5, metadata={"min": 1})
    lr: float | None = field(default=None, metadata={"gt": 0.0})
    min_lr_ratio: float = field(default=1e-4, metadata={"min": 0.0, "max": 1.0})
    cbow_mean: bool = True
    max_sentence_length: int = field(default=10000, metadata={"min": 1})
    batch_words: int = field(default=10000, metadata={"min": 1})
    workers: int = field(default=0, metadata={"min": 0})
    seed: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["auto", "numba", "torch"] = "auto"
    torch_batch_pairs: int = field(default=16384, metadata={"min": 1})
    torch_chunk_words: int = field(default=1_000_000, metadata={"min": 1})
    torch_dup_cap: float = field(default=64.0, metadata={"min": 0.0})
    torch_negatives: Literal["pair", "shared"] = "pair"
    torch_shared_block: int = field(default=256, metadata={"min": 1})
    torch_shared_negatives: int = field(default=64, metadata={"min": 1})
    torch_damping: Literal["cap", "curvature"] = "cap"
    torch_scatter: Literal["atomic", "sorted"] = "atomic"
    torch_precision: Literal["fp32", "tf32", "bf16"] = "fp32"
    torch_compile: bool = False
    torch_softmax_logits: int = field(default=1 << 24, metadata={"min": 1})

    @property
    def start_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return 0.05 if self.architecture == "cbow" else 0.025

    @property
    def min_lr(self) -> float:
        return self.start_lr * self.min_lr_ratio

    @property
    def name(self) -> str:
        """Short model name: sgns, sghs, sgsoftmax, cbowns, cbowhs, cbowsoftmax."""
        return f"{self.architecture}{self.output}"


@dataclass
class TrainResult:
    """Trained weights and the numbers of one run.

    ``vectors`` float32 (V, D) input vectors (row i = vocab id i); ``loss_per_epoch`` the
    word2vec objective summed over each epoch's updates (float64, reset each epoch).
    """

    vectors: np.ndarray
    loss_per_epoch: list[float]
    seconds: float
    raw_words: int
    effective_words: int
    updates: int
    device: str
    backend: str
    workers: int
    vocab_size: int
    config: SkipGramConfig
    resumed_from_epoch: int = 0
    epoch_stats: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def metrics(self) -> dict[str, Any]:
        """Flat metrics for ``metrics/skipgram.json`` (this run's epochs only for speed)."""
        secs = max(self.seconds, 1e-9)
        return {
            "loss_per_epoch": list(self.loss_per_epoch),
            "final_loss": self.loss_per_epoch[-1] if self.loss_per_epoch else None,
            "seconds": self.seconds,
            "effective_words": self.effective_words,
            "raw_words": self.raw_words,
            "effective_words_per_sec": self.effective_words / secs,
            "raw_words_per_sec": self.raw_words / secs,
            "updates_per_sec": self.updates / secs,
            "vocab_size": self.vocab_size,
            "device": self.device,
            "backend": self.backend,
            "workers": self.workers,
            "resumed_from_epoch": self.resumed_from_epoch,
            "model": self.config.name,
            "settings": {
                **dataclasses.asdict(self.config),
                "lr": self.config.start_lr,
                "min_lr": self.config.min_lr,
            },
        }


@dataclass(frozen=True)
class Corpus:
    """Training words without specials, cut into sentences.

    ``words`` int32 (N,); sentence s is ``words[bounds[s]:bounds[s + 1]]``; ``counts``
    int64 (V,) counts of ``words`` (specials 0).
    """

    words: np.ndarray
    bounds: np.ndarray
    counts: np.ndarray

    @property
    def num_words(self) -> int:
        return int(self.words.shape[0])

    @property
    def num_sentences(self) -> int:
        return int(self.bounds.shape[0]) - 1


def make_corpus(ids: np.ndarray, vocab_size: int, max_sentence_length: int = 10000) -> Corpus:
    """Drop ``<pad>``/``<unk>``, split at ``<eos>`` and at ``max_sentence_length`` words."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"corpus ids must be a 1-D integer array, got {ids.dtype} {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = int(np.flatnonzero((ids < 0) | (ids >= vocab_size))[0])
        raise DataError(
            f"corpus id {int(ids[bad])} at position {bad} is outside the vocabulary "
            f"(size {vocab_size})"
        )
    is_eos = ids == EOS
    sid = np.cumsum(is_eos) - is_eos  # sentence number; <eos> belongs to its sentence
    keep = ids >= N_SPECIAL
    words = ids[keep].astype(np.int32)
    sids = sid[keep]
    starts = np.flatnonzero(np.diff(sids)) + 1
    bounds = np.concatenate([[0], starts, [words.shape[0]]]).astype(np.int64)
    if words.shape[0] == 0:
        bounds = np.zeros(1, dtype=np.int64)
    lengths = np.diff(bounds)
    if lengths.size and lengths.max() > max_sentence_length:
        extra = [
            np.arange(b + max_sentence_length, e, max_sentence_length)
            for b, e in zip(bounds[:-1], bounds[1:], strict=True)
            if e - b > max_sentence_length
        ]
        bounds = np.unique(np.concatenate([bounds, *extra]))
    counts = np.bincount(words, minlength=vocab_size).astype(np.int64)
    return Corpus(words=words, bounds=bounds, counts=counts)


def huffman_tree(corpus: Corpus):
    """The Huffman tree of hierarchical softmax, built as word2vec builds it.

    Words of equal count are ordered by first occurrence in the training words (word2vec's
    vocabulary order before its count sort), not by id; see
    :func:`pipeline.huffman.build_huffman`.
    """
    from pipeline.huffman import build_huffman, first_occurrence

    first = first_occurrence(corpus.words, int(corpus.counts.shape[0]))
    return build_huffman(corpus.counts, tie_rank=first)


def make_jobs(bounds: np.ndarray, batch_words: int) -> np.ndarray:
    """Sentence indices cutting the corpus into jobs of about ``batch_words`` words."""
    n_sent = bounds.shape[0] - 1
    total = int(bounds[-1])
    marks = np.arange(batch_words, total, batch_words)
    cuts = np.searchsorted(bounds, marks, side="left")
    edges = np.unique(np.concatenate([[0], cuts, [n_sent]])).astype(np.int64)
    return edges


def negative_distribution(counts: np.ndarray, exponent: float) -> np.ndarray:
    """Unigram counts raised to ``exponent`` (float64, not normalised; specials 0)."""
    w = np.asarray(counts, dtype=np.float64) ** exponent
    w[np.asarray(counts) <= 0] = 0.0
    return w


def job_seed(seed: int, epoch: int, job: int) -> int:
    """A 48-bit generator state for one job, independent of thread scheduling."""
    h = hashlib.blake2b(f"{seed}/{epoch}/{job}".encode(), digest_size=8).digest()
    return (int.from_bytes(h, "little") & 0xFFFFFFFFFFFF) | 1


def fingerprint(ids: np.ndarray, vocab_size: int, cfg: SkipGramConfig, device: str) -> str:
    """Hash of the inputs and every setting that changes the result (not ``workers``)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(ids).view(np.uint8).tobytes())
    here = Path(__file__).resolve().parent
    for name in ("skipgram.py", "w2v_kernels.py", "w2v_torch.py", "huffman.py"):
        if (here / name).exists():  # a fixed kernel must not resume an old run
            h.update((here / name).read_bytes())
    settings = dataclasses.asdict(cfg)
    settings.pop("workers")
    settings.update(vocab_size=vocab_size, device=device, version=1)
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()


def init_weights(cfg: SkipGramConfig, vocab_size: int) -> dict[str, np.ndarray]:
    """word2vec's initialisation: input uniform in [-0.5, 0.5) / dim, outputs zero."""
    rng = np.random.default_rng(cfg.seed)
    d = cfg.dim
    syn0 = ((rng.random((vocab_size, d), dtype=np.float32) - 0.5) / d).astype(np.float32)
    weights = {"syn0": syn0}
    if cfg.output == "ns":
        weights["syn1neg"] = np.zeros((vocab_size, d), dtype=np.float32)
    elif cfg.output == "hs":
        weights["syn1"] = np.zeros((vocab_size - 1, d), dtype=np.float32)
    else:
        weights["syn1"] = np.zeros((vocab_size, d), dtype=np.float32)
    return weights


def _save_checkpoint(folder: Path, fp: str, epoch: int, weights, losses, stats) -> None:
    """One npz (weights + state), replaced atomically: never a half-written checkpoint."""
    from pipeline.atomic import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    state = {
        "_fingerprint": np.array(fp),
        "_epoch": np.array(epoch, dtype=np.int64),
        "_losses": np.array(losses, dtype=np.float64),
        "_stats": np.array(json.dumps(stats)),
    }
    with atomic_path(folder / CHECKPOINT_FILE) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **weights, **state)


def _load_checkpoint(folder: Path, fp: str, names) -> tuple[int, dict, list, list] | None:
    path = folder / CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["_fingerprint"]) != fp:
                log.info("checkpoint %s is for other inputs or settings: starting fresh", path)
                return None
            weights = {k: np.ascontiguousarray(z[k]) for k in names}
            epoch = int(z["_epoch"])
            losses = [float(x) for x in z["_losses"]]
            stats = json.loads(str(z["_stats"]))
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
        return None
    return epoch, weights, losses, stats


EpochCallback = Callable[[dict[str, Any]], None]


def train_word2vec(
    ids: np.ndarray,
    vocab_size: int,
    cfg: SkipGramConfig,
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    callback: EpochCallback | None = None,
    progress: bool = True,
    keep_checkpoint: bool = False,
) -> TrainResult:
    """Train word2vec on ``ids`` (see the module docstring); return the vectors and numbers.

    ``callback`` gets a dict per finished epoch (``epoch`` 1-based, ``loss``, ``seconds``,
    ``effective_words_per_sec``, ``raw_words_per_sec``, ``lr``), after the checkpoint of
    that epoch is written. With ``checkpoint_dir``, a checkpoint of the same inputs and
    settings (see :func:`fingerprint`) is resumed; it is removed after the last epoch
    unless ``keep_checkpoint``. Raises :class:`TrainingDivergedError` on a NaN/inf loss.
    """
    if vocab_size <= N_SPECIAL + 1:
        raise DataError(f"skipgram: vocabulary too small ({vocab_size} entries)")
    corpus = make_corpus(ids, vocab_size, cfg.max_sentence_length)
    if corpus.num_words == 0:
        raise DataError("skipgram: the corpus has no words besides <pad>/<unk>/<eos>")
    device = resolve_device(cfg.device, "skipgram.device")
    backend = cfg.backend
    if backend == "auto":
        backend = "torch" if device == "cuda" else "numba"
    if backend == "numba" and device != "cpu":
        raise ConfigError("skipgram.backend: numba runs on cpu only (use backend: torch)")
    workers = cfg.workers or (os.cpu_count() or 1)
    if backend == "torch":
        workers = 1
    fp = fingerprint(ids, vocab_size, cfg, device)
    weights = init_weights(cfg, vocab_size)
    losses: list[float] = []
    stats: list[dict[str, Any]] = []
    start_epoch = 0
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None:
        loaded = _load_checkpoint(ckpt, fp, list(weights))
        if loaded is not None:
            start_epoch, weights, losses, stats = loaded
            log.info("resuming skipgram from epoch %d (%s)", start_epoch, ckpt)

    if backend == "numba":
        epoch_fn = _numba_epoch_runner(corpus, cfg, weights, workers)
    else:
        from pipeline.w2v_torch import TorchTrainer

        epoch_fn = TorchTrainer(corpus, cfg, weights, device)

    n = corpus.num_words
    total_raw = cfg.epochs * n
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total_raw,
        initial=start_epoch * n,
        unit="w",
        unit_scale=True,
        desc=f"skipgram {cfg.name}",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
        mininterval=0.5,
    )
    t_start = time.perf_counter()
    eff_total = 0
    upd_total = 0
    try:
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            loss, eff, upd = epoch_fn(epoch, bar)
            secs = time.perf_counter() - t0
            lr_end = cfg.start_lr - (cfg.start_lr - cfg.min_lr) * (epoch + 1) / cfg.epochs
            if not math.isfinite(loss):
                lr_now = getattr(epoch_fn, "diverged_lr", None) or lr_end
                raise TrainingDivergedError(
                    f"skipgram: loss became {loss} in epoch {epoch + 1} at learning rate "
                    f"{lr_now:.6g} (start lr {cfg.start_lr:g}); lower skipgram.lr"
                )
            losses.append(loss)
            eff_total += eff
            upd_total += upd
            st = {
                "epoch": epoch + 1,
                "loss": loss,
                "loss_per_update": loss / max(upd, 1),
                "seconds": secs,
                "effective_words": eff,
                "effective_words_per_sec": eff / max(secs, 1e-9),
                "raw_words_per_sec": n / max(secs, 1e-9),
                "lr": lr_end,
            }
            stats.append(st)
            bar.set_postfix(
                epoch=epoch + 1,
                loss=f"{st['loss_per_update']:.4f}",
                eff_wps=f"{st['effective_words_per_sec'] / 1e3:.0f}k",
            )
            if ckpt is not None:
                _save_checkpoint(ckpt, fp, epoch + 1, weights, losses, stats)
            if callback is not None:
                callback(dict(st))
    finally:
        bar.close()
    seconds = time.perf_counter() - t_start
    if ckpt is not None and not keep_checkpoint:
        (ckpt / CHECKPOINT_FILE).unlink(missing_ok=True)
    return TrainResult(
        vectors=weights["syn0"],
        loss_per_epoch=losses,
        seconds=seconds,
        raw_words=(cfg.epochs - start_epoch) * n,
        effective_words=eff_total,
        updates=upd_total,
        device=device,
        backend=backend,
        workers=workers,
        vocab_size=vocab_size,
        config=cfg,
        resumed_from_epoch=start_epoch,
        epoch_stats=stats,
    )


class _numba_epoch_runner:  # noqa: N801 - used like a function
    """One epoch of Hogwild training: ``workers`` threads pull jobs and call the kernel."""

    def __init__(self, corpus: Corpus, cfg: SkipGramConfig, weights, workers: int) -> None:
        from pipeline import w2v_kernels as K

        self.K = K
        self.corpus = corpus
        self.cfg = cfg
        self.weights = weights
        self.workers = max(1, workers)
        self.jobs = make_jobs(corpus.bounds, cfg.batch_words)
        self.keep = K.keep_thresholds(K.keep_probabilities(corpus.counts, cfg.sample))
        d = cfg.dim
        dummy = np.zeros((1, d), dtype=np.float32)
        self.syn0 = weights["syn0"]
        self.syn1 = weights.get("syn1", dummy)
        self.syn1neg = weights.get("syn1neg", dummy)
        if cfg.output == "ns":
            self.prob, self.alias = K.build_alias(
                negative_distribution(corpus.counts, cfg.ns_exponent)
            )
        else:
            self.prob, self.alias = np.ones(1, np.float32), np.zeros(1, np.int32)
        if cfg.output == "hs":
            tree = huffman_tree(corpus)
            self.codes, self.points, self.lengths = tree.codes, tree.points, tree.lengths
        else:
            self.codes = np.zeros((1, 1), np.uint8)
            self.points = np.zeros((1, 1), np.int32)
            self.lengths = np.zeros(1, np.int32)
        self.sig, self.logsig = K.sigmoid_tables()
        self.arch = K.ARCH_SG if cfg.architecture == "sg" else K.ARCH_CBOW
        self.out = {"ns": K.OUT_NS, "hs": K.OUT_HS, "softmax": K.OUT_SOFTMAX}[cfg.output]
        self.diverged_lr: float | None = None
        # Compile (or load from numba's cache) now, on an empty job, outside the timing.
        c = corpus
        K.train_job(
            self.syn0, self.syn1, self.syn1neg, c.words, c.bounds, 0, 0, self.keep,
            self.prob, self.alias, self.codes, self.points, self.lengths, self.sig,
            self.logsig, self.arch, self.out, cfg.negative, cfg.window, cfg.cbow_mean,
            cfg.start_lr, cfg.min_lr, 0, max(1, cfg.epochs * c.num_words), 1,
        )  # fmt: skip

    def _run_job(self, epoch: int, j: int) -> tuple[float, int, int]:
        c, cfg = self.corpus, self.cfg
        s0, s1 = int(self.jobs[j]), int(self.jobs[j + 1])
        done_before = epoch * c.num_words + int(c.bounds[s0])
        return self.K.train_job(
            self.syn0, self.syn1, self.syn1neg, c.words, c.bounds, s0, s1, self.keep,
            self.prob, self.alias, self.codes, self.points, self.lengths, self.sig,
            self.logsig, self.arch, self.out, cfg.negative, cfg.window, cfg.cbow_mean,
            cfg.start_lr, cfg.min_lr, done_before, cfg.epochs * c.num_words,
            job_seed(cfg.seed, epoch, j),
        )  # fmt: skip

    def __call__(self, epoch: int, bar) -> tuple[float, int, int]:
        n_jobs = self.jobs.shape[0] - 1
        losses = np.zeros(n_jobs, dtype=np.float64)
        eff = np.zeros(n_jobs, dtype=np.int64)
        upd = np.zeros(n_jobs, dtype=np.int64)
        lock = threading.Lock()
        state = {"next": 0, "done_words": 0, "error": None}
        stop = threading.Event()
        bounds, jobs = self.corpus.bounds, self.jobs

        def worker() -> None:
            try:
                while not stop.is_set():
                    with lock:
                        j = state["next"]
                        state["next"] += 1
                    if j >= n_jobs:
                        return
                    lo, e, u = self._run_job(epoch, j)
                    losses[j], eff[j], upd[j] = lo, e, u
                    with lock:
                        state["done_words"] += int(bounds[jobs[j + 1]] - bounds[jobs[j]])
                    if not math.isfinite(lo):
                        c = self.corpus
                        p = (epoch * c.num_words + int(bounds[jobs[j]])) / (
                            self.cfg.epochs * c.num_words
                        )
                        self.diverged_lr = (
                            self.cfg.start_lr - (self.cfg.start_lr - self.cfg.min_lr) * p
                        )
                        stop.set()
            except BaseException as exc:  # re-raised in the main thread
                state["error"] = exc
                stop.set()

        threads = [
            threading.Thread(target=worker, name=f"w2v-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for t in threads:
            t.start()
        shown = 0
        try:
            while any(t.is_alive() for t in threads):
                threads[0].join(0.2) if threads[0].is_alive() else time.sleep(0.05)
                done = state["done_words"]
                bar.update(done - shown)
                shown = done
        except BaseException:
            stop.set()
            for t in threads:
                t.join()
            raise
        bar.update(state["done_words"] - shown)
        if state["error"] is not None:
            raise state["error"]
        if stop.is_set():  # diverged
            return float("nan"), int(eff.sum()), int(upd.sum())
        return float(losses.sum()), int(eff.sum()), int(upd.sum())


def to_embeddings(result: TrainResult, vocab) -> Any:
    """Wrap the trained input vectors as :class:`pipeline.embeddings.Embeddings`."""
    from pipeline.embeddings import Embeddings

    if len(vocab) != result.vectors.shape[0]:
        raise DataError(
            f"skipgram: vocabulary has {len(vocab)} entries, vectors {result.vectors.shape[0]}"
        )
    return Embeddings(vocab.tokens, result.vectors, getattr(vocab, "counts", None))
