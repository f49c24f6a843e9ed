"""Linear-chain conditional random field: log-likelihood and Viterbi decoding.

For tags ``y_1..y_n`` over emission scores ``E`` (from the encoder) the score of a path is

    s(y) = start[y_1] + sum_t E[t, y_t] + sum_{t>1} trans[y_{t-1}, y_t] + end[y_n]

and ``log p(y | x) = s(y) - log Z`` with ``log Z = logsumexp over all paths``, computed by
the forward algorithm in log space. Batches are padded on the right; ``mask[b, t]`` is
True on the real tokens of sequence ``b`` (a prefix: every sequence has at least one).

Example::

    crf = CRF(num_tags=9)
    loss = crf.nll(emissions, tags, mask)   # emissions (B, L, T), tags (B, L), mask (B, L)
    paths = crf.decode(emissions, mask)     # list of B lists of tag ids
"""

from __future__ import annotations

import torch
from torch import nn


def _check(emissions: torch.Tensor, mask: torch.Tensor, tags: torch.Tensor | None = None) -> None:
    if emissions.dim() != 3:
        raise ValueError(f"emissions must be (batch, length, tags), got {tuple(emissions.shape)}")
    if mask.shape != emissions.shape[:2]:
        raise ValueError(
            f"mask {tuple(mask.shape)} does not match emissions {tuple(emissions.shape)}"
        )
    if tags is not None and tags.shape != emissions.shape[:2]:
        raise ValueError(
            f"tags {tuple(tags.shape)} does not match emissions {tuple(emissions.shape)}"
        )
    if emissions.shape[1] == 0 or not bool(mask[:, 0].all()):
        raise ValueError("every sequence needs at least one token, and mask must be a prefix")


class CRF(nn.Module):
    """Transition, start and end scores over ``num_tags`` tags.

    ``allowed`` (optional, bool ``(T, T)``, ``allowed[i, j]``: tag ``j`` may follow tag
    ``i``) and ``allowed_start`` (bool ``(T,)``) forbid transitions outright (score
    ``-1e4``), e.g. ``I-PER`` after ``O`` under IOB2; see :func:`iob2_constraints`.
    """

    def __init__(
        self,
        num_tags: int,
        allowed: torch.Tensor | None = None,
        allowed_start: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError("num_tags must be >= 1")
        self.num_tags = num_tags
        # Small random init (as pytorch-crf); zeros would work as well.
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        self.start_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        penalty = torch.zeros(num_tags, num_tags)
        start_penalty = torch.zeros(num_tags)
        if allowed is not None:
            penalty = penalty.masked_fill(~allowed.bool(), -1e4)
        if allowed_start is not None:
            start_penalty = start_penalty.masked_fill(~allowed_start.bool(), -1e4)
        self.register_buffer("_penalty", penalty, persistent=False)
        self.register_buffer("_start_penalty", start_penalty, persistent=False)

    def _params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Always float32, also under bf16 autocast: logsumexp over long chains needs it.
        trans = self.transitions.float() + self._penalty
        start = self.start_transitions.float() + self._start_penalty
        return trans, start, self.end_transitions.float()

    def path_score(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Unnormalised score ``s(y)`` of the given tag paths, ``(B,)``."""
        _check(emissions, mask, tags)
        trans, start, end = self._params()
        emissions = emissions.float()
        maskf = mask.float()
        tags = tags.long()
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, L)
        score = start[tags[:, 0]] + (emit * maskf).sum(1)
        if tags.shape[1] > 1:
            score = score + (trans[tags[:, :-1], tags[:, 1:]] * maskf[:, 1:]).sum(1)
        lengths = mask.long().sum(1)
        last = tags.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)  # (B,)
        return score + end[last]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``log Z`` by the forward algorithm in log space, ``(B,)``."""
        _check(emissions, mask)
        trans, start, end = self._params()
        emissions = emissions.float()
        alpha = start.unsqueeze(0) + emissions[:, 0]  # (B, T)
        for t in range(1, emissions.shape[1]):
            # (B, T_prev, 1) + (1, T_prev, T_next) + (B, 1, T_next) -> logsumexp over T_prev
            nxt = torch.logsumexp(
                alpha.unsqueeze(2) + trans.unsqueeze(0) + emissions[:, t].unsqueeze(1), dim=1
            )
            alpha = torch.where(mask[:, t].unsqueeze(1), nxt, alpha)
        return torch.logsumexp(alpha + end.unsqueeze(0), dim=1)

    def log_likelihood(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """``log p(tags | emissions)`` per sequence, ``(B,)``."""
        return self.path_score(emissions, tags, mask) - self.log_partition(emissions, mask)

    def nll(
        self,
        emissions: torch.Tensor,
        tags: torch.Tensor,
        mask: torch.Tensor,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """Negative log-likelihood: ``mean`` over sequences, ``sum``, ``token_mean`` or ``none``."""
        ll = self.log_likelihood(emissions, tags, mask)
        if reduction == "none":
            return -ll
        if reduction == "sum":
            return -ll.sum()
        if reduction == "mean":
            return -ll.mean()
        if reduction == "token_mean":
            return -ll.sum() / mask.sum().clamp(min=1)
        raise ValueError(f"unknown reduction {reduction!r}")

    forward = nll

    @torch.no_grad()
    def viterbi(
        self, emissions: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Best paths ``(B, L)`` (positions past a sequence's end repeat its last tag) and
        their scores ``(B,)``."""
        _check(emissions, mask)
        trans, start, end = self._params()
        emissions = emissions.float()
        batch, length, num_tags = emissions.shape
        score = start.unsqueeze(0) + emissions[:, 0]  # (B, T)
        identity = torch.arange(num_tags, device=emissions.device).expand(batch, num_tags)
        backpointers = []
        for t in range(1, length):
            cand = score.unsqueeze(2) + trans.unsqueeze(0)  # (B, T_prev, T_next)
            best, arg = cand.max(dim=1)  # (B, T_next)
            on = mask[:, t].unsqueeze(1)
            score = torch.where(on, best + emissions[:, t], score)
            # Past the end, each tag points to itself so backtracking passes through.
            backpointers.append(torch.where(on, arg, identity))
        score = score + end.unsqueeze(0)
        best_score, last = score.max(dim=1)  # (B,)
        path = [last]
        for bp in reversed(backpointers):
            last = bp.gather(1, last.unsqueeze(1)).squeeze(1)
            path.append(last)
        path.reverse()
        return torch.stack(path, dim=1), best_score

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Viterbi paths, one list of tag ids per sequence (its real length)."""
        paths, _ = self.viterbi(emissions, mask)
        lengths = mask.long().sum(1).tolist()
        return [row[:n] for row, n in zip(paths.tolist(), lengths, strict=True)]


def iob2_constraints(tags: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(allowed (T, T), allowed_start (T,))`` for IOB2 tags: ``I-X`` only after ``B-X`` or
    ``I-X``, and never first. Tags that are not ``I-...`` are unconstrained."""
    n = len(tags)
    allowed = torch.ones(n, n, dtype=torch.bool)
    allowed_start = torch.ones(n, dtype=torch.bool)
    for j, tag in enumerate(tags):
        if tag.startswith("I-"):
            kind = tag[2:]
            allowed_start[j] = False
            for i, prev in enumerate(tags):
                allowed[i, j] = prev in (f"B-{kind}", f"I-{kind}")
    return allowed, allowed_start
