"""Stage glove: train GloVe vectors on the co-occurrence matrix of a corpus.

Reads ``data/processed/<cooccur.corpus>/{cooccur.npz,vocab.tsv}`` (the matrix a chunk at
a time: on the CPU it is streamed from shuffled pages on disk, never whole in memory);
writes ``data/processed/embeddings/glove/`` (``vectors.npy`` + ``vocab.tsv``, row i = vocab
id i, zero rows for the specials) and ``metrics/glove.json``, with the process's memory:
``rss_after_imports_mb`` (the interpreter, numpy, numba and the library, before any data),
``rss_with_tracking_mb`` (once the MLflow run is open), ``rss_footprint_mb`` (then with the
CPU kernel loaded: the same for any corpus), ``peak_rss_mb`` (the operating system's
high-water mark of the whole process, outputs written) and ``peak_above_footprint_mb``
(what the data and the parameters added). Checkpoints go to
``glove.checkpoint_dir`` (``data/interim/glove``): a killed run, started again, resumes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pipeline.core.atomic import atomic_dir
from pipeline.core.errors import DataError
from pipeline.core.memory import current_rss_mb, process_peak_mb
from pipeline.data.vocab import Vocabulary
from pipeline.embeddings.vectors import Embeddings
from pipeline.glove.train import GloveConfig, load_kernel, train_glove_on
from pipeline.glove.triples import NpzTriples
from stages._common import load_params, lookup, section, stage_main, stage_run, write_metrics

PROCESSED = Path("data/processed")
OUTPUT = PROCESSED / "embeddings" / "glove"


def run(args: argparse.Namespace) -> None:
    rss_after_imports = current_rss_mb()
    params = load_params()
    cfg = section(params, "glove", GloveConfig)
    corpus = lookup(params, "cooccur.corpus")
    folder = PROCESSED / str(corpus)
    vocab = Vocabulary.load_tsv(folder / "vocab.tsv")
    triples = NpzTriples(folder / "cooccur.npz")  # reads the headers only
    size = triples.vocab_size
    if size != len(vocab):
        raise DataError(
            f"{folder / 'cooccur.npz'}: matrix is {size} x {size} but {folder / 'vocab.tsv'} "
            f"has {len(vocab)} tokens (rerun the cooccur stage)"
        )
    with stage_run("glove", cfg) as tracker:
        tracker.set_tags({"corpus": corpus})
        rss_with_tracking = current_rss_mb()
        if cfg.device == "cpu":
            load_kernel(cfg.precision)
        rss_footprint = current_rss_mb()  # no data yet: the same for any corpus

        def on_epoch_end(epoch: int, loss: float) -> None:
            tracker.log_metrics({"loss": loss}, step=epoch)

        t0 = time.perf_counter()
        result = train_glove_on(triples, cfg, on_epoch_end=on_epoch_end)
        seconds = time.perf_counter() - t0
        emb = Embeddings(vocab.tokens, result.vectors, vocab.counts)
        with atomic_dir(OUTPUT) as tmp:
            emb.save(tmp)
        per_epoch = result.seconds_per_epoch
        peak = process_peak_mb()  # the whole run's high-water mark, outputs written
        metrics = {
            "corpus": corpus,
            "loss_per_epoch": result.losses,
            "final_loss": result.losses[-1],
            "epochs": len(result.losses),
            "resumed_from_epoch": result.resumed_from,
            "seconds": seconds,
            "seconds_per_epoch": sum(per_epoch) / len(per_epoch) if per_epoch else None,
            "device": result.device,
            "threads": cfg.threads if result.device == "cpu" else None,
            "vocab_size": size,
            "trained_words": int((result.vectors != 0).any(axis=1).sum()),
            "nnz": triples.nnz,
            "dim": int(result.vectors.shape[1]),
            "rss_after_imports_mb": round(rss_after_imports, 1),
            "rss_with_tracking_mb": round(rss_with_tracking, 1),
            "rss_footprint_mb": round(rss_footprint, 1),
            "peak_rss_mb": round(peak, 1),
            "peak_above_footprint_mb": round(peak - rss_footprint, 1),
        }
        write_metrics("glove", metrics, tracker)


def main(argv: list[str] | None = None) -> None:
    stage_main(run, argv, description=__doc__)


if __name__ == "__main__":
    main()
