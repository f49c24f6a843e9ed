"""The lab's pictures (matplotlib ``Agg``, PNG, every label inside its axes) and tables."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.core.atomic import atomic_path


def _figure(ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 4.5), squeeze=False)
    return plt, fig, axes[0]


def _save(plt, fig, path: str | os.PathLike) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float] | None]],
    path: str | os.PathLike,
    title: str,
    xlabel: str,
    ylabel: str,
    logy: bool = False,
) -> None:
    """One line per name: ``(x, y, spread or None)``; the spread is drawn as a band."""
    plt, fig, (ax,) = _figure()
    for name, (x, y, spread) in curves.items():
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        (line,) = ax.plot(x, y, label=name, lw=1.5)
        if spread is not None:
            s = np.asarray(spread, dtype=float)
            ax.fill_between(x, y - s, y + s, color=line.get_color(), alpha=0.15)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _save(plt, fig, path)


def plot_clipping(
    runs: Mapping[str, Mapping[str, Sequence[float]]], path: str | os.PathLike, huge: float
) -> None:
    """Loss and gradient norm per step for each run (non-finite values drawn at the top
    of the axes as crosses)."""
    plt, fig, axes = _figure(2)
    for name, run in runs.items():
        for ax, key in zip(axes, ("loss", "grad_norm"), strict=True):
            y = np.asarray(run[key], dtype=float)
            steps = np.arange(len(y))
            ok = np.isfinite(y)
            (line,) = ax.plot(steps[ok], y[ok], lw=1, label=name)
            if (~ok).any():
                top = np.nanmax(np.where(ok, y, np.nan)) if ok.any() else 1.0
                ax.plot(steps[~ok], np.full((~ok).sum(), top), "x", color=line.get_color())
    axes[0].set_title("training loss")
    axes[0].set_ylabel("cross-entropy")
    axes[1].set_title(f"gradient norm before clipping (huge: > {huge:g})")
    axes[1].set_ylabel("norm")
    axes[1].set_yscale("log")
    axes[1].axhline(huge, color="grey", ls="--", lw=0.8)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(plt, fig, path)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; floats with 3 decimals, NaN as ``-``."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            return "-" if math.isnan(v) else f"{v:.3f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
