"""Output heads on top of :class:`pipeline.seq.encoder.SequenceEncoder` outputs.

- :class:`TaggingHead`: one score vector per token (many-to-many, e.g. NER).
- :class:`ClassificationHead`: pool the valid positions (last, mean, max, or max and mean
  side by side) then classify
  (many-to-one, e.g. sentiment).
- :class:`LMHead`: next-token logits, optionally tied to the input embedding matrix.
- :class:`AdaptiveLMHead`: next-token log-probabilities through an adaptive softmax
  (Grave et al. 2017): frequent ids in a full head, rare ids in clusters of smaller size.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from pipeline.core.errors import ConfigError

Pooling = Literal["last", "mean", "max", "max_mean"]
POOLINGS = ("last", "mean", "max", "max_mean")


def pooled_size(hidden_size: int, method: Pooling) -> int:
    """Width of :func:`pool`'s output for outputs of width ``hidden_size``."""
    return 2 * hidden_size if method == "max_mean" else hidden_size


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Boolean mask (B, T): True at positions < length."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def pool(
    outputs: torch.Tensor, lengths: torch.Tensor, method: Pooling, bidirectional: bool = False
) -> torch.Tensor:
    """Pool ``outputs`` (B, T, H) over the valid positions of each sequence -> (B, H),
    or (B, 2H) for ``max_mean`` (the max, then the mean: the strongest cue and the overall
    tone of the sentence).

    ``last`` takes the state at position length-1; for a bidirectional encoder the
    backward half is taken at position 0 instead (where the backward pass ends), so both
    halves summarise the whole sequence.
    """
    B, T, H = outputs.shape
    lengths = lengths.to(outputs.device).clamp(min=1, max=T)
    mask = length_mask(lengths, T).unsqueeze(-1)  # (B, T, 1)
    if method == "mean":
        return (outputs * mask).sum(1) / lengths[:, None].to(outputs.dtype)
    if method in ("max", "max_mean"):
        top = outputs.masked_fill(~mask, torch.finfo(outputs.dtype).min).max(1).values
        if method == "max":
            return top
        return torch.cat([top, (outputs * mask).sum(1) / lengths[:, None].to(outputs.dtype)], -1)
    if method == "last":
        idx = (lengths - 1).view(B, 1, 1).expand(B, 1, H)
        last = outputs.gather(1, idx).squeeze(1)  # (B, H)
        if bidirectional:
            half = H // 2
            last = torch.cat([last[:, :half], outputs[:, 0, half:]], dim=-1)
        return last
    raise ConfigError(f"pooling: {method!r} is not one of {list(POOLINGS)}")


class TaggingHead(nn.Module):
    """Per-token scores: (B, T, H) -> (B, T, num_tags)."""

    def __init__(self, in_size: int, num_tags: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(in_size, num_tags)

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(outputs))


class ClassificationHead(nn.Module):
    """Pooled classification: (B, T, H), lengths (B,) -> logits (B, num_classes)."""

    def __init__(
        self,
        in_size: int,
        num_classes: int,
        pooling: Pooling = "last",
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling: {pooling!r} is not one of {list(POOLINGS)}")
        self.pooling = pooling
        self.bidirectional = bidirectional
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(pooled_size(in_size, pooling), num_classes)

    def forward(self, outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pooled = pool(outputs, lengths, self.pooling, self.bidirectional)  # (B, H) or (B, 2H)
        return self.proj(self.dropout(pooled))


class LMHead(nn.Module):
    """Next-token logits: (B, T, H) -> (B, T, V).

    With ``tie_to`` (the input ``nn.Embedding``) the output matrix *is* the embedding
    matrix (Press & Wolf 2017); if ``in_size`` differs from the embedding size, a linear
    projection maps the hidden state to it first.
    """

    def __init__(self, in_size: int, vocab_size: int, tie_to: nn.Embedding | None = None) -> None:
        super().__init__()
        self.tied = tie_to is not None
        if tie_to is not None:
            emb_dim = tie_to.embedding_dim
            if tie_to.num_embeddings != vocab_size:
                raise ConfigError(
                    f"tie_weights: embedding has {tie_to.num_embeddings} rows, vocabulary {vocab_size}"
                )
            self.proj = nn.Linear(in_size, emb_dim) if in_size != emb_dim else nn.Identity()
            self.decoder = nn.Linear(emb_dim, vocab_size)
            self.decoder.weight = tie_to.weight  # shared Parameter
        else:
            self.proj = nn.Identity()
            self.decoder = nn.Linear(in_size, vocab_size)

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.proj(outputs))

    def nll(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of each target: (B, T, H), (B, T) -> (B * T,)."""
        logits = self(outputs).float().flatten(0, 1)
        return nn.functional.cross_entropy(logits, targets.flatten(), reduction="none")


class AdaptiveLMHead(nn.Module):
    """Adaptive softmax: (B, T, H) -> log-probabilities (B, T, V), exact and normalised.

    Ids below ``cutoffs[0]`` (the frequent words: vocabularies are sorted by count) are
    scored by a full head; each later range is a cluster scored only for the tokens whose
    target falls in it, through a projection ``div_value`` times smaller per cluster. In
    training (:meth:`nll`) the cost is a fraction of a full softmax over a large vocabulary.
    """

    def __init__(
        self, in_size: int, vocab_size: int, cutoffs: list[int], div_value: float = 4.0
    ) -> None:
        super().__init__()
        cutoffs = list(cutoffs)
        if not cutoffs or cutoffs != sorted(set(cutoffs)) or not cutoffs[0] > 0:
            raise ConfigError(f"adaptive_cutoffs: {cutoffs} must be increasing and positive")
        if cutoffs[-1] >= vocab_size:
            raise ConfigError(
                f"adaptive_cutoffs: {cutoffs} must lie below the vocabulary size {vocab_size}"
            )
        self.asm = nn.AdaptiveLogSoftmaxWithLoss(in_size, vocab_size, cutoffs, div_value=div_value)

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        B, T, H = outputs.shape
        return self.asm.log_prob(outputs.float().reshape(B * T, H)).view(B, T, -1)

    def nll(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of each target: (B, T, H), (B, T) -> (B * T,)."""
        H = outputs.shape[-1]
        return -self.asm(outputs.float().reshape(-1, H), targets.reshape(-1)).output
