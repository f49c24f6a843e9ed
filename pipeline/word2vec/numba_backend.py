"""word2vec on CPU: the numba kernels of :mod:`pipeline.word2vec.numba_kernels` in
``workers`` Python threads sharing the weights (word2vec's lock-free Hogwild updates)."""

from __future__ import annotations

import math
import threading
import time

import numpy as np

from pipeline.word2vec import numba_kernels as K
from pipeline.word2vec.config import SkipGramConfig
from pipeline.word2vec.corpus import (
    TrainingWords,
    huffman_tree,
    job_seed,
    make_jobs,
    negative_distribution,
)


class NumbaTrainer:
    """One epoch of Hogwild training: ``workers`` threads pull jobs and call the kernel."""

    def __init__(self, corpus: TrainingWords, cfg: SkipGramConfig, weights, workers: int) -> None:
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
        self.arch = K.ARCH_SG if cfg.architecture == "sg" else K.ARCH_CBOW
        self.out = {"ns": K.OUT_NS, "hs": K.OUT_HS, "softmax": K.OUT_SOFTMAX}[cfg.output]
        self.diverged_lr: float | None = None
        # Compile (or load from numba's cache) now, on an empty job, outside the timing.
        c = corpus
        K.train_job(
            self.syn0, self.syn1, self.syn1neg, c.words, c.bounds, 0, 0, self.keep,
            self.prob, self.alias, self.codes, self.points, self.lengths, self.arch,
            self.out, cfg.negative, cfg.window, cfg.cbow_mean, cfg.start_lr, cfg.min_lr, 0,
            max(1, cfg.epochs * c.num_words), 1,
            cfg.context == "left", cfg.negative_draw == "centre",
        )  # fmt: skip

    def _run_job(self, epoch: int, j: int) -> tuple[float, int, int]:
        c, cfg = self.corpus, self.cfg
        s0, s1 = int(self.jobs[j]), int(self.jobs[j + 1])
        done_before = epoch * c.num_words + int(c.bounds[s0])
        return self.K.train_job(
            self.syn0, self.syn1, self.syn1neg, c.words, c.bounds, s0, s1, self.keep,
            self.prob, self.alias, self.codes, self.points, self.lengths, self.arch,
            self.out, cfg.negative, cfg.window, cfg.cbow_mean, cfg.start_lr, cfg.min_lr,
            done_before, cfg.epochs * c.num_words,
            job_seed(cfg.seed, epoch, j), cfg.context == "left",
            cfg.negative_draw == "centre",
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
