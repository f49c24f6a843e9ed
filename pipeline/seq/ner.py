"""Named-entity recognition on CoNLL-2003: reader, features, the BiLSTM(-CRF) tagger, and
the outputs (CoNLL predictions, tag confusion matrix).

The tagger (Lample et al. 2016; Ma & Hovy 2016) is a plain ``nn.Module``::

    word embeddings (random or a pipeline artifact)  ┐
    character CNN over each word (max-pooled)        ├─ concat -> BiLSTM -> linear -> softmax | CRF
    word-shape embedding (Xx, XX, x, d, ...)         ┘

Example::

    train = read_conll("data/raw/conll2003/train.txt")
    vocabs = build_vocabularies(train, NerDataConfig())
    data = encode_sentences(train, vocabs, NerDataConfig())
    model = NerTagger(NerModelConfig(), EncoderConfig(bidirectional=True), vocabs)
    tags = predict(model, data, batch_size=64)   # list of tag lists
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.core.errors import DataError
from pipeline.data.vocab import PAD, Vocabulary
from pipeline.seq.batching import BucketBatchSampler
from pipeline.seq.crf import CRF, iob2_constraints
from pipeline.seq.encoder import (
    EncoderConfig,
    SequenceEncoder,
    add_pretrained_words,
    training_rows,
)
from pipeline.seq.heads import TaggingHead, length_mask

DOCSTART = "-DOCSTART-"
TAG_RE = re.compile(r"^(O|[BIE]-[^\s]+)$")

# Word shapes: a small closed set, so the embedding needs no vocabulary file.
SHAPES = (
    "<pad>",
    "lower",  # bank
    "initcap",  # Bank
    "allcaps",  # EU, BRUSSELS
    "mixedcase",  # iPhone, McDonald
    "numeric",  # 1996
    "hasdigit",  # 1996-08-22, 3rd
    "punct",  # . , ( "
    "other",  # anything else (e.g. non-ASCII letters mixed with symbols)
)


# --------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class Sentence:
    """One sentence: its words and their NER tags (same length)."""

    words: tuple[str, ...]
    tags: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.words)


def read_conll(path: str | os.PathLike) -> list[Sentence]:
    """Read a CoNLL-2003 file (``word POS chunk NER`` per line; blank lines and
    ``-DOCSTART-`` lines separate sentences) keeping the first and last columns.

    Raises :class:`DataError` naming the file and line for a line with fewer than two
    fields, or a tag that is not ``O`` / ``B-X`` / ``I-X`` / ``E-X``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CoNLL file not found")
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if words:
            sentences.append(Sentence(tuple(words), tuple(tags)))
            words.clear()
            tags.clear()

    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                fields = line.split()
                if not fields:
                    flush()
                    continue
                if fields[0] == DOCSTART:
                    flush()
                    continue
                if len(fields) < 2:
                    raise DataError(
                        f"{path}:{lineno}: expected 'word ... tag', got {line.strip()!r}"
                    )
                if not TAG_RE.match(fields[-1]):
                    raise DataError(f"{path}:{lineno}: {fields[-1]!r} is not an IOB tag")
                words.append(fields[0])
                tags.append(fields[-1])
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 ({exc})") from exc
    flush()
    if not sentences:
        raise DataError(f"{path}: no sentences")
    return sentences


# --------------------------------------------------------------------------- features
def word_shape(word: str) -> int:
    """Index into :data:`SHAPES` of the word's shape."""
    if word.isalpha():
        if word.islower():
            return SHAPES.index("lower")
        if word.isupper():
            return SHAPES.index("allcaps") if len(word) > 1 else SHAPES.index("initcap")
        if word[0].isupper() and word[1:].islower():
            return SHAPES.index("initcap")
        return SHAPES.index("mixedcase")
    if word.isdigit():
        return SHAPES.index("numeric")
    if any(c.isdigit() for c in word):
        return SHAPES.index("hasdigit")
    if not any(c.isalnum() for c in word):
        return SHAPES.index("punct")
    letters = [c for c in word if c.isalpha()]
    if letters and all(c.isupper() for c in letters):
        return SHAPES.index("allcaps")
    if letters and letters[0].isupper():
        return SHAPES.index("initcap")
    if letters and all(c.islower() for c in letters):
        return SHAPES.index("lower")
    return SHAPES.index("other")


_DIGITS = re.compile(r"\d")


def normalize_word(word: str, lowercase: bool, zero_digits: bool) -> str:
    """The form used for the word vocabulary (case and digits go to the other features)."""
    if zero_digits:
        word = _DIGITS.sub("0", word)
    return word.lower() if lowercase else word


@dataclass(frozen=True)
class NerDataConfig:
    """How sentences become tensors.

    ``max_train_sentences``: use only the first N training sentences (0: all), for CPU
    budgets. ``min_count``: training words seen fewer times map to ``<unk>``.
    """

    max_train_sentences: int = field(default=0, metadata={"min": 0})
    #: also give a row to every word of the pretrained embedding, so that valid/test words
    #: never seen in training keep their pretrained vector instead of becoming <unk>
    add_embedding_words: bool = True
    lowercase: bool = True
    zero_digits: bool = True
    min_count: int = field(default=1, metadata={"min": 1})
    max_word_len: int = field(default=20, metadata={"min": 1})
    batch_size: int = field(default=32, metadata={"min": 1})
    eval_batch_size: int = field(default=256, metadata={"min": 1})


@dataclass(frozen=True)
class Vocabularies:
    """Words, characters and tags of a tagger (saved beside its checkpoint)."""

    words: Vocabulary
    chars: Vocabulary
    tags: tuple[str, ...]

    @property
    def tag_index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tags)}


def tag_order(tags: Sequence[str]) -> tuple[str, ...]:
    """``O`` first, then by entity type with ``B-`` before ``I-`` (stable, readable plots)."""
    uniq = set(tags)
    rest = sorted(uniq - {"O"}, key=lambda t: (t[2:], t[:1]))
    return ("O", *rest)


def build_vocabularies(
    train: Sequence[Sentence], cfg: NerDataConfig, extra_words: Sequence[str] = ()
) -> Vocabularies:
    """Word vocabulary (normalised forms, ``min_count``), characters and tags of ``train``.

    ``extra_words`` (e.g. a pretrained embedding's words, with ``cfg.add_embedding_words``)
    are appended with count 0 if they are already in normalised form and not yet present.
    """
    words = Counter(
        normalize_word(w, cfg.lowercase, cfg.zero_digits) for s in train for w in s.words
    )
    chars = Counter(c for s in train for w in s.words for c in w)
    tags = tag_order([t for s in train for t in s.tags])
    vocab = Vocabulary.from_counts(words, min_count=cfg.min_count)
    if cfg.add_embedding_words and extra_words:
        vocab = add_pretrained_words(
            vocab, extra_words, lambda w: normalize_word(w, cfg.lowercase, cfg.zero_digits) == w
        )
    return Vocabularies(vocab, Vocabulary.from_counts(chars, min_count=1), tags)


@dataclass(frozen=True)
class EncodedSentence:
    """Arrays of one sentence: word ids (L,), char ids (L, C), shape ids (L,), tag ids (L,)."""

    words: np.ndarray
    chars: np.ndarray
    shapes: np.ndarray
    tags: np.ndarray

    def __len__(self) -> int:
        return len(self.words)


def encode_sentences(
    sentences: Sequence[Sentence],
    vocabs: Vocabularies,
    cfg: NerDataConfig,
    where: str = "data",
) -> list[EncodedSentence]:
    """Ids for every sentence; a tag unknown to ``vocabs`` is a :class:`DataError`."""
    tag_index = vocabs.tag_index
    out = []
    for i, s in enumerate(sentences):
        n = len(s)
        wid = vocabs.words.encode(
            normalize_word(w, cfg.lowercase, cfg.zero_digits) for w in s.words
        )
        cid = np.zeros((n, cfg.max_word_len), dtype=np.int32)
        for j, w in enumerate(s.words):
            ids = vocabs.chars.encode(w[: cfg.max_word_len])
            cid[j, : len(ids)] = ids
        shp = np.array([word_shape(w) for w in s.words], dtype=np.int32)
        try:
            tid = np.array([tag_index[t] for t in s.tags], dtype=np.int64)
        except KeyError as exc:
            raise DataError(
                f"{where}: sentence {i + 1}: tag {exc.args[0]!r} not seen in training"
            ) from None
        out.append(EncodedSentence(wid, cid, shp, tid))
    return out


def collate(batch: Sequence[EncodedSentence]) -> dict[str, torch.Tensor]:
    """Pad a list of sentences: words/shapes/tags (B, T), chars (B, T, C), lengths (B,)."""
    lengths = torch.tensor([len(s) for s in batch], dtype=torch.long)
    T = int(lengths.max())
    C = batch[0].chars.shape[1]
    words = torch.full((len(batch), T), PAD, dtype=torch.long)
    shapes = torch.zeros((len(batch), T), dtype=torch.long)
    tags = torch.zeros((len(batch), T), dtype=torch.long)
    chars = torch.zeros((len(batch), T, C), dtype=torch.long)
    for b, s in enumerate(batch):
        n = len(s)
        words[b, :n] = torch.from_numpy(s.words.astype(np.int64))
        shapes[b, :n] = torch.from_numpy(s.shapes.astype(np.int64))
        tags[b, :n] = torch.from_numpy(s.tags)
        chars[b, :n] = torch.from_numpy(s.chars.astype(np.int64))
    return {"words": words, "chars": chars, "shapes": shapes, "tags": tags, "lengths": lengths}


def make_loader(
    data: Sequence[EncodedSentence], batch_size: int, shuffle: bool, seed: int = 0
) -> torch.utils.data.DataLoader:
    """A DataLoader over ``data`` with length bucketing (single process, deterministic)."""
    sampler = BucketBatchSampler([len(s) for s in data], batch_size, shuffle, seed)
    return torch.utils.data.DataLoader(list(data), batch_sampler=sampler, collate_fn=collate)


# --------------------------------------------------------------------------- model
@dataclass(frozen=True)
class NerModelConfig:
    """The tagger around the shared encoder, and its optimiser.

    ``char_filters: 0`` disables the character CNN, ``shape_dim: 0`` the word-shape
    embedding. ``output: crf`` adds a linear-chain CRF (Viterbi decoding, IOB2
    transitions enforced); ``softmax`` tags each token independently.
    """

    output: Literal["softmax", "crf"] = "crf"
    char_dim: int = field(default=25, metadata={"min": 1})
    char_filters: int = field(default=30, metadata={"min": 0})
    char_kernel: int = field(default=3, metadata={"min": 1})
    shape_dim: int = field(default=8, metadata={"min": 0})
    head_dropout: float = field(default=0.0, metadata={"min": 0.0, "max": 0.95})
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = field(default=1e-3, metadata={"gt": 0.0})
    momentum: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0})
    weight_decay: float = field(default=0.0, metadata={"min": 0.0})


class CharCNN(nn.Module):
    """Characters of each word -> one vector: embed, convolve, max-pool over characters."""

    def __init__(self, num_chars: int, char_dim: int, filters: int, kernel: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=PAD)
        self.conv = nn.Conv1d(char_dim, filters, kernel, padding=kernel // 2)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        B, T, C = chars.shape
        x = self.embedding(chars.view(B * T, C)).transpose(1, 2)  # (B*T, D, C)
        h = self.conv(x)[:, :, :C]  # (B*T, F, C)
        pad = chars.view(B * T, 1, C) == PAD  # padding chars never win the max
        lowest = torch.finfo(h.dtype).min
        h = h.masked_fill(pad, lowest).max(dim=2).values  # (B*T, F)
        h = h.masked_fill(h == lowest, 0.0)  # padding words (no characters) -> zeros
        return h.view(B, T, -1)


class NerTagger(nn.Module):
    """Embeddings + char CNN + word shape -> :class:`SequenceEncoder` -> softmax or CRF."""

    def __init__(
        self,
        config: NerModelConfig,
        encoder: EncoderConfig,
        vocabs: Vocabularies,
        embedding_matrix: torch.Tensor | None = None,
        tuned_rows: torch.Tensor | list[int] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.tags = tuple(vocabs.tags)
        self.chars = (
            CharCNN(len(vocabs.chars), config.char_dim, config.char_filters, config.char_kernel)
            if config.char_filters > 0
            else None
        )
        self.shape = (
            nn.Embedding(len(SHAPES), config.shape_dim, padding_idx=0) if config.shape_dim else None
        )
        extra = config.char_filters + config.shape_dim
        if tuned_rows is None and encoder.tune_embeddings == "listed":
            tuned_rows = training_rows(vocabs.words)
        self.encoder = SequenceEncoder(
            encoder, len(vocabs.words), embedding_matrix, extra, tuned_rows=tuned_rows
        )
        self.head = TaggingHead(self.encoder.output_size, len(self.tags), config.head_dropout)
        self.crf = (
            CRF(len(self.tags), *iob2_constraints(list(self.tags)))
            if config.output == "crf"
            else None
        )

    def emissions(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-token tag scores (B, T, K)."""
        feats = []
        if self.chars is not None:
            feats.append(self.chars(batch["chars"]))  # (B, T, F)
        if self.shape is not None:
            feats.append(self.shape(batch["shapes"]))  # (B, T, S)
        extra = torch.cat(feats, dim=-1) if feats else None
        out = self.encoder(batch["words"], batch["lengths"], extra)  # (B, T, H*dirs)
        return self.head(out)

    def loss(
        self, batch: dict[str, torch.Tensor], emissions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean negative log-likelihood per sentence (CRF) or per token (softmax)."""
        em = self.emissions(batch) if emissions is None else emissions
        mask = length_mask(batch["lengths"].to(em.device), em.shape[1])
        if self.crf is not None:
            return self.crf.nll(em, batch["tags"], mask)
        return F.cross_entropy(em.float()[mask], batch["tags"][mask])

    @torch.no_grad()
    def decode(
        self, batch: dict[str, torch.Tensor], emissions: torch.Tensor | None = None
    ) -> list[list[int]]:
        """Best tag ids per sentence (Viterbi for CRF, argmax for softmax)."""
        em = self.emissions(batch) if emissions is None else emissions
        mask = length_mask(batch["lengths"].to(em.device), em.shape[1])
        if self.crf is not None:
            return self.crf.decode(em, mask)
        best = em.argmax(-1).tolist()
        return [row[:n] for row, n in zip(best, batch["lengths"].tolist(), strict=True)]


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def predict(
    model: NerTagger, data: Sequence[EncodedSentence], batch_size: int = 256
) -> list[list[str]]:
    """Tags (strings) for every sentence of ``data``, in the order of ``data``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[list[str] | None] = [None] * len(data)
    sampler = BucketBatchSampler([len(s) for s in data], batch_size, shuffle=False)
    for idx in sampler:
        batch = _to(collate([data[i] for i in idx]), device)
        for i, path in zip(idx, model.decode(batch), strict=True):
            out[i] = [model.tags[t] for t in path]
    model.train(was_training)
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- outputs
def confusion_matrix(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], tags: Sequence[str]
) -> np.ndarray:
    """Token-level counts (K, K): rows gold tag, columns predicted tag, order of ``tags``."""
    index = {t: i for i, t in enumerate(tags)}
    m = np.zeros((len(tags), len(tags)), dtype=np.int64)
    for gs, ps in zip(gold, pred, strict=True):
        for g, p in zip(gs, ps, strict=True):
            m[index[g], index[p]] += 1
    return m


def plot_confusion(
    matrix: np.ndarray, tags: Sequence[str], path: str | os.PathLike, title: str = ""
) -> None:
    """A readable PNG: cells coloured by the row share (recall per gold tag), labelled with
    counts. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.core.atomic import atomic_path

    rows = matrix.sum(axis=1, keepdims=True)
    share = matrix / np.maximum(rows, 1)
    k = len(tags)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * k, 0.8 + 0.65 * k), dpi=120)
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), tags, rotation=45, ha="right")
    ax.set_yticks(range(k), tags)
    ax.set_xlabel("predicted tag")
    ax.set_ylabel("gold tag")
    ax.set_title(title or "Token-level tag confusion (colour: share of the gold row)")
    for i in range(k):
        for j in range(k):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")  # fmt: skip
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("share of the gold tag's tokens")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


__all__ = [
    "BucketBatchSampler",
    "CharCNN",
    "EncodedSentence",
    "NerDataConfig",
    "NerModelConfig",
    "NerTagger",
    "Sentence",
    "Vocabularies",
    "build_vocabularies",
    "collate",
    "confusion_matrix",
    "encode_sentences",
    "make_loader",
    "normalize_word",
    "plot_confusion",
    "predict",
    "read_conll",
    "tag_order",
    "word_shape",
]
