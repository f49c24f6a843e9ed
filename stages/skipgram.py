"""Stage skipgram: train word2vec (skip-gram / CBOW with NS, HS or full softmax).

Reads ``data/processed/<corpus>/{train.npy,vocab.tsv}``; writes the embeddings folder
``data/processed/embeddings/sgns/`` (``vectors.npy`` + ``vocab.tsv``, row i = vocab id i)
and ``metrics/skipgram.json``; per-epoch loss and speed go to MLflow; a checkpoint per
epoch in ``data/interim/skipgram/`` lets an interrupted run resume.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.core.atomic import atomic_dir, load_npy
from pipeline.core.errors import DataError
from pipeline.data.vocab import Vocabulary
from pipeline.word2vec.train import SkipGramConfig, to_embeddings, train_word2vec
from stages._common import load_params, section, stage_main, stage_run, write_metrics

PROCESSED = Path("data/processed")
OUTPUT = PROCESSED / "embeddings" / "sgns"
CHECKPOINTS = Path("data/interim/skipgram")


def _load_ids(path: Path):
    if not path.exists():
        raise DataError(f"{path}: not found (run the prepare stage first)")
    try:
        return load_npy(path)
    except ValueError as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from exc


def run(args: argparse.Namespace) -> None:
    params = load_params()
    cfg = section(params, "skipgram", SkipGramConfig)
    folder = PROCESSED / cfg.corpus
    vocab_path = folder / "vocab.tsv"
    if not vocab_path.exists():
        raise DataError(f"{vocab_path}: not found (run the prepare stage first)")
    vocab = Vocabulary.load_tsv(vocab_path)
    ids = _load_ids(folder / "train.npy")
    with stage_run("skipgram", cfg) as tracker:

        def on_epoch(stats: dict) -> None:
            tracker.log_metrics(
                {f"epoch_{k}": v for k, v in stats.items() if k != "epoch"}, step=stats["epoch"]
            )

        result = train_word2vec(
            ids, len(vocab), cfg, checkpoint_dir=CHECKPOINTS, callback=on_epoch, progress=True
        )
        emb = to_embeddings(result, vocab)
        with atomic_dir(OUTPUT) as tmp:
            emb.save(tmp)
        metrics = {"corpus": cfg.corpus, **result.metrics()}
        write_metrics("skipgram", metrics, tracker)


def main(argv: list[str] | None = None) -> None:
    stage_main(run, argv, description=__doc__)


if __name__ == "__main__":
    main()
