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
    show that they keep their place. Every point and label lies inside its panel.
    """
    fig = projection_figure(
        before, after, labelled, reference_before, reference_after, ends=ends, title=title
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    plt.close(fig)


DPI = 110


def _label(ax, word: str, xy: tuple[float, float], dy: float, **kw) -> None:
    """Label right of a point on the he (negative) side, left of it on the she side, so
    that labels point into the panel."""
    right = xy[0] < 0
    ax.annotate(
        word,
        xy,
        fontsize=7,
        xytext=(3 if right else -3, dy),
        textcoords="offset points",
        ha="left" if right else "right",
        **kw,
    )


def _fit_texts(fig, axes, rounds: int = 4) -> None:
    """Widen each panel's limits until every text label lies inside it (labels sit at a
    fixed offset in points from their word, so a few rounds settle)."""
    for _ in range(rounds):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        changed = False
        for ax in axes:
            box = ax.get_window_extent(renderer)
            inv = ax.transData.inverted()
            (x0, y0), (x1, y1) = inv.transform([[box.x0, box.y0], [box.x1, box.y1]])
            for text in ax.texts:
                tb = text.get_window_extent(renderer)
                (tx0, ty0), (tx1, ty1) = inv.transform([[tb.x0, tb.y0], [tb.x1, tb.y1]])
                pad_x, pad_y = 0.02 * (x1 - x0), 0.02 * (y1 - y0)
                nx0, nx1 = min(x0, tx0 - pad_x), max(x1, tx1 + pad_x)
                ny0, ny1 = min(y0, ty0 - pad_y), max(y1, ty1 + pad_y)
                if (nx0, nx1, ny0, ny1) != (x0, x1, y0, y1):
                    x0, x1, y0, y1 = nx0, nx1, ny0, ny1
                    changed = True
            lim = max(abs(x0), abs(x1))  # keep 0 (the neutral axis) in the middle
            ax.set_xlim(-lim, lim)
            ax.set_ylim(y0, y1)
        if not changed:
            return


def projection_figure(
    before: Points,
    after: Points,
    labelled: Sequence[str] = (),
    reference_before: Points | None = None,
    reference_after: Points | None = None,
    ends: tuple[str, str] = ("she", "he"),
    title: str = "",
):
    """The matplotlib figure of :func:`plot_projections` (for callers that compose it)."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.5), sharex=True, sharey=True)
    every = [before, after, reference_before or {}, reference_after or {}]
    xs = [p[0] for pts in every for p in pts.values()]
    ys = [p[1] for pts in every for p in pts.values()]
    lim = max([0.05] + [abs(x) for x in xs]) * 1.15
    y_lo, y_hi = (min(ys), max(ys)) if ys else (-0.5, 0.5)
    y_pad = 0.08 * max(y_hi - y_lo, 0.1)
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
                _label(ax, w, pts[w], 2)
        if ref:
            x, y = zip(*ref.values(), strict=True)
            ax.scatter(
                x, y, s=18, c="tab:red", marker="^", label=f"axis-specific words ({len(ref)})"
            )
            for w, xy in ref.items():
                _label(ax, w, xy, -8, color="tab:red")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(y_lo - y_pad, y_hi + y_pad)
        ax.set_title(f"{name} debiasing")
        ax.set_xlabel(f"projection on the bias direction ({ends[1]} <-  -> {ends[0]})")
        ax.legend(loc="lower left", fontsize=8)
        ax.grid(alpha=0.2)
    axes[0].set_ylabel("projection on a neutral axis")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.set_dpi(DPI)
    _fit_texts(fig, axes)
    return fig


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
