"""Score sentences with a trained language model: log-probability and perplexity.

    python -m stages.score_lm --level word "the jury said" "jury the said"
    wordpipe-score --model-dir data/processed/models/lm_char "To be, or not to be"

Prints one row per sentence (natural-log probability of the sentence followed by <eos>,
the number of predicted tokens, perplexity per token, words unknown to the vocabulary)
and the number of the most likely sentence: of two transcriptions, pick that one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.core.errors import DataError
from stages._common import stage_main


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("sentences", nargs="+", help="one or more sentences (quote each)")
    parser.add_argument(
        "--level",
        choices=["word", "char"],
        default=None,
        help="model level; picks data/processed/models/lm_<level> (default word)",
    )
    parser.add_argument(
        "--model-dir",
        default=None,
        help="folder written by train_lm (model.ckpt, vocab.tsv, hparams.json)",
    )


def run(args: argparse.Namespace) -> None:
    from pipeline.seq.lm import load_language_model, score_texts

    folder = Path(args.model_dir or f"data/processed/models/lm_{args.level or 'word'}")
    model, tokens, level = load_language_model(folder)
    if args.level and args.level != level:
        raise DataError(f"{folder}: a {level}-level model, but --level {args.level} was given")
    rows = score_texts(model, tokens, args.sentences, level)
    print(f"{'#':>2}  {'logprob':>10}  {'tokens':>6}  {'ppl':>10}  {'unk':>3}  sentence")
    for i, r in enumerate(rows, start=1):
        print(
            f"{i:>2}  {r['logprob']:>10.3f}  {r['tokens']:>6}  {r['ppl']:>10.2f}  "
            f"{r['unknown']:>3}  {r['text']}"
        )
    best = max(range(len(rows)), key=lambda i: rows[i]["logprob"]) + 1
    print(f"best: {best} (highest log-probability)")


def main(argv: list[str] | None = None) -> None:
    stage_main(run, argv, description=__doc__, add_arguments=_add_arguments)


if __name__ == "__main__":
    main()
