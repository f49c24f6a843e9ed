"""CRF: log-likelihood and Viterbi against brute-force enumeration; masking; constraints."""

from __future__ import annotations

import itertools

import pytest
import torch

from pipeline.seq.crf import CRF, iob2_constraints


def _brute_scores(crf: CRF, emissions: torch.Tensor, n: int) -> dict[tuple[int, ...], float]:
    """Score of every tag path of length n for one sequence (emissions (L, T))."""
    with torch.no_grad():
        trans, start, end = crf._params()
    out = {}
    for path in itertools.product(range(crf.num_tags), repeat=n):
        s = start[path[0]] + emissions[0, path[0]]
        for t in range(1, n):
            s = s + trans[path[t - 1], path[t]] + emissions[t, path[t]]
        out[path] = float(s + end[path[-1]])
    return out


@pytest.fixture
def crf_batch():
    torch.manual_seed(0)
    crf = CRF(3)
    with torch.no_grad():  # larger than the init so that paths differ clearly
        crf.transitions.normal_(0, 1)
        crf.start_transitions.normal_(0, 1)
        crf.end_transitions.normal_(0, 1)
    lengths = [4, 1, 3, 2]
    emissions = torch.randn(4, 4, 3)
    mask = torch.tensor([[t < n for t in range(4)] for n in lengths])
    tags = torch.randint(0, 3, (4, 4))
    return crf, emissions, mask, tags, lengths


def test_log_likelihood_equals_brute_force(crf_batch):
    crf, emissions, mask, tags, lengths = crf_batch
    ll = crf.log_likelihood(emissions, tags, mask)
    for b, n in enumerate(lengths):
        scores = _brute_scores(crf, emissions[b], n)
        log_z = torch.logsumexp(torch.tensor(list(scores.values()), dtype=torch.float64), 0)
        expected = scores[tuple(tags[b, :n].tolist())] - float(log_z)
        assert ll[b].item() == pytest.approx(expected, abs=1e-4)
    # probabilities of all paths of a sequence sum to one
    b, n = 2, lengths[2]
    total = 0.0
    for path in itertools.product(range(3), repeat=n):
        t = torch.tensor([list(path) + [0] * (4 - n)])
        total += crf.log_likelihood(emissions[b : b + 1], t, mask[b : b + 1]).exp().item()
    assert total == pytest.approx(1.0, abs=1e-5)


def test_viterbi_equals_brute_force_argmax(crf_batch):
    crf, emissions, mask, _, lengths = crf_batch
    paths = crf.decode(emissions, mask)
    _, best = crf.viterbi(emissions, mask)
    for b, n in enumerate(lengths):
        scores = _brute_scores(crf, emissions[b], n)
        argmax = max(scores, key=scores.get)
        assert tuple(paths[b]) == argmax
        assert len(paths[b]) == n
        assert best[b].item() == pytest.approx(scores[argmax], abs=1e-4)


def test_padding_does_not_change_results(crf_batch):
    crf, emissions, mask, tags, lengths = crf_batch
    ll = crf.log_likelihood(emissions, tags, mask)
    paths = crf.decode(emissions, mask)
    for b, n in enumerate(lengths):
        alone = crf.log_likelihood(
            emissions[b : b + 1, :n], tags[b : b + 1, :n], mask[b : b + 1, :n]
        )
        assert alone.item() == pytest.approx(ll[b].item(), abs=1e-5)
        assert crf.decode(emissions[b : b + 1, :n], mask[b : b + 1, :n])[0] == paths[b]
    # garbage in the padded positions changes nothing
    noisy = emissions.clone()
    noisy[~mask] = 1e3
    noisy_tags = tags.clone()
    noisy_tags[~mask] = 2
    assert torch.allclose(crf.log_likelihood(noisy, noisy_tags, mask), ll, atol=1e-5)
    assert crf.decode(noisy, mask) == paths


def test_nll_gradients_and_reductions(crf_batch):
    crf, emissions, mask, tags, _ = crf_batch
    emissions = emissions.clone().requires_grad_(True)
    loss = crf.nll(emissions, tags, mask)
    loss.backward()
    assert torch.isfinite(emissions.grad).all()
    assert emissions.grad[~mask].abs().max().item() == 0.0  # padding gets no gradient
    per_seq = crf.nll(emissions, tags, mask, reduction="none")
    assert (per_seq > 0).all()
    assert crf.nll(emissions, tags, mask, reduction="sum").item() == pytest.approx(
        per_seq.sum().item(), rel=1e-5
    )


def test_bad_shapes_raise():
    crf = CRF(3)
    with pytest.raises(ValueError, match="at least one token"):
        crf.decode(torch.zeros(1, 2, 3), torch.tensor([[False, False]]))
    with pytest.raises(ValueError, match="mask"):
        crf.decode(torch.zeros(1, 2, 3), torch.ones(1, 3, dtype=torch.bool))


def test_iob2_constraints_forbid_invalid_paths():
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    allowed, allowed_start = iob2_constraints(tags)
    assert allowed[1, 2] and allowed[2, 2] and not allowed[0, 2] and not allowed[3, 2]
    assert not allowed_start[2] and allowed_start[1]
    crf = CRF(len(tags), allowed, allowed_start)
    # emissions that prefer I-PER everywhere: the decoder must still start with B-PER
    emissions = torch.full((1, 3, 5), -5.0)
    emissions[0, :, 2] = 5.0
    emissions[0, :, 1] = 4.0
    path = crf.decode(emissions, torch.ones(1, 3, dtype=torch.bool))[0]
    assert path == [1, 2, 2]
