"""Stage `train_sentiment`: rt-polarity sentence sentiment with one model.

    python -m stages.train_sentiment avg    # mean of word embeddings -> linear -> softmax
    python -m stages.train_sentiment rnn    # recurrent encoder + pooled classification head

Reads data/raw/rt_polarity/movieReviewSnippets_GroundTruth.txt and, unless
``sentiment.embedding`` is ``random``, data/processed/embeddings/<embedding>/. Writes
data/processed/models/sentiment_<model>/ (model.ckpt, vocab.tsv, hparams.json),
reports/sentiment/<model>/{predictions,probe}.tsv (probe: the word-order probe built from
``sentiment.probe.lexicon``) and metrics/train_sentiment_<model>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pipeline.core.atomic import atomic_dir, atomic_open, write_json
from pipeline.core.distributed import is_rank_zero
from pipeline.core.errors import ConfigError
from stages._common import load_params, section, stage_main, stage_run, write_metrics

RAW = Path("data/raw/rt_polarity/movieReviewSnippets_GroundTruth.txt")
EMBEDDINGS = Path("data/processed/embeddings")


def run(args: argparse.Namespace) -> None:
    from pipeline.seq import sentiment as sent
    from pipeline.seq.training import export_weights

    cfg = section(load_params(), "sentiment", sent.SentimentConfig)
    if args.model not in cfg.models or args.model not in ("avg", "rnn"):
        raise ConfigError(f"sentiment.models: {args.model!r} is not one of {cfg.models}")
    texts, labels, _ = sent.load_rt_polarity(RAW)
    embeddings = None
    if cfg.embedding != "random":
        from pipeline.embeddings.vectors import Embeddings

        embeddings = Embeddings.load(EMBEDDINGS / cfg.embedding)
    from pipeline.seq.encoder import resolve_embedding_dim

    dim = resolve_embedding_dim(cfg.embedding_dim, embeddings)
    cfg = dataclasses.replace(cfg, embedding_dim=dim)
    if embeddings is not None and embeddings.dim != cfg.embedding_dim:  # before any run
        raise ConfigError(
            f"sentiment.embedding_dim: {cfg.embedding_dim} does not match the dimension "
            f"{embeddings.dim} of {EMBEDDINGS / cfg.embedding}"
        )

    name = f"train_sentiment_{args.model}"
    with stage_run(name, cfg) as tracker:
        result = sent.fit_sentiment(
            args.model,
            cfg,
            texts,
            labels,
            embeddings,
            checkpoint_dir=Path("data/interim") / name,
            logger=tracker.lightning_logger(),
        )
        if not is_rank_zero():  # the other processes of a distributed run only train
            return
        with atomic_open(Path("reports/sentiment") / args.model / "predictions.tsv") as fh:
            fh.write(sent.predictions_tsv(texts, labels, result))
        with atomic_dir(Path("data/processed/models") / f"sentiment_{args.model}") as tmp:
            export_weights(Path("data/interim") / name / "model.ckpt", tmp / "model.ckpt")
            result.vocab.save_tsv(tmp / "vocab.tsv")
            hp = {
                "model": args.model,
                "vocab_size": len(result.vocab),
                "labels": ["negative", "positive"],
                "config": dataclasses.asdict(cfg),
            }
            write_json(tmp / "hparams.json", hp)
        metrics = dict(result.metrics)
        if cfg.probe.lexicon:
            metrics.update(_probe(args.model, cfg, result))
        write_metrics(name, metrics, tracker)


def _probe(model: str, cfg, result) -> dict:
    """Score the word-order probe; its sentences and predictions go to probe.tsv."""
    from pipeline.seq import sentiment as sent
    from pipeline.seq import word_order_probe as probe

    lexicon = probe.read_lexicon(cfg.probe.lexicon)
    counts = dict(zip(result.vocab.tokens, (int(c) for c in result.vocab.counts), strict=True))
    sentences = probe.generate(*probe.polar_words(lexicon, counts, cfg.probe))
    metrics, pred = probe.score(sentences, lambda t: sent.predict_texts(result, t))
    with atomic_open(Path("reports/sentiment") / model / "probe.tsv") as fh:
        fh.write(probe.to_tsv(sentences, pred))
    return metrics


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="avg or rnn (an entry of sentiment.models)")


def main(argv: list[str] | None = None) -> None:
    stage_main(run, argv, description=__doc__, add_arguments=_add_arguments)


if __name__ == "__main__":
    main()
