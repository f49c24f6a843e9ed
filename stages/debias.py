"""Stage `debias`: hard-debias one embedding (Bolukbasi et al. 2016), measure bias and
quality before and after.

    python -m stages.debias glove   # data/processed/embeddings/glove -> glove_debiased

Writes data/processed/embeddings/<name>_debiased/ (unit-length rows), reports/debias/<name>/
(report.md, projections.png) and metrics/debias_<name>.json (direct bias, WEAT, analogy
and similarity scores, before and after).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from pipeline.core.atomic import atomic_dir
from pipeline.core.errors import ConfigError, DataError
from pipeline.debias.hard import (
    DebiasConfig,
    bias_direction,
    debias_record,
    hard_debias,
    load_axis,
    use_lowercase,
)
from pipeline.debias.metrics import before_after, bias_summary, parse_weat_tests, render_report
from pipeline.debias.plot import plot_debias
from pipeline.embeddings.vectors import Embeddings
from stages._common import load_params, section, stage_main, stage_run, write_metrics

EMBEDDINGS_DIR = Path("data/processed/embeddings")
REPORTS_DIR = Path("reports/debias")


def _weat_tests(cfg: DebiasConfig, wanted: dict[str, int], lower: bool) -> dict:
    try:
        tests = parse_weat_tests(
            json.loads(Path(cfg.weat_file).read_text(encoding="utf-8")), cfg.weat_file
        )
    except (OSError, ValueError) as exc:
        raise DataError(f"{cfg.weat_file}: cannot read ({exc})") from exc
    out = {}
    for name, i in wanted.items():
        if not 0 <= i < len(tests):
            raise ConfigError(
                f"debias.axes.{cfg.axis}.weat_tests.{name}: no test {i} in {cfg.weat_file}"
            )
        out[name] = tests[i].lower() if lower else tests[i]
    return out


def _evaluator(params: dict, cfg: DebiasConfig):
    """emb -> scalar evaluate scores, with the `evaluate` section's settings (or None)."""
    if not cfg.evaluate:
        return None
    from pipeline.evaluation.intrinsic import EvaluateConfig, evaluate_embeddings

    ev = section(params, "evaluate", EvaluateConfig)
    # Only what the debias metrics report: the headline analogy method, no MSR.
    settings = dataclasses.replace(ev.settings(), methods=ev.methods[:1], msr_file=None)

    def score(emb: Embeddings) -> dict:
        res = evaluate_embeddings(emb, Path(ev.benchmark_dir), settings)
        return {k: v for k, v in res.items() if not isinstance(v, dict)}

    return score


def run(args: argparse.Namespace) -> None:
    params = load_params()
    cfg = section(params, "debias", DebiasConfig)
    if cfg.axis not in cfg.axes:
        raise ConfigError(
            f"debias.axis: {cfg.axis!r} is not one of debias.axes ({', '.join(cfg.axes)})"
        )
    name = args.embedding
    emb = Embeddings.load(EMBEDDINGS_DIR / name)
    lower = use_lowercase(emb.words, cfg.case)
    axis = load_axis(cfg.axis, cfg.axes[cfg.axis], lower=lower)
    tests = _weat_tests(cfg, axis.weat_tests, lower)
    evaluate = _evaluator(params, cfg)
    t0 = time.perf_counter()
    with stage_run(f"debias@{name}", cfg) as tracker:
        tracker.set_tags({"embedding": name, "axis": cfg.axis})
        direction = bias_direction(emb, axis.definitional_pairs, cfg.method, cfg.n_components)
        other = bias_direction(
            emb, axis.definitional_pairs, "mean" if cfg.method == "pca" else "pca"
        )
        result = hard_debias(
            emb, direction.vector, axis.specific, axis.equalize_pairs,
            min_gap=cfg.equalize_min_gap,
        )  # fmt: skip
        debiased = result.embeddings
        kw = dict(
            ends=axis.ends, specific=axis.specific, c=cfg.direct_bias_c, top_k=cfg.top_k,
            weat_permutations=cfg.weat_permutations, weat_max_exact=cfg.weat_max_exact,
            seed=cfg.seed, analogy_topn=cfg.analogies.topn, analogy_delta=cfg.analogies.delta,
            analogy_max_words=cfg.analogies.max_words,
        )  # fmt: skip
        g = direction.vector
        metrics = {
            "embedding": name,
            "axis": cfg.axis,
            "method": cfg.method,
            "lowercased_word_lists": lower,
            "direct_bias_c": cfg.direct_bias_c,
            **debias_record(emb, result, direction, axis, other),
            **before_after(
                bias_summary(emb, g, axis.neutral_words, tests, **kw),
                bias_summary(debiased, g, axis.neutral_words, tests, **kw),
            ),
        }
        if evaluate is not None:
            scores = {"before": evaluate(emb), "after": evaluate(debiased)}
            for when, s in scores.items():
                metrics[f"evaluate_{when}"] = s
                for key in ("analogy_total", "ws353", "simlex"):
                    metrics[f"{key}_{when}"] = s.get(key)
        metrics["seconds"] = time.perf_counter() - t0
        with atomic_dir(EMBEDDINGS_DIR / f"{name}_debiased") as out:
            debiased.save(out)
        with atomic_dir(REPORTS_DIR / name) as rep:
            plot_debias(
                rep / "projections.png", emb, debiased, g, axis.neutral_words,
                reference_words=[w for p in axis.definitional_pairs for w in p],
                ends=axis.ends, title=f"{name}: hard debiasing along {' - '.join(axis.ends)}",
            )  # fmt: skip
            (rep / "report.md").write_text(
                render_report(metrics, f"Debiasing `{name}`"), encoding="utf-8"
            )
        write_metrics(f"debias_{name}", metrics, tracker)
        tracker.log_artifact(REPORTS_DIR / name, "report")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "embedding", help="folder under data/processed/embeddings (glove, sgns, ...)"
    )


def main(argv: list[str] | None = None) -> None:
    stage_main(run, argv, description=__doc__, add_arguments=_add_arguments)


if __name__ == "__main__":
    main()
