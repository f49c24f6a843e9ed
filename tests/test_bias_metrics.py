"""Bias measures on hand-made vectors: direct bias, WEAT and its permutation test,
generated analogies (against a brute-force version of the paper's definition)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from pipeline.core.errors import DataError
from pipeline.debias.hard import unit_rows
from pipeline.debias.metrics import (
    analogy_candidates,
    association,
    before_after,
    bias_summary,
    direct_bias,
    generate_analogies,
    good_word,
    most_aligned,
    neutral_axis,
    parse_weat_tests,
    permutation_pvalue,
    render_report,
    top_analogies,
    weat,
)
from pipeline.embeddings.vectors import Embeddings

E = np.eye(4)


def emb_from(mapping: dict) -> Embeddings:
    return Embeddings(list(mapping), np.array([np.asarray(v, float) for v in mapping.values()]))


def test_direct_bias_by_hand():
    g = E[0]
    emb = emb_from(
        {
            "nurse": 3 * (0.6 * E[0] + 0.8 * E[1]),  # cos 0.6 (length must not matter)
            "doctor": -0.3 * E[0] + np.sqrt(0.91) * E[2],  # cos -0.3
        }
    )
    db = direct_bias(emb, ["nurse", "doctor", "plumber", "nurse"], g)
    assert db.value == pytest.approx((0.6 + 0.3) / 2)
    assert (db.n_found, db.n_total, db.missing) == (2, 3, ("plumber",))
    assert db.coverage == pytest.approx(2 / 3)
    assert direct_bias(emb, ["nurse", "doctor"], g, c=2.0).value == pytest.approx((0.36 + 0.09) / 2)
    assert direct_bias(emb, ["plumber"], g).value is None


def test_most_aligned_orders_both_ends():
    emb = emb_from(
        {w: x * E[0] + E[1] for w, x in zip("abcde", [0.5, -0.2, 0.1, -0.9, 0.0], strict=True)}
    )
    res = most_aligned(emb, list("abcde"), E[0], k=2)
    assert [w for w, _ in res["positive"]] == ["a", "c"]
    assert [w for w, _ in res["negative"]] == ["d", "b"]
    assert res["positive"][0][1] == pytest.approx(0.5 / np.sqrt(1.25))


def brute_pvalue(x, y):
    allv = list(x) + list(y)
    obs = sum(x) - sum(y)
    stats = []
    for idx in itertools.combinations(range(len(allv)), len(x)):
        xi = [allv[i] for i in idx]
        stats.append(2 * sum(xi) - sum(allv))
    return np.mean([s >= obs - 1e-12 for s in stats])


def test_permutation_pvalue_exact_by_hand_and_against_brute_force():
    # partitions of {1,2,3,4} into 2+2: X-sums 3, 4, 5, 5, 6, 7; p = share >= observed
    p, exact, n = permutation_pvalue(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert (p, exact, n) == (pytest.approx(1.0), True, 6)
    assert permutation_pvalue(np.array([3.0, 4.0]), np.array([1.0, 2.0]))[0] == pytest.approx(1 / 6)
    # {2,4} vs {1,3}: X-sums 6 (observed), 3, 5, 5, 7, 4 -> 2 of 6 are >= 6
    assert permutation_pvalue(np.array([2.0, 4.0]), np.array([1.0, 3.0]))[0] == pytest.approx(2 / 6)
    rng = np.random.default_rng(1)
    for nx, ny in [(3, 3), (4, 2), (5, 4)]:
        x, y = rng.normal(size=nx), rng.normal(size=ny)
        assert permutation_pvalue(x, y)[0] == pytest.approx(brute_pvalue(x, y))


def test_permutation_pvalue_sampling_is_seeded_and_close_to_exact():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0.3, 1, size=8), rng.normal(0, 1, size=8)
    exact, is_exact, n = permutation_pvalue(x, y)
    assert is_exact and n == 12870
    a = permutation_pvalue(x, y, n_permutations=4000, seed=7, max_exact=10)
    b = permutation_pvalue(x, y, n_permutations=4000, seed=7, max_exact=10)
    assert a == b and a[1] is False and a[2] == 4000
    assert a[0] == pytest.approx(exact, abs=0.03)


def weat_emb() -> Embeddings:
    # X words lean to A (career) and Y words to B (family) by construction.
    words = {}
    for i, w in enumerate(["x1", "x2", "x3"]):
        words[w] = E[0] + 0.1 * (i + 1) * E[2]
    for i, w in enumerate(["y1", "y2", "y3"]):
        words[w] = E[1] + 0.1 * (i + 1) * E[3]
    for i, w in enumerate(["a1", "a2"]):
        words[w] = E[0] + 0.2 * i * E[3] + 0.3 * E[1]
    for i, w in enumerate(["b1", "b2"]):
        words[w] = E[1] + 0.2 * i * E[2] + 0.3 * E[0]
    return emb_from(words)


def test_weat_effect_size_matches_its_definition():
    emb = weat_emb()
    X, Y, A, B = ["x1", "x2", "x3", "zz"], ["y1", "y2", "y3"], ["a1", "a2"], ["b1", "b2"]
    r = weat(emb, X, Y, A, B)
    u = {w: unit_rows(emb.vector(w)) for w in emb.words}
    s = {
        w: np.mean([u[w] @ u[a] for a in A]) - np.mean([u[w] @ u[b] for b in B]) for w in X[:3] + Y
    }
    sx, sy = [s[w] for w in X[:3]], [s[w] for w in Y]
    expect = (np.mean(sx) - np.mean(sy)) / np.std(sx + sy, ddof=1)
    assert r.effect_size == pytest.approx(expect) and r.effect_size > 1.0
    assert r.statistic == pytest.approx(sum(sx) - sum(sy))
    # P[s(X_i, Y_i) >= s(X, Y)]: only the observed 3+3 split of the targets is as extreme
    assert r.p_value == pytest.approx(1 / 20) and r.n_permutations == 20
    assert r.exact and r.n_words == {"X": 3, "Y": 3, "A": 2, "B": 2} and r.missing == ("zz",)
    swapped = weat(emb, Y, X[:3], A, B)
    assert swapped.effect_size == pytest.approx(-expect)
    assoc = association(
        np.array([u["x1"]]), np.array([u[a] for a in A]), np.array([u[b] for b in B])
    )
    np.testing.assert_allclose(assoc, [s["x1"]])
    empty = weat(emb, ["nope"], Y, A, B)
    assert empty.effect_size is None and empty.p_value is None


def test_parse_weat_tests_applies_remove_lists(tmp_path):
    data = [
        {
            "first_target": {"name": "Male names", "words": ["John", "Paul"], "remove": ["Paul"]},
            "second_target": {"name": "Female names", "words": ["Amy"]},
            "first_attribute": {"name": "Career", "words": ["career"]},
            "second_attribute": {"name": "Family", "words": ["home"]},
        }
    ]
    (t,) = parse_weat_tests(json.loads(json.dumps(data)))
    assert t.x == ("John",) and t.x_name == "Male names" and t.b == ("home",)
    assert t.lower().x == ("john",) and t.lower().y == ("amy",)
    with pytest.raises(DataError, match="weat.json: test 0: 'second_target'"):
        parse_weat_tests([{"first_target": {"words": []}}])


def analogy_emb() -> Embeddings:
    g = E[0]
    words = {
        "she": E[1] + 0.5 * g,
        "he": E[1] - 0.5 * g,
        "queen": E[2] + 0.4 * g,
        "king": E[2] - 0.4 * g,
        "nurse": E[3] + 0.3 * g + 0.2 * E[1],
        "surgeon": E[3] - 0.1 * g,
        "apple": -E[1] + 0.05 * E[2],
        "Paris": E[2] + E[3],  # not a candidate (capital letter)
    }
    return emb_from(words)


def brute_best(emb, a, b, delta, exclude=()):
    """argmax over ordered pairs (x, y), |x - y| <= delta, of cos(a - b, x - y)."""
    u = {w: unit_rows(emb.vector(w)) for w in emb.words if good_word(w)}
    seed = unit_rows(u[a] - u[b])
    best = None
    for x, y in itertools.permutations([w for w in u if w not in exclude], 2):
        d = u[x] - u[y]
        if np.linalg.norm(d) <= delta:
            s = seed @ d / np.linalg.norm(d)
            if best is None or s > best[2]:
                best = (x, y, s)
    return best


def test_generated_analogies_follow_the_paper_definition():
    emb = analogy_emb()
    res = generate_analogies(emb, "she", "he", topn=10, delta=1.0)
    # she - he and queen - king are both exactly parallel to the seed
    assert {res[0][:2], res[1][:2]} == {("she", "he"), ("queen", "king")}
    assert res[0][2] == pytest.approx(1.0, abs=1e-6) and res[1][2] == pytest.approx(1.0, abs=1e-6)
    pairs = {(x, y) for x, y, _ in res}
    assert ("queen", "king") in pairs and ("king", "queen") not in pairs
    assert ("nurse", "surgeon") in pairs
    assert not any("apple" in p or "Paris" in p for p in pairs)  # too far / not a candidate
    xs, ys = [x for x, _, _ in res], [y for _, y, _ in res]
    assert len(set(xs)) == len(xs) and len(set(ys)) == len(ys)  # each word once per side
    scores = [s for _, _, s in res]
    assert scores == sorted(scores, reverse=True)
    # the best pair without she/he equals a brute-force search of the definition
    top = top_analogies(analogy_candidates(emb, "she", "he", delta=1.0), 10, exclude={"she", "he"})
    bx, by, bs = brute_best(emb, "she", "he", 1.0, exclude={"she", "he"})
    assert top[0][:2] == (bx, by) and top[0][2] == pytest.approx(bs, abs=1e-6)
    # a tighter delta drops the pairs that are further apart
    tight = generate_analogies(emb, "she", "he", delta=0.5)
    assert all(
        np.linalg.norm(unit_rows(emb.vector(x)) - unit_rows(emb.vector(y))) <= 0.5
        for x, y, _ in tight
    )
    assert generate_analogies(emb, "she", "nobody") == []


def test_generated_analogies_match_brute_force_on_random_vectors():
    rng = np.random.default_rng(3)
    words = [f"w{chr(97 + i)}" for i in range(25)]
    base = rng.normal(size=(5, 6))
    vecs = base[rng.integers(0, 5, size=25)] + 0.5 * rng.normal(size=(25, 6))
    emb = Embeddings(["she", "he", *words], np.vstack([rng.normal(size=(2, 6)), vecs]))
    (x, y, s), *_ = generate_analogies(emb, "she", "he", topn=3, delta=1.2, max_words=100)
    bx, by, bs = brute_best(emb, "she", "he", 1.2)
    assert (x, y) == (bx, by) and s == pytest.approx(bs, abs=1e-5)
    # keeping only the best pairs (as the pruning does, block by block) does not change the top
    full = top_analogies(analogy_candidates(emb, "she", "he", 1.2, 100, max_pairs=10**6), 5)
    pruned = top_analogies(analogy_candidates(emb, "she", "he", 1.2, 100, max_pairs=40, block=3), 5)
    assert pruned == full
    # blocking does not change the candidates
    c1 = analogy_candidates(emb, "she", "he", 1.2, 100, block=4)
    c2 = analogy_candidates(emb, "she", "he", 1.2, 100, block=1000)
    assert sorted(zip(c1.x.tolist(), c1.y.tolist(), strict=True)) == sorted(
        zip(c2.x.tolist(), c2.y.tolist(), strict=True)
    )


def test_neutral_axis_is_orthogonal_and_spreads_words():
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(30, 5))
    vecs[:, 1] *= 5  # the widest spread orthogonal to e0 is e1
    emb = Embeddings([f"w{i}" for i in range(30)], vecs)
    g = np.eye(5)[0]
    y = neutral_axis(emb, emb.words, g)
    assert abs(y @ g) < 1e-12 and np.linalg.norm(y) == pytest.approx(1.0)
    assert abs(y[1]) > 0.9


def test_summary_before_after_and_report():
    emb = analogy_emb()
    tests = {"t": parse_weat_tests([{k: {"name": k, "words": w} for k, w in zip(
        ("first_target", "second_target", "first_attribute", "second_attribute"),
        (["nurse"], ["surgeon", "king"], ["she"], ["he"]), strict=True)}])[0]}  # fmt: skip
    s = bias_summary(
        emb, E[0], ["nurse", "surgeon", "plumber"], tests, ("she", "he"), specific={"she", "he"}
    )
    assert s["direct_bias_words_found"] == 2 and s["direct_bias_words_total"] == 3
    assert s["most_aligned"]["she"][0][0] == "nurse"
    assert s["weat_effect"]["t"]["n_words"] == {"X": 1, "Y": 2, "A": 1, "B": 1}
    assert all("she" not in p[:2] and "he" not in p[:2] for p in s["analogies_neutral"])
    m = before_after(s, s)
    assert m["direct_bias_before"] == m["direct_bias_after"] == s["direct_bias"]
    assert m["direct_bias_coverage"] == pytest.approx(2 / 3)
    assert "weat_effect_before" in m and "analogies_neutral_after" in m
    text = render_report({**m, "ends": ["she", "he"], "axis": "gender"}, "Debiasing toy")
    assert text.startswith("# Debiasing toy") and "| direct bias" in text and "WEAT t" in text
