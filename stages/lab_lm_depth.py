"""Stage lab_lm_depth: the word language model with 1, 2 and 3 layers, side by side.

Settings are ``lm.common`` + ``lm.levels.word`` with the layer count, slices and epochs
of ``lab.lm_depth``. Writes ``reports/lab/lm_depth/report.md`` (validation perplexity,
parameters, time per epoch) and ``metrics/lab_lm_depth.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.core.atomic import atomic_dir, load_npy
from pipeline.data.vocab import Vocabulary
from pipeline.lab.depth import DepthStudy
from stages._common import load_params, lookup, section, stage_main, stage_run, write_metrics

REPORTS = Path("reports/lab/lm_depth")


def run(args) -> None:
    params = load_params()
    study = section(params, "lab.lm_depth", DepthStudy)
    start = time.perf_counter()
    with stage_run("lab_lm_depth", study) as tracker:
        from pipeline.lab.depth import depth_configs
        from pipeline.lab.plots import markdown_table
        from pipeline.seq import lm

        configs = depth_configs(
            lookup(params, "lm.common"), lookup(params, "lm.levels.word"), study
        )
        corpus = Path("data/processed") / next(iter(configs.values())).corpus
        vocab = Vocabulary.load_tsv(corpus / "vocab.tsv")
        streams = {
            s: lm.check_stream(load_npy(corpus / f"{s}.npy"), len(vocab), str(corpus / f"{s}.npy"))
            for s in ("train", "valid")
        }
        rows, metrics = [], {}
        for n, cfg in configs.items():
            model, info = lm.train_language_model(
                cfg, streams["train"][: cfg.max_train_tokens], streams["valid"][: cfg.max_eval_tokens],
                len(vocab), Path("data/interim/lab_lm_depth") / f"layers{n}",
            )  # fmt: skip
            ev = lm.evaluate_stream(
                model, streams["valid"][: cfg.max_eval_tokens], cfg.eval_batch_size, cfg.bptt
            )
            rows.append([n, ev["ppl"], info["parameters"], info["time_per_epoch_s"]])
            metrics[f"ppl_layers{n}"] = ev["ppl"]
            metrics[f"time_per_epoch_layers{n}"] = info["time_per_epoch_s"]
            metrics[f"parameters_layers{n}"] = info["parameters"]
        metrics["ppl_deepest"] = metrics[f"ppl_layers{max(configs)}"]
        with atomic_dir(REPORTS) as rep:
            (rep / "report.md").write_text(
                "# Word LM with stacked layers\n\n"
                f"{study.max_train_tokens} training tokens, {study.max_epochs} epoch(s); "
                f"perplexity on the first {study.max_eval_tokens} validation tokens.\n\n"
                + markdown_table(["layers", "valid perplexity", "parameters", "s/epoch"], rows),
                encoding="utf-8",
            )
        metrics["seconds"] = time.perf_counter() - start
        write_metrics("lab_lm_depth", metrics, tracker)
    print((REPORTS / "report.md").read_text(encoding="utf-8"))


def main(argv=None) -> None:
    stage_main(run, argv, description=__doc__)


if __name__ == "__main__":
    main()
