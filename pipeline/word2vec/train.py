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

On CPU the numba kernels of :mod:`pipeline.word2vec.numba_kernels` run in ``workers`` Python threads
with shared weights (word2vec's lock-free updates); on CUDA (or ``backend: torch``) the
batched PyTorch path of :mod:`pipeline.word2vec.torch_backend` runs. With ``workers: 1`` on CPU a fixed
seed gives identical vectors; a checkpoint after every epoch makes a restart resume where
it stopped, with the same result as an uninterrupted run.

The loss of an epoch is word2vec's objective (-log sigmoid of every positive and negative
score, or -log p(target) for the softmaxes) summed over that epoch's updates in float64,
each measured just before its update; being measured online it need not fall in every
epoch (late epochs with a small learning rate can show a slightly higher sum).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core import checkpoint
from pipeline.core.devices import resolve_device
from pipeline.core.divergence import check_loss, check_weights
from pipeline.core.errors import ConfigError, DataError, TrainingDivergedError
from pipeline.word2vec.config import SkipGramConfig, TrainResult, check_combination
from pipeline.word2vec.corpus import N_SPECIAL, huffman_tree, make_corpus

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.npz"
# backend name -> "module:class"; imported on use, so the CPU path never imports torch
BACKENDS = {
    "numba": "pipeline.word2vec.numba_backend:NumbaTrainer",
    "torch": "pipeline.word2vec.torch_backend:TorchTrainer",
}
_SOURCES = ("train.py", "corpus.py", "numba_kernels.py", "numba_backend.py",
            "torch_backend.py", "huffman.py", "triton_kernels.py")  # fmt: skip


def backend_class(name: str):
    """The epoch runner class of backend ``name`` (see :data:`BACKENDS`)."""
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def fingerprint(ids: np.ndarray, vocab_size: int, cfg: SkipGramConfig, device: str) -> str:
    """Hash of the inputs, the trainer's source and every setting that changes the
    result (not ``workers``)."""
    here = Path(__file__).resolve().parent
    settings = dataclasses.asdict(cfg)
    settings.pop("workers")
    settings.update(vocab_size=vocab_size, device=device, version=2,
                    source=checkpoint.source_digest(*(here / n for n in _SOURCES)))  # fmt: skip
    return checkpoint.fingerprint(settings, arrays=[ids])


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


def untrained_loss_per_update(corpus, cfg: SkipGramConfig, vocab_size: int) -> float:
    """word2vec's objective per (input, target) update before training: the output
    weights start at zero, so every score is 0 and every sigmoid 1/2. Negative sampling:
    ``(1 + negative) log 2``; hierarchical softmax: ``log 2`` per node of the target's
    Huffman path (averaged over word counts); full softmax: ``log V``."""
    if cfg.output == "ns":
        return (1 + cfg.negative) * math.log(2)
    if cfg.output == "hs":
        counts = corpus.counts.astype(np.float64)
        lengths = huffman_tree(corpus).lengths[: counts.size].astype(np.float64)
        return math.log(2) * float(counts @ lengths) / max(float(counts.sum()), 1.0)
    return math.log(vocab_size)


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
    ``cpu_seconds`` (user + system of the whole process, all threads: ``cpu_seconds /
    seconds`` is the number of cores kept busy), ``effective_words_per_sec``,
    ``raw_words_per_sec``, ``lr``), after the checkpoint of
    that epoch is written. With ``checkpoint_dir``, a checkpoint of the same inputs and
    settings (see :func:`fingerprint`) is resumed; it is removed after the last epoch
    unless ``keep_checkpoint``. Raises :class:`TrainingDivergedError` naming ``skipgram.lr``
    on a NaN/inf loss, an epoch's loss per update more than
    :data:`~pipeline.core.divergence.LOSS_FACTOR` times the untrained model's
    (:func:`untrained_loss_per_update`), or weights beyond
    :data:`~pipeline.core.divergence.MAX_ABS_WEIGHT` (:mod:`pipeline.core.divergence`).
    """
    if vocab_size <= N_SPECIAL + 1:
        raise DataError(f"skipgram: vocabulary too small ({vocab_size} entries)")
    if cfg.max_vocab is not None and cfg.max_vocab < vocab_size:
        ids, vocab_size = cap_vocabulary(ids, cfg.max_vocab), cfg.max_vocab
    corpus = make_corpus(ids, vocab_size, cfg.max_sentence_length)
    if corpus.num_words == 0:
        raise DataError("skipgram: the corpus has no words besides <pad>/<unk>/<eos>")
    device = resolve_device(cfg.device, "skipgram.device")
    backend = cfg.backend
    if backend == "auto":
        backend = "torch" if device == "cuda" else "numba"
    if backend == "numba" and device != "cpu":
        raise ConfigError("skipgram.backend: numba runs on cpu only (use backend: torch)")
    check_combination(cfg, backend)
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
        loaded = checkpoint.load_npz(ckpt / CHECKPOINT_FILE, fp, list(weights))
        if loaded is not None:
            start_epoch, weights = loaded.epoch, loaded.arrays
            losses, stats = loaded.state["losses"], loaded.state["stats"]
            log.info("resuming skipgram from epoch %d (%s)", start_epoch, ckpt)

    untrained = untrained_loss_per_update(corpus, cfg, vocab_size)
    runner = backend_class(backend)
    epoch_fn = (
        runner(corpus, cfg, weights, workers)
        if backend == "numba"
        else runner(corpus, cfg, weights, device)
    )

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
            t0, cpu0 = time.perf_counter(), time.process_time()
            loss, eff, upd = epoch_fn(epoch, bar)
            secs, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            lr_end = cfg.start_lr - (cfg.start_lr - cfg.min_lr) * (epoch + 1) / cfg.epochs
            if not math.isfinite(loss):
                lr_now = getattr(epoch_fn, "diverged_lr", None) or lr_end
                raise TrainingDivergedError(
                    f"skipgram: loss became {loss} in epoch {epoch + 1} at learning rate "
                    f"{lr_now:.6g} (start lr {cfg.start_lr:g}); lower skipgram.lr"
                )
            when = f"in epoch {epoch + 1}"
            # far above the untrained loss, or weights beyond the bound: diverged (and no
            # checkpoint of it is written)
            per_update = loss / max(upd, 1)
            check_loss(per_update, untrained, where="skipgram", lr_key="skipgram.lr",
                       lr=cfg.start_lr, when=when)  # fmt: skip
            check_weights(weights.items(), where="skipgram", lr_key="skipgram.lr",
                          lr=cfg.start_lr, when=when)  # fmt: skip
            losses.append(loss)
            eff_total += eff
            upd_total += upd
            st = {
                "epoch": epoch + 1,
                "loss": loss,
                "loss_per_update": per_update,
                "seconds": secs,
                "cpu_seconds": cpu,
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
                checkpoint.save_npz(ckpt / CHECKPOINT_FILE, fp, epoch + 1, weights,
                                    {"losses": losses, "stats": stats})  # fmt: skip
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


def cap_vocabulary(ids: np.ndarray, max_vocab: int) -> np.ndarray:
    """``ids`` with every id >= ``max_vocab`` (the rarer words) replaced by ``<unk>``
    (id 1), which training drops like any unknown word."""
    return np.where(ids < max_vocab, ids, np.int32(1)).astype(ids.dtype, copy=False)


def to_embeddings(result: TrainResult, vocab) -> Any:
    """Wrap the trained input vectors as :class:`pipeline.embeddings.vectors.Embeddings`
    (the first ``len(vectors)`` words of ``vocab`` when the vocabulary was capped)."""
    from pipeline.embeddings.vectors import Embeddings

    n = result.vectors.shape[0]
    if result.config.max_vocab is not None and n == result.config.max_vocab < len(vocab):
        counts = getattr(vocab, "counts", None)
        return Embeddings(vocab.tokens[:n], result.vectors, None if counts is None else counts[:n])
    if len(vocab) != result.vectors.shape[0]:
        raise DataError(
            f"skipgram: vocabulary has {len(vocab)} entries, vectors {result.vectors.shape[0]}"
        )
    return Embeddings(vocab.tokens, result.vectors, getattr(vocab, "counts", None))
