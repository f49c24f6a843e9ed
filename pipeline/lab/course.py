"""The course page: each idea of a sequence-models course, linked to the output of the
run that shows it and the number it shows.

:data:`SYLLABUS` lists the ideas in course order; each :class:`Evidence` names an output
file (linked) and optionally a number from a ``metrics/*.json`` file. :func:`course_page`
writes the Markdown; an output that does not exist yet is listed as missing, never
linked. :func:`broken_links` finds the local links of a page whose target is missing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Evidence:
    """An output ``path`` (relative to the project root) and, optionally, the number
    ``metrics[key]`` from the JSON file ``metrics`` that it shows, described by ``what``."""

    path: str
    what: str
    metrics: str = ""
    key: str = ""


@dataclass(frozen=True)
class Idea:
    name: str
    evidence: tuple[Evidence, ...]


def _e(path: str, what: str, metrics: str = "", key: str = "") -> Evidence:
    return Evidence(path, what, metrics, key)


_AGR = "reports/lab/agreement"
_GRAD = "reports/lab/gradients"
SYLLABUS: tuple[Idea, ...] = (
    Idea("Notation, one-hot vectors and ids", (
        _e("data/processed/brown/vocab.tsv", "Brown word ids (vocabulary size)",
           "metrics/prepare_brown.json", "vocab_size"),
    )),
    Idea("The RNN forward pass and backpropagation through time", (
        _e("reports/lm/word/samples.txt", "word LM trained with truncated BPTT (test perplexity)",
           "metrics/train_lm_word.json", "test_ppl"),
        _e(f"{_GRAD}/norms.png", "d loss / d h_t through time, plain RNN (log10 slope per step)",
           "metrics/lab_gradients.json", "slope_rnn1"),
    )),
    Idea("The four RNN shapes", (
        _e("reports/lm/word/samples.txt", "one-to-many: sampling (test perplexity)",
           "metrics/train_lm_word.json", "test_ppl"),
        _e("reports/sentiment/rnn/predictions.tsv", "many-to-one: sentiment (test accuracy)",
           "metrics/train_sentiment_rnn.json", "test_acc"),
        _e("reports/ner/conlleval.txt", "many-to-many, Tx = Ty: NER (test F1)",
           "metrics/train_ner.json", "test_f1"),
        _e("reports/lab/seq2seq/examples.md", "many-to-many, Tx != Ty: words -> digits "
           "(held-out exact match, beam)", "metrics/lab_seq2seq.json", "exact_match_beam"),
    )),
    Idea("Language models and sentence probability", (
        _e("reports/lm/scores.md", "sentence pairs the LM ranks as expected",
           "metrics/lab_scores.json", "pairs_correct"),
        _e("reports/lab/lm_agreement/table.md", "was/were at the verb: LM accuracy, all distances",
           "metrics/lab_lm_agreement.json", "accuracy"),
    )),
    Idea("Sampling novel sequences (word and character)", (
        _e("reports/lm/word/samples.txt", "word-level samples (test perplexity)",
           "metrics/train_lm_word.json", "test_ppl"),
        _e("reports/lm/char/samples.txt", "character-level samples (test nats per character)",
           "metrics/train_lm_char.json", "test_nats_per_char"),
    )),
    Idea("Vanishing and exploding gradients, gradient clipping", (
        _e(f"{_GRAD}/norms.png", "gradient norm vs steps back, LSTM (log10 slope per step)",
           "metrics/lab_gradients.json", "slope_lstm1"),
        _e(f"{_GRAD}/clipping.png", "plain RNN, large init and lr: steps with a huge or "
           "non-finite gradient", "metrics/lab_gradients.json", "exploded_noclip"),
        _e(f"{_GRAD}/slopes.md", "largest update applied without clipping",
           "metrics/lab_gradients.json", "max_update_noclip"),
        _e(f"{_GRAD}/slopes.md", "largest update applied with clipping",
           "metrics/lab_gradients.json", "max_update_clip"),
    )),
    Idea("GRU", (
        _e(f"{_AGR}/accuracy_vs_distance.png", "agreement accuracy at the longest distances, GRU",
           "metrics/lab_agreement.json", "acc_far_gru1"),
    )),
    Idea("LSTM", (
        _e(f"{_AGR}/accuracy_vs_distance.png", "agreement accuracy at the longest distances, LSTM",
           "metrics/lab_agreement.json", "acc_far_lstm1"),
        _e(f"{_AGR}/table.md", "... and plain RNN", "metrics/lab_agreement.json", "acc_far_rnn1"),
    )),
    Idea("Bidirectional RNN", (
        _e("reports/lab/ner_direction/report.md", "NER test F1, unidirectional encoder",
           "metrics/lab_ner_direction.json", "f1_uni"),
        _e("reports/lab/ner_direction/report.md", "NER test F1, bidirectional encoder",
           "metrics/lab_ner_direction.json", "f1_bi"),
    )),
    Idea("Deep RNN", (
        _e("reports/lab/lm_depth/report.md", "word LM, 1 layer (validation perplexity)",
           "metrics/lab_lm_depth.json", "ppl_layers1"),
        _e("reports/lab/lm_depth/report.md", "word LM, deepest (validation perplexity)",
           "metrics/lab_lm_depth.json", "ppl_deepest"),
    )),
    Idea("One-hot versus embeddings (t-SNE)", (
        _e("reports/evaluate/sgns/tsne.png", "skip-gram vectors in 2-D (WordSim-353 Spearman)",
           "metrics/evaluate_sgns.json", "ws353"),
        _e("reports/evaluate/glove/tsne.png", "GloVe vectors in 2-D (WordSim-353 Spearman)",
           "metrics/evaluate_glove.json", "ws353"),
    )),
    Idea("Transfer learning with embeddings", (
        _e("reports/ner/conlleval.txt", "NER fed the skip-gram vectors (test F1)",
           "metrics/train_ner.json", "test_f1"),
        _e("reports/sentiment/rnn/predictions.tsv", "sentiment fed the same vectors (test acc.)",
           "metrics/train_sentiment_rnn.json", "test_acc"),
    )),
    Idea("Analogies and cosine similarity", (
        _e("reports/evaluate/sgns/analogy_sections.csv", "analogy accuracy, 3CosAdd",
           "metrics/evaluate_sgns.json", "analogy_total"),
        _e("reports/evaluate/sgns/neighbours.txt", "nearest neighbours by cosine"),
    )),
    Idea("The embedding matrix (E times a one-hot vector is a lookup)", (
        _e(f"{_AGR}/table.md", "max |E o_w - E[w]| on a trained embedding",
           "metrics/lab_agreement.json", "onehot_lookup_max_diff"),
    )),
    Idea("Context choices for embeddings", (
        _e("reports/evaluate/sgns/neighbours.txt", "local windows, predicted (SimLex-999)",
           "metrics/evaluate_sgns.json", "simlex"),
        _e("reports/evaluate/glove/neighbours.txt", "global co-occurrence counts (SimLex-999)",
           "metrics/evaluate_glove.json", "simlex"),
    )),
    Idea("Skip-gram and hierarchical softmax", (
        _e("data/processed/embeddings/sgns/vocab.tsv", "skip-gram training speed, updates/s "
           "(the default output is negative sampling; `-S skipgram.output=hs` trains the "
           "hierarchical softmax)", "metrics/skipgram.json", "updates_per_sec"),
    )),
    Idea("Negative sampling", (
        _e("reports/evaluate/sgns/analogy_sections.csv", "SGNS analogy accuracy (MSR syntactic)",
           "metrics/evaluate_sgns.json", "msr_total"),
    )),
    Idea("GloVe", (
        _e("reports/evaluate/glove/analogy_sections.csv", "GloVe analogy accuracy",
           "metrics/evaluate_glove.json", "analogy_total"),
    )),
    Idea("Sentiment: averaging versus an RNN", (
        _e("reports/sentiment/word_order.md", "word-order sentences right, averaging model",
           "metrics/sentiment_compare.json", "cue_acc_avg"),
        _e("reports/sentiment/word_order.md", "word-order sentences right, RNN",
           "metrics/sentiment_compare.json", "cue_acc_rnn"),
    )),
    Idea("Debiasing word embeddings", (
        _e("reports/debias/sgns/report.md", "direct gender bias before",
           "metrics/debias_sgns.json", "direct_bias_before"),
        _e("reports/debias/sgns/report.md", "direct gender bias after",
           "metrics/debias_sgns.json", "direct_bias_after"),
    )),
)  # fmt: skip


def _number(root: Path, ev: Evidence) -> str | None:
    if not ev.metrics:
        return ""
    path = root / ev.metrics
    try:
        value = json.loads(path.read_text(encoding="utf-8"))[ev.key]
    except (OSError, ValueError, KeyError):
        return None
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def course_page(
    root: str | os.PathLike, page: str | os.PathLike, syllabus: Sequence[Idea] = SYLLABUS
) -> tuple[str, list[str]]:
    """The Markdown of the page that will live at ``page`` (relative to ``root``), and
    the outputs that are missing (listed as such on the page, not linked)."""
    root = Path(root)
    page_dir = (root / page).parent
    lines = [
        "# The course, shown by this run",
        "",
        "Each idea links the output of the run that shows it, with the number it shows",
        "(from `metrics/`). Outputs of `make run` and of `make lab`.",
        "",
    ]
    missing: list[str] = []
    for n, idea in enumerate(syllabus, start=1):
        lines.append(f"{n}. **{idea.name}**")
        for ev in idea.evidence:
            number = _number(root, ev)
            if not (root / ev.path).exists() or number is None:
                missing.append(ev.path if not (root / ev.path).exists() else ev.metrics)
                lost = ev.path if not (root / ev.path).exists() else f"{ev.metrics}: {ev.key}"
                lines.append(f"   - {ev.what}: missing `{lost}` (not produced by this run)")
                continue
            rel = os.path.relpath(root / ev.path, page_dir)
            shown = f" = **{number}** (`{ev.metrics}`: `{ev.key}`)" if number else ""
            lines.append(f"   - {ev.what}{shown}: [{ev.path}]({rel})")
    return "\n".join(lines) + "\n", missing


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def broken_links(page: str | os.PathLike) -> list[str]:
    """Local link targets of the Markdown file ``page`` that do not exist (web and
    in-page links are not checked)."""
    page = Path(page)
    out = []
    for target in _LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (page.parent / target.split("#")[0]).exists():
            out.append(target)
    return out


@dataclass(frozen=True)
class CourseConfig:
    """The ``lab.course`` settings: where the course page is written."""

    page: str = "reports/course/index.md"
