"""Recurrent language models over a token stream (word or character level).

Training data is one long 1-D id stream (``train.npy``, every line ending in ``<eos>``),
cut into B parallel streams (:func:`batchify`) and read in chunks of ``bptt`` tokens
(:class:`StreamChunks`) for truncated back-propagation through time. Evaluation
(:func:`evaluate_stream`), sampling (:func:`sample`) and sentence scoring
(:func:`score_sentences`) are plain PyTorch, so they run without Lightning.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pipeline.core import checkpoint
from pipeline.core.errors import DataError
from pipeline.seq.encoder import EncoderConfig, Hidden, SequenceEncoder, detach_hidden
from pipeline.seq.heads import AdaptiveLMHead, LMHead
from pipeline.seq.training import (
    TrainerSettings,
    epoch_timer,
    load_state_dict,
    train_resumable,
    uses_gpu,
)

EOS_ID = 2
#: ``<pad>`` and ``<unk>``: never sampled (a user reads words, not placeholders)
BANNED_IDS = (0, 1)
LOG2E = 1.0 / math.log(2.0)


@dataclass(frozen=True)
class LMArch:
    """Architecture of :class:`LanguageModel` (saved next to the checkpoint as JSON)."""

    cell: Literal["rnn", "gru", "lstm"] = "lstm"
    embedding_dim: int = field(default=128, metadata={"min": 1})
    hidden_size: int = field(default=128, metadata={"min": 1})
    num_layers: int = field(default=1, metadata={"min": 1})
    dropout: float = field(default=0.0, metadata={"min": 0.0, "max": 0.95})
    tie_weights: bool = True
    #: adaptive softmax (:class:`AdaptiveLMHead`): ids below each cutoff form the head and
    #: the clusters; [] = a full softmax. Not with ``tie_weights``.
    adaptive_cutoffs: list[int] = field(default_factory=list)
    adaptive_div: float = field(default=4.0, metadata={"min": 1.0})

    def __post_init__(self) -> None:
        if self.adaptive_cutoffs and self.tie_weights:
            raise ValueError("tie_weights: true cannot be combined with adaptive_cutoffs")

    def encoder_config(self) -> EncoderConfig:
        return EncoderConfig(
            cell=self.cell,
            embedding_dim=self.embedding_dim,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bidirectional=False,
            dropout=self.dropout,
        )

    def to_dict(self) -> dict:
        return asdict(self)


class LanguageModel(nn.Module):
    """Encoder (unidirectional, unpacked) + LM head: ``(x (B, T), hidden) -> (logits
    (B, T, V), hidden)``."""

    def __init__(self, arch: LMArch, vocab_size: int) -> None:
        super().__init__()
        self.arch = arch
        self.vocab_size = vocab_size
        self.encoder = SequenceEncoder(arch.encoder_config(), vocab_size)
        self.head: LMHead | AdaptiveLMHead
        if arch.adaptive_cutoffs:
            self.head = AdaptiveLMHead(
                arch.hidden_size, vocab_size, arch.adaptive_cutoffs, arch.adaptive_div
            )
        else:
            tie = self.encoder.embedding if arch.tie_weights else None
            self.head = LMHead(arch.hidden_size, vocab_size, tie_to=tie)

    def forward(self, x: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        """Scores of the next token (B, T, V): logits, or log-probabilities with the adaptive
        softmax (the same distribution under a softmax), and the new hidden state."""
        out, hidden = self.encoder(x, None, hidden=hidden, return_hidden=True)  # (B, T, H)
        return self.head(out), hidden

    def nll(
        self, x: torch.Tensor, y: torch.Tensor, hidden: Hidden | None = None
    ) -> tuple[torch.Tensor, Hidden]:
        """Negative log-likelihood of each target ``y`` (B * T,) and the new hidden state;
        the cheap path in training (the adaptive softmax scores only the targets' clusters)."""
        out, hidden = self.encoder(x, None, hidden=hidden, return_hidden=True)  # (B, T, H)
        return self.head.nll(out, y), hidden


# ---------------------------------------------------------------------------- data
def check_stream(stream: np.ndarray, vocab_size: int, name: str) -> np.ndarray:
    """Validate a 1-D id stream (DataError naming ``name`` otherwise); returns int64 ids."""
    stream = np.asarray(stream)
    if stream.ndim != 1 or not np.issubdtype(stream.dtype, np.integer):
        raise DataError(f"{name}: expected a 1-D integer array, got {stream.dtype} {stream.shape}")
    if stream.size and (stream.min() < 0 or stream.max() >= vocab_size):
        raise DataError(
            f"{name}: ids must lie in [0, {vocab_size}) (the vocabulary size), "
            f"found [{stream.min()}, {stream.max()}]"
        )
    return stream.astype(np.int64)


def batchify(stream: np.ndarray | torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a 1-D stream into ``batch_size`` contiguous parallel streams -> (B, N).

    The trailing ``len % B`` tokens are dropped; stream b is ``stream[b*N:(b+1)*N]``.
    """
    data = torch.as_tensor(np.asarray(stream), dtype=torch.long)
    n = data.numel() // batch_size
    if n < 2:
        raise DataError(f"stream of {data.numel()} tokens is too short for batch_size {batch_size}")
    return data[: n * batch_size].view(batch_size, n)


class StreamChunks(Dataset):
    """Item i: ``(x, y)`` = columns ``[i*bptt, i*bptt + T)`` of a batchified (B, N) stream
    and the same shifted by one (T = bptt, shorter for the last chunk). Read in order
    (no shuffling) so the hidden state can be carried across chunks."""

    def __init__(self, data: torch.Tensor, bptt: int) -> None:
        self.data = data
        self.bptt = bptt

    def __len__(self) -> int:
        return math.ceil((self.data.shape[1] - 1) / self.bptt)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = i * self.bptt
        t = min(self.bptt, self.data.shape[1] - 1 - start)
        return self.data[:, start : start + t], self.data[:, start + 1 : start + 1 + t]


def stream_loader(stream: np.ndarray, batch_size: int, bptt: int) -> DataLoader:
    """A DataLoader of consecutive ``(x (B, T), y (B, T))`` chunks (no shuffling)."""
    return DataLoader(StreamChunks(batchify(stream, batch_size), bptt), batch_size=None)


# ---------------------------------------------------------------------------- evaluation
def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate_stream(
    model: LanguageModel, stream: np.ndarray, batch_size: int = 10, bptt: int = 64
) -> dict[str, float]:
    """Mean negative log-likelihood of a stream under ``model`` (hidden state carried).

    Returns ``{"nll": nats per token, "ppl": perplexity, "bits": bits per token,
    "tokens": number of predicted tokens}``.
    """
    was_training = model.training
    model.eval()
    device = _device_of(model)
    total, count, hidden = 0.0, 0, None
    try:
        for x, y in stream_loader(stream, batch_size, bptt):
            nll, hidden = model.nll(x.to(device), y.to(device), hidden)
            total += float(nll.sum())
            count += y.numel()
    finally:
        model.train(was_training)
    nll = total / max(count, 1)
    return {"nll": nll, "ppl": math.exp(min(nll, 50.0)), "bits": nll * LOG2E, "tokens": count}


@torch.no_grad()
def sample(
    model: LanguageModel,
    max_length: int = 100,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    prompt: list[int] | None = None,
    eos_id: int = EOS_ID,
    banned: tuple[int, ...] = BANNED_IDS,
    sentences: int = 1,
) -> list[int]:
    """Generate ids after ``<eos>`` (+ ``prompt``) until ``sentences`` ``<eos>`` have been
    drawn or ``max_length`` ids.

    ``temperature`` divides the logits (-> 0: greedy); ``top_k`` > 0 keeps the k most
    likely ids. Seeded (a private generator), so the same seed gives the same text.
    ``banned`` ids (``<pad>`` and ``<unk>``) are never drawn: the distribution is
    renormalised over the other ids. The returned ids exclude the prompt and the final
    ``<eos>``; with ``sentences`` > 1 the ``<eos>`` between sentences are kept.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if sentences < 1:
        raise ValueError(f"sentences must be >= 1, got {sentences}")
    was_training = model.training
    model.eval()
    device = _device_of(model)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    context = [eos_id] + list(prompt or [])
    out: list[int] = []
    ended = 0
    try:
        logits, hidden = model(torch.tensor([context], device=device))
        for _ in range(max_length):
            last = logits[0, -1].float().cpu() / temperature  # (V,)
            last[[b for b in banned if 0 <= b < last.numel()]] = -math.inf
            if top_k > 0 and top_k < last.numel():
                kth = torch.topk(last, top_k).values[-1]
                last = last.masked_fill(last < kth, -math.inf)
            nxt = int(torch.multinomial(torch.softmax(last, -1), 1, generator=gen))
            if nxt == eos_id:
                ended += 1
                if ended == sentences:
                    break
            out.append(nxt)
            logits, hidden = model(torch.tensor([[nxt]], device=device), hidden)
    finally:
        model.train(was_training)
    return out


def samples_report(
    model: LanguageModel,
    tokens: list[str],
    level: Literal["word", "char"],
    cfg: SampleConfig,
    title: str = "",
) -> str:
    """Samples at every temperature of ``cfg``, side by side: sample i uses seed
    ``cfg.seed + i`` at each temperature, so a block compares temperatures on the same
    random draws. Words are joined by spaces, characters directly; ``<eos>`` inside a
    sample (``cfg.sentences`` > 1) starts a new line."""
    sep = "" if level == "char" else " "
    eos = tokens.index("<eos>") if "<eos>" in tokens else EOS_ID
    banned = tuple(tokens.index(t) for t in ("<pad>", "<unk>") if t in tokens)
    width = max(len(f"T={t:g}") for t in cfg.temperatures)
    lines = [
        title or f"Samples of the {level} language model",
        f"(top_k {cfg.top_k or 'off'}, at most {cfg.max_length} tokens, "
        f"{cfg.sentences} sentence(s) each; sample i uses seed {cfg.seed} + i "
        "at every temperature T)",
        "",
    ]
    for i in range(cfg.num_samples):
        for j, temp in enumerate(cfg.temperatures):
            ids = sample(model, cfg.max_length, temp, cfg.top_k, cfg.seed + i,
                         eos_id=eos, banned=banned, sentences=cfg.sentences)  # fmt: skip
            text_lines, current = [], []
            for t in [*ids, eos]:
                if t == eos:
                    text_lines.append(sep.join(tokens[k] for k in current))
                    current = []
                else:
                    current.append(t)
            head = f"[{i}]" if j == 0 else ""
            label = f"T={temp:g}".ljust(width)
            for k, text in enumerate(text_lines):
                prefix = f"{head:<5}{label} | " if k == 0 else f"{'':<5}{'':<{width}} | "
                lines.append((prefix + text).rstrip())
        lines.append("")
    return "\n".join(lines)


@torch.no_grad()
def score_sentences(
    model: LanguageModel, sentences: list[np.ndarray | list[int]], eos_id: int = EOS_ID
) -> list[dict[str, float]]:
    """Log-probability (natural log) of each id sequence followed by ``<eos>``, given a
    preceding ``<eos>`` (a sentence start), and its perplexity per predicted token.

    Of two transcriptions of the same audio, the one with the higher ``logprob`` is the
    more likely. Returns ``[{"logprob", "tokens", "ppl", "bits_per_token"}]``.
    """
    was_training = model.training
    model.eval()
    device = _device_of(model)
    results = []
    try:
        for ids in sentences:
            seq = [eos_id] + [int(i) for i in ids] + [eos_id]
            x = torch.tensor([seq[:-1]], device=device)
            y = torch.tensor(seq[1:], device=device)
            logits, _ = model(x)
            logp = torch.log_softmax(logits[0].float(), -1).gather(1, y[:, None]).sum()
            lp, n = float(logp), len(seq) - 1
            results.append(
                {
                    "logprob": lp,
                    "tokens": n,
                    "ppl": math.exp(min(-lp / n, 50.0)),
                    "bits_per_token": -lp / n * LOG2E,
                }
            )
    finally:
        model.train(was_training)
    return results


_WORD_OR_PUNCT = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]+")


def tokens_of(text: str, level: Literal["word", "char"]) -> list[str]:
    """Split a sentence the way the LM corpora are prepared.

    ``char``: every character. ``word``: lower-cased, digits -> ``0``, words (with
    internal apostrophes) and punctuation runs as separate tokens (Brown's convention).
    """
    if level == "char":
        return list(text)
    text = re.sub(r"\d", "0", text.lower())
    return _WORD_OR_PUNCT.findall(text)


def detach(hidden: Hidden | None) -> Hidden | None:
    """Alias of :func:`pipeline.seq.encoder.detach_hidden`."""
    return detach_hidden(hidden)


# ---------------------------------------------------------------------------- training
@dataclass(frozen=True)
class SampleConfig:
    """How samples are drawn after training (see :func:`sample` and
    :func:`samples_report`): ``num_samples`` seeds, each at every temperature;
    ``sentences``: ``<eos>`` that end a sample (a line at character level)."""

    num_samples: int = field(default=5, metadata={"min": 0})
    max_length: int = field(default=100, metadata={"min": 1})
    temperatures: tuple[float, ...] = (0.5, 0.8, 1.0)
    top_k: int = field(default=0, metadata={"min": 0})
    sentences: int = field(default=1, metadata={"min": 1})
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.temperatures or any(t <= 0 for t in self.temperatures):
            raise ValueError(f"temperatures: {list(self.temperatures)} must be > 0 (at least one)")


@dataclass(frozen=True)
class LMConfig:
    """One language-model run (``lm.common`` merged with ``lm.levels.<level>``).

    ``bptt``: tokens per truncated-BPTT chunk; ``batch_size``: parallel streams.
    ``max_train_tokens`` / ``max_eval_tokens``: use only the first N tokens of the
    train / valid and test streams (None: all), to fit a time budget.
    """

    corpus: str
    arch: LMArch = field(default_factory=LMArch)
    batch_size: int = field(default=32, metadata={"min": 1})
    eval_batch_size: int = field(default=10, metadata={"min": 1})
    bptt: int = field(default=35, metadata={"min": 1})
    lr: float = field(default=2e-3, metadata={"gt": 0.0})
    weight_decay: float = field(default=0.0, metadata={"min": 0.0})
    max_train_tokens: int | None = field(default=None, metadata={"min": 100})
    max_eval_tokens: int | None = field(default=None, metadata={"min": 100})
    resume: bool = False
    sample: SampleConfig = field(default_factory=SampleConfig)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)


def merge_sections(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of two config mappings (``over`` wins; nested mappings are merged)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge_sections(out[k], v)
        else:
            out[k] = v
    return out


def fingerprint(cfg: LMConfig, train: np.ndarray, valid: np.ndarray, vocab_size: int) -> str:
    """sha256 of the settings (``resume``, sampling and the stopping rules excluded) and
    the input streams:
    a checkpoint is resumed only by a run with the same fingerprint."""
    settings = asdict(cfg)
    settings.pop("resume")
    settings.pop("sample")
    for key in (
        "max_epochs",
        "max_time_s",
        "patience",
        "progress_bar",
        "log_every_n_steps",
        "num_threads",
    ):  # may change between a run and its continuation
        settings["trainer"].pop(key)
    return checkpoint.fingerprint(
        [settings, vocab_size],
        arrays=[np.asarray(a, dtype=np.int64) for a in (train, valid)],
    )


def train_language_model(
    cfg: LMConfig,
    train: np.ndarray,
    valid: np.ndarray,
    vocab_size: int,
    checkpoint_dir: str | os.PathLike,
    logger: Any = None,
    lr_key: str = "lm.common.lr",
) -> tuple[LanguageModel, dict[str, Any]]:
    """Train with truncated BPTT (Lightning); return the best model (by validation loss)
    and ``{"epochs", "time_per_epoch_s", "checkpoint", "parameters", "resumed"}``.

    Through :func:`pipeline.seq.training.train_resumable`: with ``cfg.resume`` and a
    ``<checkpoint_dir>/last.ckpt`` (the state after the latest epoch) written by a run with
    the same :func:`fingerprint`, training resumes from it (optimizer state and epoch
    included) and ends as the uninterrupted run; anything else starts fresh. A diverging
    run stops with an error naming ``lr_key``.
    """
    from pipeline.seq.lit import LanguageModelModule

    def make_module() -> LanguageModelModule:
        model = LanguageModel(cfg.arch, vocab_size)
        return LanguageModelModule(model, lr=cfg.lr, weight_decay=cfg.weight_decay)

    trainer_cfg = cfg.trainer
    timer = epoch_timer()
    loaders = (
        stream_loader(train, cfg.batch_size, cfg.bptt),
        stream_loader(valid, cfg.eval_batch_size, cfg.bptt),
    )
    run = train_resumable(
        make_module,
        loaders,
        trainer_cfg,
        checkpoint_dir,
        fingerprint(cfg, train, valid, vocab_size),
        resume=cfg.resume,
        lr_key=lr_key,
        lr=cfg.lr,
        logger=logger,
        callbacks=[timer],
    )
    model, trainer, best = run.module.model, run.trainer, run.best
    # evaluation, sampling and scoring run where training ran (a big model is slow on CPU)
    model.to("cuda" if uses_gpu(trainer_cfg) else "cpu")
    info = {
        "epochs": int(trainer.current_epoch),
        "time_per_epoch_s": float(np.mean(timer.seconds)) if timer.seconds else None,
        "epoch_seconds": list(timer.seconds),
        "checkpoint": best,
        "parameters": sum(p.numel() for p in model.parameters()),
        "resumed": run.resumed,
    }
    return model, info


# ---------------------------------------------------------------------------- saved models
HPARAMS_FILE = "hparams.json"


def load_language_model(folder: str | os.PathLike) -> tuple[LanguageModel, list[str], str]:
    """Rebuild a model saved by the ``train_lm`` stage: ``(model (eval mode), tokens, level)``.

    The folder holds ``model.ckpt`` (the weights alone, see
    :func:`pipeline.seq.training.export_weights`; read with ``weights_only=True``),
    ``vocab.tsv`` and ``hparams.json``.
    """
    import json

    from pipeline.core.config import from_mapping
    from pipeline.data.vocab import Vocabulary

    folder = Path(folder)
    hp_path = folder / HPARAMS_FILE
    if not hp_path.is_file():
        raise DataError(f"{hp_path}: not found (is {folder} a model folder from train_lm?)")
    try:
        hp = json.loads(hp_path.read_text(encoding="utf-8"))
        arch = from_mapping(LMArch, hp["arch"], where=f"{hp_path}:arch")
        level, vocab_size = hp["level"], int(hp["vocab_size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{hp_path}: malformed ({exc})") from exc
    vocab = Vocabulary.load_tsv(folder / "vocab.tsv")
    if len(vocab) != vocab_size:
        raise DataError(f"{folder / 'vocab.tsv'}: {len(vocab)} tokens, hparams say {vocab_size}")
    model = LanguageModel(arch, vocab_size)
    state = load_state_dict(folder / "model.ckpt")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise DataError(f"{folder / 'model.ckpt'}: does not match {hp_path} ({exc})") from exc
    return model.eval(), list(vocab.tokens), level


def score_texts(
    model: LanguageModel, tokens: list[str], texts: list[str], level: Literal["word", "char"]
) -> list[dict[str, Any]]:
    """:func:`score_sentences` for raw strings (tokenized by :func:`tokens_of`; unknown
    words map to ``<unk>``, and their count is returned as ``unknown``)."""
    index = {t: i for i, t in enumerate(tokens)}
    unk = index.get("<unk>", 1)
    encoded, unknown = [], []
    for text in texts:
        toks = tokens_of(text, level)
        encoded.append([index.get(t, unk) for t in toks])
        unknown.append(sum(t not in index for t in toks))
    scores = score_sentences(model, encoded, eos_id=index.get("<eos>", EOS_ID))
    return [{"text": t, "unknown": u, **s} for t, u, s in zip(texts, unknown, scores, strict=True)]
