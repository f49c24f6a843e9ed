"""The shared sequence encoder: embeddings (random or from a pipeline artifact) + RNN/GRU/LSTM.

Variable-length batches are packed, so a sentence's outputs never depend on how much
padding its batch needed::

    emb_matrix, missing = init_embedding_matrix(vocab.tokens, embeddings, dim=100, seed=0)
    enc = SequenceEncoder(EncoderConfig(cell="lstm", hidden_size=128, embedding_dim=100),
                          vocab_size=len(vocab), embedding_matrix=emb_matrix)
    outputs = enc(ids, lengths)                      # (B, T, H * dirs), zeros at padding
    outputs, state = enc(ids, None, hidden=state, return_hidden=True)   # language models
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline.core.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.embeddings.vectors import Embeddings

#: Tokens that are not words: never counted as "missing" from a pretrained artifact.
SPECIAL_TOKENS = frozenset({"<pad>", "<unk>", "<eos>", "<bos>", "<s>", "</s>"})
PAD_ID = 0

# An RNN state: (layers * dirs, B, H) for rnn/gru, a pair (h, c) of those for lstm.
Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of :class:`SequenceEncoder`.

    ``cell``: ``rnn`` is the tanh recurrence a_t = tanh(W_aa a_{t-1} + W_ax x_t + b_a);
    ``dropout`` applies to the embeddings, between layers and to the outputs.
    """

    cell: Literal["rnn", "gru", "lstm"] = "lstm"
    embedding_dim: int = field(default=100, metadata={"min": 1})
    hidden_size: int = field(default=128, metadata={"min": 1})
    num_layers: int = field(default=1, metadata={"min": 1})
    bidirectional: bool = False
    dropout: float = field(default=0.0, metadata={"min": 0.0, "max": 0.95})
    freeze_embeddings: bool = False


def init_embedding_matrix(
    tokens: list[str],
    emb: Embeddings | None,
    dim: int,
    seed: int,
    std: float | None = None,
    key: str = "embedding_dim",
) -> tuple[torch.Tensor, int]:
    """Initial embedding rows for ``tokens`` (row i = token i) and the missing-word count.

    Words found in ``emb`` (exact match first, then lower-cased) are copied; the others
    are drawn from N(0, std^2) with a generator seeded by ``seed`` (``std`` defaults to the
    element-wise std of ``emb``'s vectors, or 0.1 without ``emb``) and counted as missing
    (special tokens such as ``<unk>`` are never counted). Row 0 (``<pad>``) is all zeros.
    Raises :class:`ConfigError` naming ``key`` if ``emb.dim != dim``.
    """
    if dim < 1:
        raise ConfigError(f"{key}: {dim} must be at least 1")
    if emb is not None and int(emb.dim) != dim:
        raise ConfigError(
            f"{key}: {dim} does not match the dimension {emb.dim} of the pretrained embeddings"
        )
    if std is None:
        std = float(np.asarray(emb.vectors).std()) if emb is not None and len(emb) else 0.1
        std = std or 0.1
    gen = torch.Generator().manual_seed(int(seed))
    matrix = torch.randn(len(tokens), dim, generator=gen) * std  # (V, D)
    missing = 0
    if emb is not None:
        vectors = np.asarray(emb.vectors, dtype=np.float32)
        rows, src = [], []
        for i, tok in enumerate(tokens):
            j = emb.index(tok)
            if j is None and tok.lower() != tok:
                j = emb.index(tok.lower())
            if j is not None:
                rows.append(i)
                src.append(j)
            elif i != PAD_ID and tok not in SPECIAL_TOKENS:
                missing += 1
        if rows:
            matrix[torch.as_tensor(rows)] = torch.from_numpy(vectors[np.asarray(src)])
    if len(tokens):
        matrix[PAD_ID] = 0.0
    return matrix, missing


def _rnn_class(cell: str) -> type[nn.RNNBase]:
    return {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]


class SequenceEncoder(nn.Module):
    """Embedding layer (+ optional per-token features) followed by a recurrent network.

    ``forward(ids (B, T), lengths (B,) | None, extra_features (B, T, F) | None)`` returns
    ``outputs (B, T, H * dirs)``; positions at or beyond a sequence's length are zero.
    ``lengths=None`` means every sequence is full length (no packing: the fast path for
    language models). With ``return_hidden=True`` it returns ``(outputs, hidden)`` and
    ``hidden`` may seed the next call (truncated BPTT).
    """

    def __init__(
        self,
        config: EncoderConfig,
        vocab_size: int,
        embedding_matrix: torch.Tensor | None = None,
        extra_features_dim: int = 0,
    ) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ConfigError(f"vocab_size: {vocab_size} must be at least 1")
        self.config = config
        self.extra_features_dim = int(extra_features_dim)
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=PAD_ID)
        if embedding_matrix is not None:
            if tuple(embedding_matrix.shape) != (vocab_size, config.embedding_dim):
                raise ConfigError(
                    f"embedding_dim: embedding matrix has shape {tuple(embedding_matrix.shape)}, "
                    f"expected ({vocab_size}, {config.embedding_dim})"
                )
            with torch.no_grad():
                self.embedding.weight.copy_(embedding_matrix)
        self.embedding.weight.requires_grad_(not config.freeze_embeddings)
        self.dropout = nn.Dropout(config.dropout)
        rnn_kwargs = {"nonlinearity": "tanh"} if config.cell == "rnn" else {}
        self.rnn = _rnn_class(config.cell)(
            input_size=config.embedding_dim + self.extra_features_dim,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
            **rnn_kwargs,
        )

    @property
    def num_directions(self) -> int:
        return 2 if self.config.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Size of the last dimension of the outputs: hidden_size * directions."""
        return self.config.hidden_size * self.num_directions

    def init_hidden(self, batch_size: int, device: torch.device | None = None) -> Hidden:
        """A zero state for ``batch_size`` sequences."""
        shape = (self.config.num_layers * self.num_directions, batch_size, self.config.hidden_size)
        h = torch.zeros(shape, device=device)
        return (h, h.clone()) if self.config.cell == "lstm" else h

    def forward(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor | None = None,
        extra_features: torch.Tensor | None = None,
        hidden: Hidden | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, Hidden]:
        x = self.embedding(ids)  # (B, T, D)
        if extra_features is not None:
            x = torch.cat([x, extra_features.to(x.dtype)], dim=-1)  # (B, T, D + F)
        elif self.extra_features_dim:
            raise ValueError(f"this encoder expects {self.extra_features_dim} extra features")
        x = self.dropout(x)
        if lengths is None:
            out, new_hidden = self.rnn(x, hidden)  # (B, T, H * dirs)
        else:
            total = ids.shape[1]
            packed = pack_padded_sequence(
                x, lengths.detach().cpu().clamp(min=1), batch_first=True, enforce_sorted=False
            )
            packed_out, new_hidden = self.rnn(packed, hidden)
            out, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=total)
        out = self.dropout(out)
        return (out, new_hidden) if return_hidden else out


def detach_hidden(hidden: Hidden | None) -> Hidden | None:
    """Cut the graph at a truncated-BPTT boundary (keeps the values)."""
    if hidden is None:
        return None
    if isinstance(hidden, tuple):
        return tuple(h.detach() for h in hidden)
    return hidden.detach()
