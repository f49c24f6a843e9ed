"""The agreement generator's labels and distances, and the classifier around it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core.errors import DataError
from pipeline.lab import agreement as agr

# ids: 0 pad, 1 unk, 2 eos, 3 the, 4 cat, 5 cats, 6 dog, 7 dogs, 8 was, 9 were, 10.. filler
THE, WAS, WERE = 3, 8, 9
PAIRS = [(4, 5), (6, 7)]


def _text(n=500, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(8, 30, n)  # includes was/were (8, 9): the generator must avoid them


def test_labels_distances_and_fillers_are_right():
    text = _text()
    data = agr.generate(text, PAIRS, THE, [WAS, WERE], per_distance=6, max_distance=12, seed=1)
    assert len(data) == 6 * 12
    assert sorted(np.unique(data.distances)) == list(range(1, 13))
    for ids, label, d in zip(data.prefixes, data.labels, data.distances, strict=True):
        assert ids[0] == THE
        noun = ids[1]
        assert label == (1 if noun in (5, 7) else 0), "plural noun -> were (1)"
        assert noun in (4, 5, 6, 7)
        assert d == len(ids) - 1, "distance = verb position - noun position"
        filler = ids[2:]
        assert not np.isin(filler, [WAS, WERE]).any()
        if len(filler):  # a contiguous run of the text
            starts = np.flatnonzero(text == filler[0])
            assert any(np.array_equal(text[s : s + len(filler)], filler) for s in starts)
    for d in range(1, 13):  # balanced per distance
        assert data.labels[data.distances == d].sum() == 3


def test_attractors_are_nouns_of_the_other_number():
    data = agr.generate(_text(), PAIRS, THE, [WAS, WERE], 20, 8, seed=0, attractor_rate=1.0)
    for ids, label, d in zip(data.prefixes, data.labels, data.distances, strict=True):
        if d > 1:
            others = [n for n in ids[2:] if n in (4, 5, 6, 7)]
            wrong_number = {5, 7} if label == 0 else {4, 6}
            assert len(others) == 1 and others[0] in wrong_number


def test_same_seed_same_data_and_eos_dropped():
    a = agr.generate(_text(), PAIRS, THE, [WAS], 3, 5, seed=3)
    b = agr.generate(_text(), PAIRS, THE, [WAS], 3, 5, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a.prefixes, b.prefixes, strict=True))
    assert list(agr.filler_stream(np.array([5, 2, 6, 0, 7]), eos_id=2)) == [5, 6, 7]


def test_missing_noun_is_a_data_error():
    study = agr.AgreementStudy(nouns=[["cat", "cats"], ["ox", "oxen"]])
    with pytest.raises(DataError, match="oxen"):
        agr.noun_ids(study, ["<pad>", "cat", "cats", "ox"], "vocab.tsv")


def test_bucket_accuracy_and_onehot_lookup():
    correct = np.array([1, 0, 1, 1, 0, 1])
    dist = np.array([1, 2, 3, 4, 5, 6])
    acc = agr.bucket_accuracy(correct, dist, [1, 2, 4, 6])
    assert acc == {"1-1": 1.0, "2-3": 0.5, "4-6": pytest.approx(2 / 3)}
    assert agr.onehot_lookup_gap(torch.nn.Embedding(10, 4), [1, 3, 9]) == 0.0


def test_classifier_learns_short_agreement():
    data = agr.generate(_text(2000), PAIRS, THE, [WAS, WERE], 24, 3, seed=0)
    torch.manual_seed(0)
    model = agr.AgreementNet("lstm", 1, 30, 8, 16)
    cfg = agr.AgreementTraining(embedding_dim=8, hidden_size=16, epochs=10, lr=0.02)
    losses = agr.train_classifier(model, data, cfg, seed=0)
    assert losses[-1] < losses[0]
    assert (agr.predict(model, data) == data.labels).mean() > 0.9
