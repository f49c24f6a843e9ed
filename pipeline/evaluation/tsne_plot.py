"""A labelled t-SNE picture (PNG) of the most frequent words plus chosen probe words."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.core.atomic import atomic_path
from pipeline.embeddings.vectors import Embeddings


def select_words(emb: Embeddings, n_words: int, probe_words: Sequence[str] = ()) -> list[int]:
    """Rows to draw: the ``n_words`` most frequent non-special words, then the known probes.

    Frequency comes from ``emb.counts`` when present, else from the row order (rows are
    sorted by count in every file this project writes).
    """
    candidates = np.flatnonzero(~emb.special_mask)
    if emb.counts is not None:
        # stable sort: ties keep row order
        candidates = candidates[np.argsort(-emb.counts[candidates], kind="stable")]
    rows = [int(i) for i in candidates[:n_words]]
    seen = set(rows)
    for w in probe_words:
        i = emb.index(w)
        if i is not None and i not in seen:
            rows.append(i)
            seen.add(i)
    return rows


def tsne_coordinates(vectors: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of the rows of ``vectors`` (n, D) on cosine geometry; (n, 2), seeded."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = len(vectors)
    if n < 3:
        return np.zeros((n, 2), dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)  # euclidean on unit vectors ~ cosine
    tsne = TSNE(
        n_components=2,
        perplexity=min(perplexity, (n - 1) / 3.0),
        init="pca",
        learning_rate="auto",
        random_state=seed,
        n_jobs=1,
    )
    # One thread: same seed -> same picture, and OpenMP spinning on a busy machine made the
    # Barnes-Hut gradient ~10x slower than single-threaded (300 words: ~1 s of CPU).
    with threadpool_limits(1):
        return tsne.fit_transform(unit.astype(np.float64))


def tsne_plot(
    emb: Embeddings,
    path: str | os.PathLike,
    n_words: int = 300,
    probe_words: Sequence[str] = (),
    seed: int = 0,
    perplexity: float = 30.0,
    title: str | None = None,
) -> dict:
    """Draw the t-SNE map of the frequent words + probe words to a PNG (atomically).

    Probe words are drawn in red, larger and bold. Returns ``{"words": n, "probes": k}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = select_words(emb, n_words, probe_words)
    probes = {emb.index(w) for w in probe_words if w in emb}
    xy = tsne_coordinates(emb.vectors[rows], seed=seed, perplexity=perplexity)

    fig, ax = plt.subplots(figsize=(16, 16), dpi=100)
    is_probe = np.array([r in probes for r in rows], dtype=bool)
    if len(rows):
        ax.scatter(xy[~is_probe, 0], xy[~is_probe, 1], s=8, c="#7a8ca3", alpha=0.7)
        ax.scatter(xy[is_probe, 0], xy[is_probe, 1], s=40, c="#d62728", zorder=3)
    span = float(np.ptp(xy, axis=0).max()) if len(rows) else 1.0
    placed: list[np.ndarray] = []  # probe points already labelled
    for (x, y), r, p in zip(xy, rows, is_probe, strict=True):
        dy = 2
        if p:  # stack labels of probes that t-SNE puts on top of each other (king/queen)
            near = sum(np.linalg.norm(q - (x, y)) < 0.03 * span for q in placed)
            dy = 3 - 14 * near
            placed.append(np.array((x, y)))
        ax.annotate(
            emb.words[r],
            (x, y),
            xytext=(4, dy),
            textcoords="offset points",
            fontsize=11 if p else 7,
            color="#b2182b" if p else "#333333",
            fontweight="bold" if p else "normal",
            zorder=4 if p else 2,
        )
    ax.set_title(
        title
        or f"t-SNE of the {len(rows) - int(is_probe.sum())} most frequent words "
        f"(+{int(is_probe.sum())} probe words in red)",
        fontsize=14,
    )
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return {"words": len(rows), "probes": int(is_probe.sum())}
