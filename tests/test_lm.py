"""Language models: batchify/chunks, learning a deterministic sequence, sampling, scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core.errors import ConfigError, DataError
from pipeline.seq.lm import (
    LanguageModel,
    LMArch,
    LMConfig,
    SampleConfig,
    StreamChunks,
    batchify,
    check_stream,
    evaluate_stream,
    merge_sections,
    sample,
    samples_report,
    score_sentences,
    tokens_of,
    train_language_model,
)
from pipeline.seq.training import TrainerSettings

# a deterministic "sentence" of ids 3..9 followed by <eos> (2), repeated
PATTERN = [3, 4, 5, 6, 7, 8, 9, 2]


def _stream(reps: int) -> np.ndarray:
    return np.array(PATTERN * reps, dtype=np.int32)


def test_batchify_and_chunks_cover_the_stream_in_order():
    data = batchify(np.arange(23), 3)  # (3, 7), last 2 tokens dropped
    assert data.tolist()[1] == list(range(7, 14))
    chunks = StreamChunks(data, bptt=4)
    assert len(chunks) == 2
    x0, y0 = chunks[0]
    x1, y1 = chunks[1]
    assert x0.shape == (3, 4) and x1.shape == (3, 2)
    assert torch.equal(torch.cat([x0, x1], 1), data[:, :-1])
    assert torch.equal(torch.cat([y0, y1], 1), data[:, 1:])
    with pytest.raises(DataError):
        batchify(np.arange(3), 4)


def test_check_stream_rejects_out_of_range_ids():
    with pytest.raises(DataError, match="valid.npy"):
        check_stream(np.array([0, 5, 12]), 10, "valid.npy")


def test_merge_sections_is_deep():
    merged = merge_sections({"a": 1, "t": {"x": 1, "y": 2}}, {"t": {"y": 3}, "b": 2})
    assert merged == {"a": 1, "b": 2, "t": {"x": 1, "y": 3}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = LMConfig(
        corpus="toy",
        arch=LMArch(cell="gru", embedding_dim=16, hidden_size=32, tie_weights=False),
        batch_size=4,
        eval_batch_size=2,
        bptt=16,
        lr=0.02,
        trainer=TrainerSettings(
            max_epochs=12, patience=0, progress_bar=False, seed=0, num_threads=1
        ),
    )
    model, info = train_language_model(
        cfg, _stream(60), _stream(12), vocab_size=10, checkpoint_dir=tmp_path_factory.mktemp("ck")
    )
    return model, info


def test_perplexity_on_deterministic_sequence_falls_near_one(trained):
    model, info = trained
    result = evaluate_stream(model, _stream(12), batch_size=2, bptt=16)
    # an untrained model over 10 ids is near 10; the sequence is fully predictable
    assert result["ppl"] < 1.3, result
    assert info["epochs"] >= 1 and info["time_per_epoch_s"] > 0
    assert info["checkpoint"] is not None and info["checkpoint"].name == "model.ckpt"


def test_sampling_is_seeded_and_follows_the_pattern(trained):
    model, _ = trained
    a = sample(model, max_length=30, temperature=0.5, top_k=3, seed=7)
    b = sample(model, max_length=30, temperature=0.5, top_k=3, seed=7)
    assert a == b
    assert a == PATTERN[:-1]  # stops at <eos>
    long = sample(model, max_length=5, seed=1)
    assert len(long) <= 5


def test_scoring_prefers_the_likely_sentence(trained):
    model, _ = trained
    good, shuffled = score_sentences(model, [PATTERN[:-1], [5, 3, 9, 4, 8, 6, 7]])
    assert good["logprob"] > shuffled["logprob"]
    assert good["ppl"] < 1.5 < shuffled["ppl"]
    assert good["tokens"] == 8


def test_sampling_differs_with_seed_for_untrained_model():
    torch.manual_seed(0)
    model = LanguageModel(LMArch(embedding_dim=8, hidden_size=8), vocab_size=50)
    outs = {tuple(sample(model, max_length=20, seed=s)) for s in range(4)}
    assert len(outs) > 1
    assert all(0 not in o and 1 not in o for o in outs)  # <pad>, <unk> are never drawn


def test_samples_avoid_unk_even_when_it_is_the_likeliest():
    torch.manual_seed(0)
    model = LanguageModel(LMArch(embedding_dim=8, hidden_size=8, tie_weights=False), 12)
    with torch.no_grad():  # <unk> (1) and <pad> (0) dominate every step
        model.head.decoder.bias[:2] = 20.0
        model.head.decoder.bias[2] = -20.0  # and samples run to max_length
    for seed in range(5):
        ids = sample(model, max_length=30, temperature=1.0, seed=seed)
        assert len(ids) == 30 and not {0, 1} & set(ids)
    tokens = ["<pad>", "<unk>", "<eos>", *"abcdefghi"]
    cfg = SampleConfig(num_samples=2, max_length=12, temperatures=(0.5, 2.0), sentences=2)
    text = samples_report(model, tokens, "char", cfg)
    assert "<unk>" not in text and "<pad>" not in text and "<eos>" not in text
    first = [line for line in text.splitlines() if line.startswith("[0]")]
    assert len(first) == 1 and "T=0.5" in first[0]
    assert any(line.split("|")[0].strip() == "T=2" for line in text.splitlines())


def test_sampling_stops_after_the_asked_sentences(trained):
    model, _ = trained
    two = sample(model, max_length=40, temperature=0.5, top_k=3, seed=7, sentences=2)
    assert two == PATTERN + PATTERN[:-1]  # the <eos> between the sentences is kept
    with pytest.raises(ConfigError, match="temperatures"):
        from pipeline.core.config import from_mapping

        from_mapping(SampleConfig, {"temperatures": [0.8, 0.0]}, where="lm.common.sample")


def test_tied_weights_share_the_embedding():
    model = LanguageModel(LMArch(embedding_dim=8, hidden_size=12, tie_weights=True), 30)
    assert model.head.decoder.weight is model.encoder.embedding.weight
    logits, _ = model(torch.randint(0, 30, (2, 5)))
    assert logits.shape == (2, 5, 30)


def test_tokens_of():
    assert tokens_of("To be, or 2", "word") == ["to", "be", ",", "or", "0"]
    assert tokens_of("ab c", "char") == ["a", "b", " ", "c"]


def test_resume_only_with_matching_fingerprint(tmp_path):
    import dataclasses

    cfg = LMConfig(
        corpus="toy",
        arch=LMArch(cell="rnn", embedding_dim=8, hidden_size=8),
        batch_size=2,
        eval_batch_size=2,
        bptt=8,
        trainer=TrainerSettings(max_epochs=1, patience=0, progress_bar=False, num_threads=1),
    )
    train, valid = _stream(6), _stream(4)
    _, first = train_language_model(cfg, train, valid, 10, tmp_path)
    more = dataclasses.replace(cfg, resume=True)
    more = dataclasses.replace(more, trainer=dataclasses.replace(cfg.trainer, max_epochs=2))
    _, resumed = train_language_model(more, train, valid, 10, tmp_path)
    assert first["epochs"] == 1 and resumed["epochs"] == 2
    assert len(resumed["epoch_seconds"]) == 1  # only the second epoch ran
    _, fresh = train_language_model(more, _stream(7), valid, 10, tmp_path)  # other data
    assert len(fresh["epoch_seconds"]) == 2


def test_adaptive_softmax_model_learns_the_pattern(tmp_path):
    from pipeline.core.config import from_mapping

    with pytest.raises(ConfigError, match="tie_weights"):
        from_mapping(LMArch, {"adaptive_cutoffs": [4]}, where="lm.common.arch")
    arch = LMArch(cell="gru", embedding_dim=16, hidden_size=32, tie_weights=False,
                  adaptive_cutoffs=[4, 7])  # fmt: skip
    cfg = LMConfig(corpus="toy", arch=arch, batch_size=4, eval_batch_size=2, bptt=16, lr=0.02,
                   trainer=TrainerSettings(max_epochs=12, patience=0, progress_bar=False,
                                           seed=0, num_threads=1))  # fmt: skip
    model, _ = train_language_model(cfg, _stream(60), _stream(12), 10, tmp_path / "ck")
    assert evaluate_stream(model, _stream(12), batch_size=2, bptt=16)["ppl"] < 1.3
    assert sample(model, max_length=30, temperature=0.5, top_k=3, seed=7) == PATTERN[:-1]
    good, shuffled = score_sentences(model, [PATTERN[:-1], [5, 3, 9, 4, 8, 6, 7]])
    assert good["logprob"] > shuffled["logprob"]
