"""Measures of bias in word embeddings.

- :func:`direct_bias`: mean ``|cos(w, g)|^c`` over gender-neutral words (Bolukbasi et al.
  2016, section 5.2).
- :func:`weat`: WEAT effect size and one-sided permutation-test p-value (Caliskan et al.
  2017), exact when the number of partitions is small, else seeded sampling.
- :func:`most_aligned`: the words furthest along each end of a direction.
- :func:`generate_analogies`: "a is to x as b is to y" pairs, as in the paper: pairs of
  close words (``|x - y| <= delta``) whose difference is most parallel to ``a - b``.
- :func:`neutral_axis`: a direction orthogonal to the bias direction that spreads the
  words, for plots.

All functions take an ``Embeddings`` (or arrays) and plain arguments and return new values.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.debias.hard import drop, svd_small, unit_rows


def _rows(emb, words: Sequence[str]) -> tuple[list[str], list[str], np.ndarray]:
    """(found, missing, unit vectors (F, D) float64) for ``words``, in order, deduplicated."""
    found, missing, idx = [], [], []
    for w in dict.fromkeys(words):
        i = emb.index(w)
        if i is None:
            missing.append(w)
        else:
            found.append(w)
            idx.append(i)
    vecs = unit_rows(emb.vectors[idx]) if idx else np.zeros((0, emb.vectors.shape[1]))
    return found, missing, vecs


def projections(emb, words: Sequence[str], direction: np.ndarray) -> dict[str, float]:
    """``cos(w, direction)`` for each word of ``words`` in the vocabulary."""
    found, _, vecs = _rows(emb, words)
    g = unit_rows(direction)
    return dict(zip(found, (vecs @ g).tolist(), strict=True))


@dataclass(frozen=True)
class DirectBias:
    value: float | None  # None when no word was found
    c: float
    n_found: int
    n_total: int
    missing: tuple[str, ...]

    @property
    def coverage(self) -> float:
        return self.n_found / self.n_total if self.n_total else 0.0


def direct_bias(emb, words: Sequence[str], direction: np.ndarray, c: float = 1.0) -> DirectBias:
    """Mean of ``|cos(w, g)|^c`` over the ``words`` found in ``emb``."""
    words = list(dict.fromkeys(words))
    found, missing, vecs = _rows(emb, words)
    value = float(np.mean(np.abs(vecs @ unit_rows(direction)) ** c)) if found else None
    return DirectBias(value, c, len(found), len(words), tuple(missing))


def most_aligned(
    emb, words: Sequence[str], direction: np.ndarray, k: int = 10
) -> dict[str, list[tuple[str, float]]]:
    """The ``k`` words with the largest and the smallest projection on ``direction``."""
    proj = projections(emb, words, direction)
    order = sorted(proj.items(), key=lambda kv: (-kv[1], kv[0]))
    return {"positive": order[:k], "negative": order[::-1][:k]}


# --------------------------------------------------------------------------- WEAT


@dataclass(frozen=True)
class WeatResult:
    effect_size: float | None
    p_value: float | None
    statistic: float | None  # sum_x s(x, A, B) - sum_y s(y, A, B)
    n_words: dict[str, int]  # found per set: X, Y, A, B
    missing: tuple[str, ...]
    exact: bool
    n_permutations: int


def association(targets: np.ndarray, attr_a: np.ndarray, attr_b: np.ndarray) -> np.ndarray:
    """s(w, A, B) = mean cos(w, a) - mean cos(w, b) for each unit row of ``targets``."""
    return (targets @ attr_a.T).mean(axis=1) - (targets @ attr_b.T).mean(axis=1)


def permutation_pvalue(
    assoc_x: np.ndarray,
    assoc_y: np.ndarray,
    n_permutations: int = 10000,
    seed: int = 0,
    max_exact: int = 100000,
) -> tuple[float, bool, int]:
    """One-sided p-value P[s(X_i, Y_i) >= s(X, Y)] over equal-size re-partitions of X u Y.

    Exact (all ``C(|X|+|Y|, |X|)`` partitions, the observed one included, so p >= 1/C)
    when that number is at most ``max_exact``; else ``n_permutations`` random partitions
    from ``seed`` with the usual (k + 1) / (n + 1). ``>=`` rather than Caliskan et al.'s
    ``>`` so that tiny word sets cannot report p = 0. Returns (p, exact, n).
    """
    allv = np.concatenate([assoc_x, assoc_y]).astype(np.float64)
    n, nx = len(allv), len(assoc_x)
    total = allv.sum()
    observed = 2 * assoc_x.sum() - total  # sum(X) - sum(Y)
    tol = 1e-12 * max(1.0, abs(observed))  # the same partition summed in another order
    n_parts = math.comb(n, nx)
    if n_parts <= max_exact:
        combos = np.fromiter(
            itertools.chain.from_iterable(itertools.combinations(range(n), nx)),
            dtype=np.int64,
            count=n_parts * nx,
        ).reshape(n_parts, nx)
        stats = 2 * allv[combos].sum(axis=1) - total
        return float(np.mean(stats >= observed - tol)), True, n_parts
    rng = np.random.default_rng(seed)
    perms = rng.permuted(np.tile(np.arange(n), (n_permutations, 1)), axis=1)
    stats = 2 * allv[perms[:, :nx]].sum(axis=1) - total
    k = int(np.sum(stats >= observed - tol))
    return (k + 1) / (n_permutations + 1), False, n_permutations


def weat(
    emb,
    targets_x: Sequence[str],
    targets_y: Sequence[str],
    attrs_a: Sequence[str],
    attrs_b: Sequence[str],
    n_permutations: int = 10000,
    seed: int = 0,
    max_exact: int = 100000,
) -> WeatResult:
    """WEAT on the words found in ``emb``; a set with no word found gives ``None`` scores.

    effect size = (mean_x s(x) - mean_y s(y)) / std_{w in X u Y} s(w) (sample std, ddof=1).
    """
    sets = {}
    missing: list[str] = []
    for key, words in (("X", targets_x), ("Y", targets_y), ("A", attrs_a), ("B", attrs_b)):
        found, miss, vecs = _rows(emb, words)
        sets[key] = vecs
        missing += miss
    n_words = {k: len(v) for k, v in sets.items()}
    if min(n_words.values()) == 0 or n_words["X"] + n_words["Y"] < 3:
        return WeatResult(None, None, None, n_words, tuple(missing), False, 0)
    sx = association(sets["X"], sets["A"], sets["B"])
    sy = association(sets["Y"], sets["A"], sets["B"])
    std = np.std(np.concatenate([sx, sy]), ddof=1)
    effect = float((sx.mean() - sy.mean()) / std) if std > 0 else 0.0
    p, exact, n = permutation_pvalue(sx, sy, n_permutations, seed, max_exact)
    return WeatResult(effect, p, float(sx.sum() - sy.sum()), n_words, tuple(missing), exact, n)


@dataclass(frozen=True)
class WeatTest:
    """One test of weat.json: names and word lists (after its ``remove`` lists)."""

    x_name: str
    y_name: str
    a_name: str
    b_name: str
    x: tuple[str, ...]
    y: tuple[str, ...]
    a: tuple[str, ...]
    b: tuple[str, ...]

    def lower(self) -> WeatTest:
        def low(ws):
            return tuple(dict.fromkeys(w.lower() for w in ws))

        return WeatTest(
            self.x_name, self.y_name, self.a_name, self.b_name,
            low(self.x), low(self.y), low(self.a), low(self.b),
        )  # fmt: skip


def parse_weat_tests(data: object, where: str = "weat.json") -> list[WeatTest]:
    """The tests of a weat.json list (``first_target``, ``second_target``, ``first_attribute``,
    ``second_attribute``: ``{name, words, remove?}``)."""
    from pipeline.core.errors import DataError

    if not isinstance(data, list):
        raise DataError(f"{where}: expected a list of tests")
    tests = []
    keys = ("first_target", "second_target", "first_attribute", "second_attribute")
    for i, t in enumerate(data):
        parts = []
        for key in keys:
            s = t.get(key) if isinstance(t, dict) else None
            if not isinstance(s, dict) or not isinstance(s.get("words"), list):
                raise DataError(f"{where}: test {i}: {key!r} with a 'words' list is missing")
            remove = set(s.get("remove", []))
            parts.append((str(s.get("name", key)), tuple(w for w in s["words"] if w not in remove)))
        (xn, x), (yn, y), (an, a), (bn, b) = parts
        tests.append(WeatTest(xn, yn, an, bn, x, y, a, b))
    return tests


# --------------------------------------------------------------------------- analogies

_GOOD_WORD = re.compile(r"^[a-z_]+$")


def good_word(w: str) -> bool:
    """The paper's candidate filter: lowercase letters and '_' only, shorter than 20."""
    return len(w) < 20 and _GOOD_WORD.match(w) is not None


@dataclass(frozen=True)
class AnalogyCandidates:
    """Pairs of close words and their analogy score (see :func:`analogy_candidates`)."""

    words: tuple[str, ...]  # candidate words; x, y index into them
    x: np.ndarray  # (P,) int
    y: np.ndarray  # (P,) int
    score: np.ndarray  # (P,) cos(a - b, x - y), may be negative


def analogy_candidates(
    emb,
    a: str,
    b: str,
    delta: float = 1.0,
    max_words: int = 10000,
    max_pairs: int = 100_000,
    block: int = 1024,
) -> AnalogyCandidates | None:
    """The ``max_pairs`` best-scoring pairs, by ``|cos(a - b, x - y)|``, among the pairs of
    the first ``max_words`` words passing :func:`good_word` with ``|x - y| <= delta`` (unit
    vectors); None if ``a`` or ``b`` is missing. Cost: O(N^2 D) in blocks of ``block`` rows;
    memory O(max_pairs + block N) whatever the number of close pairs."""
    ia, ib = emb.index(a), emb.index(b)
    if ia is None or ib is None:
        return None
    seed = unit_rows(unit_rows(emb.vectors[ia]) - unit_rows(emb.vectors[ib]))
    rows = [i for i, w in enumerate(emb.words) if good_word(w)][:max_words]
    u = unit_rows(emb.vectors[rows]).astype(np.float32)  # (N, D)
    p32 = u @ seed.astype(np.float32)  # (N,) projections on the seed direction
    p = p32.astype(np.float64)
    min_dot = 1.0 - delta**2 / 2  # |x - y|^2 = 2 - 2 cos
    xs, ys, ss = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    tau = 0.0  # |score| of the max_pairs-th best pair so far: nothing below it can enter
    for s in range(0, len(rows), block):
        d = u[s : s + block] @ u[s:].T  # (B, N - s); local column c > local row r: upper triangle
        score = (p32[s : s + block, None] - p32[None, s:]) / np.sqrt(np.maximum(2 - 2 * d, 1e-12))
        ok = np.triu((d >= min_dot) & (np.abs(score) >= tau * (1 - 1e-5)), k=1)
        r, c = np.nonzero(ok)
        dist = np.sqrt(np.maximum(2.0 - 2.0 * d[r, c].astype(np.float64), 1e-12))
        xs = np.concatenate([xs, r + s])
        ys = np.concatenate([ys, c + s])
        ss = np.concatenate([ss, (p[r + s] - p[c + s]) / dist])
        if len(ss) > max_pairs:
            best = np.lexsort((xs, -np.abs(ss)))[:max_pairs]  # deterministic cut
            xs, ys, ss = xs[best], ys[best], ss[best]
            tau = float(np.abs(ss).min())
    words = tuple(emb.words[i] for i in rows)
    return AnalogyCandidates(words, xs, ys, ss)


def top_analogies(
    cands: AnalogyCandidates | None,
    topn: int = 20,
    exclude: Collection[str] = (),
    min_score: float = 1e-3,
) -> list[tuple[str, str, float]]:
    """Best (x, y, score) pairs, greedily by |score| with each word used at most once per
    side, ignoring |score| < ``min_score`` (the paper's code); pairs with a word in
    ``exclude`` are skipped."""
    if cands is None:
        return []
    banned = np.fromiter((w in exclude for w in cands.words), dtype=bool, count=len(cands.words))
    keep = (np.abs(cands.score) >= min_score) & ~banned[cands.x] & ~banned[cands.y]
    idx = np.flatnonzero(keep)
    order = idx[np.lexsort((cands.x[idx], -np.abs(cands.score[idx])))]  # |score| desc, ties by row
    used_x: set[int] = set()
    used_y: set[int] = set()
    out = []
    for k in order:
        score = cands.score[k]
        x, y = (cands.x[k], cands.y[k]) if score > 0 else (cands.y[k], cands.x[k])
        if x in used_x or y in used_y:
            continue
        used_x.add(x)
        used_y.add(y)
        out.append((cands.words[x], cands.words[y], float(abs(score))))
        if len(out) == topn:
            break
    return out


def generate_analogies(
    emb, a: str, b: str, topn: int = 20, delta: float = 1.0, max_words: int = 10000
) -> list[tuple[str, str, float]]:
    """Top "a is to x as b is to y" pairs (x, y, score), as in Bolukbasi et al. 2016.

    Over the first ``max_words`` words passing :func:`good_word`, every pair with
    ``|x - y| <= delta`` scores ``cos(a - b, x - y)``; pairs are taken greedily by score
    with each word used at most once per side.
    """
    return top_analogies(analogy_candidates(emb, a, b, delta, max_words), topn)


# --------------------------------------------------------------------------- plot axes


def neutral_axis(emb, words: Sequence[str], direction: np.ndarray) -> np.ndarray:
    """Unit (D,) direction orthogonal to ``direction``: the first principal component of
    the ``words`` with their bias component removed (spreads them on a plot's y axis)."""
    _, _, vecs = _rows(emb, words)
    g = unit_rows(direction)
    if len(vecs) < 2:
        # Any axis orthogonal to g will do.
        e = np.zeros_like(g)
        e[int(np.argmin(np.abs(g)))] = 1.0
        return unit_rows(drop(e, g))
    m = drop(vecs, g)
    m = m - m.mean(axis=0)
    _, _, vt = svd_small(m)
    axis = unit_rows(drop(vt[0], g))
    return axis if axis.sum() >= 0 else -axis


def projection_points(
    emb, words: Sequence[str], direction: np.ndarray, y_axis: np.ndarray
) -> dict[str, tuple[float, float]]:
    """word -> (cos with ``direction``, cos with ``y_axis``) for the ``words`` in ``emb``."""
    found, _, vecs = _rows(emb, words)
    xs, ys = vecs @ unit_rows(direction), vecs @ unit_rows(y_axis)
    return {w: (float(x), float(y)) for w, x, y in zip(found, xs, ys, strict=True)}


# --------------------------------------------------------------------------- summaries


def bias_summary(
    emb,
    direction: np.ndarray,
    neutral_words: Sequence[str],
    weat_tests: Mapping[str, WeatTest],
    ends: tuple[str, str],
    specific: Collection[str] = (),
    c: float = 1.0,
    top_k: int = 10,
    weat_permutations: int = 10000,
    weat_max_exact: int = 100000,
    seed: int = 0,
    analogy_topn: int = 20,
    analogy_delta: float = 1.0,
    analogy_max_words: int = 10000,
) -> dict:
    """Every bias measure of one embedding, as a JSON-ready dict.

    Keys: ``direct_bias`` (+ ``direct_bias_words_found``/``_total``), ``weat_effect``
    (test -> effect size, p-value, words found), ``most_aligned`` (end -> [word, cos]),
    ``analogies`` and ``analogies_neutral`` ([x, y, score]; the latter skips pairs with an
    axis-specific word, i.e. the candidate stereotypes).
    """
    db = direct_bias(emb, neutral_words, direction, c)
    aligned = most_aligned(emb, neutral_words, direction, top_k)
    weats = {}
    for name, t in weat_tests.items():
        r = weat(emb, t.x, t.y, t.a, t.b, weat_permutations, seed, weat_max_exact)
        weats[name] = {
            "effect_size": r.effect_size,
            "p_value": r.p_value,
            "exact": r.exact,
            "n_permutations": r.n_permutations,
            "n_words": r.n_words,
            "targets": f"{t.x_name} vs {t.y_name}",
            "attributes": f"{t.a_name} vs {t.b_name}",
        }
    cands = analogy_candidates(emb, ends[0], ends[1], analogy_delta, analogy_max_words)
    return {
        "direct_bias": db.value,
        "direct_bias_words_found": db.n_found,
        "direct_bias_words_total": db.n_total,
        "weat_effect": weats,
        "most_aligned": {
            ends[0]: [[w, p] for w, p in aligned["positive"]],
            ends[1]: [[w, p] for w, p in aligned["negative"]],
        },
        "analogies": [list(t) for t in top_analogies(cands, analogy_topn)],
        "analogies_neutral": [list(t) for t in top_analogies(cands, analogy_topn, set(specific))],
    }


def before_after(before: Mapping, after: Mapping) -> dict:
    """Merge two :func:`bias_summary` dicts into ``<key>_before`` / ``<key>_after`` keys
    (word counts, the same for both, are kept once with the direct bias coverage)."""
    out: dict = {}
    for key in before:
        if key.startswith("direct_bias_words"):
            out[key] = before[key]
            continue
        out[f"{key}_before"] = before[key]
        out[f"{key}_after"] = after[key]
    total = before.get("direct_bias_words_total") or 0
    out["direct_bias_coverage"] = before.get("direct_bias_words_found", 0) / total if total else 0.0
    return out


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def render_report(m: Mapping, title: str) -> str:
    """A short Markdown report of a debias metrics dict (see the debias stage)."""
    lines = [f"# {title}", ""]
    lines += [
        f"Axis `{m.get('axis')}`, direction by `{m.get('method')}` from "
        f"{m.get('direction_pairs_used')} definitional pairs; variance explained by the first "
        f"components: {', '.join(_fmt(v, 3) for v in m.get('explained_variance', [])[:5])}.",
        "",
        "| measure | before | after |",
        "|---|---|---|",
        f"| direct bias (c={_fmt(m.get('direct_bias_c'), 1)}, {m.get('direct_bias_words_found')}/"
        f"{m.get('direct_bias_words_total')} neutral words) | {_fmt(m.get('direct_bias_before'))} "
        f"| {_fmt(m.get('direct_bias_after'))} |",
    ]
    for name in m.get("weat_effect_before", {}):
        b, a = m["weat_effect_before"][name], m["weat_effect_after"][name]
        n = "+".join(str(v) for v in b["n_words"].values())
        lines.append(
            f"| WEAT {name} effect size (p) [{n} words] | {_fmt(b['effect_size'], 3)} "
            f"({_fmt(b['p_value'], 4)}) | {_fmt(a['effect_size'], 3)} ({_fmt(a['p_value'], 4)}) |"
        )
    for key in ("analogy_total", "ws353", "simlex"):
        if f"{key}_before" in m:
            lines.append(f"| {key} | {_fmt(m[f'{key}_before'])} | {_fmt(m[f'{key}_after'])} |")
    lines += ["", "## Most aligned neutral words", ""]
    for when in ("before", "after"):
        for end, items in m.get(f"most_aligned_{when}", {}).items():
            words = ", ".join(f"{w} ({p:+.3f})" for w, p in items)
            lines.append(f"- {when}, towards *{end}*: {words}")
    for key, label in (("analogies", "all pairs"), ("analogies_neutral", "pairs of neutral words")):
        lines += [
            "",
            f"## Generated analogies, {label} ({' : x :: '.join(m.get('ends', ['a', 'b']))} : y)",
            "",
        ]
        for when in ("before", "after"):
            pairs = ", ".join(f"{x}:{y} ({s:.2f})" for x, y, s in m.get(f"{key}_{when}", []))
            lines.append(f"- {when}: {pairs or 'none'}")
    left_out = m.get("equalize_left_out_pairs") or []
    lines += ["", f"## Equalize pairs left out ({len(left_out)})", ""]
    lines += [
        "Pairs whose vectors do not order them as the word lists do along the bias "
        "direction (or only barely) are not equalized, since that would swap them or "
        "decide a side the vectors do not give: they keep their vectors.",
        "",
    ]
    lines += [f"- {a} / {b}: {why}" for a, b, why in left_out] or ["- none"]
    lines += ["", "## Checks", ""]
    for key in (
        "neutralized_words",
        "specific_words_found",
        "equalize_pairs_total",
        "equalize_pairs_applied",
        "equalize_pairs_skipped",
        "equalize_variants",
        "equalize_left_out",
        "equalize_wrong_side",
        "equalize_asymmetry",
        "specific_projection_change",
        "max_norm_error",
    ):
        if key in m:
            lines.append(f"- {key}: {_fmt(m[key], 9)}")
    return "\n".join(lines) + "\n"
