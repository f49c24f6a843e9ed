"""Chunk-level precision, recall and F1 computed exactly as CoNLL's ``conlleval`` script.

A line-by-line port of ``conlleval`` (perl, version 2004-01-26, Erik Tjong Kim Sang):
the same chunk start/end rules (IOB1, IOB2, IOE, the ``[``/``]``/``.`` tags), the same
handling of sentence boundaries (empty lines or a first field ``-X-``), of a guessed
chunk that spans a boundary, of a type ``0`` (false in perl, so untyped), and the same
report. Scores are percentages (0-100), as the script prints them.

Example::

    result = evaluate([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
    result.f1, result.per_type["PER"].f1   # 0.0, 0.0
    print(format_report(result))           # what `conlleval < file` prints
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pipeline.core.errors import DataError

BOUNDARY = "-X-"


def _split_tag(tag: str) -> tuple[str, str]:
    """``B-PER`` -> (``B``, ``PER``); split at the first hyphen as ``/^([^-]*)-(.*)$/``."""
    prefix, sep, kind = tag.partition("-")
    if not sep:
        return tag, ""
    # perl: `$type = $type ? $type : ""` turns the false string "0" into "".
    return prefix, ("" if kind == "0" else kind)


def end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """True if a chunk ended between the previous and the current word (conlleval rules)."""
    end = (prev_tag, tag) in {
        ("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"),
        ("E", "E"), ("E", "I"), ("E", "O"),
    }  # fmt: skip
    if prev_tag not in ("O", ".") and prev_type != type_:
        end = True
    if prev_tag in ("]", "["):
        end = True
    return end


def start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """True if a chunk started between the previous and the current word (conlleval rules)."""
    start = (prev_tag, tag) in {
        ("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"),
        ("E", "E"), ("E", "I"), ("O", "E"),
    }  # fmt: skip
    if tag not in ("O", ".") and prev_type != type_:
        start = True
    if tag in ("[", "]"):
        start = True
    return start


@dataclass(frozen=True)
class ChunkScore:
    """Counts and scores (percent) of one chunk type, or of all types together."""

    found_correct: int  # chunks in the gold standard
    found_guessed: int  # chunks predicted
    correct: int  # predicted chunks that match a gold chunk exactly (span and type)

    @property
    def precision(self) -> float:
        return 100.0 * self.correct / self.found_guessed if self.found_guessed > 0 else 0.0

    @property
    def recall(self) -> float:
        return 100.0 * self.correct / self.found_correct if self.found_correct > 0 else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0


@dataclass(frozen=True)
class ConllevalResult:
    """What ``conlleval`` computes: overall counts and scores, per-type scores, accuracy."""

    tokens: int
    correct_tags: int
    overall: ChunkScore
    per_type: dict[str, ChunkScore] = field(default_factory=dict)

    @property
    def precision(self) -> float:
        return self.overall.precision

    @property
    def recall(self) -> float:
        return self.overall.recall

    @property
    def f1(self) -> float:
        return self.overall.f1

    @property
    def accuracy(self) -> float:
        """Token accuracy in percent (boundaries not counted)."""
        return 100.0 * self.correct_tags / self.tokens if self.tokens > 0 else 0.0

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """Flat metrics: ``<prefix>f1``, ``precision``, ``recall``, ``accuracy``, ``f1_<TYPE>``..."""
        out = {
            f"{prefix}f1": self.f1,
            f"{prefix}precision": self.precision,
            f"{prefix}recall": self.recall,
            f"{prefix}accuracy": self.accuracy,
        }
        for kind, score in self.per_type.items():
            out[f"{prefix}f1_{kind}"] = score.f1
            out[f"{prefix}precision_{kind}"] = score.precision
            out[f"{prefix}recall_{kind}"] = score.recall
        return out


def _score(items: Iterable[tuple[str, str, str]]) -> ConllevalResult:
    """The counting loop of conlleval over ``(first_field, gold_tag, guessed_tag)`` items;
    a first field ``-X-`` marks a sentence boundary."""
    correct_chunk = found_correct = found_guessed = correct_tags = tokens = 0
    by_correct: dict[str, int] = {}
    by_found_correct: dict[str, int] = {}
    by_found_guessed: dict[str, int] = {}
    in_correct = False
    last_correct, last_guessed = "O", "O"
    last_correct_type, last_guessed_type = "", ""

    for first, gold, guess in items:
        correct, correct_type = _split_tag(gold)
        guessed, guessed_type = _split_tag(guess)
        if first == BOUNDARY:
            guessed = "O"  # sentence breaks are always out of chunk

        end_c = end_of_chunk(last_correct, correct, last_correct_type, correct_type)
        end_g = end_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
        start_c = start_of_chunk(last_correct, correct, last_correct_type, correct_type)
        start_g = start_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
        if in_correct:
            if end_c and end_g and last_guessed_type == last_correct_type:
                in_correct = False
                correct_chunk += 1
                by_correct[last_correct_type] = by_correct.get(last_correct_type, 0) + 1
            elif end_c != end_g or guessed_type != correct_type:
                in_correct = False
        if start_c and start_g and guessed_type == correct_type:
            in_correct = True
        if start_c:
            found_correct += 1
            by_found_correct[correct_type] = by_found_correct.get(correct_type, 0) + 1
        if start_g:
            found_guessed += 1
            by_found_guessed[guessed_type] = by_found_guessed.get(guessed_type, 0) + 1
        if first != BOUNDARY:
            if correct == guessed and guessed_type == correct_type:
                correct_tags += 1
            tokens += 1
        last_guessed, last_correct = guessed, correct
        last_guessed_type, last_correct_type = guessed_type, correct_type

    if in_correct:
        correct_chunk += 1
        by_correct[last_correct_type] = by_correct.get(last_correct_type, 0) + 1

    types = sorted(set(by_found_correct) | set(by_found_guessed))
    per_type = {
        t: ChunkScore(by_found_correct.get(t, 0), by_found_guessed.get(t, 0), by_correct.get(t, 0))
        for t in types
    }
    overall = ChunkScore(found_correct, found_guessed, correct_chunk)
    return ConllevalResult(tokens, correct_tags, overall, per_type)


def evaluate(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> ConllevalResult:
    """Score predicted tag sequences against gold ones, one list of tags per sentence.

    Same result as writing ``word gold pred`` lines with an empty line after each sentence
    and running ``conlleval`` on them.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")

    def items() -> Iterable[tuple[str, str, str]]:
        for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
            if len(g) != len(p):
                raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
            for gt, pt in zip(g, p, strict=True):
                yield "w", gt, pt
            yield BOUNDARY, "O", "O"

    return _score(items())


def evaluate_lines(
    lines: Iterable[str],
    delimiter: str = " ",
    o_tag: str = "O",
    raw: bool = False,
    source: str = "<lines>",
) -> ConllevalResult:
    """Score the lines of a conlleval input file (``... gold guessed`` per token line).

    Parses as the script does: fields split on the regex ``delimiter``, the last two fields
    are the gold and guessed tags, an empty line or a first field ``-X-`` is a sentence
    boundary, every non-empty line must have as many fields as the first one. ``raw`` is
    the ``-r`` option (tags without ``B-``/``I-``, one word per chunk) with ``o_tag`` as
    the outside tag (``-o``).
    """
    pattern = re.compile(delimiter)

    def items() -> Iterable[tuple[str, str, str]]:
        n_features = -1
        for lineno, line in enumerate(lines, 1):
            if line.endswith("\n"):  # perl chomp
                line = line[:-1]
            feats = pattern.split(line) if line else []
            while feats and feats[-1] == "":  # perl split drops trailing empty fields
                feats.pop()
            if n_features < 0:
                n_features = len(feats) - 1
            elif n_features != len(feats) - 1 and feats:
                raise DataError(
                    f"{source}:{lineno}: unexpected number of features: {len(feats)} ({n_features + 1})"
                )
            if not feats or feats[0] == BOUNDARY:
                feats = [BOUNDARY, "O", "O"]
            if len(feats) < 2:
                raise DataError(
                    f"{source}:{lineno}: unexpected number of features in line {line!r}"
                )
            if raw:
                for k in (-1, -2):
                    if feats[k] == o_tag:
                        feats[k] = "O"
                    if feats[k] != "O":
                        feats[k] = f"B-{feats[k]}"
            first = feats[0] if len(feats) > 2 else ""
            yield first, feats[-2], feats[-1]

    return _score(items())


def format_report(result: ConllevalResult) -> str:
    """The text ``conlleval`` prints (without ``-l``), byte for byte."""
    o = result.overall
    lines = [
        f"processed {result.tokens} tokens with {o.found_correct} phrases; "
        f"found: {o.found_guessed} phrases; correct: {o.correct}."
    ]
    if result.tokens > 0:
        lines.append(
            f"accuracy: {result.accuracy:6.2f}%; precision: {o.precision:6.2f}%; "
            f"recall: {o.recall:6.2f}%; FB1: {o.f1:6.2f}"
        )
    kinds = list(result.per_type)
    if "" in result.per_type:
        # perl's de-duplication of the sorted type names tests `not($lastType)`, which is
        # true for "", so the untyped line is printed once per table that holds it.
        untyped = result.per_type[""]
        repeats = (untyped.found_correct > 0) + (untyped.found_guessed > 0)
        kinds = [""] * max(repeats, 1) + [k for k in kinds if k]
    for kind in kinds:
        s = result.per_type[kind]
        lines.append(
            f"{kind:>17s}: precision: {s.precision:6.2f}%; recall: {s.recall:6.2f}%; "
            f"FB1: {s.f1:6.2f}  {s.found_guessed}"
        )
    return "\n".join(lines) + "\n"


def write_conll(
    path_or_fh,
    words: Sequence[Sequence[str]],
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
) -> None:
    """Write ``word gold pred`` lines, an empty line after each sentence (conlleval input).

    ``path_or_fh`` is an open text file (e.g. from ``pipeline.core.atomic.atomic_open``).
    """
    fh = path_or_fh
    for i, (ws, gs, ps) in enumerate(zip(words, gold, pred, strict=True)):
        if not len(ws) == len(gs) == len(ps):
            raise ValueError(f"sentence {i}: words, gold and predicted tags differ in length")
        for w, g, p in zip(ws, gs, ps, strict=True):
            fh.write(f"{w} {g} {p}\n")
        fh.write("\n")
