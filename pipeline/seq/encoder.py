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

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline.core.errors import ConfigError
from pipeline.data.vocab import EOS, Vocabulary

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
    ``tune_embeddings``: ``all`` trains every embedding row; ``listed`` keeps the initial
    rows frozen and trains only the rows passed to the encoder as ``tuned_rows`` (e.g. the
    words seen in training), as a small delta table (:class:`PartlyFrozenEmbedding`), so
    a 400k-word pretrained vocabulary costs no gradients or optimizer state.
    ``freeze_embeddings`` trains no row at all.
    """

    cell: Literal["rnn", "gru", "lstm"] = "lstm"
    #: None: the pretrained artifact's dimension (see :func:`resolve_embedding_dim`)
    embedding_dim: int | None = field(default=100, metadata={"min": 1})
    hidden_size: int = field(default=128, metadata={"min": 1})
    num_layers: int = field(default=1, metadata={"min": 1})
    bidirectional: bool = False
    dropout: float = field(default=0.0, metadata={"min": 0.0, "max": 0.95})
    freeze_embeddings: bool = False
    tune_embeddings: Literal["all", "listed"] = "all"


def resolve_embedding_dim(dim: int | None, emb: Embeddings | None, default: int = 100) -> int:
    """``dim``, or with ``None`` the dimension of ``emb`` (``default`` without one), so
    switching the embedding is one setting."""
    if dim is not None:
        return int(dim)
    return int(emb.dim) if emb is not None else default


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


class PartlyFrozenEmbedding(nn.Module):
    """An embedding whose rows are frozen except ``tuned_rows``, which train as a delta.

    ``forward(ids) = frozen[ids] + delta[slot[ids]]``: ``frozen`` (V, D) is the initial
    matrix (a buffer: no gradient, no optimizer state), ``slot`` maps a row to its entry
    of the trainable ``delta`` table (n + 1, D), whose entry 0 stays zero for every row
    not tuned. Deltas start at zero, so training starts from the given matrix.
    """

    def __init__(self, matrix: torch.Tensor, tuned_rows: torch.Tensor | list[int]) -> None:
        super().__init__()
        matrix = torch.as_tensor(matrix, dtype=torch.float32)
        rows = torch.as_tensor(tuned_rows, dtype=torch.long).unique()
        if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= matrix.shape[0]):
            raise ConfigError(f"tuned_rows: row ids must lie in [0, {matrix.shape[0]})")
        rows = rows[rows != PAD_ID]  # padding stays zero
        slot = torch.zeros(matrix.shape[0], dtype=torch.long)
        slot[rows] = torch.arange(1, rows.numel() + 1)
        self.num_embeddings, self.embedding_dim = matrix.shape
        self.register_buffer("frozen", matrix.clone())  # (V, D)
        self.register_buffer("slot", slot)  # (V,) 0 = not tuned
        self.delta = nn.Embedding(rows.numel() + 1, self.embedding_dim, padding_idx=0)
        nn.init.zeros_(self.delta.weight)

    @property
    def weight(self) -> torch.Tensor:
        """The current (V, D) matrix (frozen rows plus their deltas)."""
        return self.frozen + self.delta.weight[self.slot]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.frozen[ids] + self.delta(self.slot[ids])  # (..., D)


def make_embedding(
    vocab_size: int,
    dim: int,
    matrix: torch.Tensor | None = None,
    freeze: bool = False,
    tuned_rows: torch.Tensor | list[int] | None = None,
    key: str = "tune_embeddings",
) -> nn.Embedding | PartlyFrozenEmbedding:
    """The input embedding of a model: an ``nn.Embedding`` initialised from ``matrix`` (all
    rows train unless ``freeze``), or, with ``tuned_rows`` and not ``freeze``, a
    :class:`PartlyFrozenEmbedding` that trains only those rows (``matrix`` required; a
    :class:`ConfigError` naming ``key`` otherwise)."""
    if matrix is not None and tuple(matrix.shape) != (vocab_size, dim):
        raise ConfigError(
            f"embedding_dim: embedding matrix has shape {tuple(matrix.shape)}, "
            f"expected ({vocab_size}, {dim})"
        )
    if tuned_rows is not None and not freeze:
        if matrix is None:
            raise ConfigError(f"{key}: training only some rows needs an initial matrix")
        return PartlyFrozenEmbedding(matrix, tuned_rows)
    emb = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
    if matrix is not None:
        with torch.no_grad():
            emb.weight.copy_(matrix)
    emb.weight.requires_grad_(not freeze)
    return emb


def add_pretrained_words(
    vocab: Vocabulary, words: Iterable[str], accept: Callable[[str], bool] | None = None
) -> Vocabulary:
    """``vocab`` followed by the ``words`` (e.g. a pretrained embedding's) it lacks, with
    count 0, in their order; special tokens and words ``accept`` rejects (e.g. not in the
    model's normalised form) are skipped. Valid and test words never seen in training then
    keep their pretrained vector instead of becoming ``<unk>``."""
    tokens, seen = list(vocab.tokens), set(vocab.tokens)
    for w in words:
        if w not in seen and w not in SPECIAL_TOKENS and (accept is None or accept(w)):
            tokens.append(w)
            seen.add(w)
    counts = np.concatenate([vocab.counts, np.zeros(len(tokens) - len(vocab), np.int64)])
    return Vocabulary(tokens, counts)


def training_rows(vocab: Vocabulary) -> list[int]:
    """Rows of the words seen in training (count > 0) and of ``<unk>`` / ``<eos>``: the
    rows ``tune_embeddings: listed`` trains (words added by :func:`add_pretrained_words`
    have count 0 and keep their pretrained vector)."""
    return [i for i in range(1, len(vocab)) if vocab.counts[i] > 0 or i <= EOS]


def _rnn_class(cell: str) -> type[nn.RNNBase]:
    return {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]


class SequenceEncoder(nn.Module):
    """Embedding layer (+ optional per-token features) followed by a recurrent network.

    ``forward(ids (B, T), lengths (B,) | None, extra_features (B, T, F) | None)`` returns
    ``outputs (B, T, H * dirs)``; positions at or beyond a sequence's length are zero.
    ``lengths=None`` means every sequence is full length (no packing: the fast path for
    language models). With ``return_hidden=True`` it returns ``(outputs, hidden)`` and
    ``hidden`` may seed the next call (truncated BPTT). ``tuned_rows`` (with
    ``config.tune_embeddings == "listed"``): the only embedding rows that train, e.g.
    :func:`training_rows` of the vocabulary; the others keep ``embedding_matrix``.
    """

    def __init__(
        self,
        config: EncoderConfig,
        vocab_size: int,
        embedding_matrix: torch.Tensor | None = None,
        extra_features_dim: int = 0,
        tuned_rows: torch.Tensor | list[int] | None = None,
    ) -> None:
        super().__init__()
        if vocab_size < 1:
            raise ConfigError(f"vocab_size: {vocab_size} must be at least 1")
        if config.embedding_dim is None:
            raise ConfigError("embedding_dim: null must be resolved before building the encoder")
        self.config = config
        self.extra_features_dim = int(extra_features_dim)
        listed = config.tune_embeddings == "listed" and not config.freeze_embeddings
        if listed and tuned_rows is None:
            raise ConfigError("tune_embeddings: 'listed' needs the rows to train")
        self.embedding = make_embedding(
            vocab_size,
            config.embedding_dim,
            embedding_matrix,
            freeze=config.freeze_embeddings,
            tuned_rows=tuned_rows if config.tune_embeddings == "listed" else None,
            key="tune_embeddings",
        )
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
