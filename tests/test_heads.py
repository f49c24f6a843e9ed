"""Heads: pooling over valid positions only, tagging shapes, tied LM output."""

from __future__ import annotations

import pytest
import torch

from pipeline.core.errors import ConfigError
from pipeline.seq.heads import (
    AdaptiveLMHead,
    ClassificationHead,
    LMHead,
    TaggingHead,
    length_mask,
    pool,
)


def _outputs():
    # (B=2, T=3, H=2); the second sequence has length 2, its last row is padding (99)
    out = torch.tensor(
        [[[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]], [[4.0, -1.0], [6.0, -3.0], [99.0, 99.0]]]
    )
    return out, torch.tensor([3, 2])


def test_length_mask():
    assert length_mask(torch.tensor([2, 0]), 3).tolist() == [[True, True, False], [False] * 3]


def test_pooling_ignores_padding():
    out, lengths = _outputs()
    assert pool(out, lengths, "last").tolist() == [[3.0, 30.0], [6.0, -3.0]]
    assert pool(out, lengths, "mean").tolist() == [[2.0, 20.0], [5.0, -2.0]]
    assert pool(out, lengths, "max").tolist() == [[3.0, 30.0], [6.0, -1.0]]
    # max then mean, side by side
    assert pool(out, lengths, "max_mean").tolist() == [
        [3.0, 30.0, 2.0, 20.0],
        [6.0, -1.0, 5.0, -2.0],
    ]


def test_bidirectional_last_takes_backward_half_at_position_zero():
    out, lengths = _outputs()
    # forward half = column 0 at the last valid step, backward half = column 1 at step 0
    assert pool(out, lengths, "last", bidirectional=True).tolist() == [[3.0, 10.0], [6.0, -1.0]]


def test_classification_and_tagging_heads_shapes():
    out, lengths = _outputs()
    assert ClassificationHead(2, 5, "mean")(out, lengths).shape == (2, 5)
    head = ClassificationHead(2, 5, "max_mean")
    assert head.proj.in_features == 4 and head(out, lengths).shape == (2, 5)
    assert TaggingHead(2, 9)(out).shape == (2, 3, 9)
    with pytest.raises(ConfigError, match="pooling"):
        ClassificationHead(2, 2, "median")


def test_lm_head_tied_with_projection():
    emb = torch.nn.Embedding(11, 4)
    head = LMHead(6, 11, tie_to=emb)
    assert head.decoder.weight is emb.weight
    logits = head(torch.randn(2, 3, 6))
    assert logits.shape == (2, 3, 11)
    logits.sum().backward()
    assert emb.weight.grad is not None  # the output layer trains the embedding
    untied = LMHead(6, 11)
    assert untied.decoder.weight.shape == (11, 6)
    with pytest.raises(ConfigError):
        LMHead(4, 12, tie_to=emb)


def test_adaptive_head_is_a_normalised_distribution_and_its_nll_matches():
    torch.manual_seed(0)
    head = AdaptiveLMHead(8, 30, cutoffs=[5, 15], div_value=2.0)
    out = torch.randn(2, 3, 8)
    logp = head(out)  # (B, T, V)
    assert logp.shape == (2, 3, 30)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2, 3))
    y = torch.tensor([[0, 7, 29], [4, 15, 16]])  # the head and both clusters
    torch.testing.assert_close(head.nll(out, y), -logp.flatten(0, 1).gather(1, y.view(-1, 1))[:, 0])
    full = LMHead(8, 30)
    torch.testing.assert_close(
        full.nll(out, y),
        torch.nn.functional.cross_entropy(full(out).flatten(0, 1), y.flatten(), reduction="none"),
    )
    for bad in ([], [15, 5], [5, 30]):
        with pytest.raises(ConfigError, match="adaptive_cutoffs"):
            AdaptiveLMHead(8, 30, cutoffs=bad)
