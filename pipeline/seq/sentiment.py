"""Sentence sentiment (many-to-one): rt-polarity data, a stratified split, two models.

- :class:`AveragingClassifier`: mean of the word embeddings -> linear -> softmax (blind
  to word order: "not good, bad" and "not bad, good" look the same).
- :class:`RecurrentClassifier`: :class:`SequenceEncoder` + pooled :class:`ClassificationHead`.

Both map ``(ids (B, T), lengths (B,)) -> logits (B, 2)``; label 1 = positive.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from pipeline.core import checkpoint
from pipeline.core.errors import ConfigError, DataError
from pipeline.data.vocab import UNK
from pipeline.seq.encoder import PAD_ID, EncoderConfig, SequenceEncoder, make_embedding
from pipeline.seq.heads import ClassificationHead, Pooling, length_mask
from pipeline.seq.training import (
    TrainerSettings,
    epoch_timer,
    train_resumable,
)
from pipeline.seq.word_order_probe import ProbeSettings

#: ``random`` or the name of an artifact folder under data/processed/embeddings/ (glove,
#: sgns, gnews, their ``_debiased`` versions, any entry of ``pretrained.sources``).
EmbeddingName = str


# ---------------------------------------------------------------------------- data
def load_rt_polarity(path: str | os.PathLike) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read ``id<TAB>score<TAB>text`` lines -> ``(texts, labels, scores)``.

    Labels binarise the score by its sign (1 positive, 0 negative); zero scores are
    dropped. A malformed line raises :class:`DataError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found (run the fetch stage for rt_polarity)")
    texts, labels, scores = [], [], []
    with open(path, encoding="utf-8", errors="strict", newline=None) as fh:
        try:
            for lineno, line in enumerate(fh, start=1):
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                parts = line.split("\t", 2)
                if len(parts) != 3:
                    raise DataError(f"{path}:{lineno}: expected id<TAB>score<TAB>text")
                try:
                    score = float(parts[1])
                except ValueError:
                    raise DataError(
                        f"{path}:{lineno}: score {parts[1]!r} is not a number"
                    ) from None
                if score == 0 or not np.isfinite(score):
                    continue
                texts.append(parts[2].strip())
                labels.append(1 if score > 0 else 0)
                scores.append(score)
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 ({exc})") from exc
    if not texts:
        raise DataError(f"{path}: no labelled sentences")
    return texts, np.asarray(labels, dtype=np.int64), np.asarray(scores, dtype=np.float64)


def stratified_split(
    labels: np.ndarray, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of train / valid / test, each class split in the given proportions.

    Deterministic for a seed; every index lands in exactly one part (sorted).
    """
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    total = float(sum(fractions))
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_train = round(len(idx) * fractions[0] / total)
        n_valid = round(len(idx) * fractions[1] / total)
        parts[0].extend(idx[:n_train])
        parts[1].extend(idx[n_train : n_train + n_valid])
        parts[2].extend(idx[n_train + n_valid :])
    return tuple(np.sort(np.asarray(p, dtype=np.int64)) for p in parts)  # type: ignore[return-value]


def train_subset(train_idx: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """``n`` of the training indices drawn at random (sorted), or all of them: the first
    ``n`` would be one class in a file sorted by label (rt-polarity is)."""
    if not n or n >= len(train_idx):
        return train_idx
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(train_idx, n, replace=False))


def tokenize(text: str) -> list[str]:
    """Lower-cased words, with negation contractions split (``doesn't`` -> ``does``,
    ``n't``) so that the negation is one shared token."""
    from pipeline.data.text import word_tokenize

    out: list[str] = []
    for word in word_tokenize(text.lower().replace("\u2019", "'")):
        if word.endswith("n't") and len(word) > 3:
            out.extend([word[:-3], "n't"])
        else:
            out.append(word)
    return out


def with_bigrams(tokens: Sequence[str]) -> list[str]:
    """``tokens`` followed by their bigrams, each ``"a b"`` (never a word: words hold no
    space), for the averaging model with ``ngrams: 2``."""
    return [*tokens, *(f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False))]


def build_vocab(
    token_lists: Sequence[Sequence[str]], min_count: int = 1, max_size: int | None = None
):
    """A :class:`pipeline.data.vocab.Vocabulary` over training sentences (specials first)."""
    from pipeline.data.vocab import Vocabulary

    return Vocabulary.from_counts(
        Counter(t for toks in token_lists for t in toks), min_count=min_count, max_size=max_size
    )


class EncodedSentences(torch.utils.data.Dataset):
    """Id arrays + labels; items ``(ids, label)``."""

    def __init__(self, ids: list[np.ndarray], labels: np.ndarray) -> None:
        self.ids = ids
        self.labels = labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.ids[i], int(self.labels[i])


def collate(batch: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, ...]:
    """Pad to the longest sentence: ``(ids (B, T), lengths (B,), labels (B,))``."""
    lengths = torch.tensor([max(len(ids), 1) for ids, _ in batch])
    out = torch.full((len(batch), int(lengths.max())), PAD_ID, dtype=torch.long)
    for i, (ids, _) in enumerate(batch):
        out[i, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
    return out, lengths, torch.tensor([label for _, label in batch])


class EpochShuffle(torch.utils.data.Sampler):
    """Indices ``0..n-1`` in an order that is a function of ``(seed, epoch)`` only.

    Lightning calls :meth:`set_epoch` at every epoch start, also when it resumes from a
    checkpoint, so a resumed run reads its epochs in the order the uninterrupted run did
    (a generator seeded once would restart from its first permutation).
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        yield from np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist()


def make_loader(
    ids: list[np.ndarray],
    labels: np.ndarray,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    bucket: bool = False,
) -> DataLoader:
    """Batches of ``(ids, lengths, labels)``; shuffled per epoch by :class:`EpochShuffle`,
    or with ``bucket`` (and ``shuffle``) by a
    :class:`~pipeline.seq.batching.BucketBatchSampler`: sentences of similar length
    together, batches in random order. Without ``shuffle`` the order is the input's."""
    if bucket and shuffle:
        from pipeline.seq.batching import BucketBatchSampler

        sampler = BucketBatchSampler([len(x) for x in ids], batch_size, True, seed)
        return DataLoader(EncodedSentences(ids, labels), batch_sampler=sampler, collate_fn=collate)
    return DataLoader(
        EncodedSentences(ids, labels),
        batch_size=batch_size,
        sampler=EpochShuffle(len(ids), seed) if shuffle else None,
        collate_fn=collate,
    )


# ---------------------------------------------------------------------------- models
def kept_words(lengths: torch.Tensor, max_len: int, p: float) -> torch.Tensor:
    """Word dropout mask (B, T): True at the valid positions kept, each dropped with
    probability ``p`` (global torch RNG); a sentence that would lose every word keeps
    them all."""
    valid = length_mask(lengths, max_len)  # (B, T)
    keep = valid & (torch.rand(valid.shape, device=lengths.device) >= p)
    return torch.where(keep.any(1, keepdim=True), keep, valid)


class AveragingClassifier(nn.Module):
    """Mean of the embeddings of the valid positions -> dropout -> linear (logits).

    ``word_dropout``: in training, each word is left out of the mean with this
    probability (Iyyer et al. 2015: the model cannot lean on a few strong words).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        num_classes: int = 2,
        embedding_matrix: torch.Tensor | None = None,
        freeze_embeddings: bool = False,
        dropout: float = 0.0,
        tuned_rows: torch.Tensor | list[int] | None = None,
        word_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.word_dropout = float(word_dropout)
        # tuned_rows: only these rows train (as a delta over the frozen matrix)
        self.embedding = make_embedding(
            vocab_size, embedding_dim, embedding_matrix, freeze_embeddings, tuned_rows,
            key="sentiment.tune_embeddings",
        )  # fmt: skip
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(embedding_dim, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.to(ids.device)
        if self.training and self.word_dropout > 0:
            mask = kept_words(lengths, ids.shape[1], self.word_dropout)  # (B, T)
        else:
            mask = length_mask(lengths, ids.shape[1])
        emb = self.embedding(ids) * mask.unsqueeze(-1)  # (B, T, D)
        count = mask.sum(1, keepdim=True).clamp(min=1).to(emb.dtype)  # (B, 1)
        return self.proj(self.dropout(emb.sum(1) / count))


class RecurrentClassifier(nn.Module):
    """:class:`SequenceEncoder` -> pooled head (last / mean / max / max_mean) -> logits.

    ``word_dropout``: in training, each word is read as ``<unk>`` with this probability
    (the sentence keeps its length and word order).
    """

    def __init__(
        self,
        config: EncoderConfig,
        vocab_size: int,
        num_classes: int = 2,
        embedding_matrix: torch.Tensor | None = None,
        pooling: Pooling = "last",
        tuned_rows: torch.Tensor | list[int] | None = None,
        word_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.word_dropout = float(word_dropout)
        self.encoder = SequenceEncoder(config, vocab_size, embedding_matrix, tuned_rows=tuned_rows)
        self.head = ClassificationHead(
            self.encoder.output_size,
            num_classes,
            pooling,
            dropout=config.dropout,
            bidirectional=config.bidirectional,
        )

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.training and self.word_dropout > 0:
            valid = length_mask(lengths.to(ids.device), ids.shape[1])
            dropped = valid & ~kept_words(lengths.to(ids.device), ids.shape[1], self.word_dropout)
            ids = ids.masked_fill(dropped, UNK)
        return self.head(self.encoder(ids, lengths), lengths)


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True)
class RnnSettings:
    """The recurrent model: encoder shape and pooling."""

    cell: Literal["rnn", "gru", "lstm"] = "lstm"
    hidden_size: int = field(default=100, metadata={"min": 1})
    num_layers: int = field(default=1, metadata={"min": 1})
    bidirectional: bool = True
    #: max_mean: the max and the mean of the outputs side by side (twice the head's input)
    pooling: Literal["last", "mean", "max", "max_mean"] = "max"


@dataclass(frozen=True)
class ModelSettings:
    """Per-model optimisation settings."""

    lr: float = field(default=1e-3, metadata={"gt": 0.0})
    weight_decay: float = field(default=0.0, metadata={"min": 0.0})
    dropout: float = field(default=0.3, metadata={"min": 0.0, "max": 0.95})
    max_epochs: int | None = field(default=None, metadata={"min": 1})
    #: 2: the averaging model also averages bigram embeddings (fastText, Joulin et al.
    #: 2017), which see local word order ("not good"); the recurrent model takes 1 only
    ngrams: int = field(default=1, metadata={"min": 1, "max": 2})
    #: probability of dropping each training word (avg: left out of the mean; rnn: read
    #: as <unk>); 0 = off
    word_dropout: float = field(default=0.0, metadata={"min": 0.0, "max": 0.9})


@dataclass(frozen=True)
class SentimentConfig:
    """The ``sentiment`` section (one section for both models).

    ``embedding``: ``random`` or a pipeline artifact under
    ``data/processed/embeddings/<name>/``; its dimension must equal ``embedding_dim``
    (``None``: take the artifact's, 100 for ``random``).
    ``max_train_examples``: use only N training sentences, a random subset drawn with
    ``split_seed`` (time budget).
    ``add_embedding_words``: the vocabulary also holds every word of the pretrained
    embedding (valid and test words unseen in training keep their vector);
    ``tune_embeddings``: ``all`` rows train, or only the ``listed`` rows of the training
    words (the pretrained rows stay frozen; cheap with a 400k-word vocabulary).
    ``bucket_by_length``: training batches of sentences of similar length (fewer
    recurrent steps per batch: faster, and other batches than random ones).
    ``probe``: the word-order probe scored after training
    (:mod:`pipeline.seq.word_order_probe`).
    ``resume``: continue from ``<checkpoint_dir>/last.ckpt`` when it was written by a run
    of the same model, settings and data (a killed run picks up where it stopped, whether
    it ran with ``resume`` or not, and ends as the uninterrupted run on CPU).
    """

    models: list[str] = field(default_factory=lambda: ["avg", "rnn"])
    embedding: EmbeddingName = "random"
    embedding_dim: int | None = field(default=100, metadata={"min": 1})  # None: the artifact's
    freeze_embeddings: bool = False
    add_embedding_words: bool = False
    tune_embeddings: Literal["all", "listed"] = "all"
    min_count: int = field(default=1, metadata={"min": 1})
    max_vocab: int | None = field(default=None, metadata={"min": 4})
    split_seed: int = 0
    max_train_examples: int | None = field(default=None, metadata={"min": 10})
    batch_size: int = field(default=64, metadata={"min": 1})
    bucket_by_length: bool = False
    resume: bool = False
    avg: ModelSettings = field(default_factory=lambda: ModelSettings(lr=5e-3, dropout=0.2))
    rnn: ModelSettings = field(default_factory=ModelSettings)
    encoder: RnnSettings = field(default_factory=RnnSettings)
    trainer: TrainerSettings = field(
        default_factory=lambda: TrainerSettings(monitor="val_acc", mode="max")
    )
    probe: ProbeSettings = field(default_factory=ProbeSettings)

    def __post_init__(self) -> None:
        if self.rnn.ngrams != 1:
            raise ValueError("rnn.ngrams: the recurrent model reads words in order (use 1)")
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", self.embedding):
            raise ValueError(f"embedding: {self.embedding!r} is not an artifact folder name")


def build_model(
    kind: str,
    cfg: SentimentConfig,
    vocab_size: int,
    embedding_matrix: torch.Tensor | None,
    tuned_rows: list[int] | None = None,
) -> nn.Module:
    """The ``avg`` or ``rnn`` model for ``cfg`` (``tuned_rows``: the rows that train with
    ``tune_embeddings: listed``)."""
    rows = tuned_rows if cfg.tune_embeddings == "listed" else None
    if cfg.tune_embeddings == "listed" and (rows is None or embedding_matrix is None):
        raise ConfigError("sentiment.tune_embeddings: 'listed' needs an embedding matrix")
    if kind == "avg":
        return AveragingClassifier(
            vocab_size,
            cfg.embedding_dim,
            2,
            embedding_matrix,
            cfg.freeze_embeddings,
            cfg.avg.dropout,
            tuned_rows=rows,
            word_dropout=cfg.avg.word_dropout,
        )
    if kind == "rnn":
        e = cfg.encoder
        enc = EncoderConfig(
            cell=e.cell,
            embedding_dim=cfg.embedding_dim,
            hidden_size=e.hidden_size,
            num_layers=e.num_layers,
            bidirectional=e.bidirectional,
            dropout=cfg.rnn.dropout,
            freeze_embeddings=cfg.freeze_embeddings,
            tune_embeddings=cfg.tune_embeddings,
        )
        return RecurrentClassifier(
            enc, vocab_size, 2, embedding_matrix, e.pooling, rows, cfg.rnn.word_dropout
        )
    raise DataError(f"sentiment.models: unknown model {kind!r} (known: avg, rnn)")


# ---------------------------------------------------------------------------- train / predict
def train_classifier(
    model: nn.Module,
    settings: ModelSettings,
    trainer_settings: TrainerSettings,
    train_loader: DataLoader,
    val_loader: DataLoader,
    checkpoint_dir: str | os.PathLike,
    logger: Any = None,
    fingerprint_value: str = "",
    resume: bool = False,
    lr_key: str = "sentiment.lr",
) -> dict[str, Any]:
    """Fit ``model`` in place (best validation checkpoint reloaded); returns
    ``{"epochs", "time_per_epoch_s", "checkpoint", "resumed"}``. Seed the model's
    initialisation before building it (``lightning.seed_everything``) for identical runs.

    Through :func:`pipeline.seq.training.train_resumable`: the fingerprint (see
    :func:`fingerprint`) is always stamped beside the checkpoints; with ``resume`` and the
    same fingerprint, training continues ``<checkpoint_dir>/last.ckpt`` (model, optimizer,
    epoch and early-stopping state) and ends as the uninterrupted run; otherwise it starts
    afresh. A diverging run stops with an error naming ``lr_key``.
    """
    from dataclasses import replace

    from pipeline.seq.lit import ClassifierModule

    if settings.max_epochs is not None:
        trainer_settings = replace(trainer_settings, max_epochs=settings.max_epochs)
    timer = epoch_timer()
    run = train_resumable(
        lambda: ClassifierModule(model, lr=settings.lr, weight_decay=settings.weight_decay),
        (train_loader, val_loader),
        trainer_settings,
        checkpoint_dir,
        fingerprint_value,
        resume=resume,
        lr_key=lr_key,
        lr=settings.lr,
        logger=logger,
        callbacks=[timer],
    )
    model.cpu()
    return {
        "epochs": int(run.trainer.current_epoch),
        "time_per_epoch_s": float(np.mean(timer.seconds)) if timer.seconds else None,
        "checkpoint": run.best,
        "resumed": run.resumed,
    }


def fingerprint(kind: str, cfg: SentimentConfig, texts: Sequence[str], labels: np.ndarray,
                embedding_matrix: torch.Tensor | None) -> str:  # fmt: skip
    """sha256 of what training computes from: the model kind, the settings, the
    sentences, the labels and the initial embedding matrix. ``resume`` and the stopping
    rules (epochs, patience, time cap) are left out, so a longer run continues a shorter."""
    settings = {k: v for k, v in asdict(cfg).items() if k != "resume"}
    for name in ("avg", "rnn"):
        settings[name] = {k: v for k, v in settings[name].items() if k != "max_epochs"}
    stop = ("max_epochs", "patience", "max_time_s", "progress_bar", "log_every_n_steps")
    settings["trainer"] = {k: v for k, v in settings["trainer"].items() if k not in stop}
    arrays = [np.asarray(labels, dtype=np.int64)]
    if embedding_matrix is not None:
        arrays.append(embedding_matrix.detach().cpu().contiguous().numpy())
    return checkpoint.fingerprint([kind, settings], arrays=arrays, texts=texts)


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
    """``(predicted labels, probability of positive)`` for every sentence, in order."""
    was = model.training
    model.eval()
    preds, probs = [], []
    try:
        for ids, lengths, _ in loader:
            p = torch.softmax(model(ids, lengths).float(), -1)[:, 1]
            probs.append(p.numpy())
            preds.append((p > 0.5).long().numpy())
    finally:
        model.train(was)
    return np.concatenate(preds), np.concatenate(probs)


def predict_texts(result: SentimentResult, texts: Sequence[str], batch_size: int = 256):
    """Predicted labels (1 positive) of the trained model for new sentences."""
    ids = [result.vocab.encode(tokenize(t)) for t in texts]
    loader = make_loader(ids, np.zeros(len(ids), dtype=np.int64), batch_size, False, seed=0)
    return predict(result.model, loader)[0]


def accuracy_f1(labels: np.ndarray, preds: np.ndarray) -> dict[str, float]:
    """Accuracy and F1 of the positive class (label 1)."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    tp = int(((preds == 1) & (labels == 1)).sum())
    fp = int(((preds == 1) & (labels == 0)).sum())
    fn = int(((preds == 0) & (labels == 1)).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"acc": float((labels == preds).mean()) if labels.size else 0.0, "f1": f1}


# ---------------------------------------------------------------------------- word order
#: Words that flip or shift the polarity of what follows: where word order matters.
ORDER_CUES = frozenset(
    [
        "not",
        "n't",
        "no",
        "never",
        "nothing",
        "nor",
        "neither",
        "without",
        "lacking",
        "lacks",
        "lack",
        "lacked",
        "hardly",
        "barely",
        "but",
        "although",
        "though",
        "yet",
        "fails",
        "fail",
        "failed",
        "instead",
        "rather",
        "isn't",
    ]
)


def order_cues(text: str) -> list[str]:
    """The :data:`ORDER_CUES` found in ``text`` (in order, without repeats)."""
    seen: list[str] = []
    for tok in tokenize(text):
        if tok in ORDER_CUES and tok not in seen:
            seen.append(tok)
    return seen


def word_order_report(
    texts: Sequence[str],
    labels: np.ndarray,
    pred_avg: np.ndarray,
    pred_rnn: np.ndarray,
    max_examples: int = 40,
) -> tuple[str, dict[str, float]]:
    """Markdown report of test sentences with word-order cues (negation, contrast) that
    the recurrent model classifies correctly and the averaging model does not.

    Returns ``(markdown, numbers)``: accuracies of both models on the cue sentences and
    on the rest, and the counts of sentences each model alone gets right.
    """
    labels, pred_avg, pred_rnn = (np.asarray(a) for a in (labels, pred_avg, pred_rnn))
    cues = [order_cues(t) for t in texts]
    has = np.array([bool(c) for c in cues])
    rnn_ok, avg_ok = pred_rnn == labels, pred_avg == labels

    def acc(ok: np.ndarray, mask: np.ndarray) -> float:
        return float(ok[mask].mean()) if mask.any() else float("nan")

    numbers = {
        "cue_sentences": int(has.sum()),
        "cue_acc_avg": acc(avg_ok, has),
        "cue_acc_rnn": acc(rnn_ok, has),
        "other_acc_avg": acc(avg_ok, ~has),
        "other_acc_rnn": acc(rnn_ok, ~has),
        "cue_rnn_only": int((has & rnn_ok & ~avg_ok).sum()),
        "cue_avg_only": int((has & avg_ok & ~rnn_ok).sum()),
    }
    names = {0: "negative", 1: "positive"}
    lines = [
        "# Where word order matters: recurrent vs averaging sentiment model",
        "",
        f"Test sentences containing a negation or contrast cue ({', '.join(sorted(ORDER_CUES))}):"
        f" {numbers['cue_sentences']} of {len(texts)}.",
        "",
        "| sentences | averaging acc | recurrent acc |",
        "|---|---|---|",
        f"| with a cue | {numbers['cue_acc_avg']:.3f} | {numbers['cue_acc_rnn']:.3f} |",
        f"| without | {numbers['other_acc_avg']:.3f} | {numbers['other_acc_rnn']:.3f} |",
        "",
        f"With a cue, the recurrent model alone is right on {numbers['cue_rnn_only']} sentences, "
        f"the averaging model alone on {numbers['cue_avg_only']}.",
        "",
        "## Right by the recurrent model, wrong by the averaging model",
        "",
        "| # | gold | cues | sentence |",
        "|---|---|---|---|",
    ]
    shown = 0
    for i in np.flatnonzero(has & rnn_ok & ~avg_ok):
        if shown >= max_examples:
            break
        text = texts[i].replace("|", "\\|")
        lines.append(f"| {i} | {names[int(labels[i])]} | {', '.join(cues[i])} | {text} |")
        shown += 1
    if not shown:
        lines.append("| - | - | - | (none) |")
    return "\n".join(lines) + "\n", numbers


# ---------------------------------------------------------------------------- one run
@dataclass
class SentimentResult:
    """What :func:`fit_sentiment` returns: the trained model and what to report."""

    model: nn.Module
    vocab: Any  # pipeline.data.vocab.Vocabulary
    metrics: dict[str, Any]
    test_index: np.ndarray
    test_pred: np.ndarray
    test_prob: np.ndarray


def fit_sentiment(
    kind: str,
    cfg: SentimentConfig,
    texts: Sequence[str],
    labels: np.ndarray,
    embeddings: Any = None,
    checkpoint_dir: str | os.PathLike = "data/interim/train_sentiment",
    logger: Any = None,
) -> SentimentResult:
    """Split, tokenize, build the vocabulary on train, initialise the embeddings (from
    ``embeddings`` or random), train model ``kind`` (``avg`` | ``rnn``), evaluate on
    valid and test. Same config and seed on CPU -> same result."""
    import lightning as L

    from pipeline.seq.encoder import add_pretrained_words, init_embedding_matrix, training_rows

    train_idx, valid_idx, test_idx = stratified_split(labels, seed=cfg.split_seed)
    train_idx = train_subset(train_idx, cfg.max_train_examples, cfg.split_seed)
    settings = cfg.avg if kind == "avg" else cfg.rnn
    tokens = [tokenize(t) for t in texts]
    if settings.ngrams == 2:
        tokens = [with_bigrams(t) for t in tokens]
    vocab = build_vocab([tokens[i] for i in train_idx], cfg.min_count, cfg.max_vocab)
    if cfg.add_embedding_words and embeddings is not None:
        vocab = add_pretrained_words(vocab, embeddings.words, lambda w: w == w.lower())
    ids = [vocab.encode(t) for t in tokens]
    matrix, missing = init_embedding_matrix(
        vocab.tokens, embeddings, cfg.embedding_dim, cfg.trainer.seed, key="sentiment.embedding_dim"
    )
    bigram_rows = [i for i, t in enumerate(vocab.tokens) if " " in t]
    if bigram_rows:  # bigrams start neutral (zero) and are not words missing from the artifact
        matrix[torch.as_tensor(bigram_rows)] = 0.0
        if embeddings is not None:
            missing -= sum(embeddings.index(vocab.tokens[i]) is None for i in bigram_rows)
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    model = build_model(kind, cfg, len(vocab), matrix, training_rows(vocab))

    def loader(idx: np.ndarray, shuffle: bool) -> DataLoader:
        return make_loader(
            [ids[i] for i in idx],
            labels[idx],
            cfg.batch_size,
            shuffle,
            seed=cfg.trainer.seed,
            bucket=cfg.bucket_by_length,
        )

    info = train_classifier(
        model,
        settings,
        cfg.trainer,
        loader(train_idx, True),
        loader(valid_idx, False),
        checkpoint_dir,
        logger,
        fingerprint(kind, cfg, texts, labels, matrix),
        resume=cfg.resume,
        lr_key=f"sentiment.{kind}.lr",
    )
    metrics: dict[str, Any] = {
        "model": kind,
        "embedding": cfg.embedding,
        "embedding_missing": missing,
        "vocab_size": len(vocab),
        "train_size": len(train_idx),
        "valid_size": len(valid_idx),
        "test_size": len(test_idx),
        "epochs": info["epochs"],
        "resumed": info["resumed"],
        "time_per_epoch_s": info["time_per_epoch_s"],
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    out = {}
    for split, idx in (("valid", valid_idx), ("test", test_idx)):
        pred, prob = predict(model, loader(idx, False))
        out[split] = (pred, prob)
        for k, v in accuracy_f1(labels[idx], pred).items():
            metrics[f"{split}_{k}"] = v
    return SentimentResult(model, vocab, metrics, test_idx, *out["test"])


def predictions_tsv(texts: Sequence[str], labels: np.ndarray, result: SentimentResult) -> str:
    """``index<TAB>label<TAB>pred<TAB>prob_pos<TAB>text`` lines (with a header) for test."""
    rows = ["index\tlabel\tpred\tprob_pos\ttext"]
    for i, p, q in zip(result.test_index, result.test_pred, result.test_prob, strict=True):
        text = " ".join(texts[i].split())  # no tabs or line breaks inside the field
        rows.append(f"{i}\t{labels[i]}\t{p}\t{q:.4f}\t{text}")
    return "\n".join(rows) + "\n"


def read_predictions(path: str | os.PathLike) -> dict[str, Any]:
    """Parse :func:`predictions_tsv` output -> ``{"index", "label", "pred", "text"}``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found (run train_sentiment first)")
    index, label, pred, text = [], [], [], []
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n")
        if header != "index\tlabel\tpred\tprob_pos\ttext":
            raise DataError(f"{path}:1: unexpected header {header!r}")
        for lineno, line in enumerate(fh, start=2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 5:
                raise DataError(f"{path}:{lineno}: expected 5 tab-separated fields")
            try:
                index.append(int(parts[0]))
                label.append(int(parts[1]))
                pred.append(int(parts[2]))
            except ValueError as exc:
                raise DataError(f"{path}:{lineno}: {exc}") from exc
            text.append(parts[4])
    return {
        "index": np.asarray(index),
        "label": np.asarray(label),
        "pred": np.asarray(pred),
        "text": text,
    }
