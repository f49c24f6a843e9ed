"""Stage lab_lm_agreement: the Brown word LM on the agreement test set.

Reads each test prefix of lab_agreement (``the <noun> <filler>``) after an ``<eos>`` and
compares log P(were) with log P(was) at the verb position: correct when the plural noun
makes ``were`` likelier and the singular ``was``. Writes
``reports/lab/lm_agreement/table.md`` (accuracy per distance bucket),
``accuracy_vs_distance.png`` and ``metrics/lab_lm_agreement.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.core.atomic import atomic_dir
from pipeline.core.errors import DataError
from pipeline.lab.agreement import AgreementStudy, LMAgreementConfig
from stages._common import load_params, lookup, section, stage_main, stage_run, write_metrics

REPORTS = Path("reports/lab/lm_agreement")


def run(args) -> None:
    params = load_params()
    study = section(params, "lab.agreement", AgreementStudy)
    cfg = section(params, "lab.lm_agreement", LMAgreementConfig)
    start = time.perf_counter()
    with stage_run("lab_lm_agreement", study, cfg) as tracker:
        import numpy as np
        import torch

        from pipeline.lab import agreement as agr
        from pipeline.lab.plots import markdown_table, plot_curves
        from pipeline.lab.scoring import verb_preference
        from pipeline.seq.lm import load_language_model

        if lookup(params, "lab.num_threads"):
            torch.set_num_threads(lookup(params, "lab.num_threads"))
        tokens, _, test = agr.load_datasets(study)
        model, lm_tokens, _ = load_language_model(cfg.model_dir)
        if list(lm_tokens) != list(tokens):
            raise DataError(f"{cfg.model_dir}/vocab.tsv: not the vocabulary of {study.corpus_dir}")
        index = {t: i for i, t in enumerate(lm_tokens)}
        pref = verb_preference(model, test.prefixes, index["was"], index["were"], index["<eos>"])
        correct = (pref > 0) == (test.labels == 1)
        buckets = agr.bucket_accuracy(correct, test.distances, study.buckets)
        dists = np.unique(test.distances)
        by_d = agr.accuracy_by_distance(correct, test.distances)
        plural = test.labels == 1
        with atomic_dir(REPORTS) as rep:
            rows = [["word LM", *buckets.values(), float(correct.mean())]]
            (rep / "table.md").write_text(
                "# Word LM: P(were) vs P(was) at the verb, by subject-verb distance\n\n"
                + markdown_table(["model", *buckets, "all"], rows)
                + f"\nPrefers `were` on {np.mean(pref > 0):.1%} of the prefixes "
                f"({np.mean(pref[plural] > 0):.1%} after a plural subject, "
                f"{np.mean(pref[~plural] > 0):.1%} after a singular one).\n",
                encoding="utf-8",
            )
            plot_curves({"word LM": (dists, [by_d[d] for d in dists], None)},
                        rep / "accuracy_vs_distance.png", "word LM: was/were agreement vs distance",
                        "distance d (words)", "accuracy")  # fmt: skip
        metrics = {
            "accuracy": float(correct.mean()),
            **{f"acc_{k}": v for k, v in buckets.items()},
            "prefers_were": float(np.mean(pref > 0)),
            "test_examples": len(test),
            "seconds": time.perf_counter() - start,
        }
        write_metrics("lab_lm_agreement", metrics, tracker)
    print((REPORTS / "table.md").read_text(encoding="utf-8"))


def main(argv=None) -> None:
    stage_main(run, argv, description=__doc__)


if __name__ == "__main__":
    main()
