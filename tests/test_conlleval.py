"""conlleval port: hand-checked cases, and byte-identical reports against the perl script."""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.core.errors import DataError
from pipeline.seq.conlleval import evaluate, evaluate_lines, format_report, write_conll

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(os.environ.get("WORDPIPE_CONLLEVAL", REPO / "data/raw/conll2003/conlleval"))


def test_exact_match_and_partial_spans():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG", "O"]]
    r = evaluate(gold, pred)
    # gold chunks: PER, LOC, ORG; guessed: PER, ORG(one word), ORG(two words); only PER right
    assert (r.overall.found_correct, r.overall.found_guessed, r.overall.correct) == (3, 3, 1)
    assert r.precision == pytest.approx(100 / 3)
    assert r.recall == pytest.approx(100 / 3)
    assert r.per_type["PER"].f1 == 100.0
    assert r.per_type["LOC"].f1 == 0.0 and r.per_type["LOC"].found_guessed == 0
    assert r.per_type["ORG"].found_guessed == 2 and r.per_type["ORG"].correct == 0
    assert r.tokens == 7 and r.correct_tags == 5


def test_iob1_style_i_after_o_starts_a_chunk():
    # An I- tag after O (or after another type) opens a chunk, as in IOB1.
    r = evaluate([["B-PER", "I-PER"]], [["I-PER", "I-PER"]])
    assert r.overall.correct == 1 and r.f1 == 100.0
    r = evaluate([["B-PER", "B-LOC"]], [["I-PER", "I-LOC"]])
    assert r.overall.correct == 2
    # B- after I- of the same type splits the chunk
    r = evaluate([["B-PER", "I-PER", "I-PER"]], [["B-PER", "I-PER", "B-PER"]])
    assert (r.overall.found_guessed, r.overall.correct) == (2, 0)


def test_chunk_end_must_match_too():
    # same start and type, but the guessed chunk runs one word longer
    r = evaluate([["B-LOC", "O"]], [["B-LOC", "I-LOC"]])
    assert r.overall.correct == 0
    # type change inside: I-LOC after B-PER is a new chunk
    r = evaluate([["B-PER", "I-PER"]], [["B-PER", "I-LOC"]])
    assert (r.overall.found_guessed, r.overall.correct) == (2, 0)


def test_chunk_at_sentence_end_and_across_boundary():
    gold = [["O", "B-MISC"], ["I-MISC", "O"]]
    pred = [["O", "B-MISC"], ["I-MISC", "O"]]
    # the boundary closes the first MISC; I-MISC after it starts a new one
    r = evaluate(gold, pred)
    assert (r.overall.found_correct, r.overall.correct) == (2, 2)


def test_all_o_and_empty_input():
    r = evaluate([["O", "O"]], [["O", "O"]])
    assert r.f1 == 0.0 and r.precision == 0.0 and r.accuracy == 100.0 and r.per_type == {}
    assert format_report(r).startswith(
        "processed 2 tokens with 0 phrases; found: 0 phrases; correct: 0."
    )
    empty = evaluate([], [])
    assert (
        format_report(empty) == "processed 0 tokens with 0 phrases; found: 0 phrases; correct: 0.\n"
    )


def test_untyped_and_zero_types():
    # "B"/"I" without a type, and the perl-false type "0", are chunks of type ""
    r = evaluate([["B", "I", "O", "B-0"]], [["B", "I", "O", "B"]])
    assert list(r.per_type) == [""]
    assert r.overall.correct == 2


def test_as_dict_keys():
    d = evaluate([["B-PER"]], [["B-PER"]]).as_dict("test_")
    assert d["test_f1"] == 100.0 and d["test_f1_PER"] == 100.0 and "test_precision" in d


def test_lines_parsing_and_errors():
    lines = ["a x B-PER B-PER\n", "b x I-PER O\n", "\n", "-X- -X- O O\n", "c x O B-LOC\n"]
    r = evaluate_lines(lines)
    assert r.tokens == 3 and r.overall.found_guessed == 2 and r.overall.correct == 0
    with pytest.raises(DataError, match="unexpected number of features"):
        evaluate_lines(["a B-PER B-PER\n", "b O\n"], source="pred.txt")
    # raw mode: every non-O tag is a one-word chunk
    r = evaluate_lines(["a PER PER\n", "b PER PER\n", "c N LOC\n"], raw=True, o_tag="N")
    assert (r.overall.found_correct, r.overall.found_guessed, r.overall.correct) == (2, 3, 2)


def test_write_conll_round_trip():
    buf = io.StringIO()
    gold = [["B-PER", "O"], ["B-LOC"]]
    pred = [["B-PER", "B-LOC"], ["B-LOC"]]
    write_conll(buf, [["Ann", "runs"], ["Rome"]], gold, pred)
    assert buf.getvalue() == "Ann B-PER B-PER\nruns O B-LOC\n\nRome B-LOC B-LOC\n\n"
    assert format_report(evaluate_lines(buf.getvalue().splitlines(True))) == format_report(
        evaluate(gold, pred)
    )


def _random_lines(rng: random.Random, n_sent: int, tags: list[str]) -> list[str]:
    lines = []
    for s in range(n_sent):
        for i in range(rng.randint(1, 12)):
            gold = rng.choice(tags)
            guess = gold if rng.random() < 0.6 else rng.choice(tags)
            lines.append(f"w{s}_{i} NN {gold} {guess}\n")
        lines.append("\n" if rng.random() < 0.8 else "-X- -X- O O\n")
    return lines


needs_perl = pytest.mark.skipif(
    not SCRIPT.exists() or shutil.which("perl") is None,
    reason=f"conlleval script not at {SCRIPT} (run the fetch stage) or no perl",
)


@needs_perl
@pytest.mark.parametrize(
    ("seed", "tags"),
    [
        (0, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]),
        (1, ["O", "O", "B-PER", "I-PER", "I-LOC", "B-MISC"]),  # IOB1-style errors
        (2, ["O", "B", "I", "E-NP", "I-NP", "[", "]", ".", "B-0", "I-VP", "B-A-B"]),  # odd tags
    ],
)
def test_identical_to_perl_conlleval(tmp_path, seed, tags):
    lines = _random_lines(random.Random(seed), 300, tags)
    text = "".join(lines)
    perl = subprocess.run(
        ["perl", str(SCRIPT)], input=text, capture_output=True, text=True, check=True, timeout=60
    )
    assert format_report(evaluate_lines(lines)) == perl.stdout


@needs_perl
def test_identical_to_perl_on_a_predictions_file(tmp_path):
    """A predictions file as the NER stage writes it (word gold pred, blank line per sentence)."""
    rng = random.Random(3)
    tags = ["O"] * 6 + ["B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    gold, pred, words = [], [], []
    for _ in range(200):
        n = rng.randint(1, 20)
        g = [rng.choice(tags) for _ in range(n)]
        gold.append(g)
        pred.append([t if rng.random() < 0.85 else rng.choice(tags) for t in g])
        words.append([f"w{i}" for i in range(n)])
    path = tmp_path / "predictions.txt"
    with open(path, "w", encoding="utf-8") as fh:
        write_conll(fh, words, gold, pred)
    with open(path, encoding="utf-8") as fh:
        perl = subprocess.run(
            ["perl", str(SCRIPT)], stdin=fh, capture_output=True, text=True, timeout=60
        )
    assert perl.returncode == 0
    assert format_report(evaluate(gold, pred)) == perl.stdout
