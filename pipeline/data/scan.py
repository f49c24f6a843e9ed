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
_BATCH = 1 << 13  # spans inserted per call: the table grows between calls (load <= 1/2)


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
# One slot is a row of 4 uint64: hash, (id + 1) | length << 32 (0: empty), offset of the
# bytes in the arena, count. A lookup reads one row and the token's bytes (two cache
# misses), which is what bounds the speed on a large vocabulary.
_HASH, _META, _OFFSET, _COUNT = 0, 1, 2, 3
_LOW = np.uint64(0xFFFFFFFF)


@numba.njit(cache=True, inline="always")
def _hash(buf, s, length):
    h = np.uint64(14695981039346656037)  # FNV-1a
    for k in range(s, s + length):
        h = (h ^ np.uint64(buf[k])) * np.uint64(1099511628211)
    return h ^ (h >> np.uint64(29))


@numba.njit(cache=True, inline="always")
def _same(arena, a, buf, s, length):
    for k in range(length):  # noqa: SIM110 (a loop numba compiles)
        if arena[a + k] != buf[s + k]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _insert(buf, starts, lens, slots, tstarts, tlens, arena, n, used, out):
    """Look up (and insert) each span of ``buf``; ``out`` gets the ids. Returns (n, used)."""
    mask = np.uint64(slots.shape[0] - 1)
    for i in range(starts.shape[0]):
        s = starts[i]
        length = lens[i]
        h = _hash(buf, s, length)
        j = h & mask
        want = np.uint64(length) << np.uint64(32)
        while True:
            meta = slots[j, 1]
            if meta == 0:
                slots[j, 0] = h
                slots[j, 1] = np.uint64(n + 1) | want
                slots[j, 2] = used
                slots[j, 3] = 1
                tstarts[n] = used
                tlens[n] = length
                for k in range(length):
                    arena[used + k] = buf[s + k]
                used += length
                out[i] = n
                n += 1
                break
            same_hash = slots[j, 0] == h and (meta & ~_LOW) == want
            if same_hash and _same(arena, np.int64(slots[j, 2]), buf, s, length):
                slots[j, 3] += np.uint64(1)
                out[i] = np.int64(meta & _LOW) - 1
                break
            j = (j + np.uint64(1)) & mask
    return n, used


@numba.njit(cache=True, nogil=True)
def _find(buf, slots, arena):
    """The id of the token ``buf`` (all of it), or -1."""
    length = buf.shape[0]
    mask = np.uint64(slots.shape[0] - 1)
    h = _hash(buf, 0, length)
    j = h & mask
    want = np.uint64(length) << np.uint64(32)
    while True:
        meta = slots[j, 1]
        if meta == 0:
            return -1
        same_hash = slots[j, 0] == h and (meta & ~_LOW) == want
        if same_hash and _same(arena, np.int64(slots[j, 2]), buf, 0, length):
            return np.int64(meta & _LOW) - 1
        j = (j + np.uint64(1)) & mask


@numba.njit(cache=True, nogil=True)
def _rehash(old, slots):
    mask = np.uint64(slots.shape[0] - 1)
    for r in range(old.shape[0]):
        if old[r, 1] != 0:
            j = old[r, 0] & mask
            while slots[j, 1] != 0:
                j = (j + np.uint64(1)) & mask
            for c in range(4):
                slots[j, c] = old[r, c]


@numba.njit(cache=True, nogil=True)
def _counts(slots, out):
    for r in range(slots.shape[0]):
        meta = slots[r, 1]
        if meta != 0:
            out[np.int64(meta & _LOW) - 1] = slots[r, 3]


def _grown(a: np.ndarray, need: int) -> np.ndarray:
    if need <= a.shape[0]:
        return a
    b = np.zeros(max(need, 2 * a.shape[0]), dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


class TokenTable:
    """Distinct tokens (UTF-8 bytes) with provisional ids, in order of first appearance,
    and their counts. Id :data:`EOL_ID` is the line end ``"\\n"`` (registered, count 0).
    """

    def __init__(self, capacity: int = 1 << 12) -> None:
        self.n = 0
        self.used = 0
        self.slots = np.zeros((2 * capacity, 4), dtype=np.uint64)
        self.starts = np.zeros(capacity, dtype=np.int64)
        self.lens = np.zeros(capacity, dtype=np.int32)
        self.arena = np.zeros(capacity * 8, dtype=np.uint8)
        eol = np.frombuffer(b"\n", dtype=np.uint8)
        self.add(eol, np.zeros(1, np.int32), np.ones(1, np.int32))
        self.slots[:, _COUNT] = 0  # registered, not seen

    def __len__(self) -> int:
        return self.n

    def _reserve(self, new: int, nbytes: int) -> None:
        need = self.n + new
        if need > self.starts.shape[0]:
            self.starts = _grown(self.starts, need)
            self.lens = _grown(self.lens, need)
        self.arena = _grown(self.arena, self.used + nbytes)
        if 2 * need > self.slots.shape[0]:  # load factor <= 1/2
            size = self.slots.shape[0]
            while 2 * need > size:
                size *= 2
            old, self.slots = self.slots, np.zeros((size, 4), dtype=np.uint64)
            _rehash(old, self.slots)

    def add(self, buf: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Ids (int32) of the tokens ``buf[starts[i] : starts[i] + lens[i]]``; counts += 1."""
        out = np.empty(starts.shape[0], dtype=np.int32)
        for a in range(0, starts.shape[0], _BATCH):
            b = min(a + _BATCH, starts.shape[0])
            self._reserve(b - a, int(lens[a:b].sum()))
            self.n, self.used = _insert(
                buf, starts[a:b], lens[a:b], self.slots, self.starts, self.lens,
                self.arena, self.n, self.used, out[a:b],
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

    def find(self, token: str) -> int:
        """The id of ``token``, or -1 if it was never added."""
        return int(
            _find(np.frombuffer(token.encode("utf-8"), dtype=np.uint8), self.slots, self.arena)
        )

    def counts(self) -> np.ndarray:
        """How often each id was added (int64, by id)."""
        out = np.zeros(self.n, dtype=np.int64)
        _counts(self.slots, out)
        return out

    def tokens(self, ids: np.ndarray | None = None) -> list[str]:
        """The token of each id in ``ids`` (default: all, by id)."""
        ids = np.arange(self.n) if ids is None else np.asarray(ids)
        starts = self.starts[ids].tolist()
        ends = (self.starts[ids] + self.lens[ids]).tolist()
        arena = self.arena
        return [arena[s:e].tobytes().decode("utf-8") for s, e in zip(starts, ends, strict=True)]


__all__ = [
    "EOL_ID",
    "TokenTable",
    "ascii_map",
    "count_kept_lines",
    "scan_ascii_words",
]
