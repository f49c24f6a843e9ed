"""The gradient-norm probe against backpropagation through time done by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.lab import agreement as agr
from pipeline.lab import gradients as grad


def test_probe_matches_hand_bptt_on_a_3_step_rnn():
    torch.manual_seed(0)
    model = agr.AgreementNet("rnn", 1, vocab_size=6, embedding_dim=3, hidden_size=2).double()
    ids = torch.tensor([[1, 4, 2]])
    label = torch.tensor([1])
    got = grad.hidden_state_gradients(model.float(), ids, label)[0].double()  # (3, 2)

    # by hand: h_t = tanh(W x_t + b + U h_{t-1}); loss = CE(V h_3 + c, y)
    m = model.double()
    W, U = m.rnn.weight_ih_l0, m.rnn.weight_hh_l0
    b = m.rnn.bias_ih_l0 + m.rnn.bias_hh_l0
    with torch.no_grad():
        x = m.embedding(ids)[0]
        h, hs = torch.zeros(2, dtype=torch.double), []
        for t in range(3):
            h = torch.tanh(W @ x[t] + b + U @ h)
            hs.append(h)
        p = torch.softmax(m.out.weight @ hs[2] + m.out.bias, -1)
        g3 = m.out.weight.T @ (p - torch.tensor([0.0, 1.0], dtype=torch.double))
        g2 = U.T @ ((1 - hs[2] ** 2) * g3)
        g1 = U.T @ ((1 - hs[1] ** 2) * g2)
    want = torch.stack([g1, g2, g3])
    assert torch.allclose(got, want, atol=1e-5), (got, want)
    norms = grad.norms_by_steps_back(got[None].float())
    assert norms == pytest.approx([float(g3.norm()), float(g2.norm()), float(g1.norm())], rel=1e-4)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_probe_matches_autograd_through_the_fused_layer(cell):
    """Each step's gradient equals autograd on the fused nn.RNN/GRU/LSTM split at that
    step: run steps 0..t, restart from h_t (and an LSTM's c_t) as leaves for the rest,
    and differentiate the last step's loss with respect to them."""
    torch.manual_seed(1)
    model = agr.AgreementNet(cell, 1, 7, 4, 5)
    ids = torch.randint(1, 7, (3, 6))
    labels = torch.tensor([0, 1, 1])
    got = grad.hidden_state_gradients(model, ids, labels)  # (3, 6, 5), LSTM (3, 6, 10)
    assert got.shape == (3, 6, 10 if cell == "lstm" else 5)
    x = model.embedding(ids).detach()
    for t in range(5):
        _, state = model.rnn(x[:, : t + 1])
        parts = state if cell == "lstm" else (state,)
        leaves = tuple(p.detach().requires_grad_(True) for p in parts)
        out, _ = model.rnn(x[:, t + 1 :], leaves if cell == "lstm" else leaves[0])
        loss = torch.nn.functional.cross_entropy(model.out(out[:, -1]), labels, reduction="sum")
        want = torch.cat([g[0] for g in torch.autograd.grad(loss, leaves)], -1)
        assert torch.allclose(got[:, t], want, atol=1e-6), t


def test_log_slope_reads_decades_per_step():
    norms = 10.0 ** (-0.5 * np.arange(10))
    assert grad.log_slope(norms) == pytest.approx(-0.5)


def test_clipping_run_counts_explosions():
    data = agr.generate(np.arange(10, 40), [(4, 5)], 3, [8, 9], 4, 6, seed=0)
    cfg = grad.ClippingConfig(recurrent_gain=1.0, lr=0.1, steps=6, batch_size=4, huge=1e-9,
                              embedding_dim=4, hidden_size=4)  # fmt: skip
    run = grad.clipping_run(data, 40, cfg, clip=True)
    assert len(run["loss"]) == 6 and len(run["grad_norm"]) == 6
    assert run["exploded"] == 6  # every norm is above a threshold of 1e-9
