"""Vanishing and exploding gradients, measured.

:func:`hidden_state_gradients` unrolls a trained :class:`~pipeline.lab.agreement.AgreementNet`
step by step with the weights of its first recurrent layer (``nn.RNNCell``/``GRUCell``/
``LSTMCell`` share the layout of ``nn.RNN``/``GRU``/``LSTM``), so that autograd gives the
*total* derivative of the loss at the last step with respect to each earlier hidden state
h_t (through every later step), which a fused ``nn.RNN`` call does not expose.
:func:`clipping_run` trains a plain RNN with a large recurrent initialisation and
learning rate, with or without gradient-norm clipping, and records every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pipeline.lab.agreement import AgreementData, AgreementNet, batches, pad_batch


def _cells(rnn: nn.RNNBase) -> list[nn.Module]:
    """One ``*Cell`` per layer, holding copies of that layer's weights."""
    cls = {"RNN_TANH": nn.RNNCell, "GRU": nn.GRUCell, "LSTM": nn.LSTMCell}[rnn.mode]
    cells = []
    for layer in range(rnn.num_layers):
        in_size = rnn.input_size if layer == 0 else rnn.hidden_size
        cell = cls(in_size, rnn.hidden_size, bias=rnn.bias)
        with torch.no_grad():
            cell.weight_ih.copy_(getattr(rnn, f"weight_ih_l{layer}"))
            cell.weight_hh.copy_(getattr(rnn, f"weight_hh_l{layer}"))
            if rnn.bias:
                cell.bias_ih.copy_(getattr(rnn, f"bias_ih_l{layer}"))
                cell.bias_hh.copy_(getattr(rnn, f"bias_hh_l{layer}"))
        cells.append(cell)
    return cells


def hidden_state_gradients(
    model: AgreementNet, ids: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """d (summed cross-entropy at the last step) / d h_t of the first recurrent layer,
    for full-length sequences ``ids`` (B, T): a (B, T, H) tensor, t in time order. An
    LSTM's state is the pair (h_t, c_t) and its memory runs through c_t: the result is
    then (B, T, 2H), the gradients with respect to h_t and c_t side by side.

    Examples are independent, so row b is example b's own gradient.
    """
    cells = _cells(model.rnn)
    x = model.embedding(ids).detach()  # (B, T, E)
    batch, steps = ids.shape
    hidden = model.rnn.hidden_size
    lstm = isinstance(cells[0], nn.LSTMCell)
    states = [torch.zeros(batch, hidden) for _ in cells]
    memories = [torch.zeros(batch, hidden) for _ in cells]  # LSTM cell states
    # a zero added to the first layer's state at each step: the gradient with respect to
    # it is the gradient with respect to that state as the rest of the run reads it
    # (for an LSTM, h_t and c_t as two inputs to the future, as when restarting from them)
    probes_h: list[torch.Tensor] = []
    probes_c: list[torch.Tensor] = []
    for t in range(steps):
        inp = x[:, t]
        for i, cell in enumerate(cells):
            if lstm:
                states[i], memories[i] = cell(inp, (states[i], memories[i]))
            else:
                states[i] = cell(inp, states[i])
            if i == 0:
                probes_h.append(torch.zeros(batch, hidden, requires_grad=True))
                states[0] = states[0] + probes_h[-1]
                if lstm:
                    probes_c.append(torch.zeros(batch, hidden, requires_grad=True))
                    memories[0] = memories[0] + probes_c[-1]
            inp = states[i]
    loss = F.cross_entropy(model.out(states[-1]), labels, reduction="sum")
    grads = torch.autograd.grad(loss, probes_h + probes_c, allow_unused=True)
    grads = [torch.zeros(batch, hidden) if g is None else g for g in grads]
    if lstm:  # [h_1..h_T, c_1..c_T] -> (B, T, 2H); c_T is unused by the loss: zeros
        return torch.cat([torch.stack(grads[:steps], 1), torch.stack(grads[steps:], 1)], -1)
    return torch.stack(grads, dim=1)


def norms_by_steps_back(grads: torch.Tensor) -> np.ndarray:
    """Geometric mean over the batch of ||d loss / d h_t||, indexed by steps back
    k = T-1-t (k = 0 is the last step). Shape (T,)."""
    norms = grads.norm(dim=-1).clamp_min(1e-30)  # (B, T)
    return torch.exp(torch.log(norms).mean(0)).flip(0).numpy()


def log_slope(norms: np.ndarray) -> float:
    """Least-squares slope of log10(norm) against steps back: decades per step
    (negative: the gradient vanishes going back in time)."""
    k = np.arange(len(norms))
    return float(np.polyfit(k, np.log10(np.asarray(norms, dtype=float)), 1)[0])


# --------------------------------------------------------------------------- clipping
@dataclass(frozen=True)
class ClippingConfig:
    """A plain tanh RNN trained with plain SGD from a large recurrent initialisation
    (``recurrent_gain`` times an orthogonal matrix) at a large ``lr``, once without and
    once with gradient-norm clipping at ``clip``. A step whose gradient norm is not
    finite or above ``huge`` counts as an explosion."""

    recurrent_gain: float = field(default=3.0, metadata={"gt": 0.0})
    lr: float = field(default=0.5, metadata={"gt": 0.0})
    clip: float = field(default=1.0, metadata={"gt": 0.0})
    huge: float = field(default=100.0, metadata={"gt": 0.0})
    steps: int = field(default=300, metadata={"min": 1})
    batch_size: int = field(default=32, metadata={"min": 1})
    embedding_dim: int = field(default=32, metadata={"min": 1})
    hidden_size: int = field(default=64, metadata={"min": 1})
    seed: int = 0


def clipping_run(
    data: AgreementData, vocab_size: int, cfg: ClippingConfig, clip: bool
) -> dict[str, list[float] | int]:
    """Train as :class:`ClippingConfig` says; returns per-step ``loss``, ``grad_norm``
    (before clipping; inf/nan kept as they are) and ``step_norm`` (the norm of the update
    applied: lr times the clipped gradient norm, 0 for a skipped step), ``exploded`` (the
    count of steps with a non-finite or huge gradient norm) and ``max_step`` (the largest
    update applied). Steps with a non-finite loss or gradient skip the update."""
    torch.manual_seed(cfg.seed)
    model = AgreementNet("rnn", 1, vocab_size, cfg.embedding_dim, cfg.hidden_size)
    with torch.no_grad():
        nn.init.orthogonal_(model.rnn.weight_hh_l0, gain=cfg.recurrent_gain)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    losses: list[float] = []
    norms: list[float] = []
    step_norms: list[float] = []
    while len(losses) < cfg.steps:
        for idx in batches(len(data), cfg.batch_size, rng):
            if len(losses) >= cfg.steps:
                break
            ids, lengths = pad_batch([data.prefixes[i] for i in idx])
            loss = F.cross_entropy(model(ids, lengths), torch.as_tensor(data.labels[idx]))
            opt.zero_grad()
            loss.backward()
            norm = float(
                torch.linalg.vector_norm(
                    torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None])
                )
            )
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            applied = 0.0
            if math.isfinite(loss.item()) and math.isfinite(norm):
                opt.step()
                applied = cfg.lr * (min(norm, cfg.clip) if clip else norm)
            step_norms.append(applied)
            losses.append(loss.item())
            norms.append(norm)
    exploded = sum(1 for n in norms if not math.isfinite(n) or n > cfg.huge)
    return {
        "loss": losses,
        "grad_norm": norms,
        "step_norm": step_norms,
        "exploded": exploded,
        "max_step": max(step_norms),
    }


@dataclass(frozen=True)
class GradientStudy:
    """The probe reads ``probe_examples`` test examples of length ``distance`` + 1;
    ``clipping`` is the exploding-gradient run."""

    distance: int = field(default=30, metadata={"min": 2})
    probe_examples: int = field(default=64, metadata={"min": 1})
    clipping: ClippingConfig = field(default_factory=ClippingConfig)


def probe_batch(
    data: AgreementData, distance: int, limit: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, distance + 1), labels (B,)) of the first ``limit`` examples at ``distance``."""
    from pipeline.core.errors import DataError

    pick = [i for i, d in enumerate(data.distances) if d == distance][:limit]
    if not pick:
        raise DataError(f"lab.gradients.distance: no test example at distance {distance}")
    ids = torch.as_tensor(np.stack([data.prefixes[i] for i in pick]))
    return ids, torch.as_tensor(data.labels[pick])
