"""Sentiment library: data parsing, split, tokenizer, and a planted negation pattern that
only an order-aware model can learn."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.errors import DataError
from pipeline.seq.encoder import EncoderConfig
from pipeline.seq.sentiment import (
    ModelSettings,
    RnnSettings,
    SentimentConfig,
    accuracy_f1,
    fit_sentiment,
    load_rt_polarity,
    predictions_tsv,
    read_predictions,
    stratified_split,
    tokenize,
    word_order_report,
)
from pipeline.seq.training import TrainerSettings


def test_load_rt_polarity_binarises_by_sign_and_drops_zeros(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_bytes(b"1\t2.5\tA fine film.\r\n2\t-0.4\tDull.\r\n3\t0\tMeh.\r\n4\t1\tFun!")
    texts, labels, scores = load_rt_polarity(path)
    assert texts == ["A fine film.", "Dull.", "Fun!"]
    assert labels.tolist() == [1, 0, 1]
    assert scores.tolist() == [2.5, -0.4, 1.0]


def test_load_rt_polarity_names_bad_line(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("1\t2.5\tok\n2\tx\tbad\n")
    with pytest.raises(DataError, match=r"gt.txt:2"):
        load_rt_polarity(path)
    with pytest.raises(DataError, match="not found"):
        load_rt_polarity(tmp_path / "missing.txt")


def test_stratified_split_is_disjoint_balanced_and_seeded():
    labels = np.array([0] * 600 + [1] * 400)
    tr, va, te = stratified_split(labels, seed=3)
    assert len(tr) + len(va) + len(te) == 1000
    assert len(set(tr) | set(va) | set(te)) == 1000
    assert (len(tr), len(va), len(te)) == (800, 100, 100)
    for part in (tr, va, te):
        assert labels[part].mean() == pytest.approx(0.4, abs=0.01)
    again = stratified_split(labels, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again, strict=True))
    assert not np.array_equal(tr, stratified_split(labels, seed=4)[0])


def test_tokenize_splits_negation():
    assert tokenize("It doesn't WORK, isn't it?") == [
        "it",
        "does",
        "n't",
        "work",
        "is",
        "n't",
        "it",
    ]


def test_accuracy_f1():
    m = accuracy_f1(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 1]))
    assert m == {"acc": 0.5, "f1": 0.5}


def _negation_data(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """'... was good' +, '... was not good' -, '... was bad' -, '... was not bad' +.

    Averaging cannot separate this XOR (provably <= 75% on the four core patterns);
    a recurrent model can."""
    rng = np.random.default_rng(seed)
    subjects = ["the movie", "this film", "the plot", "the cast", "it"]
    fillers = ["", "really", "quite", "overall", "honestly"]
    texts, labels = [], []
    for _ in range(n):
        neg, good = rng.integers(0, 2, 2)
        words = [str(rng.choice(subjects)), "was", str(rng.choice(fillers))]
        words += (["not"] if neg else []) + ["good" if good else "bad"]
        texts.append(" ".join(w for w in words if w))
        labels.append(int(good != neg))
    return texts, np.asarray(labels)


def _cfg(max_epochs: int = 12, **kw) -> SentimentConfig:
    return SentimentConfig(
        embedding_dim=12,
        batch_size=32,
        avg=ModelSettings(lr=0.03, dropout=0.0),
        rnn=ModelSettings(lr=0.02, dropout=0.0),
        encoder=RnnSettings(cell="gru", hidden_size=16, bidirectional=False, pooling="last"),
        trainer=TrainerSettings(
            max_epochs=max_epochs,
            patience=0,
            monitor="val_acc",
            mode="max",
            progress_bar=False,
            log_every_n_steps=50,
            num_threads=1,
        ),
        **kw,
    )


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    texts, labels = _negation_data(500)
    out = {}
    for kind in ("avg", "rnn"):
        out[kind] = fit_sentiment(
            kind, _cfg(), texts, labels, checkpoint_dir=tmp_path_factory.mktemp(kind)
        )
    return texts, labels, out


def test_rnn_learns_the_planted_negation_and_averaging_cannot(planted):
    _, _, res = planted
    rnn, avg = res["rnn"].metrics, res["avg"].metrics
    assert rnn["test_acc"] >= 0.95, rnn
    assert avg["test_acc"] <= 0.85, avg
    assert rnn["test_acc"] - avg["test_acc"] >= 0.1
    assert rnn["test_size"] == 50 and rnn["embedding_missing"] == 0


def test_predictions_roundtrip_and_word_order_report(planted, tmp_path):
    texts, labels, res = planted
    paths = {}
    for kind, r in res.items():
        paths[kind] = tmp_path / f"{kind}.tsv"
        paths[kind].write_text(predictions_tsv(texts, labels, r))
    avg, rnn = read_predictions(paths["avg"]), read_predictions(paths["rnn"])
    assert avg["text"] == rnn["text"] and len(avg["text"]) == 50
    assert accuracy_f1(rnn["label"], rnn["pred"])["acc"] == res["rnn"].metrics["test_acc"]
    report, numbers = word_order_report(avg["text"], avg["label"], avg["pred"], rnn["pred"])
    assert numbers["cue_sentences"] == sum("not" in t.split() for t in avg["text"])
    assert numbers["cue_rnn_only"] > 0 and numbers["cue_acc_rnn"] > numbers["cue_acc_avg"]
    assert "| not |" in report and report.startswith("# Where word order matters")


def test_same_seed_same_result(tmp_path):
    texts, labels = _negation_data(100, seed=1)
    a, b = (
        fit_sentiment("rnn", _cfg(max_epochs=1), texts, labels, checkpoint_dir=tmp_path / d)
        for d in "ab"
    )
    assert np.array_equal(a.test_prob, b.test_prob)


def test_resume_continues_a_shorter_run_only_on_the_same_data(tmp_path):
    import dataclasses

    texts, labels = _negation_data(100, seed=2)
    one = _cfg(max_epochs=1, resume=True)
    first = fit_sentiment("rnn", one, texts, labels, checkpoint_dir=tmp_path)
    assert first.metrics["epochs"] == 1 and not first.metrics["resumed"]
    two = dataclasses.replace(one, trainer=dataclasses.replace(one.trainer, max_epochs=2))
    more = fit_sentiment("rnn", two, texts, labels, checkpoint_dir=tmp_path)
    assert more.metrics["resumed"] and more.metrics["epochs"] == 2
    other = fit_sentiment("rnn", two, texts[::-1], labels[::-1], checkpoint_dir=tmp_path)
    assert not other.metrics["resumed"] and other.metrics["epochs"] == 2
    off = dataclasses.replace(two, resume=False)
    fresh = fit_sentiment("rnn", off, texts, labels, checkpoint_dir=tmp_path)
    assert not fresh.metrics["resumed"]


def test_bigrams_let_the_averaging_model_see_negation(tmp_path):
    from dataclasses import replace

    from pipeline.core.config import from_mapping
    from pipeline.core.errors import ConfigError
    from pipeline.seq.sentiment import with_bigrams

    assert with_bigrams(["not", "good", "."]) == ["not", "good", ".", "not good", "good ."]
    texts, labels = _negation_data(500)
    cfg = _cfg()
    cfg = replace(cfg, avg=replace(cfg.avg, ngrams=2))
    res = fit_sentiment("avg", cfg, texts, labels, checkpoint_dir=tmp_path)
    assert res.metrics["test_acc"] >= 0.95, res.metrics  # "not good" is one bigram
    assert "not good" in res.vocab.tokens and res.metrics["embedding_missing"] == 0
    with pytest.raises(ConfigError, match="rnn.ngrams"):
        from_mapping(SentimentConfig, {"rnn": {"ngrams": 2}}, where="sentiment")


def test_word_dropout_drops_words_in_training_only():
    import torch

    from pipeline.seq.heads import length_mask
    from pipeline.seq.sentiment import AveragingClassifier, RecurrentClassifier, kept_words

    torch.manual_seed(0)
    lengths = torch.tensor([1, 40, 40, 3])
    valid = length_mask(lengths, 40)
    keep = kept_words(lengths, 40, 0.5)  # (4, 40)
    assert not (keep & ~valid).any()  # never a padding position
    assert keep.sum(1).min() >= 1  # a sentence never loses every word
    assert 20 <= int(keep[1:3].sum()) <= 60  # about half of 2 x 40 words
    assert torch.equal(kept_words(lengths, 40, 0.0), valid)

    ids, lengths = torch.randint(3, 50, (8, 6)), torch.full((8,), 6)
    for model in (
        AveragingClassifier(50, 4, word_dropout=0.5),
        RecurrentClassifier(
            EncoderConfig(cell="gru", embedding_dim=4, hidden_size=3),
            50,
            pooling="max_mean",
            word_dropout=0.5,
        ),
    ):
        model.eval()
        assert torch.equal(model(ids, lengths), model(ids, lengths))  # off in evaluation
        model.train()
        assert not torch.equal(model(ids, lengths), model(ids, lengths))
        model.word_dropout = 0.0
        assert torch.equal(model(ids, lengths), model(ids, lengths))


def test_rnn_word_dropout_reads_dropped_words_as_unk():
    import torch

    from pipeline.data.vocab import UNK
    from pipeline.seq.sentiment import RecurrentClassifier

    model = RecurrentClassifier(EncoderConfig(embedding_dim=4, hidden_size=3), 50, word_dropout=0.5)
    seen = []
    model.encoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    ids, lengths = torch.randint(3, 50, (4, 10)), torch.tensor([10, 10, 10, 4])
    ids[3, 4:] = 0
    torch.manual_seed(1)
    model.train()(ids, lengths)
    read = seen[-1]
    changed = read != ids
    assert changed.any() and (read[changed] == UNK).all()
    assert (read[3, 4:] == 0).all()  # padding stays padding


def test_bucketed_training_batches_hold_similar_lengths_and_every_sentence_once():
    from pipeline.seq.sentiment import make_loader

    rng = np.random.default_rng(0)
    ids = [np.arange(3, 3 + n) for n in rng.integers(1, 40, 640)]
    labels = np.arange(640) % 2
    bucketed = make_loader(ids, labels, 32, shuffle=True, seed=3, bucket=True)
    plain = make_loader(ids, labels, 32, shuffle=True, seed=3)

    def spread(loader) -> float:  # mean (longest - shortest) sentence of a batch
        return float(np.mean([int(n.max() - n.min()) for _, n, _ in loader]))

    assert spread(bucketed) < spread(plain) / 4
    assert sum(len(y) for _, _, y in bucketed) == 640  # each sentence once per epoch
    first = [n.tolist() for _, n, _ in bucketed]
    bucketed.batch_sampler.set_epoch(1)  # as Lightning does at each epoch start
    assert [n.tolist() for _, n, _ in bucketed] != first
    # evaluation loaders keep the input order (predictions line up with the sentences)
    ordered = make_loader(ids, labels, 32, shuffle=False, bucket=True)
    assert np.concatenate([n.numpy() for _, n, _ in ordered]).tolist() == [len(x) for x in ids]


def test_max_train_examples_draws_both_classes_from_a_label_sorted_file():
    from pipeline.seq.sentiment import stratified_split, train_subset

    labels = np.array([1] * 500 + [0] * 500)  # sorted by label, as rt-polarity is
    train_idx, _, _ = stratified_split(labels, seed=0)
    sub = train_subset(train_idx, 200, seed=0)
    assert len(sub) == 200 and len(set(sub)) == 200 and set(sub) <= set(train_idx)
    assert 0.35 < labels[sub].mean() < 0.65  # the first 200 would all be positive
    assert (train_subset(train_idx, None, 0) == train_idx).all()
    assert (sub == train_subset(train_idx, 200, seed=0)).all()
