"""A word-order probe for sentiment models: short sentences generated from templates.

Each template turns polar words of a sentiment lexicon (VADER's ``vader_lexicon.txt``:
``token<TAB>mean<TAB>std<TAB>ratings``) into a phrase whose label the template fixes:
negation flips the word's polarity ("not good" is negative, "not bad at all" positive),
a contrast takes the polarity of the clause after "but", "lacking in good X, good Y and
good Z" is negative although every content word is positive. A bag-of-words model
cannot tell "not good" from "good"; a model that reads word order can.

The words are chosen by a fixed rule (the most frequent lexicon words of each polarity in
the model's training vocabulary), never by looking at a model's outputs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core.errors import DataError

# Nouns of the contrasted lists ("lacking in good acting, good story and good music").
NOUNS = ("acting", "story", "dialogue", "pacing", "direction", "music", "cast", "script")


@dataclass(frozen=True)
class ProbeSettings:
    """``sentiment.probe``: where the lexicon is and how many words to draw from it.

    ``words_per_polarity`` positive and as many negative words, each with a lexicon mean
    of at least ``min_abs_score`` in absolute value and seen at least ``min_count`` times
    in the training vocabulary. ``lexicon`` null disables the probe.
    """

    lexicon: str | None = "data/raw/vader/vader_lexicon.txt"
    words_per_polarity: int = field(default=20, metadata={"min": 2})
    min_abs_score: float = field(default=1.5, metadata={"min": 0.0})
    min_count: int = field(default=3, metadata={"min": 1})


@dataclass(frozen=True)
class ProbeSentence:
    text: str
    label: int  # 1 positive, 0 negative, as the template says
    template: str


def read_lexicon(path: str | os.PathLike) -> dict[str, float]:
    """``token -> mean rating`` of a VADER-format lexicon (tab-separated, >= 2 fields)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: lexicon not found (run the fetch stage)")
    out: dict[str, float] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.rstrip("\n").split("\t")
            if not line.strip():
                continue
            if len(parts) < 2:
                raise DataError(f"{path}:{lineno}: expected token<TAB>score")
            try:
                out[parts[0]] = float(parts[1])
            except ValueError as exc:
                raise DataError(f"{path}:{lineno}: score {parts[1]!r} is not a number") from exc
    return out


def polar_words(
    lexicon: dict[str, float],
    counts: dict[str, int],
    settings: ProbeSettings,
) -> tuple[list[str], list[str]]:
    """The most frequent (in ``counts``) positive and negative lexicon words, alphabetic
    only; ties by word. Raises :class:`DataError` if either list is shorter than asked."""
    n = settings.words_per_polarity
    picked = []
    for sign in (1, -1):
        cands = [
            w
            for w, s in lexicon.items()
            if w.isalpha()
            and s * sign >= settings.min_abs_score
            and counts.get(w, 0) >= settings.min_count
        ]
        cands.sort(key=lambda w: (-counts[w], w))
        if len(cands) < n:
            raise DataError(
                f"sentiment.probe: only {len(cands)} {'positive' if sign > 0 else 'negative'} "
                f"lexicon words occur >= {settings.min_count} times (words_per_polarity: {n})"
            )
        picked.append(cands[:n])
    return picked[0], picked[1]


def generate(positive: Sequence[str], negative: Sequence[str]) -> list[ProbeSentence]:
    """Every template over the word lists (equal lengths); labels from the templates."""
    if len(positive) != len(negative) or len(positive) < 2:
        raise DataError("sentiment.probe: need equal positive and negative lists of >= 2 words")
    out: list[ProbeSentence] = []

    def add(template: str, text: str, label: int) -> None:
        out.append(ProbeSentence(text, label, template))

    for words, polarity in ((positive, 1), (negative, 0)):
        flipped = 1 - polarity
        for w in words:
            add("not_x", f"not {w}", flipped)
            add("it_is_not_x", f"it is not {w}", flipped)
            add("not_x_at_all", f"not {w} at all", flipped)
            add("hardly_x", f"hardly {w}", flipped)
            add("far_from_x", f"far from {w}", flipped)
    n = len(positive)
    for i, (p, q) in enumerate(zip(positive, negative, strict=True)):
        add("x_but_y", f"{p} but {q}", 0)
        add("x_but_y", f"{q} but {p}", 1)
        a, b, c = (NOUNS[(3 * i + k) % len(NOUNS)] for k in range(3))
        r = positive[(i + 1) % n]
        add("lacking_in_x", f"lacking in {p} {a} , {p} {b} and {r} {c}", 0)
        s = negative[(i + 1) % n]
        add("without_x", f"without {q} {a} , {q} {b} or {s} {c}", 1)
    return out


def score(
    sentences: Sequence[ProbeSentence], predict: Callable[[list[str]], np.ndarray]
) -> tuple[dict[str, float], np.ndarray]:
    """Accuracy overall (``probe_acc``) and per template (``probe_<template>_acc``) of
    ``predict(texts) -> labels``; also returns the predictions."""
    labels = np.array([s.label for s in sentences])
    pred = np.asarray(predict([s.text for s in sentences]))
    ok = pred == labels
    metrics = {"probe_acc": float(ok.mean()), "probe_size": len(sentences)}
    for t in dict.fromkeys(s.template for s in sentences):
        mask = np.array([s.template == t for s in sentences])
        metrics[f"probe_{t}_acc"] = float(ok[mask].mean())
    return metrics, pred


def to_tsv(sentences: Sequence[ProbeSentence], pred: np.ndarray) -> str:
    """``template<TAB>label<TAB>pred<TAB>text`` lines with a header."""
    rows = ["template\tlabel\tpred\ttext"]
    rows += [
        f"{s.template}\t{s.label}\t{int(p)}\t{s.text}" for s, p in zip(sentences, pred, strict=True)
    ]
    return "\n".join(rows) + "\n"
