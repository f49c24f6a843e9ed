"""Number words, the encoder-decoder, and beam search against greedy decoding."""

from __future__ import annotations

import pytest
import torch

from pipeline.lab import seq2seq as s2s


@pytest.mark.parametrize(
    "n, words",
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (40, "forty"),
        (105, "one hundred and five"),
        (2305, "two thousand three hundred and five"),
        (1010, "one thousand and ten"),
        (90000, "ninety thousand"),
        (100005, "one hundred thousand and five"),
        (999999, "nine hundred and ninety nine thousand nine hundred and ninety nine"),
    ],
)
def test_number_words(n, words):
    assert " ".join(s2s.number_words(n)) == words


def test_split_is_disjoint_and_pairs_encode_digits():
    train, test = s2s.split_numbers(s2s.NumberTask(max_number=200, test_fraction=0.1, seed=3))
    assert len(test) == 20 and len(train) == 180 and not set(train) & set(test)
    src, tgt = s2s.encode_pairs([2305])
    vocab = s2s.input_vocabulary()
    assert [vocab[i] for i in src[0]] == s2s.number_words(2305)
    assert s2s.digits_of(tgt[0]) == "2305" and tgt[0][-1] == s2s.EOS
    assert len(src[0]) != len(tgt[0])  # Tx != Ty


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_beam_width_one_is_greedy(cell):
    torch.manual_seed(0)
    cfg = s2s.Seq2SeqConfig(cell=cell, embedding_dim=8, hidden_size=16, epochs=1)
    model = s2s.Seq2Seq(cfg, len(s2s.input_vocabulary()))
    src, tgt = s2s.encode_pairs(range(0, 300, 7))
    s2s.train_seq2seq(model, src, tgt, cfg)  # a little training: outputs of varied length
    greedy = s2s.greedy_decode(model, src, max_len=6)
    for s, g in zip(src, greedy, strict=True):
        beam, score = s2s.beam_search(model, s, width=1, max_len=6)
        assert beam == g
        assert score <= 0.0


def test_wider_beam_never_scores_lower_on_the_winner():
    torch.manual_seed(1)
    model = s2s.Seq2Seq(s2s.Seq2SeqConfig(embedding_dim=8, hidden_size=16), 40)
    src = [[3, 4, 5], [6, 7]]
    for s in src:
        _, one = s2s.beam_search(model, s, width=1, max_len=5)
        _, four = s2s.beam_search(model, s, width=4, max_len=5)
        assert four >= one - 1e-6


def test_learns_numbers_below_one_hundred():
    task = s2s.NumberTask(max_number=100, test_fraction=0.1, seed=0)
    train, test = s2s.split_numbers(task)
    cfg = s2s.Seq2SeqConfig(embedding_dim=16, hidden_size=32, epochs=60, batch_size=16, lr=0.01)
    torch.manual_seed(0)
    model = s2s.Seq2Seq(cfg, len(s2s.input_vocabulary()))
    src, tgt = s2s.encode_pairs(train)
    s2s.train_seq2seq(model, src, tgt, cfg)
    out = [s2s.digits_of(o) for o in s2s.greedy_decode(model, src)]
    assert s2s.exact_match(out, train) > 0.9
