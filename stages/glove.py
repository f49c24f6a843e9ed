"""Stage glove: train GloVe vectors on the co-occurrence matrix of a corpus.

Reads ``data/processed/<cooccur.corpus>/{cooccur.npz,vocab.tsv}``; writes
``data/processed/embeddings/glove/`` (``vectors.npy`` + ``vocab.tsv``, row i = vocab id i,
zero rows for the specials) and ``metrics/glove.json``. Checkpoints go to
``glove.checkpoint_dir`` (``data/interim/glove``): a killed run, started again, resumes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pipeline.core.atomic import atomic_dir
from pipeline.core.errors import DataError
from pipeline.data.vocab import Vocabulary
from pipeline.embeddings.vectors import Embeddings
from pipeline.glove.cooccur import load_cooccur
from pipeline.glove.train import GloveConfig, train_glove
from stages._common import load_params, lookup, section, stage_main, stage_run, write_metrics

PROCESSED = Path("data/processed")
OUTPUT = PROCESSED / "embeddings" / "glove"


def run(args: argparse.Namespace) -> None:
    params = load_params()
    cfg = section(params, "glove", GloveConfig)
    corpus = lookup(params, "cooccur.corpus")
    folder = PROCESSED / str(corpus)
    vocab = Vocabulary.load_tsv(folder / "vocab.tsv")
    rows, cols, values, size = load_cooccur(folder / "cooccur.npz")
    if size != len(vocab):
        raise DataError(
            f"{folder / 'cooccur.npz'}: matrix is {size} x {size} but {folder / 'vocab.tsv'} "
            f"has {len(vocab)} tokens (rerun the cooccur stage)"
        )
    with stage_run("glove", cfg) as tracker:
        tracker.set_tags({"corpus": corpus})

        def on_epoch_end(epoch: int, loss: float) -> None:
            tracker.log_metrics({"loss": loss}, step=epoch)

        t0 = time.perf_counter()
        result = train_glove(rows, cols, values, size, cfg, on_epoch_end=on_epoch_end)
        seconds = time.perf_counter() - t0
        emb = Embeddings(vocab.tokens, result.vectors, vocab.counts)
        with atomic_dir(OUTPUT) as tmp:
            emb.save(tmp)
        per_epoch = result.seconds_per_epoch
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
            "nnz": int(rows.size),
            "dim": int(result.vectors.shape[1]),
        }
        write_metrics("glove", metrics, tracker)


def main(argv: list[str] | None = None) -> None:
    stage_main(run, argv, description=__doc__)


if __name__ == "__main__":
    main()
