"""Stage cooccur: count word-word co-occurrences of a prepared corpus.

Reads ``data/processed/<corpus>/{train.npy,vocab.tsv}``; writes
``data/processed/<corpus>/cooccur.npz`` and ``metrics/cooccur.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pipeline.core.memory import PeakRSS
from pipeline.data.vocab import Vocabulary
from pipeline.glove.cooccur import CooccurConfig, count_cooccurrences, load_kernels
from stages._common import load_params, section, stage_main, stage_run, write_metrics

PROCESSED = Path("data/processed")


def run(args: argparse.Namespace) -> None:
    params = load_params()
    cfg = section(params, "cooccur", CooccurConfig)
    folder = PROCESSED / cfg.corpus
    vocab = Vocabulary.load_tsv(folder / "vocab.tsv")
    with stage_run("cooccur", cfg) as tracker:
        load_kernels()  # part of the interpreter's footprint, not of the counting
        t0, c0 = time.perf_counter(), time.process_time()
        with PeakRSS() as mem:
            stats = count_cooccurrences(
                folder / "train.npy",
                len(vocab),
                folder / "cooccur.npz",
                window=cfg.window,
                cross_boundaries=cfg.cross_boundaries,
                unk_takes_position=cfg.unk_takes_position,
                memory_mb=cfg.memory_mb,
                dense_fraction=cfg.dense_fraction,
                chunk_tokens=cfg.chunk_tokens,
                tmp_dir=cfg.tmp_dir,
                progress=True,
            )
        seconds = time.perf_counter() - t0
        metrics = {
            "corpus": cfg.corpus,
            "window": cfg.window,
            "vocab_size": stats.vocab_size,
            "tokens": stats.tokens,
            "words": stats.words,
            "pairs": stats.pairs,
            "nnz": stats.nnz,
            "spills": stats.spills,
            "seconds": seconds,
            "cpu_seconds": time.process_time() - c0,
            "tokens_per_second": stats.tokens / max(seconds, 1e-9),
            # peak resident memory of the whole process while counting; the
            # interpreter's footprint before it (Python, numpy, numba kernels, mlflow);
            # what the counting added, which memory_mb bounds
            "peak_mem_mb": mem.peak_mb,
            "interpreter_mem_mb": mem.start_mb,
            "count_mem_mb": mem.peak_mb - mem.start_mb,
            "memory_budget_mb": cfg.memory_mb,
            "within_budget": mem.peak_mb <= mem.start_mb + cfg.memory_mb,
        }
        write_metrics("cooccur", metrics, tracker)


def main(argv: list[str] | None = None) -> None:
    stage_main(run, argv, description=__doc__)


if __name__ == "__main__":
    main()
