"""The word-order probe: lexicon parsing, word choice by rule, template labels, scoring."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.errors import DataError
from pipeline.seq import word_order_probe as probe

POS = [f"good{c}" for c in "abcdefghijklmnopqrst"]
NEG = [f"bad{c}" for c in "abcdefghijklmnopqrst"]


def test_twenty_words_each_give_over_200_sentences_labelled_by_template():
    sents = probe.generate([w.replace("good", "fine") for w in POS], NEG)
    assert len(sents) >= 200 and len({s.text for s in sents}) == len(sents)
    by_text = {s.text: s.label for s in sents}
    assert by_text["not finea"] == 0 and by_text["not bada at all"] == 1
    assert by_text["finea but bada"] == 0 and by_text["bada but finea"] == 1
    lacking = [s for s in sents if s.template == "lacking_in_x"]
    assert all(s.label == 0 and s.text.startswith("lacking in fine") for s in lacking)
    # every negation of a positive word is negative and vice versa
    for s in sents:
        if s.template in ("not_x", "hardly_x", "far_from_x", "it_is_not_x", "not_x_at_all"):
            assert s.label == (1 if "bad" in s.text else 0)


def test_polar_words_by_frequency_then_word_and_too_few_is_an_error(tmp_path):
    lex = tmp_path / "lex.txt"
    lex.write_text("good\t1.9\t0.9\t[]\ngreat\t3.1\t0.7\t[]\nok\t0.9\t0.5\t[]\n"
                   "bad\t-2.5\t0.6\t[]\nawful\t-2.0\t0.8\t[]\n:(\t-2.0\t0.1\t[]\n")  # fmt: skip
    lexicon = probe.read_lexicon(lex)
    assert lexicon["awful"] == -2.0 and len(lexicon) == 6
    counts = {"good": 5, "great": 9, "ok": 50, "bad": 4, "awful": 4, ":(": 99}
    settings = probe.ProbeSettings(words_per_polarity=2, min_count=3)
    assert probe.polar_words(lexicon, counts, settings) == (["great", "good"], ["awful", "bad"])
    with pytest.raises(DataError, match="only 1 negative"):
        probe.polar_words(lexicon, {**counts, "bad": 1}, settings)
    lex.write_text("good\tvery\n")
    with pytest.raises(DataError, match=r"lex.txt:1"):
        probe.read_lexicon(lex)


def test_score_per_template():
    sents = probe.generate(POS[:2], NEG[:2])
    metrics, pred = probe.score(sents, lambda texts: np.ones(len(texts), dtype=int))
    labels = np.array([s.label for s in sents])
    assert metrics["probe_acc"] == pytest.approx(labels.mean())
    assert metrics["probe_lacking_in_x_acc"] == 0.0 and metrics["probe_without_x_acc"] == 1.0
    assert probe.to_tsv(sents, pred).count("\n") == len(sents) + 1
