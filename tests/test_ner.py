"""NER library: CoNLL reader, features, batching, and a tagger that learns a planted rule."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from pipeline.core.errors import DataError
from pipeline.seq.conlleval import evaluate
from pipeline.seq.encoder import EncoderConfig
from pipeline.seq.ner import (
    SHAPES,
    BucketBatchSampler,
    NerDataConfig,
    NerModelConfig,
    NerTagger,
    Sentence,
    build_vocabularies,
    collate,
    confusion_matrix,
    encode_sentences,
    make_loader,
    normalize_word,
    plot_confusion,
    predict,
    read_conll,
    word_shape,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Small models on a shared 2-core machine: one thread avoids oversubscription stalls."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O
BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""


def test_read_conll(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL)
    sents = read_conll(path)
    assert [len(s) for s in sents] == [5, 2, 2]
    assert sents[0].words[:3] == ("EU", "rejects", "German")
    assert sents[0].tags == ("B-ORG", "O", "B-MISC", "O", "O")
    assert sents[1] == Sentence(("Peter", "Blackburn"), ("B-PER", "I-PER"))
    assert sents[2].tags == ("B-LOC", "O")  # DOCSTART without a blank line still splits


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("EU NNP B-NP B-ORG\nrejects\n", r"train.txt:2: expected"),
        ("EU NNP B-NP ORG\n", r"train.txt:1: 'ORG'"),
        ("\n\n", "no sentences"),
    ],
)
def test_read_conll_errors(tmp_path, text, message):
    path = tmp_path / "train.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_conll(path)
    with pytest.raises(DataError, match="not found"):
        read_conll(tmp_path / "missing.txt")


def test_word_shape_and_normalisation():
    shape = {
        w: SHAPES[word_shape(w)]
        for w in [
            "bank",
            "Bank",
            "EU",
            "A",
            "iPhone",
            "1996",
            "1996-08-22",
            ".",
            "U.S.",
            "Jean-Pierre",
        ]
    }
    assert shape == {
        "bank": "lower", "Bank": "initcap", "EU": "allcaps", "A": "initcap", "iPhone": "mixedcase",
        "1996": "numeric", "1996-08-22": "hasdigit", ".": "punct", "U.S.": "allcaps", "Jean-Pierre": "initcap",
    }  # fmt: skip
    assert normalize_word("Route66", lowercase=True, zero_digits=True) == "route00"
    assert normalize_word("Route66", lowercase=False, zero_digits=False) == "Route66"


def test_vocabularies_encoding_and_collate():
    sents = [Sentence(("Peter", "runs"), ("B-PER", "O")), Sentence(("Rome",), ("B-LOC",))]
    cfg = NerDataConfig(max_word_len=4)
    vocabs = build_vocabularies(sents, cfg)
    assert vocabs.tags == ("O", "B-LOC", "B-PER")
    enc = encode_sentences(sents, vocabs, cfg)
    assert vocabs.words.decode(enc[0].words) == ["peter", "runs"]
    assert enc[0].chars.shape == (2, 4) and vocabs.chars.decode(enc[0].chars[0]) == list("Pete")
    batch = collate(enc)
    assert batch["words"].shape == (2, 2) and batch["chars"].shape == (2, 2, 4)
    assert batch["lengths"].tolist() == [2, 1] and batch["words"][1, 1].item() == 0
    with pytest.raises(DataError, match="tag 'B-ORG' not seen"):
        encode_sentences([Sentence(("IBM",), ("B-ORG",))], vocabs, cfg, where="valid.txt")


def test_vocabulary_extended_with_embedding_words():
    sents = [Sentence(("Peter", "runs"), ("B-PER", "O"))]
    extra = ["<unk>", "runs", "paris", "Paris", "1996", "rome"]
    vocabs = build_vocabularies(sents, NerDataConfig(), extra)
    # only new, already-normalised words (lower case, digits as 0) are added, with count 0
    assert vocabs.words.tokens[3:] == ["peter", "runs", "paris", "rome"]
    assert vocabs.words.counts[-1] == 0
    assert build_vocabularies(sents, NerDataConfig(add_embedding_words=False), extra).words.tokens[
        3:
    ] == [
        "peter",
        "runs",
    ]


def test_bucket_sampler_covers_everything_and_is_seeded():
    lengths = np.random.default_rng(0).integers(1, 40, size=503)
    s = BucketBatchSampler(lengths, 16, shuffle=True, seed=1)
    first = list(s)
    assert sorted(i for b in first for i in b) == list(range(503))
    assert len(first) == len(s)
    spread = np.mean([np.ptp(lengths[b]) for b in first])
    assert spread < 10  # batches hold similar lengths (random batches would spread ~35)
    assert list(BucketBatchSampler(lengths, 16, shuffle=True, seed=1)) == first
    s.set_epoch(1)
    assert list(s) != first


def test_confusion_matrix_and_plot(tmp_path):
    tags = ("O", "B-PER", "I-PER")
    m = confusion_matrix([["O", "B-PER", "I-PER"]], [["O", "B-PER", "O"]], tags)
    assert m.tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    plot_confusion(m, tags, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- the planted rule
FILLER = [
    "the",
    "a",
    "of",
    "to",
    "and",
    "said",
    "on",
    "for",
    "with",
    "by",
    "at",
    "from",
    "was",
    "is",
    "new",
]


def _planted(rng: random.Random, n: int, name_pool: list[str]) -> list[Sentence]:
    """Capitalised words after "mr" are a person (a second one continues it: B-PER I-PER);
    after "in" a location; after "the" O. Test names are never seen in training."""
    out = []
    for _ in range(n):
        words, tags = [], []
        for _ in range(rng.randint(2, 5)):
            r = rng.random()
            if r < 0.3:
                words += ["mr", rng.choice(name_pool)]
                tags += ["O", "B-PER"]
                if rng.random() < 0.4:
                    words.append(rng.choice(name_pool))
                    tags.append("I-PER")
            elif r < 0.5:
                words += ["in", rng.choice(name_pool)]
                tags += ["O", "B-LOC"]
            elif r < 0.7:
                words += ["the", rng.choice(name_pool)]
                tags += ["O", "O"]
            else:
                words.append(rng.choice(FILLER))
                tags.append("O")
        out.append(Sentence(tuple(words), tuple(tags)))
    return out


def _names(rng: random.Random, n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [
        "".join(rng.choice(letters) for _ in range(rng.randint(3, 7))).capitalize()
        for _ in range(n)
    ]


@pytest.mark.parametrize("output", ["crf", "softmax"])
def test_tagger_learns_planted_rule(output):
    rng = random.Random(0)
    torch.manual_seed(0)
    train = _planted(rng, 300, _names(rng, 60))
    test = _planted(rng, 100, _names(rng, 40))  # unseen names: context + shape must do it
    cfg = NerDataConfig(batch_size=16)
    vocabs = build_vocabularies(train, cfg)
    model = NerTagger(
        NerModelConfig(output=output, char_filters=8, char_dim=8, shape_dim=4, lr=0.01),
        EncoderConfig(cell="lstm", embedding_dim=16, hidden_size=24, bidirectional=True),
        vocabs,
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    enc_train = encode_sentences(train, vocabs, cfg)
    enc_test = encode_sentences(test, vocabs, cfg)
    gold = [list(s.tags) for s in test]
    before = evaluate(gold, predict(model, enc_test)).f1
    for epoch in range(6):
        loader = make_loader(enc_train, 16, shuffle=True, seed=0)
        loader.batch_sampler.set_epoch(epoch)
        for batch in loader:
            opt.zero_grad()
            model.loss(batch).backward()
            opt.step()
    result = evaluate(gold, predict(model, enc_test))
    assert before < 50
    assert result.f1 > 95, result.per_type
    assert result.per_type["PER"].f1 > 95 and result.per_type["LOC"].f1 > 95


def test_predict_is_independent_of_batching():
    rng = random.Random(1)
    sents = _planted(rng, 40, _names(rng, 20))
    cfg = NerDataConfig()
    vocabs = build_vocabularies(sents, cfg)
    torch.manual_seed(0)
    model = NerTagger(
        NerModelConfig(char_filters=4, char_dim=4),
        EncoderConfig(embedding_dim=8, hidden_size=8, bidirectional=True),
        vocabs,
    )
    enc = encode_sentences(sents, vocabs, cfg)
    assert predict(model, enc, batch_size=1) == predict(model, enc, batch_size=64)
