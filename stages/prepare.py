"""Stage `prepare`: tokenize a raw corpus, build its vocabulary, encode it to int32 ids.

    python -m stages.prepare sotu     # data/raw/<dataset>/ -> data/processed/sotu/

Writes data/processed/<corpus>/{train,valid,test}.npy and vocab.tsv, and
metrics/prepare_<corpus>.json (tokens, types, vocab_size, oov_rate, seconds, ...).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.data.encode import PrepareSection, open_configured, prepare_corpus, resolve
from stages._common import load_params, section, stage_main, stage_run, write_metrics

RAW_DIR = Path("data/raw")
PROCESSED_DIR = Path("data/processed")


def run(args: argparse.Namespace) -> None:
    params = load_params()
    prep = section(params, "prepare", PrepareSection)
    cfg, settings = resolve(prep, args.corpus)
    # Files are listed (missing folder -> DataError) before the MLflow run opens.
    corpus = open_configured(prep, args.corpus, RAW_DIR)
    with stage_run(f"prepare@{args.corpus}", cfg, settings) as tracker:
        tracker.set_tags({"corpus": args.corpus, "dataset": cfg.dataset})
        result = prepare_corpus(corpus, settings, PROCESSED_DIR / args.corpus)
        metrics = result.metrics()
        metrics["files"] = len(corpus.files)
        write_metrics(f"prepare_{args.corpus}", metrics, tracker)
        tracker.log_artifact(PROCESSED_DIR / args.corpus / "vocab.tsv", "vocab")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", help="key under prepare.corpora (sotu, brown, shakespeare, ...)")


def main(argv: list[str] | None = None) -> None:
    stage_main(run, argv, description=__doc__, add_arguments=_add_arguments)


if __name__ == "__main__":
    main()
