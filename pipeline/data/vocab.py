"""A token vocabulary: ids, counts, the specials, and the ``vocab.tsv`` file format.

Ids 0, 1, 2 are ``<pad>``, ``<unk>``, ``<eos>``; the remaining ids are ordered by count
(descending), ties broken by the token string, so the file is deterministic.

``vocab.tsv`` is UTF-8 with the header ``id\\ttoken\\tcount`` and one row per id.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from pipeline.core.atomic import atomic_open
from pipeline.core.errors import ConfigError, DataError

PAD, UNK, EOS = 0, 1, 2
PAD_TOKEN, UNK_TOKEN, EOS_TOKEN = "<pad>", "<unk>", "<eos>"
SPECIALS = (PAD_TOKEN, UNK_TOKEN, EOS_TOKEN)
HEADER = "id\ttoken\tcount"


class Vocabulary:
    """Tokens by id with their counts.

    ``tokens[i]`` is the token of id ``i``; ``counts[i]`` (int64) its count in the corpus
    the vocabulary was built from (for ``<unk>``: the number of merged out-of-vocabulary
    occurrences when known; for ``<eos>``: the number of line ends; ``<pad>``: 0).
    """

    PAD = PAD
    UNK = UNK
    EOS = EOS

    def __init__(self, tokens: Sequence[str], counts: Sequence[int] | np.ndarray | None = None):
        tokens = list(tokens)
        if tuple(tokens[:3]) != SPECIALS:
            raise ValueError(f"the first tokens must be {list(SPECIALS)}, got {tokens[:3]}")
        if counts is None:
            counts = np.zeros(len(tokens), dtype=np.int64)
        counts = np.asarray(counts, dtype=np.int64)
        if counts.shape != (len(tokens),):
            raise ValueError(f"counts has shape {counts.shape}, expected ({len(tokens)},)")
        self.tokens: list[str] = tokens
        self.counts: np.ndarray = counts
        self._index: dict[str, int] = {}
        for i, tok in enumerate(tokens):
            if tok in self._index:
                raise ValueError(f"duplicate token {tok!r} at ids {self._index[tok]} and {i}")
            self._index[tok] = i

    # ------------------------------------------------------------------ building
    @classmethod
    def from_counts(
        cls,
        counter: Mapping[str, int],
        min_count: int = 1,
        max_size: int | None = None,
        eos_count: int = 0,
        rare: tuple[int, int, int] = (0, 0, 0),
    ) -> Vocabulary:
        """Build from token counts.

        Keeps tokens seen at least ``min_count`` times; if ``max_size`` is given, the
        whole vocabulary (specials included) has at most ``max_size`` entries. Dropped
        occurrences are summed into the ``<unk>`` count. Special tokens found in
        ``counter`` are not duplicated (their counts are added to the special).
        ``rare = (types, occurrences, highest count)`` describes tokens the caller left
        out of ``counter`` because they were seen fewer than ``min_count`` times (never
        specials): the result is the same as with them in ``counter``.
        Raises ``ConfigError`` (naming ``min_count`` / ``max_size``) if no word is left.
        """
        if min_count < 1:
            raise ConfigError(f"min_count: {min_count} must be at least 1")
        if max_size is not None and max_size <= len(SPECIALS):
            raise ConfigError(
                f"max_size: {max_size} must be greater than {len(SPECIALS)} (the specials)"
            )
        special_counts = [0, 0, int(eos_count)]
        items = []
        for tok, c in counter.items():
            if tok in SPECIALS:
                special_counts[SPECIALS.index(tok)] += int(c)
            else:
                items.append((tok, int(c)))
        kept = [(t, c) for t, c in items if c >= min_count]
        rare_types, rare_total, rare_max = rare
        if not kept:
            n = len(items) + rare_types
            highest = max(max((c for _, c in items), default=0), rare_max)
            raise ConfigError(
                f"min_count: {min_count} leaves no word in the vocabulary "
                f"({n} types, highest count {highest})"
            )
        kept.sort(key=lambda tc: (-tc[1], tc[0]))
        if max_size is not None:
            kept = kept[: max_size - len(SPECIALS)]
        total = sum(c for _, c in items) + rare_total
        special_counts[UNK] += total - sum(c for _, c in kept)
        tokens = list(SPECIALS) + [t for t, _ in kept]
        counts = np.array(special_counts + [c for _, c in kept], dtype=np.int64)
        return cls(tokens, counts)

    # ------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.tokens == other.tokens and np.array_equal(self.counts, other.counts)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens)"

    @property
    def index(self) -> Mapping[str, int]:
        """Read-only view token -> id (do not mutate)."""
        return self._index

    def id_of(self, token: str) -> int:
        """Id of ``token``, or ``UNK`` (1) if it is not in the vocabulary."""
        return self._index.get(token, UNK)

    def token_of(self, idx: int) -> str:
        """Token of id ``idx`` (IndexError if out of range)."""
        if idx < 0:
            raise IndexError(idx)
        return self.tokens[idx]

    def encode(self, tokens: Iterable[str], eos: bool = False) -> np.ndarray:
        """Ids (int32) of ``tokens``, OOV -> ``UNK``; ``eos=True`` appends ``EOS``."""
        get = self._index.get
        ids = [get(t, UNK) for t in tokens]
        if eos:
            ids.append(EOS)
        return np.asarray(ids, dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids``."""
        toks = self.tokens
        return [toks[int(i)] for i in ids]

    # ------------------------------------------------------------------ file format
    def save_tsv(self, path: str | os.PathLike) -> None:
        """Write ``vocab.tsv`` atomically (see :func:`write_vocab_tsv`)."""
        write_vocab_tsv(path, self.tokens, self.counts)

    @classmethod
    def load_tsv(cls, path: str | os.PathLike) -> Vocabulary:
        """Read a ``vocab.tsv``; raises ``DataError`` naming the file and line if malformed."""
        tokens, counts = read_vocab_tsv(path)
        try:
            return cls(tokens, np.asarray(counts, dtype=np.int64))
        except ValueError as exc:
            raise DataError(f"{path}: {exc}") from exc


def write_vocab_tsv(path: str | os.PathLike, tokens: Sequence[str], counts) -> None:
    """Write ``vocab.tsv`` atomically: header ``id\ttoken\tcount``, one row per id."""
    for i, tok in enumerate(tokens):
        if "\t" in tok or "\n" in tok or "\r" in tok:
            raise DataError(f"{path}: token {tok!r} (id {i}) contains a tab or line break")
    counts = np.asarray(counts, dtype=np.int64).tolist()
    with atomic_open(path, "w", newline="\n") as fh:
        fh.write(HEADER + "\n")
        for i, (tok, c) in enumerate(zip(tokens, counts, strict=True)):
            fh.write(f"{i}\t{tok}\t{c}\n")


def read_vocab_tsv(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read a ``vocab.tsv`` written by :func:`write_vocab_tsv`: ``(tokens, counts)``.

    Raises :class:`DataError` naming the file and line when it is missing, not UTF-8 or
    malformed (wrong header, field count, non-integer or out-of-order id).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: vocabulary file not found")
    tokens: list[str] = []
    counts: list[int] = []
    try:
        with open(path, encoding="utf-8", newline="\n") as fh:
            header = fh.readline().rstrip("\n").rstrip("\r")
            if header != HEADER:
                raise DataError(f"{path}:1: expected header {HEADER!r}, got {header!r}")
            for lineno, line in enumerate(fh, start=2):
                line = line.rstrip("\n").rstrip("\r")
                if not line:
                    continue
                parts = line.split("\t")
                if len(parts) != 3:
                    raise DataError(
                        f"{path}:{lineno}: expected 3 tab-separated fields, got {len(parts)}"
                    )
                try:
                    idx, count = int(parts[0]), int(parts[2])
                except ValueError as exc:
                    raise DataError(
                        f"{path}:{lineno}: id and count must be integers ({exc})"
                    ) from None
                if idx != len(tokens):
                    raise DataError(f"{path}:{lineno}: expected id {len(tokens)}, got {idx}")
                tokens.append(parts[1])
                counts.append(count)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 ({exc})") from exc
    return tokens, np.asarray(counts, dtype=np.int64)
