"""Stage `sentiment_compare`: where word order matters, recurrent vs averaging model.

    python -m stages.sentiment_compare

Reads reports/sentiment/{avg,rnn}/predictions.tsv (written by train_sentiment) and writes
reports/sentiment/word_order.md: test sentences with a negation or contrast cue ("not
good", "lacking in good ...") that the recurrent model gets right and the averaging
model gets wrong, with both models' accuracy on such sentences; the numbers go to
metrics/sentiment_compare.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pipeline.core.atomic import atomic_open
from pipeline.core.errors import DataError
from stages._common import stage_main, stage_run, write_metrics

REPORTS = Path("reports/sentiment")


def run(args: argparse.Namespace) -> None:
    from pipeline.seq.sentiment import read_predictions, word_order_report

    avg = read_predictions(REPORTS / "avg" / "predictions.tsv")
    rnn = read_predictions(REPORTS / "rnn" / "predictions.tsv")
    if not (np.array_equal(avg["index"], rnn["index"]) and avg["text"] == rnn["text"]):
        raise DataError(
            f"{REPORTS}/avg/predictions.tsv and {REPORTS}/rnn/predictions.tsv list different "
            "test sentences (rerun both train_sentiment stages with the same split)"
        )
    with stage_run("sentiment_compare") as tracker:
        report, numbers = word_order_report(avg["text"], avg["label"], avg["pred"], rnn["pred"])
        with atomic_open(REPORTS / "word_order.md") as fh:
            fh.write(report)
        tracker.log_text(report, "word_order.md")
        write_metrics("sentiment_compare", numbers, tracker)


def main(argv: list[str] | None = None) -> None:
    stage_main(run, argv, description=__doc__)


if __name__ == "__main__":
    main()
