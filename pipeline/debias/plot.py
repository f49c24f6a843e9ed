"""PNG of words projected on a bias direction (x) against a neutral axis (y), before and
after debiasing, side by side (in the spirit of Bolukbasi et al. 2016, figure 7)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pipeline.core.atomic import atomic_path  # noqa: E402

Points = Mapping[str, tuple[float, float]]  # word -> (x, y)


def plot_projections(
    path: str | os.PathLike,
    before: Points,
    after: Points,
    labelled: Sequence[str] = (),
    reference_before: Points | None = None,
    reference_after: Points | None = None,
    ends: tuple[str, str] = ("she", "he"),
    title: str = "",
) -> None:
    """Write a two-panel PNG to ``path`` (atomically).

    ``before``/``after`` map the neutral words (professions) to (projection on the bias
    direction, projection on a neutral axis); ``labelled`` words get a text label;
    ``reference_*`` (axis-specific words such as she/he) are drawn in another colour to
    show that they keep their place.
    """
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.5), sharex=True, sharey=True)
    xs = [p[0] for pts in (before, after, reference_before or {}) for p in pts.values()]
    lim = max([0.05] + [abs(x) for x in xs]) * 1.15
    for ax, pts, ref, name in (
        (axes[0], before, reference_before, "before"),
        (axes[1], after, reference_after, "after"),
    ):
        ax.axvline(0.0, color="0.6", lw=0.8, zorder=0)
        if pts:
            x, y = zip(*pts.values(), strict=True)
            ax.scatter(x, y, s=12, c="tab:blue", alpha=0.6, label=f"neutral words ({len(pts)})")
        for w in labelled:
            if w in pts:
                ax.annotate(w, pts[w], fontsize=7, xytext=(3, 2), textcoords="offset points")
        if ref:
            x, y = zip(*ref.values(), strict=True)
            ax.scatter(
                x, y, s=18, c="tab:red", marker="^", label=f"axis-specific words ({len(ref)})"
            )
            for w, xy in ref.items():
                ax.annotate(
                    w, xy, fontsize=7, color="tab:red", xytext=(3, -8), textcoords="offset points"
                )
        ax.set_xlim(-lim, lim)
        ax.set_title(f"{name} debiasing")
        ax.set_xlabel(f"projection on the bias direction ({ends[1]} <-  -> {ends[0]})")
        ax.legend(loc="lower left", fontsize=8)
        ax.grid(alpha=0.2)
    axes[0].set_ylabel("projection on a neutral axis")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_debias(
    path: str | os.PathLike,
    before,
    after,
    direction,
    neutral_words: Sequence[str],
    reference_words: Sequence[str] = (),
    ends: tuple[str, str] = ("she", "he"),
    n_labels: int = 6,
    title: str = "",
) -> None:
    """:func:`plot_projections` of two ``Embeddings`` (before and after debiasing).

    The y axis (a neutral axis, see :func:`pipeline.debias.metrics.neutral_axis`) comes
    from ``before`` so both panels share it; the ``n_labels`` most aligned words per end
    (before) are labelled in both panels.
    """
    from pipeline.debias.metrics import most_aligned, neutral_axis, projection_points

    y_axis = neutral_axis(before, neutral_words, direction)
    aligned = most_aligned(before, neutral_words, direction, n_labels)
    labelled = [w for w, _ in aligned["positive"] + aligned["negative"]]
    plot_projections(
        path,
        projection_points(before, neutral_words, direction, y_axis),
        projection_points(after, neutral_words, direction, y_axis),
        labelled=labelled,
        reference_before=projection_points(before, reference_words, direction, y_axis),
        reference_after=projection_points(after, reference_words, direction, y_axis),
        ends=ends,
        title=title,
    )
