"""The study's report: pandas tables and PNGs from the experiments' metrics.

Input: the points (:mod:`pipeline.study.grid`) and, per experiment name, its params
(flat ``{"sentiment.trainer.seed": 0, ...}``) and metrics (``{file: {key: value}}``),
as :func:`records_from_exp_show` reads them from ``dvc exp show --json``.

The axis named ``seed`` is the replicate axis: scores are averaged over it (mean and
sample standard deviation). Runs of one task with the same setting and the same value
of the task's seed key are one run (a point that only changes another task's seed
reuses the run from DVC's run-cache), counted once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core.tracking import flatten
from pipeline.study.grid import Point, Task

SEED_AXIS = "seed"


# ---------------------------------------------------------------- reading dvc exp show
def records_from_exp_show(doc: Any) -> dict[str, dict[str, Any]]:
    """``{experiment name: {"rev", "params", "metrics"}}`` from ``dvc exp show --json``.

    Walks the document for every entry with a ``name`` and a ``data`` holding metrics
    (the format nests experiments under their baseline); params are flattened with '.'.
    """
    out: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, Mapping):
            return
        data = node.get("data")
        if node.get("name") and isinstance(data, Mapping) and data.get("metrics") is not None:
            params: dict[str, Any] = {}
            for file_params in (data.get("params") or {}).values():
                params.update(flatten((file_params or {}).get("data") or {}))
            metrics = {
                path: (m or {}).get("data") or {} for path, m in (data.get("metrics") or {}).items()
            }
            out.setdefault(
                node["name"], {"rev": node.get("rev"), "params": params, "metrics": metrics}
            )
        for value in node.values():
            if isinstance(value, list | Mapping):
                walk(value)

    walk(doc)
    return out


# ---------------------------------------------------------------- long table
def long_table(
    points: Sequence[Point],
    records: Mapping[str, Mapping[str, Any]],
    tasks: Mapping[str, Task],
    block_tasks: Mapping[str, Sequence[str]],
    runs: Mapping[str, str] | None = None,
    probe_score: str | None = None,
) -> pd.DataFrame:
    """One row per (point, task) with a score: labels, seed, score, probe, exp, run."""
    rows = []
    for p in points:
        rec = records.get(p.name)
        if rec is None:
            continue
        for t in block_tasks.get(p.block, []):
            task = tasks[t]
            m = _metrics_file(rec["metrics"], task.file)
            if m is None or task.score not in m:
                continue
            row = {
                "block": p.block,
                **{k: v for k, v in p.labels.items() if k != SEED_AXIS},
                "task": t,
                "seed": rec["params"].get(task.seed),
                "score": float(m[task.score]),
                "probe": float(m[probe_score]) if probe_score and probe_score in m else np.nan,
                "experiment": p.name,
                "mlflow_run": (runs or {}).get(p.name, ""),
            }
            rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    keys = [c for c in df.columns if c not in ("score", "probe", "experiment", "mlflow_run")]
    # the same run restored in two points (same setting and seed of this task): once
    return df.drop_duplicates(subset=keys, keep="first").reset_index(drop=True)


def _metrics_file(metrics: Mapping[str, Any], file: str) -> Mapping[str, Any] | None:
    for path, data in metrics.items():
        if Path(path).as_posix() == Path(file).as_posix() or path.endswith(file):
            return data
    return None


def label_axes(points: Sequence[Point], block: str) -> list[str]:
    """The non-replicate axes of a block, in grid order."""
    for p in points:
        if p.block == block:
            return [a for a in p.labels if a != SEED_AXIS]
    return []


def summarise(df: pd.DataFrame, by: list[str], value: str = "score") -> pd.DataFrame:
    """Mean, standard deviation (ddof 1; 0 for one run), n, experiments and runs per group."""
    g = df.groupby(by, sort=False, dropna=False)
    out = g[value].agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    out["std"] = out["std"].fillna(0.0)
    out["experiments"] = g["experiment"].agg(lambda s: " ".join(s))
    out["mlflow_runs"] = g["mlflow_run"].agg(lambda s: " ".join(r[:8] for r in s if r))
    return out.reset_index()


def fmt(mean: float, std: float, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of the frame's columns (no index)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        cells = []
        for v in row:
            if isinstance(v, float):
                cells.append("" if math.isnan(v) else f"{v:.4g}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- the sections
def task_tables(df: pd.DataFrame, points: Sequence[Point], tasks: Mapping[str, Task]):
    """Per (block, task): the summary by the block's axes (rows name experiments and runs)."""
    for (block, task), part in df.groupby(["block", "task"], sort=False):
        axes = label_axes(points, block)
        yield block, tasks[task], axes, summarise(part, axes)


def pivot(summary: pd.DataFrame, axes: list[str], digits: int) -> pd.DataFrame | None:
    """``mean ± std`` with the first axis as rows and the second as columns (2 axes only)."""
    if len(axes) != 2:
        return None
    cells = summary.assign(
        cell=[fmt(m, s, digits) for m, s in zip(summary["mean"], summary["std"], strict=True)]
    )
    table = cells.pivot(index=axes[0], columns=axes[1], values="cell")
    table = table.reindex(
        index=list(dict.fromkeys(summary[axes[0]])), columns=list(dict.fromkeys(summary[axes[1]]))
    )
    return table.reset_index().fillna("")


def debias_cost(df: pd.DataFrame, points: Sequence[Point], axis: str = "embedding") -> pd.DataFrame:
    """Debiased minus original score, paired by seed and setting: mean ± std over seeds."""
    rows = []
    for (block, task), part in df.groupby(["block", "task"], sort=False):
        axes = label_axes(points, block)
        if axis not in axes:
            continue
        others = [a for a in axes if a != axis]
        names = list(dict.fromkeys(part[axis]))
        for emb in names:
            deb = f"{emb}_debiased"
            if deb not in names:
                continue
            a = part[part[axis] == emb].set_index([*others, "seed"])["score"]
            b = part[part[axis] == deb].set_index([*others, "seed"])["score"]
            diff = (b - a).dropna()
            if diff.empty:
                continue
            groups = diff.groupby(level=list(range(len(others)))) if others else [((), diff)]
            for key, d in groups:
                key = key if isinstance(key, tuple) else (key,)
                rows.append(
                    {
                        "task": task,
                        "embedding": emb,
                        **dict(zip(others, key, strict=True)),
                        "original": float(a.loc[d.index].mean()),
                        "debiased": float(b.loc[d.index].mean()),
                        "difference": float(d.mean()),
                        "std": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
                        "n": len(d),
                    }
                )
    return pd.DataFrame(rows)


def intrinsic_table(
    points: Sequence[Point],
    records: Mapping[str, Mapping[str, Any]],
    block: str,
    file: str,
    scores: Sequence[str],
) -> pd.DataFrame:
    """The block's intrinsic scores per setting (the same vectors for every seed)."""
    axes = label_axes(points, block)
    rows = []
    for p in points:
        rec = records.get(p.name)
        if p.block != block or rec is None:
            continue
        m = _metrics_file(rec["metrics"], file) or {}
        rows.append({**{a: p.labels[a] for a in axes}, **{s: m.get(s, np.nan) for s in scores}})
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).groupby(axes, sort=False).first().reset_index()


def correlation(intrinsic: pd.DataFrame, downstream: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Spearman correlation (rank, then Pearson) of each intrinsic score with each
    downstream mean, over the settings of the block."""
    merged = intrinsic.merge(downstream, on=axes)
    scores = [c for c in intrinsic.columns if c not in axes]
    tasks = [c for c in downstream.columns if c not in axes]
    ranks = merged[scores + tasks].astype(float).rank()
    corr = ranks.corr().loc[scores, tasks]
    corr.insert(0, "intrinsic", corr.index)
    return corr.reset_index(drop=True)


def bar_plot(
    summary: pd.DataFrame, axes: list[str], title: str, ylabel: str, path: str | os.PathLike
) -> Path:
    """Mean with std error bars: first axis on x, second (if any) as bar groups."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(axes) >= 2:
        mean = summary.pivot_table(index=axes[0], columns=axes[1], values="mean", sort=False)
        std = summary.pivot_table(index=axes[0], columns=axes[1], values="std", sort=False)
    else:
        mean = summary.set_index(axes)[["mean"]]
        std = summary.set_index(axes)[["std"]].rename(columns={"std": "mean"})
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(mean) + 2), 4))
    mean.plot.bar(yerr=std, ax=ax, capsize=3, rot=30, legend=False)
    if len(axes) >= 2:  # beside the axes: inside them it hides bars
        ax.legend(title=axes[1], loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(axes[0])
    lo = float(np.nanmin((mean - std).to_numpy()))
    hi = float(np.nanmax((mean + std).to_numpy()))
    pad = 0.1 * (hi - lo if hi > lo else 1.0)
    ax.set_ylim(lo - pad, hi + pad)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _digits(task: Task) -> int:
    return 1 if "f1" in task.score.lower() else 3


def build(
    points: Sequence[Point],
    skipped: Iterable[Point],
    records: Mapping[str, Mapping[str, Any]],
    tasks: Mapping[str, Task],
    study: Mapping[str, Any],
    out_dir: str | os.PathLike,
    runs: Mapping[str, str] | None = None,
    header: Sequence[str] = (),
) -> tuple[str, pd.DataFrame]:
    """Write ``embeddings.md``, ``results.csv`` and PNGs under ``out_dir``; return the
    Markdown text and the long table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = study.get("blocks") or {}
    block_tasks = {b: list((spec or {}).get("tasks") or []) for b, spec in blocks.items()}
    probe_score = study.get("probe_score")
    df = long_table(points, records, tasks, block_tasks, runs, probe_score)
    lines = [f"# Embedding study `{study.get('name', 'study')}`", "", *header, ""]
    missing = [p.name for p in points if p.name not in records]
    lines.append(
        f"{len(points)} experiments in the grid; {len(points) - len(missing)} with results."
    )
    skipped = list(skipped)
    if skipped:
        lines.append(
            f"Skipped (embedding not in the workspace): {len(skipped)} points, "
            + ", ".join(sorted({n for p in skipped for n in p.needs}))
            + "."
        )
    if missing:
        lines.append(f"No results (failed or not run): {', '.join(missing)}.")
    common = study.get("set") or {}
    if common:
        lines += [
            "",
            "Every point overrides: " + ", ".join(f"`{k}={v}`" for k, v in common.items()) + ".",
        ]
    lines.append("")
    if df.empty:
        lines.append("No results yet.")
        text = "\n".join(lines) + "\n"
        (out_dir / "embeddings.md").write_text(text, encoding="utf-8")
        return text, df
    df.to_csv(out_dir / "results.csv", index=False)

    downstream_means: dict[str, pd.DataFrame] = {}
    for block, task, axes, summary in task_tables(df, points, tasks):
        d = _digits(task)
        lines += [f"## {task.label} ({block})", ""]
        table = pivot(summary, axes, d)
        if table is not None:
            lines += [markdown_table(table), ""]
        detail = summary.assign(
            score=[fmt(m, s, d) for m, s in zip(summary["mean"], summary["std"], strict=True)]
        )[[*axes, "score", "n", "experiments", "mlflow_runs"]]
        lines += [markdown_table(detail), ""]
        png = bar_plot(
            summary,
            axes,
            f"{task.label} ({block})",
            task.score,
            out_dir / f"{block}_{task.name}.png",
        )
        lines += [f"![{task.label}]({png.name})", ""]
        means = summary[[*axes, "mean"]].rename(columns={"mean": task.name})
        prev = downstream_means.get(block)
        downstream_means[block] = means if prev is None else prev.merge(means, on=axes, how="outer")

    for block, spec in blocks.items():
        spec = spec or {}
        scores = list(study.get("intrinsic_scores") or [])
        # shown beside the scores, never correlated: how much of a test the vectors cover
        context = [c for c in study.get("intrinsic_context") or [] if c not in scores]
        if not spec.get("intrinsic") or not scores:
            continue
        axes = label_axes(points, block)
        intr = intrinsic_table(points, records, block, spec["intrinsic"], [*scores, *context])
        if intr.empty:
            continue
        lines += [f"## Intrinsic and downstream scores ({block})", ""]
        if context:
            lines += [
                f"{', '.join(f'`{c}`' for c in context)}: the share of the test the vectors "
                "cover (a score over few covered questions is not comparable); "
                "left out of the correlation.",
                "",
            ]
        down = downstream_means.get(block)
        merged = intr if down is None else intr.merge(down, on=axes, how="left")
        lines += [markdown_table(merged), ""]
        if down is not None and len(merged) >= 3:
            lines += [
                f"Spearman correlation over the {len(merged)} settings of `{block}` "
                "(few points: read it as a tendency):",
                "",
                markdown_table(correlation(intr.drop(columns=context), down, axes)),
                "",
            ]

    if probe_score and df["probe"].notna().any():
        lines += [
            "## Word-order probe",
            "",
            f"`{probe_score}` (mean ± std over seeds) per model:",
            "",
        ]
        for block, part in df[df["probe"].notna()].groupby("block", sort=False):
            axes = label_axes(points, block)
            s = summarise(part, [*axes, "task"], "probe")
            s["probe"] = [fmt(m, x) for m, x in zip(s["mean"], s["std"], strict=True)]
            wide = s.pivot(index=axes, columns="task", values="probe").reset_index()
            lines += [f"### {block}", "", markdown_table(wide), ""]

    cost = debias_cost(df, points)
    if not cost.empty:
        lines += [
            "## Debiasing cost",
            "",
            "Debiased minus original score, paired by seed (mean ± std of the differences):",
            "",
            markdown_table(cost),
            "",
        ]
    text = "\n".join(lines) + "\n"
    (out_dir / "embeddings.md").write_text(text, encoding="utf-8")
    return text, df
