"""Long-range subject-verb agreement: a generated many-to-one task over real text.

An example is ``the <noun> <filler ...>`` and its label, the verb that must follow:
``was`` (0) after a singular noun, ``were`` (1) after a plural one. The filler is a
contiguous run of real text (a corpus id stream with its ``<eos>`` marks dropped and no
``was``/``were`` inside), so the distance d = (verb position) - (noun position) runs from
1 ("the cat was") to ``max_distance``. A recurrent classifier reads the prefix left to
right and predicts the verb from its last hidden state (:class:`AgreementNet`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pipeline.core.errors import DataError

VERBS = ("was", "were")  # label 0: singular subject, label 1: plural subject
Cell = Literal["rnn", "gru", "lstm"]


@dataclass(frozen=True)
class AgreementData:
    """Generated examples: ``prefixes[i]`` = ids of ``the <noun> <filler>`` (the verb
    comes next), ``labels[i]`` in {0: was, 1: were}, ``distances[i]`` = verb position
    minus noun position = ``len(prefixes[i]) - 1``."""

    prefixes: list[np.ndarray]
    labels: np.ndarray
    distances: np.ndarray

    def __len__(self) -> int:
        return len(self.prefixes)


def filler_stream(stream: np.ndarray, eos_id: int, pad_id: int = 0) -> np.ndarray:
    """The corpus ids with the sentence marks (``<eos>``) and padding dropped: running text."""
    stream = np.asarray(stream)
    return stream[(stream != eos_id) & (stream != pad_id)].astype(np.int64)


def generate(
    text: np.ndarray,
    noun_pairs: Sequence[tuple[int, int]],
    the_id: int,
    banned: Sequence[int],
    per_distance: int,
    max_distance: int,
    seed: int,
    min_distance: int = 1,
    attractor_rate: float = 0.0,
) -> AgreementData:
    """``per_distance`` examples for each d in ``[min_distance, max_distance]``, half
    singular and half plural (alternating), with fillers of d - 1 words drawn from
    ``text`` (a running id stream, see :func:`filler_stream`) that contain no ``banned``
    id (the verbs themselves). With probability ``attractor_rate`` one filler word is
    replaced by a noun of the other number (an attractor: "the cat near the dogs was"),
    so the model must remember the subject, not the latest noun. Same seed -> same
    examples."""
    if not noun_pairs:
        raise DataError("agreement: no noun pairs")
    if len(text) < max_distance + 1:
        raise DataError(f"agreement: a text of {len(text)} ids is shorter than max_distance")
    rng = np.random.default_rng(seed)
    bad = np.isin(text, np.asarray(list(banned), dtype=np.int64))
    # bad_before[i] = number of banned ids in text[:i]: a span is clean iff the counts agree
    bad_before = np.concatenate([[0], np.cumsum(bad)])
    prefixes, labels, distances = [], [], []
    for d in range(min_distance, max_distance + 1):
        n_fill = d - 1
        for k in range(per_distance):
            label = k % 2
            noun = noun_pairs[int(rng.integers(len(noun_pairs)))][label]
            for _ in range(1000):
                start = int(rng.integers(0, len(text) - n_fill + 1))
                if bad_before[start + n_fill] == bad_before[start]:
                    break
            else:
                raise DataError(f"agreement: no filler of {n_fill} words without a verb")
            ids = np.concatenate([[the_id, noun], text[start : start + n_fill]]).astype(np.int64)
            if n_fill and rng.random() < attractor_rate:
                other = noun_pairs[int(rng.integers(len(noun_pairs)))][1 - label]
                ids[2 + int(rng.integers(n_fill))] = other
            prefixes.append(ids)
            labels.append(label)
            distances.append(d)
    order = rng.permutation(len(prefixes))
    return AgreementData(
        [prefixes[i] for i in order],
        np.asarray(labels, dtype=np.int64)[order],
        np.asarray(distances, dtype=np.int64)[order],
    )


def pad_batch(prefixes: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, T) with 0 and the lengths (B,)."""
    lengths = torch.tensor([len(p) for p in prefixes], dtype=torch.long)
    ids = torch.zeros(len(prefixes), int(lengths.max()), dtype=torch.long)
    for i, p in enumerate(prefixes):
        ids[i, : len(p)] = torch.as_tensor(p)
    return ids, lengths


# --------------------------------------------------------------------------- the model
class AgreementNet(nn.Module):
    """Embedding -> unidirectional ``cell`` (``num_layers``) -> linear on the hidden state
    at each sequence's last position: ``(ids (B, T), lengths (B,)) -> logits (B, 2)``."""

    def __init__(
        self,
        cell: Cell,
        num_layers: int,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int,
    ) -> None:
        super().__init__()
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        rnn_cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn_cls(embedding_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.out = nn.Linear(hidden_size, len(VERBS))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # right padding is harmless left to right: position len-1 never sees the pads
        states, _ = self.rnn(self.embedding(ids))  # (B, T, H)
        last = states[torch.arange(ids.shape[0]), lengths - 1]  # (B, H)
        return self.out(last)


@dataclass(frozen=True)
class AgreementTraining:
    """How one agreement classifier is trained (Adam, gradient-norm clipping)."""

    embedding_dim: int = field(default=32, metadata={"min": 1})
    hidden_size: int = field(default=64, metadata={"min": 1})
    epochs: int = field(default=4, metadata={"min": 1})
    batch_size: int = field(default=64, metadata={"min": 1})
    lr: float = field(default=3e-3, metadata={"gt": 0.0})
    clip: float = field(default=1.0, metadata={"min": 0.0})


def batches(n: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Index batches over ``range(n)`` (shuffled when ``rng`` is given)."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def train_classifier(
    model: AgreementNet, data: AgreementData, cfg: AgreementTraining, seed: int
) -> list[float]:
    """Train ``model`` in place; returns the mean training loss of each epoch."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    losses = []
    for _ in range(cfg.epochs):
        total, count = 0.0, 0
        for idx in batches(len(data), cfg.batch_size, rng):
            ids, lengths = pad_batch([data.prefixes[i] for i in idx])
            y = torch.as_tensor(data.labels[idx])
            loss = F.cross_entropy(model(ids, lengths), y)
            opt.zero_grad()
            loss.backward()
            if cfg.clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
        losses.append(total / count)
    return losses


@torch.no_grad()
def predict(model: AgreementNet, data: AgreementData, batch_size: int = 256) -> np.ndarray:
    """Predicted labels (0 was, 1 were) for every example, in order."""
    model.eval()
    out = []
    for idx in batches(len(data), batch_size, None):
        ids, lengths = pad_batch([data.prefixes[i] for i in idx])
        out.append(model(ids, lengths).argmax(-1).numpy())
    model.train()
    return np.concatenate(out)


def accuracy_by_distance(correct: np.ndarray, distances: np.ndarray) -> dict[int, float]:
    """Fraction correct for each distance present."""
    correct = np.asarray(correct, dtype=float)
    return {int(d): float(correct[distances == d].mean()) for d in np.unique(distances)}


def bucket_accuracy(
    correct: np.ndarray, distances: np.ndarray, edges: Sequence[int]
) -> dict[str, float]:
    """Accuracy in distance buckets ``[edges[i], edges[i+1])`` (the last is closed), named
    ``"a-b"``; an empty bucket is NaN."""
    correct = np.asarray(correct, dtype=float)
    out = {}
    for i in range(len(edges) - 1):
        lo, hi = edges[i], edges[i + 1] - (0 if i == len(edges) - 2 else 1)
        sel = (distances >= lo) & (distances <= hi)
        out[f"{lo}-{hi}"] = float(correct[sel].mean()) if sel.any() else float("nan")
    return out


def onehot_lookup_gap(embedding: nn.Embedding, ids: Sequence[int]) -> float:
    """max |E^T o_w - E[w]| over ``ids``: multiplying the embedding matrix by a one-hot
    vector is the row lookup (0 up to rounding)."""
    weight = embedding.weight.detach()  # (V, D)
    onehot = F.one_hot(torch.as_tensor(list(ids)), weight.shape[0]).to(weight.dtype)  # (N, V)
    return float((onehot @ weight - weight[list(ids)]).abs().max())


# --------------------------------------------------------------------------- the study
@dataclass(frozen=True)
class AgreementStudy:
    """The agreement experiment: data (``nouns`` as [singular, plural] pairs that must be
    in the corpus vocabulary), the cells and seeds trained, and the distance buckets of
    the table (``buckets``: increasing bucket starts, the last value closes the last one).
    Train fillers come from the corpus's train split, test fillers from its test split."""

    corpus_dir: str = "data/processed/brown"
    nouns: list[list[str]] = field(default_factory=lambda: [["man", "men"]])
    max_distance: int = field(default=40, metadata={"min": 2})
    train_per_distance: int = field(default=100, metadata={"min": 2})
    test_per_distance: int = field(default=50, metadata={"min": 2})
    attractor_rate: float = field(default=0.3, metadata={"min": 0.0, "max": 1.0})
    cells: list[str] = field(default_factory=lambda: ["rnn", "gru", "lstm"])
    layers: list[int] = field(default_factory=lambda: [1, 2])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    buckets: list[int] = field(default_factory=lambda: [1, 2, 6, 11, 21, 31, 40])
    data_seed: int = 0
    training: AgreementTraining = field(default_factory=AgreementTraining)

    def __post_init__(self) -> None:
        for cell in self.cells:
            if cell not in ("rnn", "gru", "lstm"):
                raise ValueError(f"cells: {cell!r} is not one of rnn, gru, lstm")
        if list(self.buckets) != sorted(set(self.buckets)) or len(self.buckets) < 2:
            raise ValueError(f"buckets: {self.buckets} must be at least 2 increasing values")
        for pair in self.nouns:
            if len(pair) != 2:
                raise ValueError(f"nouns: {pair} must be [singular, plural]")


def noun_ids(study: AgreementStudy, tokens: Sequence[str], where: str) -> list[tuple[int, int]]:
    """Vocabulary ids of the noun pairs; a noun missing from ``tokens`` is a DataError."""
    index = {t: i for i, t in enumerate(tokens)}
    missing = [w for pair in study.nouns for w in pair if w not in index]
    if missing:
        raise DataError(f"{where}: lab.agreement.nouns not in the vocabulary: {missing}")
    return [(index[s], index[p]) for s, p in study.nouns]


def build_datasets(
    study: AgreementStudy,
    tokens: Sequence[str],
    train_stream: np.ndarray,
    test_stream: np.ndarray,
    where: str = "vocab.tsv",
) -> tuple[AgreementData, AgreementData]:
    """(train, test) agreement data over a corpus's vocabulary ``tokens`` (with
    ``<eos>`` and ``the``) and its train/test id streams."""
    index = {t: i for i, t in enumerate(tokens)}
    for word in ("<eos>", "the", *VERBS):
        if word not in index:
            raise DataError(f"{where}: {word!r} is not in the vocabulary")
    pairs = noun_ids(study, tokens, where)
    banned = [index[v] for v in VERBS]
    common = dict(
        noun_pairs=pairs,
        the_id=index["the"],
        banned=banned,
        max_distance=study.max_distance,
        attractor_rate=study.attractor_rate,
    )
    train = generate(
        filler_stream(train_stream, index["<eos>"]),
        per_distance=study.train_per_distance,
        seed=study.data_seed,
        **common,
    )
    test = generate(
        filler_stream(test_stream, index["<eos>"]),
        per_distance=study.test_per_distance,
        seed=study.data_seed + 1,
        **common,
    )
    return train, test


@dataclass
class StudyResult:
    """Per model name (``<cell><layers>``, e.g. ``gru2``): ``correct[name]`` (seeds, N)
    booleans on the test set, the seed-0 model, and training seconds per seed."""

    correct: dict[str, np.ndarray]
    models: dict[str, AgreementNet]
    seconds: dict[str, list[float]]


def run_study(
    study: AgreementStudy,
    vocab_size: int,
    train: AgreementData,
    test: AgreementData,
    progress=None,
) -> StudyResult:
    """Train every cell x layers x seed; ``progress(name, seed, seconds, accuracy)`` is
    called after each model."""
    import time

    result = StudyResult({}, {}, {})
    cfg = study.training
    for cell in study.cells:
        for layers in study.layers:
            name = f"{cell}{layers}"
            rows, times = [], []
            for seed in study.seeds:
                t0 = time.perf_counter()
                torch.manual_seed(seed)
                model = AgreementNet(
                    cell,
                    layers,
                    vocab_size,
                    cfg.embedding_dim,
                    cfg.hidden_size,  # type: ignore[arg-type]
                )
                train_classifier(model, train, cfg, seed)
                correct = predict(model, test) == test.labels
                times.append(time.perf_counter() - t0)
                rows.append(correct)
                if seed == study.seeds[0]:
                    result.models[name] = model
                if progress is not None:
                    progress(name, seed, times[-1], float(correct.mean()))
            result.correct[name] = np.stack(rows)
            result.seconds[name] = times
    return result


def study_table(
    correct: dict[str, np.ndarray], distances: np.ndarray, edges: Sequence[int]
) -> tuple[list[str], list[list[object]]]:
    """Header and rows of the accuracy-by-distance table: per model, the mean over seeds
    (± the standard deviation) in each bucket, and overall."""
    header = ["model", "seeds"]
    rows: list[list[object]] = []
    for name, runs in correct.items():
        per_seed = [bucket_accuracy(r, distances, edges) for r in runs]
        if not header[2:]:
            header += list(per_seed[0]) + ["all"]
        row: list[object] = [name, len(runs)]
        for key in per_seed[0]:
            vals = np.array([p[key] for p in per_seed])
            row.append(f"{vals.mean():.3f} ± {vals.std():.3f}")
        row.append(f"{runs.mean():.3f}")
        rows.append(row)
    return header, rows


@dataclass(frozen=True)
class LMAgreementConfig:
    """The ``lab.lm_agreement`` settings: which word language model scores was/were."""

    model_dir: str = "data/processed/models/lm_word"


def load_datasets(study: AgreementStudy) -> tuple[list[str], AgreementData, AgreementData]:
    """``(tokens, train, test)`` from the processed corpus ``study.corpus_dir``
    (``vocab.tsv``, ``train.npy``, ``test.npy``): :func:`build_datasets` on its files."""
    from pathlib import Path

    from pipeline.core.atomic import load_npy
    from pipeline.data.vocab import Vocabulary

    corpus = Path(study.corpus_dir)
    tokens = Vocabulary.load_tsv(corpus / "vocab.tsv").tokens
    train, test = build_datasets(
        study, tokens, load_npy(corpus / "train.npy"), load_npy(corpus / "test.npy"),
        where=str(corpus / "vocab.tsv"),
    )  # fmt: skip
    return tokens, train, test
