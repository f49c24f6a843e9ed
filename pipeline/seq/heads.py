"""Output heads on top of :class:`pipeline.seq.encoder.SequenceEncoder` outputs.

- :class:`TaggingHead`: one score vector per token (many-to-many, e.g. NER).
- :class:`ClassificationHead`: pool the valid positions (last, mean or max) then classify
  (many-to-one, e.g. sentiment).
- :class:`LMHead`: next-token logits, optionally tied to the input embedding matrix.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from pipeline.core.errors import ConfigError

Pooling = Literal["last", "mean", "max"]


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Boolean mask (B, T): True at positions < length."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def pool(
    outputs: torch.Tensor, lengths: torch.Tensor, method: Pooling, bidirectional: bool = False
) -> torch.Tensor:
    """Pool ``outputs`` (B, T, H) over the valid positions of each sequence -> (B, H).

    ``last`` takes the state at position length-1; for a bidirectional encoder the
    backward half is taken at position 0 instead (where the backward pass ends), so both
    halves summarise the whole sequence.
    """
    B, T, H = outputs.shape
    lengths = lengths.to(outputs.device).clamp(min=1, max=T)
    mask = length_mask(lengths, T).unsqueeze(-1)  # (B, T, 1)
    if method == "mean":
        return (outputs * mask).sum(1) / lengths[:, None].to(outputs.dtype)
    if method == "max":
        return outputs.masked_fill(~mask, torch.finfo(outputs.dtype).min).max(1).values
    if method == "last":
        idx = (lengths - 1).view(B, 1, 1).expand(B, 1, H)
        last = outputs.gather(1, idx).squeeze(1)  # (B, H)
        if bidirectional:
            half = H // 2
            last = torch.cat([last[:, :half], outputs[:, 0, half:]], dim=-1)
        return last
    raise ConfigError(f"pooling: {method!r} is not one of ['last', 'mean', 'max']")


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
        if pooling not in ("last", "mean", "max"):
            raise ConfigError(f"pooling: {pooling!r} is not one of ['last', 'mean', 'max']")
        self.pooling = pooling
        self.bidirectional = bidirectional
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(in_size, num_classes)

    def forward(self, outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pooled = pool(outputs, lengths, self.pooling, self.bidirectional)  # (B, H)
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
