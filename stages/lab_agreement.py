"""Stage lab_agreement: subject-verb agreement across distance, cell by cell.

Trains plain RNN, GRU and LSTM classifiers (1 and 2 layers, several seeds) to predict
was/were after ``the <noun> <real text of d-1 words>`` and writes
``reports/lab/agreement/`` (table.md: accuracy per distance bucket per cell,
accuracy_vs_distance.png, per_distance.csv), the seed-0 models in
``data/processed/lab/agreement/`` (for lab_gradients) and ``metrics/lab_agreement.json``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pipeline.core.atomic import atomic_dir, atomic_open, write_json
from pipeline.lab.agreement import AgreementStudy
from stages._common import load_params, lookup, section, stage_main, stage_run, write_metrics

MODELS = Path("data/processed/lab/agreement")
REPORTS = Path("reports/lab/agreement")


def run(args) -> None:
    params = load_params()
    study = section(params, "lab.agreement", AgreementStudy)
    start = time.perf_counter()
    with stage_run("lab_agreement", study) as tracker:
        import numpy as np
        import torch

        from pipeline.lab import agreement as agr
        from pipeline.lab.plots import markdown_table, plot_curves

        if lookup(params, "lab.num_threads"):
            torch.set_num_threads(lookup(params, "lab.num_threads"))
        tokens, train, test = agr.load_datasets(study)

        def progress(name, seed, seconds, acc):
            print(f"{name} seed {seed}: test accuracy {acc:.3f} ({seconds:.1f} s)", file=sys.stderr)

        result = agr.run_study(study, len(tokens), train, test, progress)
        header, rows = agr.study_table(result.correct, test.distances, study.buckets)
        dists = np.unique(test.distances)
        curves = {}
        with atomic_dir(REPORTS) as rep:
            with atomic_open(rep / "per_distance.csv") as fh:
                fh.write("model,seed,distance,accuracy\n")
                for name, runs in result.correct.items():
                    accs = np.array([[r[test.distances == d].mean() for d in dists] for r in runs])
                    curves[name] = (dists, accs.mean(0), accs.std(0))
                    for seed, row in zip(study.seeds, accs, strict=True):
                        fh.writelines(
                            f"{name},{seed},{d},{a:.4f}\n" for d, a in zip(dists, row, strict=True)
                        )
            gap = agr.onehot_lookup_gap(
                result.models[next(iter(result.models))].embedding, [1, 5, 9]
            )
            (rep / "table.md").write_text(
                "# Agreement accuracy by distance (mean ± std over seeds)\n\n"
                f"{len(train)} training and {len(test)} test examples; "
                f"{study.attractor_rate:.0%} carry a noun of the other number in the filler.\n\n"
                + markdown_table(header, rows)
                + f"\nE times a one-hot vector vs the row lookup: max difference {gap:.3g}\n",
                encoding="utf-8",
            )
            plot_curves(curves, rep / "accuracy_vs_distance.png",
                        "was/were accuracy vs subject-verb distance", "distance d (words)",
                        "test accuracy (mean ± std over seeds)")  # fmt: skip
        with atomic_dir(MODELS) as out:
            for name, model in result.models.items():
                torch.save(model.state_dict(), out / f"{name}.pt")
            write_json(
                out / "models.json", {"vocab_size": len(tokens), "models": list(result.models)}
            )
        far = f"{study.buckets[-2]}-{study.buckets[-1]}"
        metrics = {
            "train_examples": len(train),
            "test_examples": len(test),
            "onehot_lookup_max_diff": gap,
        }
        for name, runs in result.correct.items():
            far_acc = [agr.bucket_accuracy(r, test.distances, study.buckets)[far] for r in runs]
            metrics[f"acc_{name}"] = float(runs.mean())
            metrics[f"acc_far_{name}"] = float(np.mean(far_acc))
            metrics[f"seconds_{name}"] = float(np.mean(result.seconds[name]))
        metrics["seconds"] = time.perf_counter() - start
        write_metrics("lab_agreement", metrics, tracker)
    print((REPORTS / "table.md").read_text(encoding="utf-8"))


def main(argv=None) -> None:
    stage_main(run, argv, description=__doc__)


if __name__ == "__main__":
    main()
