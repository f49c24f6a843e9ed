"""Stage lab_gradients: vanishing and exploding gradients, measured.

For each agreement model of lab_agreement (seed 0) and the same architecture untrained,
the norm of d loss(last step) / d h_t against steps back (log scale) and its slope in
decades per step; then a plain RNN with a large recurrent initialisation and learning
rate, with and without gradient clipping. Writes ``reports/lab/gradients/`` (norms.png,
clipping.png, slopes.md) and ``metrics/lab_gradients.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pipeline.core.atomic import atomic_dir
from pipeline.lab.agreement import AgreementStudy
from pipeline.lab.gradients import GradientStudy
from stages._common import load_params, lookup, section, stage_main, stage_run, write_metrics

MODELS = Path("data/processed/lab/agreement")
REPORTS = Path("reports/lab/gradients")


def tail_loss(run: dict) -> float:
    """Mean loss over the last 10% of the steps (one step is noisy)."""
    losses = run["loss"]
    return float(sum(losses[-max(1, len(losses) // 10) :]) / max(1, len(losses) // 10))


def run(args) -> None:
    params = load_params()
    study = section(params, "lab.agreement", AgreementStudy)
    cfg = section(params, "lab.gradients", GradientStudy)
    start = time.perf_counter()
    with stage_run("lab_gradients", study, cfg) as tracker:
        import torch

        from pipeline.lab import agreement as agr
        from pipeline.lab import gradients as grad
        from pipeline.lab.plots import markdown_table, plot_clipping, plot_curves

        if lookup(params, "lab.num_threads"):
            torch.set_num_threads(lookup(params, "lab.num_threads"))
        tokens, train, test = agr.load_datasets(study)
        ids, labels = grad.probe_batch(test, cfg.distance, cfg.probe_examples)
        names = json.loads((MODELS / "models.json").read_text(encoding="utf-8"))["models"]
        t = study.training
        curves, rows, metrics = {}, [], {}
        for name in names:
            cell, layers = name[:-1], int(name[-1])
            torch.manual_seed(0)
            model = agr.AgreementNet(cell, layers, len(tokens), t.embedding_dim, t.hidden_size)
            init = grad.norms_by_steps_back(grad.hidden_state_gradients(model, ids, labels))
            model.load_state_dict(torch.load(MODELS / f"{name}.pt", weights_only=True))
            norms = grad.norms_by_steps_back(grad.hidden_state_gradients(model, ids, labels))
            steps = range(len(norms))
            curves[f"{name} trained"] = (steps, norms, None)
            curves[f"{name} init"] = (steps, init, None)
            slope, slope_init = grad.log_slope(norms), grad.log_slope(init)
            rows.append([name, slope, slope_init, float(norms[-1] / norms[0])])
            metrics[f"slope_{name}"] = slope
            metrics[f"slope_init_{name}"] = slope_init
        runs = {
            label: grad.clipping_run(train, len(tokens), cfg.clipping, clip)
            for label, clip in (("no clipping", False), (f"clip at {cfg.clipping.clip:g}", True))
        }
        noclip, clip = runs.values()
        with atomic_dir(REPORTS) as rep:
            plot_curves({k: v for k, v in curves.items() if k.endswith("trained")},
                        rep / "norms.png", f"||d loss / d h_t||, loss at the last step (d = {cfg.distance})",
                        "steps back from the last step", "gradient norm (geometric mean)", logy=True)  # fmt: skip
            plot_curves({k: v for k, v in curves.items() if k.endswith("init")},
                        rep / "norms_init.png", "the same at initialisation",
                        "steps back from the last step", "gradient norm (geometric mean)", logy=True)  # fmt: skip
            plot_clipping(runs, rep / "clipping.png", cfg.clipping.huge)
            header = [
                "model",
                "slope trained (log10/step)",
                "slope at init",
                f"norm {cfg.distance} steps back / at the last step",
            ]
            clip_rows = [
                [label, r["exploded"], r["max_step"], tail_loss(r), max(r["loss"])]
                for label, r in runs.items()
            ]
            (rep / "slopes.md").write_text(
                "# Gradient norm vs steps back\n\n" + markdown_table(header, rows)
                + f"\n# Plain RNN, recurrent gain {cfg.clipping.recurrent_gain:g}, "
                f"SGD lr {cfg.clipping.lr:g}, {cfg.clipping.steps} steps\n\n"
                + markdown_table(["run", f"steps with gradient norm > {cfg.clipping.huge:g} or non-finite",
                                 "largest update applied", "mean loss, last 10% of steps",
                                 "highest loss"], clip_rows),
                encoding="utf-8",
            )  # fmt: skip
        metrics.update(
            exploded_noclip=noclip["exploded"],
            exploded_clip=clip["exploded"],
            max_update_noclip=noclip["max_step"],
            max_update_clip=clip["max_step"],
            final_loss_noclip=tail_loss(noclip),
            final_loss_clip=tail_loss(clip),
            seconds=time.perf_counter() - start,
        )
        write_metrics("lab_gradients", metrics, tracker)
    print((REPORTS / "slopes.md").read_text(encoding="utf-8"))


def main(argv=None) -> None:
    stage_main(run, argv, description=__doc__)


if __name__ == "__main__":
    main()
