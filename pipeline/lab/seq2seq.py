"""Many-to-many with Tx != Ty: English number words -> digits with an encoder-decoder.

"two thousand three hundred and five" (7 words) -> "2305" (4 characters). The encoder
(GRU or LSTM) reads the words; the decoder, started from the encoder's final state and
attending over its outputs (dot-product attention), writes digits until ``<eos>``.
:func:`greedy_decode` takes the most likely digit each step; :func:`beam_search` keeps
the ``width`` most likely partial outputs (at width 1 it is the greedy decoder).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

PAD, SOS, EOS = 0, 1, 2
DIGITS = ("<pad>", "<sos>", "<eos>", *"0123456789")

_ONES = "zero one two three four five six seven eight nine".split()
_TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
        if rest:
            words.append("and")
    if rest >= 20:
        words.append(_TENS[rest // 10])
        if rest % 10:
            words.append(_ONES[rest % 10])
    elif rest >= 10:
        words.append(_TEENS[rest - 10])
    elif rest or not hundreds:
        words.append(_ONES[rest])
    return words


def number_words(n: int) -> list[str]:
    """British-style English words for 0 <= n < 1,000,000 ("one hundred and five")."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"number_words: {n} is outside [0, 1000000)")
    thousands, rest = divmod(n, 1000)
    if not thousands:
        return _below_thousand(rest)
    words = _below_thousand(thousands) + ["thousand"]
    if rest:
        if rest < 100:
            words.append("and")
        words += _below_thousand(rest)
    return words


def input_vocabulary() -> list[str]:
    """Every word :func:`number_words` can write, after ``<pad>``."""
    words = sorted({*_ONES, *_TEENS, *_TENS[2:], "hundred", "thousand", "and"})
    return ["<pad>", *words]


@dataclass(frozen=True)
class NumberTask:
    """Numbers below ``max_number``; a fraction ``test_fraction`` (drawn with ``seed``)
    is held out and never trained on."""

    max_number: int = field(default=10000, metadata={"min": 10, "max": 1_000_000})
    test_fraction: float = field(default=0.1, metadata={"gt": 0.0, "max": 0.9})
    seed: int = 0


def split_numbers(task: NumberTask) -> tuple[np.ndarray, np.ndarray]:
    """(train numbers, held-out numbers), disjoint."""
    order = np.random.default_rng(task.seed).permutation(task.max_number)
    n_test = max(1, int(round(task.test_fraction * task.max_number)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def encode_pairs(numbers: Sequence[int]) -> tuple[list[list[int]], list[list[int]]]:
    """(source word ids, target digit ids ending in ``<eos>``) for each number."""
    index = {w: i for i, w in enumerate(input_vocabulary())}
    src = [[index[w] for w in number_words(int(n))] for n in numbers]
    tgt = [[DIGITS.index(c) for c in str(int(n))] + [EOS] for n in numbers]
    return src, tgt


def digits_of(ids: Sequence[int]) -> str:
    """Digit ids -> string (stops at ``<eos>``)."""
    out = []
    for i in ids:
        if i == EOS:
            break
        out.append(DIGITS[i])
    return "".join(out)


def _pad(seqs: Sequence[Sequence[int]]) -> torch.Tensor:
    out = torch.full((len(seqs), max(len(s) for s in seqs)), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(list(s))
    return out


# --------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class Seq2SeqConfig:
    """Encoder-decoder size and training (Adam, teacher forcing, gradient clipping)."""

    cell: Literal["gru", "lstm"] = "gru"
    embedding_dim: int = field(default=32, metadata={"min": 1})
    hidden_size: int = field(default=128, metadata={"min": 1})
    epochs: int = field(default=20, metadata={"min": 1})
    batch_size: int = field(default=64, metadata={"min": 1})
    lr: float = field(default=3e-3, metadata={"gt": 0.0})
    clip: float = field(default=1.0, metadata={"min": 0.0})
    seed: int = 0


class Seq2Seq(nn.Module):
    """Encoder RNN over source ids; decoder RNN over target ids with dot attention.

    ``forward(src (B, S), tgt_in (B, T)) -> logits (B, T, V_out)`` (teacher forcing);
    :meth:`encode` and :meth:`step` are the pieces the decoders use.
    """

    def __init__(self, cfg: Seq2SeqConfig, src_vocab: int, tgt_vocab: int = len(DIGITS)):
        super().__init__()
        rnn = nn.GRU if cfg.cell == "gru" else nn.LSTM
        self.src_emb = nn.Embedding(src_vocab, cfg.embedding_dim, padding_idx=PAD)
        self.tgt_emb = nn.Embedding(tgt_vocab, cfg.embedding_dim, padding_idx=PAD)
        self.encoder = rnn(cfg.embedding_dim, cfg.hidden_size, batch_first=True)
        self.decoder = rnn(cfg.embedding_dim, cfg.hidden_size, batch_first=True)
        self.out = nn.Linear(2 * cfg.hidden_size, tgt_vocab)

    def encode(self, src: torch.Tensor):
        """-> (encoder outputs (B, S, H), source mask (B, S), decoder start state)."""
        mask = src != PAD
        lengths = mask.sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.src_emb(src), lengths, batch_first=True, enforce_sorted=False
        )
        out, state = self.encoder(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        return out, mask, state

    def step(self, tokens: torch.Tensor, state, enc_out: torch.Tensor, mask: torch.Tensor):
        """Decoder over ``tokens`` (B, T) from ``state`` -> (logits (B, T, V), state)."""
        dec, state = self.decoder(self.tgt_emb(tokens), state)  # (B, T, H)
        scores = dec @ enc_out.transpose(1, 2)  # (B, T, S)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        context = torch.softmax(scores, -1) @ enc_out  # (B, T, H)
        return self.out(torch.cat([dec, context], -1)), state

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        enc_out, mask, state = self.encode(src)
        return self.step(tgt_in, state, enc_out, mask)[0]


def train_seq2seq(
    model: Seq2Seq, src: list[list[int]], tgt: list[list[int]], cfg: Seq2SeqConfig
) -> list[float]:
    """Teacher-forced training in place; returns the mean loss of each epoch."""
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    losses = []
    for _ in range(cfg.epochs):
        total, count = 0.0, 0
        order = rng.permutation(len(src))
        for i in range(0, len(src), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            s = _pad([src[j] for j in idx])
            t = _pad([[SOS, *tgt[j]] for j in idx])  # (B, T+1)
            logits = model(s, t[:, :-1])
            loss = F.cross_entropy(logits.flatten(0, 1), t[:, 1:].flatten(), ignore_index=PAD)
            opt.zero_grad()
            loss.backward()
            if cfg.clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
        losses.append(total / count)
    return losses


# --------------------------------------------------------------------------- decoding
@torch.no_grad()
def greedy_decode(model: Seq2Seq, src: list[list[int]], max_len: int = 10) -> list[list[int]]:
    """The most likely id at each step, batched; each output stops before ``<eos>``."""
    model.eval()
    enc_out, mask, state = model.encode(_pad(src))
    tokens = torch.full((len(src), 1), SOS, dtype=torch.long)
    outs: list[list[int]] = [[] for _ in src]
    done = torch.zeros(len(src), dtype=torch.bool)
    for _ in range(max_len):
        logits, state = model.step(tokens, state, enc_out, mask)
        tokens = logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
        for b, t in enumerate(tokens[:, 0].tolist()):
            if not done[b]:
                if t == EOS:
                    done[b] = True
                else:
                    outs[b].append(t)
        if done.all():
            break
    return outs


def _select(state, index: torch.Tensor):
    """Rows ``index`` of a GRU state (1, B, H) or an LSTM (h, c) pair."""
    if isinstance(state, tuple):
        return tuple(s[:, index] for s in state)
    return state[:, index]


@torch.no_grad()
def beam_search(
    model: Seq2Seq, src: Sequence[int], width: int = 3, max_len: int = 10
) -> tuple[list[int], float]:
    """The output (without ``<eos>``) of highest total log-probability among the
    hypotheses kept by a beam of ``width``, and that log-probability.

    Each step extends every live hypothesis by its ``width`` best next ids and keeps the
    ``width`` best of all extensions; one ending in ``<eos>`` is finished. The search
    stops when the best finished hypothesis beats every live one (log-probabilities only
    fall) or after ``max_len`` steps. At width 1 this is exactly :func:`greedy_decode`.
    """
    if width < 1:
        raise ValueError(f"beam width must be at least 1, got {width}")
    model.eval()
    enc_out, mask, state = model.encode(_pad([src]))
    live: list[tuple[float, list[int]]] = [(0.0, [])]
    finished: list[tuple[float, list[int]]] = []
    last = torch.tensor([[SOS]])
    for _ in range(max_len):
        n = len(live)
        logits, state = model.step(last, state, enc_out.expand(n, -1, -1), mask.expand(n, -1))
        logp = torch.log_softmax(logits[:, -1], -1)  # (n, V)
        top = logp.topk(min(width, logp.shape[1]), dim=-1)
        cands = [
            (live[i][0] + float(top.values[i, j]), i, int(top.indices[i, j]))
            for i in range(n)
            for j in range(top.values.shape[1])
        ]
        cands.sort(key=lambda c: -c[0])
        keep = []
        for score, i, tok in cands[:width]:
            if tok == EOS:
                finished.append((score, live[i][1]))
            else:
                keep.append((score, i, tok))
        if not keep or (finished and max(finished)[0] >= keep[0][0]):
            break
        index = torch.tensor([i for _, i, _ in keep])
        state = _select(state, index)
        live = [(score, [*live[i][1], tok]) for score, i, tok in keep]
        last = torch.tensor([[tok] for _, _, tok in keep])
    if not finished:  # ran out of steps: the best live hypothesis
        finished = live
    score, best = max(finished, key=lambda h: h[0])
    return best, score


def exact_match(predicted: Sequence[str], numbers: Sequence[int]) -> float:
    """Fraction of outputs equal to the number's digits."""
    return float(np.mean([p == str(int(n)) for p, n in zip(predicted, numbers, strict=True)]))


@dataclass(frozen=True)
class Seq2SeqStudy:
    """The words -> digits experiment: task, model, and how it is decoded."""

    task: NumberTask = field(default_factory=NumberTask)
    model: Seq2SeqConfig = field(default_factory=Seq2SeqConfig)
    beam_width: int = field(default=3, metadata={"min": 1})
    max_len: int = field(default=10, metadata={"min": 1})
    examples: int = field(default=20, metadata={"min": 0})
