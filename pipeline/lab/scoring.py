"""A word language model's view of sentences: per-token surprisal, sentence pairs, and
the probability of ``was`` against ``were`` after an agreement prefix."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from pipeline.seq.lm import EOS_ID, LanguageModel, tokens_of

LOG2E = 1.0 / math.log(2.0)


@dataclass(frozen=True)
class SentencePair:
    """Two sentences to compare; ``expect`` names the one a good model prefers
    (``a``, ``b`` or ``""`` for no expectation)."""

    a: str
    b: str
    note: str = ""
    expect: Literal["", "a", "b"] = ""


@torch.no_grad()
def token_surprisals(
    model: LanguageModel, tokens: Sequence[str], index: dict[str, int]
) -> list[tuple[str, float]]:
    """(token, surprisal in bits = -log2 P(token | left context)) for each token of the
    sentence and the closing ``<eos>``, the sentence starting after an ``<eos>``."""
    model.eval()
    unk = index.get("<unk>", 1)
    eos = index.get("<eos>", EOS_ID)
    ids = [eos] + [index.get(t, unk) for t in tokens] + [eos]
    logits, _ = model(torch.tensor([ids[:-1]]))
    logp = torch.log_softmax(logits[0].float(), -1)  # (T, V)
    picked = logp.gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    names = [t if t in index else f"{t}(<unk>)" for t in tokens] + ["<eos>"]
    return [(n, -float(lp) * LOG2E) for n, lp in zip(names, picked, strict=True)]


def score_pair(
    model: LanguageModel, vocab_tokens: Sequence[str], pair: SentencePair
) -> dict[str, object]:
    """Log-probabilities (natural log) and surprisals of both sentences of ``pair``;
    ``preferred`` is ``a`` or ``b``, ``correct`` whether it matches ``expect`` (None
    without an expectation)."""
    index = {t: i for i, t in enumerate(vocab_tokens)}
    out: dict[str, object] = {"note": pair.note, "expect": pair.expect}
    for key, text in (("a", pair.a), ("b", pair.b)):
        surprisal = token_surprisals(model, tokens_of(text, "word"), index)
        out[key] = {
            "text": text,
            "logprob": -sum(s for _, s in surprisal) / LOG2E,
            "surprisal": surprisal,
        }
    preferred = "a" if out["a"]["logprob"] >= out["b"]["logprob"] else "b"  # type: ignore[index]
    out["preferred"] = preferred
    out["correct"] = (preferred == pair.expect) if pair.expect else None
    return out


def pairs_markdown(scored: Sequence[dict]) -> str:
    """The report: one section per pair, both sentences with log-probability and the
    surprisal of every token."""
    lines = [
        "# Sentence probabilities under the word language model",
        "",
        "log P is the natural-log probability of the sentence followed by `<eos>`; each",
        "token's surprisal is -log2 P(token | the words before it), in bits.",
        "",
    ]
    for n, s in enumerate(scored, start=1):
        verdict = ""
        if s["correct"] is not None:
            verdict = " (as expected)" if s["correct"] else f" (expected {s['expect']})"
        lines += [f"## {n}. {s['note'] or 'pair'}", ""]
        for key in ("a", "b"):
            side = s[key]
            mark = " <- likelier" if s["preferred"] == key else ""
            lines.append(f"- **{key}** log P = {side['logprob']:.2f}{mark}: {side['text']}")
            tokens = " ".join(f"{t}`{bits:.1f}`" for t, bits in side["surprisal"])
            lines.append(f"  - surprisal (bits): {tokens}")
        lines += ["", f"Preferred: **{s['preferred']}**{verdict}", ""]
    return "\n".join(lines)


@torch.no_grad()
def verb_preference(
    model: LanguageModel,
    prefixes: Sequence[np.ndarray],
    singular_id: int,
    plural_id: int,
    eos_id: int = EOS_ID,
    batch_size: int = 128,
) -> np.ndarray:
    """log P(plural verb | prefix) - log P(singular verb | prefix) for each prefix (ids in
    the model's vocabulary, read after an ``<eos>``): > 0 means the model prefers
    ``were``. Prefixes are right-padded; each is read at its own last position."""
    model.eval()
    out = []
    for start in range(0, len(prefixes), batch_size):
        chunk = prefixes[start : start + batch_size]
        lengths = torch.tensor([len(p) + 1 for p in chunk])
        ids = torch.zeros(len(chunk), int(lengths.max()), dtype=torch.long)
        for i, p in enumerate(chunk):
            ids[i, : len(p) + 1] = torch.as_tensor([eos_id, *p])
        logits, _ = model(ids)  # (B, T, V)
        last = torch.log_softmax(logits[torch.arange(len(chunk)), lengths - 1].float(), -1)
        out.append((last[:, plural_id] - last[:, singular_id]).numpy())
    return np.concatenate(out)


@dataclass(frozen=True)
class ScoresConfig:
    """The model scored and the pairs it compares (``lab.scores``)."""

    model_dir: str = "data/processed/models/lm_word"
    pairs: list[SentencePair] = field(default_factory=list)
