"""Corpus readers: stream the lines of a raw corpus, never the whole corpus in memory.

Each reader is a re-iterable :class:`Corpus` (like gensim's ``LineSentence``): iterating
it again reads the files again, which the two-pass encoder relies on. Lines come
without their line break; one yielded line is one sentence/paragraph/document, and the
encoder ends each with ``<eos>``.

Readers (``data/raw/<dataset>/`` is ``root``):

- ``sotu``: ``speeches/*.txt`` in sorted order, one paragraph per line, blank lines skipped;
- ``brown``: files ``c[a-r][0-9][0-9]`` in sorted order, tagged ``word/tag`` tokens; the
  word is kept (split at the *last* ``/``), one sentence per line, blank lines skipped;
- ``shakespeare``: ``texts/*_gut.txt`` in sorted order, raw text, every line kept;
- ``text``: the user's files matching a glob under ``root`` (sorted), one document or
  sentence per line, blank lines skipped; lines longer than ``max_line_chars`` are cut
  at a space into several lines (so a corpus like text8, one 100 MB line, streams).

``concat`` is not a reader of files: :class:`ConcatCorpus` streams the lines of other
corpora one after another (e.g. sotu + brown + shakespeare as one word-level corpus);
``pipeline.data.encode.open_configured`` builds it from ``prepare.corpora.<name>.parts``.

Undecodable UTF-8 bytes are counted (:attr:`Corpus.decode_errors`); with
``on_decode_error="fail"`` the first one raises :class:`DataError` naming file and line,
with ``"replace"`` each bad byte sequence becomes U+FFFD.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

from pipeline.core.errors import ConfigError, DataError

ReaderName = Literal["sotu", "brown", "shakespeare", "text"]
# What ``prepare.corpora.<name>.reader`` may say: a file reader, or ``concat`` of other entries.
ConfigReaderName = Literal["sotu", "brown", "shakespeare", "text", "concat"]
OnDecodeError = Literal["fail", "replace"]

_BROWN_NAME = re.compile(r"c[a-r][0-9][0-9]")
MAX_LINE_CHARS = 1 << 20


def decode_counting(raw: bytes) -> tuple[str, int]:
    """Decode UTF-8, replacing each undecodable sequence by U+FFFD; return (text, bad bytes)."""
    parts: list[str] = []
    bad = 0
    pos = 0
    while True:
        try:
            parts.append(raw[pos:].decode("utf-8"))
            break
        except UnicodeDecodeError as exc:
            parts.append(raw[pos : pos + exc.start].decode("utf-8"))
            parts.append("\ufffd")
            bad += exc.end - exc.start
            pos += exc.end
    return "".join(parts), bad


class Corpus:
    """A re-iterable stream of lines from sorted files under ``root``.

    ``files`` is computed on construction (missing folder or no matching file is a
    :class:`DataError`); ``max_lines`` stops after that many yielded lines (smoke runs).
    After a full iteration, ``decode_errors`` holds the number of undecodable bytes and
    ``lines`` the number of lines yielded.
    """

    def __init__(
        self,
        reader: ReaderName,
        root: str | os.PathLike,
        files: str | None = None,
        on_decode_error: OnDecodeError = "fail",
        max_lines: int | None = None,
        max_line_chars: int = MAX_LINE_CHARS,
    ) -> None:
        if reader not in ("sotu", "brown", "shakespeare", "text"):
            raise ConfigError(f"reader: unknown reader {reader!r} (sotu, brown, shakespeare, text)")
        if on_decode_error not in ("fail", "replace"):
            raise ConfigError(f"on_decode_error: {on_decode_error!r} is not 'fail' or 'replace'")
        self.reader = reader
        self.root = Path(root)
        self.on_decode_error = on_decode_error
        self.max_lines = max_lines
        self.max_line_chars = max_line_chars
        self.files = self._find_files(files)
        self.decode_errors = 0
        self.lines = 0

    def _find_files(self, pattern: str | None) -> list[Path]:
        root = self.root
        if self.reader == "sotu":
            folder, glob = root / "speeches", "*.txt"
        elif self.reader == "shakespeare":
            folder, glob = root / "texts", "*_gut.txt"
        elif self.reader == "brown":
            folder, glob = root, "c[a-r][0-9][0-9]"
        else:
            if not pattern:
                raise ConfigError("files: the text reader needs a glob (e.g. '*.txt')")
            folder, glob = root, pattern
        if not folder.is_dir():
            raise DataError(f"{folder}: corpus folder not found")
        found = sorted(p for p in folder.glob(glob) if p.is_file())
        if self.reader == "brown":
            found = [p for p in found if _BROWN_NAME.fullmatch(p.name)]
        if not found:
            raise DataError(f"{folder}: no corpus file matches {glob!r}")
        return found

    def _raw_lines(self, path: Path) -> Iterator[tuple[int, bytes]]:
        with open(path, "rb") as fh:
            yield from enumerate(fh, start=1)

    def _decode(self, raw: bytes, path: Path, lineno: int) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            text, bad = decode_counting(raw)
            self.decode_errors += bad
            if self.on_decode_error == "fail":
                raise DataError(
                    f"{path}:{lineno}: undecodable UTF-8 byte at column {exc.start + 1} "
                    f"(set on_decode_error: replace to substitute U+FFFD)"
                ) from None
            return text

    def _lines_of(self, path: Path) -> Iterator[str]:
        reader = self.reader
        for lineno, raw in self._raw_lines(path):
            line = self._decode(raw, path, lineno).rstrip("\r\n")
            if reader == "shakespeare":
                yield line
                continue
            line = line.strip()
            if not line:
                continue
            if reader == "brown":
                words = [tok[: tok.rfind("/")] if "/" in tok else tok for tok in line.split()]
                words = [w for w in words if w]
                if words:
                    yield " ".join(words)
            elif reader == "text" and len(line) > self.max_line_chars:
                yield from _cut(line, self.max_line_chars)
            else:
                yield line

    def __iter__(self) -> Iterator[str]:
        self.decode_errors = 0
        self.lines = 0
        limit = self.max_lines
        for path in self.files:
            for line in self._lines_of(path):
                if limit is not None and self.lines >= limit:
                    return
                self.lines += 1
                yield line


class ConcatCorpus:
    """A re-iterable stream of the lines of several :class:`Corpus`, one after another.

    Same interface as :class:`Corpus` (``files``, ``root``, ``lines``, ``decode_errors``,
    ``max_lines``): each part streams its own files with its own reader and
    ``on_decode_error``; ``max_lines`` caps the total number of lines yielded.
    """

    def __init__(self, parts: Sequence[Corpus], max_lines: int | None = None) -> None:
        if not parts:
            raise ConfigError("parts: a concatenated corpus needs at least one part")
        self.parts = list(parts)
        self.max_lines = max_lines
        self.files = [f for part in self.parts for f in part.files]
        # data/raw/sotu + data/raw/brown -> data/raw (used in error messages)
        self.root = Path(os.path.commonpath([str(part.root) for part in self.parts]))
        self.lines = 0

    @property
    def decode_errors(self) -> int:
        """Undecodable bytes met by the parts in their last iteration."""
        return sum(part.decode_errors for part in self.parts)

    def __iter__(self) -> Iterator[str]:
        self.lines = 0
        limit = self.max_lines
        for part in self.parts:
            for line in part:
                if limit is not None and self.lines >= limit:
                    return
                self.lines += 1
                yield line


def _cut(line: str, size: int) -> Iterator[str]:
    """Cut a very long line into pieces of about ``size`` chars at spaces."""
    start = 0
    n = len(line)
    while n - start > size:
        end = line.rfind(" ", start, start + size)
        if end <= start:
            end = start + size
        yield line[start:end]
        start = end + 1 if line[end : end + 1] == " " else end
    if start < n:
        yield line[start:]


def open_corpus(
    reader: ReaderName,
    root: str | os.PathLike,
    files: str | None = None,
    on_decode_error: OnDecodeError = "fail",
    max_lines: int | None = None,
) -> Corpus:
    """The :class:`Corpus` for ``reader`` under ``root`` (see the module docstring)."""
    return Corpus(reader, root, files=files, on_decode_error=on_decode_error, max_lines=max_lines)
