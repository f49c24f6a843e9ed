"""The before/after projection plot is a readable PNG written atomically."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np

from pipeline.debias.hard import hard_debias
from pipeline.debias.plot import plot_debias, plot_projections
from pipeline.embeddings.vectors import Embeddings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_projections_writes_a_two_panel_png(tmp_path):
    path = tmp_path / "sub" / "projections.png"
    before = {"nurse": (0.3, 0.1), "engineer": (-0.2, 0.4)}
    after = {"nurse": (0.0, 0.1), "engineer": (0.0, 0.4)}
    plot_projections(path, before, after, labelled=["nurse"], reference_before={"she": (0.5, 0.0)},
                     reference_after={"she": (0.5, 0.0)}, title="toy")  # fmt: skip
    assert path.read_bytes()[:8] == PNG_MAGIC
    img = mpimg.imread(path)
    assert img.shape[1] > 1.8 * img.shape[0]  # side by side
    assert img.std() > 0.01  # not blank
    assert [p.name for p in path.parent.iterdir()] == ["projections.png"]  # no temp files


def test_plot_debias_from_embeddings(tmp_path):
    rng = np.random.default_rng(0)
    words = ["she", "he"] + [f"job{i}" for i in range(20)]
    vecs = rng.normal(size=(22, 5))
    vecs[0, 0], vecs[1, 0] = 3.0, -3.0
    emb = Embeddings(words, vecs)
    g = np.eye(5)[0]
    after = hard_debias(emb, g, {"she", "he"}, [("she", "he")]).embeddings
    path = tmp_path / "p.png"
    plot_debias(path, emb, after, g, words[2:], reference_words=["she", "he"], n_labels=3)
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000


def test_every_plotted_word_lies_inside_its_panel():
    """Far-out axis-specific words after equalize (outside the neutral words' range) and long
    labels at both edges stay inside the axes, points and text."""
    from pipeline.debias.plot import projection_figure

    before = {"receptionist": (0.31, 0.62), "superintendent": (-0.38, -0.71), "doctor": (0.0, 0.0)}
    after = {w: (0.0, y) for w, (_, y) in before.items()}
    ref_before = {"herself": (0.21, 0.17), "himself": (-0.2, 0.1)}
    ref_after = {"herself": (0.55, 0.17), "himself": (-0.56, 0.1), "grandmother": (0.5, -0.72)}
    fig = projection_figure(
        before, after, labelled=list(before), reference_before=ref_before,
        reference_after=ref_after,
    )  # fmt: skip
    renderer = fig.canvas.get_renderer()
    for ax, pts in zip(fig.axes, ({**before, **ref_before}, {**after, **ref_after}), strict=True):
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        for w, (x, y) in pts.items():
            assert x0 < x < x1 and y0 < y < y1, w
        box = ax.get_window_extent(renderer)
        assert len(ax.texts) == len(pts)
        for text in ax.texts:
            tb = text.get_window_extent(renderer)
            inside = box.x0 <= tb.x0 and tb.x1 <= box.x1 and box.y0 <= tb.y0 and tb.y1 <= box.y1
            assert inside, (text.get_text(), tb, box)
    import matplotlib.pyplot as plt

    plt.close(fig)
