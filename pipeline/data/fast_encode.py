"""The fast path of ``prepare``: one tokenizing pass, then passes over int32 ids.

1. :func:`scan_to_ids` reads the corpus once: each block is normalized and tokenized
   (plain ASCII by the compiled scanner of :mod:`pipeline.data.scan`, anything else by
   the reference regex), every token gets a provisional id from a :class:`TokenTable`
   (ids in order of first appearance, counted as they come) and the ids are appended to
   a temporary int32 file next to the outputs (4 bytes a token on disk; memory holds one
   block and the table, which grows with the vocabulary only).
2. The split points and the training counts come from that file (:func:`split_cuts`,
   :func:`tail_counts`); the vocabulary is built from the counts as in the reference.
3. :func:`write_splits` maps provisional ids to vocabulary ids, a chunk at a time.

Tokens, counts and ids equal the reference path's (tests compare the outputs byte for
byte): block boundaries never change tokens, since a block ends at a line end or just
before an ASCII space (see :mod:`pipeline.data.corpora`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pipeline.data.corpora import ASCII, LINE, PART
from pipeline.data.scan import EOL_ID, TokenTable, ascii_map, scan_ascii_words
from pipeline.data.text import Level, NormalizeConfig, TokenizerName, normalize, tokenize

_READ = 1 << 20  # ids per chunk in the passes over the id file (4 MiB)


def fast_blocks(
    pieces: Iterable[tuple[int, str | bytes]], chunk_chars: int
) -> Iterator[str | bytes]:
    """Blocks of about ``chunk_chars`` characters: ``str`` (lines joined, each ending in
    ``"\\n"``; a :data:`PART` piece without one) or raw ASCII ``bytes`` as they come."""
    buf: list[str] = []
    size = 0
    for kind, payload in pieces:
        if kind == ASCII:
            if buf:
                yield "".join(buf)
                buf, size = [], 0
            yield payload
            continue
        assert isinstance(payload, str)
        buf.append(payload)
        if kind == LINE:
            buf.append("\n")
        else:
            assert kind == PART
        size += len(payload) + 1
        if size >= chunk_chars:
            yield "".join(buf)
            buf, size = [], 0
    if buf:
        yield "".join(buf)


class BlockTokenizer:
    """Provisional ids of the tokens of one block (see the module docstring)."""

    def __init__(
        self, level: Level, tokenizer: TokenizerName, cfg: NormalizeConfig, table: TokenTable
    ) -> None:
        self.level = level
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.table = table
        self.whitespace = tokenizer == "whitespace"
        self.map = ascii_map(cfg)

    @property
    def raw_ascii(self) -> bool:
        """Whether raw ASCII stretches of a file can be taken as they are."""
        return self.level == "word" and self.map is not None

    def __call__(self, block: str | bytes) -> np.ndarray:
        if isinstance(block, bytes):
            raw = np.frombuffer(block, dtype=np.uint8)
            assert self.map is not None
            mapped = self.map[raw]
            starts, lens = scan_ascii_words(raw, mapped, self.whitespace, True)
            return self.table.add(mapped, starts, lens)
        text = normalize(block, self.cfg)
        if self.level == "char":
            if "\r" in text or "\t" in text:
                text = text.replace("\r", "").replace("\t", " ")
            if text.isascii():
                buf = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
                n = buf.shape[0]
                return self.table.add(buf, np.arange(n, dtype=np.int32), np.ones(n, np.int32))
            return self.table.add_strings(list(text))
        if text.isascii():
            buf = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
            starts, lens = scan_ascii_words(buf, buf, self.whitespace, False)
            return self.table.add(buf, starts, lens)
        return self.table.add_strings(tokenize(text, self.level, self.tokenizer))


def scan_to_ids(
    blocks: Iterable[str | bytes], tokenize_block: BlockTokenizer, out: BinaryIO
) -> int:
    """Append the provisional ids of every block to ``out``; returns how many."""
    total = 0
    for block in blocks:
        ids = tokenize_block(block)
        ids.tofile(out)
        total += ids.shape[0]
    return total


def _chunks(path: Path, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
    """The ids of ``path`` (raw int32) from ``start`` to ``stop``, a chunk at a time."""
    with open(path, "rb") as fh:
        fh.seek(4 * start)
        left = None if stop is None else stop - start
        while left is None or left > 0:
            n = _READ if left is None else min(_READ, left)
            ids = np.fromfile(fh, dtype=np.int32, count=n)
            if ids.shape[0] == 0:
                return
            if left is not None:
                left -= ids.shape[0]
            yield ids


def word_index(path: Path, total: int, word: float) -> int:
    """Index of word number ``word`` (0-based; line ends are not words), or ``total``.

    The reference's split rule for ``bengio2003``: the line ends that follow a split's
    last word stay with it.
    """
    if word == float("inf"):
        return total
    seen = 0
    pos = 0
    for ids in _chunks(path):
        is_word = ids != EOL_ID
        n = int(np.count_nonzero(is_word))
        if seen + n > word:
            hit = np.flatnonzero(is_word)[int(word) - seen]
            return pos + int(hit)
        seen += n
        pos += ids.shape[0]
    return total


def tail_counts(path: Path, start: int, n_types: int) -> np.ndarray:
    """Counts per provisional id of the ids from ``start`` on (int64)."""
    counts = np.zeros(n_types, dtype=np.int64)
    for ids in _chunks(path, start):
        counts += np.bincount(ids, minlength=n_types)
    return counts


def write_splits(
    path: Path, perm: np.ndarray, cuts: list[int], handles: list[BinaryIO], eos: int, unk: int
) -> list[tuple[int, int, int]]:
    """Write ``perm[ids]`` of ``[cuts[k], cuts[k + 1])`` to ``handles[k]`` (after their
    headers); returns ``(tokens, line ends, unknown)`` per split."""
    stats = []
    for k, fh in enumerate(handles):
        tokens = lines = unknown = 0
        for ids in _chunks(path, cuts[k], cuts[k + 1]):
            out = perm[ids]
            out.astype("<i4", copy=False).tofile(fh)
            tokens += out.shape[0]
            lines += int(np.count_nonzero(out == eos))
            unknown += int(np.count_nonzero(out == unk))
        stats.append((tokens, lines, unknown))
    return stats


__all__ = [
    "BlockTokenizer",
    "fast_blocks",
    "scan_to_ids",
    "tail_counts",
    "word_index",
    "write_splits",
]
