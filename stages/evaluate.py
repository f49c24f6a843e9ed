"""Stage evaluate: score one embedding artifact (analogies, similarity, neighbours, t-SNE).

    python -m stages.evaluate <name>

Reads ``data/processed/embeddings/<name>/`` and the benchmark folder of the ``evaluate``
config; writes ``metrics/evaluate_<name>.json`` and ``reports/evaluate/<name>/``
(``neighbours.txt``, ``tsne.png``, ``analogy_sections.csv``).
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import time
from pathlib import Path

from pipeline.core.atomic import atomic_open
from pipeline.core.errors import ConfigError
from pipeline.embeddings.vectors import Embeddings
from pipeline.evaluation.intrinsic import (
    EvaluateConfig,
    analogy_section_rows,
    evaluate_embeddings,
    neighbours_report,
)
from pipeline.evaluation.tsne_plot import tsne_plot
from stages._common import load_params, section, stage_main, stage_run, write_metrics

EMBEDDINGS = Path("data/processed/embeddings")
REPORTS = Path("reports/evaluate")


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _write_sections_csv(path: Path, rows: list[dict], methods: tuple[str, ...]) -> None:
    fields = ["section", "questions", "covered", *methods]
    with atomic_open(path, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            # accuracies of sections without covered questions are empty cells
            writer.writerow({k: ("" if _missing(row.get(k)) else row[k]) for k in fields})


def run(args: argparse.Namespace) -> None:
    params = load_params()
    cfg = section(params, "evaluate", EvaluateConfig)
    name = args.name
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(f"evaluate: bad embedding name {name!r} (a folder name is expected)")
    t0 = time.perf_counter()
    emb = Embeddings.load(EMBEDDINGS / name)
    reports = REPORTS / name
    with stage_run("evaluate", cfg) as tracker:
        tracker.set_tags({"embedding": name})
        tracker.log_params({"embedding": name, "vocab_size": len(emb), "dim": emb.dim})
        metrics = evaluate_embeddings(
            emb, cfg.benchmark_dir, cfg.settings(), name=str(EMBEDDINGS / name)
        )

        reports.mkdir(parents=True, exist_ok=True)
        text = neighbours_report(emb, cfg.probe_words, cfg.neighbours_topn)
        with atomic_open(reports / "neighbours.txt") as fh:
            fh.write(text)
        _write_sections_csv(
            reports / "analogy_sections.csv", analogy_section_rows(metrics), cfg.methods
        )
        t_plot = time.perf_counter()
        tsne_plot(
            emb,
            reports / "tsne.png",
            n_words=cfg.tsne_words,
            probe_words=cfg.probe_words,
            seed=cfg.seed,
            perplexity=cfg.tsne_perplexity,
            title=f"{name}: t-SNE of the {cfg.tsne_words} most frequent words (probe words in red)",
        )
        metrics["tsne_seconds"] = time.perf_counter() - t_plot
        metrics["seconds"] = time.perf_counter() - t0
        write_metrics(f"evaluate_{name}", {"embedding": name, **metrics}, tracker)
        for fname in ("tsne.png", "neighbours.txt", "analogy_sections.csv"):
            tracker.log_artifact(reports / fname, "reports")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="embedding folder under data/processed/embeddings/")


def main(argv: list[str] | None = None) -> None:
    stage_main(run, argv, description=__doc__, add_arguments=_arguments)


if __name__ == "__main__":
    main()
