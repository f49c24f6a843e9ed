"""Compiled kernels for ``prepare``: ASCII tokenization and a token -> id hash table.

The reference path of :mod:`pipeline.data.encode` tokenizes with a Python regex and
counts with ``collections.Counter``, which creates one Python string per token. Here the
tokens of plain ASCII text are found by a numba loop over the bytes, and every token
(whatever path found it) is looked up by its UTF-8 bytes in :class:`TokenTable`, which
hands out *provisional* ids in order of first appearance and counts them. Nothing here
builds a Python object per token, and memory grows with the number of distinct tokens.

The ASCII scanner gives exactly the tokens of :func:`pipeline.data.text.tokenize` (word
level, ``regex`` or ``whitespace``) on ASCII text; tests compare the two.
"""

from __future__ import annotations

import numba
import numpy as np

from pipeline.data.text import NormalizeConfig

EOL_ID = 0  # the provisional id of the line end "\n" (inserted first)
_BATCH = 1 << 16  # spans inserted per call: the table grows between calls


# ---------------------------------------------------------------------------- byte classes
@numba.njit(cache=True, inline="always")
def _is_space(c):  # str.isspace() / regex \s on ASCII: \t \n \v \f \r \x1c-\x1f and space
    return c == 32 or (9 <= c <= 13) or (28 <= c <= 31)


@numba.njit(cache=True, inline="always")
def _is_letter(c):
    return (97 <= c <= 122) or (65 <= c <= 90)


@numba.njit(cache=True, inline="always")
def _is_digit(c):
    return 48 <= c <= 57


@numba.njit(cache=True, nogil=True)
def _scan_words(raw, mapped, whitespace, skip_blank, starts, lens):
    """Token spans of ASCII text: ``raw`` decides lines and blank lines, ``mapped``
    (``raw`` after lower-casing / digit replacement) the tokens.

    A line end is the 1-byte span of its ``"\\n"``; with ``skip_blank`` a line with no
    non-space byte gives nothing (``str.strip`` then skip, as the readers do).
    ``whitespace``: tokens are runs of non-space bytes; otherwise letter runs with
    internal apostrophes, or digit runs (``_ASCII_WORD_OR_EOL_RE``). Returns the count.
    """
    n = raw.shape[0]
    k = 0
    i = 0
    has = False
    while i < n:
        r = raw[i]
        if r == 10:
            if has or not skip_blank:
                starts[k] = i
                lens[k] = 1
                k += 1
            has = False
            i += 1
            continue
        c = mapped[i]
        if whitespace:
            if _is_space(c):
                if not _is_space(r):
                    has = True
                i += 1
                continue
            j = i + 1
            while j < n and not _is_space(mapped[j]):
                j += 1
        elif _is_letter(c):
            j = i + 1
            while j < n and _is_letter(mapped[j]):
                j += 1
            while j + 1 < n and mapped[j] == 39 and _is_letter(mapped[j + 1]):
                j += 2
                while j < n and _is_letter(mapped[j]):
                    j += 1
        elif _is_digit(c):
            j = i + 1
            while j < n and _is_digit(mapped[j]):
                j += 1
        else:
            if not _is_space(r):
                has = True
            i += 1
            continue
        starts[k] = i
        lens[k] = j - i
        k += 1
        has = True
        i = j
    return k


@numba.njit(cache=True, nogil=True)
def count_kept_lines(raw, skip_blank):
    """Lines of ASCII ``raw`` (each ending in ``"\\n"``) the readers keep."""
    k = 0
    has = False
    for i in range(raw.shape[0]):
        r = raw[i]
        if r == 10:
            if has or not skip_blank:
                k += 1
            has = False
        elif not has and not _is_space(r):
            has = True
    return k


def ascii_map(cfg: NormalizeConfig) -> np.ndarray | None:
    """A 256-byte table doing ``normalize(text, cfg)`` on ASCII text byte by byte.

    NFKC leaves ASCII unchanged; ``lowercase`` maps A-Z to a-z; ``digits`` maps 0-9 to
    the placeholder. None when the placeholder is not one ASCII character (or is a line
    break, which would add lines): such settings take the string path.
    """
    table = np.arange(256, dtype=np.uint8)
    if cfg.lowercase:
        table[65:91] += 32
    if cfg.digits is not None:
        d = cfg.digits
        if len(d) != 1 or not d.isascii() or d == "\n":
            return None
        table[48:58] = ord(d)
    return table


def scan_ascii_words(
    raw: np.ndarray, mapped: np.ndarray, whitespace: bool, skip_blank: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, lens)`` of the tokens of ASCII bytes (see :func:`_scan_words`)."""
    n = raw.shape[0]  # a block is far below 2 GiB: int32 offsets
    starts = np.empty(n, dtype=np.int32)
    lens = np.empty(n, dtype=np.int32)
    k = _scan_words(raw, mapped, whitespace, skip_blank, starts, lens)
    return starts[:k], lens[:k]


# ---------------------------------------------------------------------------- hash table
@numba.njit(cache=True, inline="always")
def _hash(buf, s, length):
    h = np.uint64(14695981039346656037)  # FNV-1a
    for k in range(s, s + length):
        h = (h ^ np.uint64(buf[k])) * np.uint64(1099511628211)
    return h ^ (h >> np.uint64(29))


@numba.njit(cache=True, nogil=True)
def _insert(buf, starts, lens, slots, hashes, tstarts, tlens, arena, counts, n, used, out):
    """Look up (and insert) each span of ``buf``; ``out`` gets the ids. Returns (n, used)."""
    mask = np.uint64(slots.shape[0] - 1)
    for i in range(starts.shape[0]):
        s = starts[i]
        length = lens[i]
        h = _hash(buf, s, length)
        j = h & mask
        while True:
            p = slots[j]
            if p < 0:
                slots[j] = n
                hashes[n] = h
                tstarts[n] = used
                tlens[n] = length
                for k in range(length):
                    arena[used + k] = buf[s + k]
                used += length
                counts[n] = 1
                out[i] = n
                n += 1
                break
            if hashes[p] == h and tlens[p] == length:
                a = tstarts[p]
                same = True
                for k in range(length):
                    if arena[a + k] != buf[s + k]:
                        same = False
                        break
                if same:
                    counts[p] += 1
                    out[i] = p
                    break
            j = (j + np.uint64(1)) & mask
    return n, used


@numba.njit(cache=True, nogil=True)
def _rehash(hashes, n, slots):
    mask = np.uint64(slots.shape[0] - 1)
    for p in range(n):
        j = hashes[p] & mask
        while slots[j] >= 0:
            j = (j + np.uint64(1)) & mask
        slots[j] = p


def _grown(a: np.ndarray, need: int) -> np.ndarray:
    if need <= a.shape[0]:
        return a
    b = np.zeros(max(need, 2 * a.shape[0]), dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


class TokenTable:
    """Distinct tokens (UTF-8 bytes) with provisional ids, in order of first appearance,
    and their counts. Id :data:`EOL_ID` is the line end ``"\\n"``.
    """

    def __init__(self, capacity: int = 1 << 12) -> None:
        self.n = 0
        self.used = 0
        self.slots = np.full(2 * capacity, -1, dtype=np.int32)
        self.hashes = np.zeros(capacity, dtype=np.uint64)
        self.starts = np.zeros(capacity, dtype=np.int64)
        self.lens = np.zeros(capacity, dtype=np.int32)
        self.counts = np.zeros(capacity, dtype=np.int64)
        self.arena = np.zeros(capacity * 8, dtype=np.uint8)
        eol = np.frombuffer(b"\n", dtype=np.uint8)
        self.add(eol, np.zeros(1, np.int32), np.ones(1, np.int32))
        self.counts[EOL_ID] = 0  # registered, not seen

    def __len__(self) -> int:
        return self.n

    def _reserve(self, new: int, nbytes: int) -> None:
        need = self.n + new
        if need > self.hashes.shape[0]:
            self.hashes = _grown(self.hashes, need)
            self.starts = _grown(self.starts, need)
            self.lens = _grown(self.lens, need)
            self.counts = _grown(self.counts, need)
        self.arena = _grown(self.arena, self.used + nbytes)
        if 2 * need > self.slots.shape[0]:  # load factor <= 1/2
            size = self.slots.shape[0]
            while 2 * need > size:
                size *= 2
            self.slots = np.full(size, -1, dtype=np.int32)
            _rehash(self.hashes, self.n, self.slots)

    def add(self, buf: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Ids (int32) of the tokens ``buf[starts[i] : starts[i] + lens[i]]``; counts += 1."""
        out = np.empty(starts.shape[0], dtype=np.int32)
        for a in range(0, starts.shape[0], _BATCH):
            b = min(a + _BATCH, starts.shape[0])
            self._reserve(b - a, int(lens[a:b].sum()))
            self.n, self.used = _insert(
                buf, starts[a:b], lens[a:b], self.slots, self.hashes, self.starts,
                self.lens, self.arena, self.counts, self.n, self.used, out[a:b],
            )  # fmt: skip
        return out

    def add_strings(self, tokens: list[str]) -> np.ndarray:
        """Ids of Python string tokens (the paths that tokenize with the regex)."""
        encoded = [t.encode("utf-8") for t in tokens]
        lens = np.fromiter(map(len, encoded), dtype=np.int32, count=len(encoded))
        starts = np.zeros(len(encoded), dtype=np.int32)
        np.cumsum(lens[:-1], out=starts[1:])
        buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        return self.add(buf, starts, lens)

    def tokens(self) -> list[str]:
        """The token of each provisional id."""
        arena = self.arena[: self.used].tobytes()
        starts = self.starts[: self.n].tolist()
        lens = self.lens[: self.n].tolist()
        return [arena[s : s + n].decode("utf-8") for s, n in zip(starts, lens, strict=True)]


__all__ = [
    "EOL_ID",
    "TokenTable",
    "ascii_map",
    "count_kept_lines",
    "scan_ascii_words",
]
