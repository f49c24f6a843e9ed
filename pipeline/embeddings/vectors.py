"""One type for every set of trained word vectors: :class:`Embeddings`.

Vectors plus vocabulary, cosine neighbours, 3CosAdd / 3CosMul analogies, and file formats:

- the project's own folder format (``vectors.npy`` float32 (V, D) + ``vocab.tsv`` with the
  header ``id\\ttoken\\tcount``, row i = vocab id i), loaded without unpickling;
- the word2vec text and binary formats, readable by gensim's
  ``KeyedVectors.load_word2vec_format`` and by Google's C tools, and read back from them.

An :class:`Embeddings` is never changed in place: its arrays are read-only and every
transformation (``unit()``, ``select()``, ...) returns a new object::

    emb = Embeddings.load("data/processed/embeddings/glove")
    emb.neighbours("king", topn=5)            # [("queen", 0.71), ...]
    emb.analogy("man", "king", "woman")        # [("queen", 0.68)]  man : king :: woman : ?

Special tokens (``<pad>``, ``<unk>``, ``<eos>``: anything that starts with ``<`` and ends
with ``>``) may have rows; they are never returned as neighbours or analogy answers.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from pipeline.core.atomic import atomic_open, atomic_path
from pipeline.core.errors import DataError
from pipeline.data.vocab import read_vocab_tsv, write_vocab_tsv

VECTORS_FILE = "vectors.npy"
VOCAB_FILE = "vocab.tsv"
WORD2VEC_FILE = "vectors.txt"  # the same vectors for other tools (gensim, word2vec's C tools)

log = logging.getLogger(__name__)
_WHITESPACE = re.compile(r"\s")

__all__ = ["Embeddings", "is_special", "VECTORS_FILE", "VOCAB_FILE", "WORD2VEC_FILE"]


def is_special(token: str) -> bool:
    """True for tokens like ``<pad>``, ``<unk>``, ``<eos>`` (start with '<', end with '>')."""
    return len(token) >= 2 and token[0] == "<" and token[-1] == ">"


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Row-normalised float32 copy; zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)  # (V, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(norms > 0, vectors / np.where(norms > 0, norms, 1.0), 0.0)
    return out.astype(np.float32, copy=False)


class Embeddings:
    """Word vectors with their vocabulary.

    Parameters
    ----------
    words:
        The tokens, row i of ``vectors`` belongs to ``words[i]``; no duplicates.
    vectors:
        A (V, D) array (copied and stored as read-only float32).
    counts:
        Optional corpus counts (V,) (stored as read-only int64).
    """

    __slots__ = ("_words", "_vectors", "_counts", "_index", "_unit", "_special")

    def __init__(
        self,
        words: Iterable[str],
        vectors: np.ndarray | Sequence[Sequence[float]],
        counts: np.ndarray | Sequence[int] | None = None,
    ) -> None:
        words = tuple(words)
        for w in words:
            if not isinstance(w, str) or not w:
                raise ValueError(f"every word must be a non-empty string, got {w!r}")
        vectors = np.array(vectors, dtype=np.float32, copy=True)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be 2-D (V, D), got shape {vectors.shape}")
        if vectors.shape[0] != len(words):
            raise ValueError(f"{len(words)} words but {vectors.shape[0]} vector rows")
        index: dict[str, int] = {}
        for i, w in enumerate(words):
            if w in index:
                raise ValueError(f"duplicate word {w!r} at rows {index[w]} and {i}")
            index[w] = i
        if counts is not None:
            counts = np.array(counts, dtype=np.int64, copy=True)
            if counts.shape != (len(words),):
                raise ValueError(f"counts must have shape ({len(words)},), got {counts.shape}")
            counts = _readonly(counts)
        self._words = words
        self._vectors = _readonly(vectors)
        self._counts = counts
        self._index = index
        self._unit: np.ndarray | None = None
        self._special: np.ndarray | None = None

    # -- basic accessors -------------------------------------------------------------
    @property
    def words(self) -> tuple[str, ...]:
        """The tokens, in row order."""
        return self._words

    @property
    def vectors(self) -> np.ndarray:
        """Read-only float32 array (V, D)."""
        return self._vectors

    @property
    def counts(self) -> np.ndarray | None:
        """Read-only int64 counts (V,), or None when unknown."""
        return self._counts

    @property
    def dim(self) -> int:
        """Vector dimension D."""
        return int(self._vectors.shape[1])

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __repr__(self) -> str:
        return f"Embeddings(words={len(self)}, dim={self.dim})"

    def index(self, word: str) -> int | None:
        """Row of ``word``, or None if it has none."""
        return self._index.get(word)

    def vector(self, word: str) -> np.ndarray:
        """A copy of the vector of ``word`` (D,); KeyError if unknown."""
        return self._vectors[self._require(word)].copy()

    def _require(self, word: str) -> int:
        i = self._index.get(word)
        if i is None:
            raise KeyError(f"word {word!r} not in the vocabulary ({len(self)} words)")
        return i

    @property
    def special_mask(self) -> np.ndarray:
        """Boolean (V,): True for special tokens such as ``<unk>``."""
        if self._special is None:
            self._special = _readonly(np.array([is_special(w) for w in self._words], dtype=bool))
        return self._special

    def _unit_vectors(self) -> np.ndarray:
        if self._unit is None:
            self._unit = _readonly(_unit_rows(self._vectors))
        return self._unit

    # -- transformations (new objects) ------------------------------------------------
    def unit(self) -> Embeddings:
        """A copy with every row scaled to length 1 (zero rows stay zero)."""
        return Embeddings(self._words, self._unit_vectors(), self._counts)

    def select(self, rows: Sequence[int] | np.ndarray) -> Embeddings:
        """A new object holding only ``rows`` (indices or a boolean mask), in that order."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        words = [self._words[int(i)] for i in rows]
        counts = None if self._counts is None else self._counts[rows]
        return Embeddings(words, self._vectors[rows], counts)

    def without_special(self) -> Embeddings:
        """A new object without the special tokens (``<pad>``, ``<unk>``, ...)."""
        return self.select(~self.special_mask)

    def with_vectors(self, vectors: np.ndarray) -> Embeddings:
        """Same words and counts, new vectors (V, D')."""
        return Embeddings(self._words, vectors, self._counts)

    # -- similarity ---------------------------------------------------------------------
    def _query(self, items: str | np.ndarray | Iterable) -> list:
        if isinstance(items, str | np.ndarray):
            return [items]
        return list(items)

    def _unit_of(self, item: str | np.ndarray) -> np.ndarray:
        if isinstance(item, str):
            return self._unit_vectors()[self._require(item)]
        vec = np.asarray(item, dtype=np.float32)
        if vec.shape != (self.dim,):
            raise ValueError(f"query vector must have shape ({self.dim},), got {vec.shape}")
        n = float(np.linalg.norm(vec))
        return vec / n if n > 0 else vec

    def _top(
        self, scores: np.ndarray, exclude: Iterable[int], topn: int, limit: int
    ) -> list[tuple[str, float]]:
        """Best ``topn`` rows of ``scores`` (over rows < limit), skipping specials/exclude."""
        scores = np.array(scores[:limit], dtype=np.float64)
        scores[self.special_mask[:limit]] = -np.inf
        for i in exclude:
            if i < limit:
                scores[i] = -np.inf
        valid = int(np.isfinite(scores).sum())
        k = min(topn, valid)
        if k <= 0:
            return []
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.lexsort((best, -scores[best]))]  # by score desc, ties by row
        return [(self._words[int(i)], float(scores[i])) for i in best]

    def _limit(self, restrict_vocab: int | None) -> int:
        if restrict_vocab is None:
            return len(self)
        if restrict_vocab < 1:
            raise ValueError(f"restrict_vocab must be >= 1, got {restrict_vocab}")
        return min(int(restrict_vocab), len(self))

    def most_similar(
        self,
        positive: str | np.ndarray | Iterable = (),
        negative: str | np.ndarray | Iterable = (),
        topn: int = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """Words closest by cosine to the mean of the unit ``positive`` minus ``negative`` vectors.

        Like gensim's ``KeyedVectors.most_similar``: the query words themselves are not
        returned, nor are special tokens. ``restrict_vocab`` searches only the first N rows
        (the most frequent words when rows are sorted by count). Returns ``(word, cosine)``
        pairs, best first.
        """
        pos, neg = self._query(positive), self._query(negative)
        if not pos and not neg:
            raise ValueError("most_similar needs at least one positive or negative word")
        mean = np.zeros(self.dim, dtype=np.float64)
        for item in pos:
            mean += self._unit_of(item)
        for item in neg:
            mean -= self._unit_of(item)
        norm = np.linalg.norm(mean)
        if norm > 0:
            mean /= norm
        limit = self._limit(restrict_vocab)
        scores = self._unit_vectors()[:limit] @ mean.astype(np.float32)  # (limit,)
        exclude = [self._index[w] for w in pos + neg if isinstance(w, str)]
        return self._top(scores, exclude, topn, limit)

    def neighbours(self, word: str, topn: int = 10) -> list[tuple[str, float]]:
        """The ``topn`` nearest words to ``word`` by cosine (itself excluded)."""
        return self.most_similar([word], topn=topn)

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words."""
        u = self._unit_vectors()
        return float(u[self._require(a)] @ u[self._require(b)])

    def analogy(
        self,
        a: str,
        b: str,
        c: str,
        method: str = "3cosadd",
        topn: int = 1,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """Answer ``a : b :: c : ?``; returns the best ``topn`` ``(word, score)`` pairs.

        ``3cosadd`` ranks by cos(x, b - a + c) (gensim ``most_similar``); ``3cosmul``
        ranks by cos'(x, b) cos'(x, c) / (cos'(x, a) + 1e-6) with cos' = (1 + cos) / 2
        (Levy & Goldberg 2014, gensim ``most_similar_cosmul``). a, b and c are never answers.
        """
        if method == "3cosadd":
            return self.most_similar([b, c], [a], topn=topn, restrict_vocab=restrict_vocab)
        if method != "3cosmul":
            raise ValueError(f"method must be '3cosadd' or '3cosmul', got {method!r}")
        limit = self._limit(restrict_vocab)
        u = self._unit_vectors()
        ia, ib, ic = (self._require(w) for w in (a, b, c))
        sims = (1.0 + u[:limit] @ u[[ia, ib, ic]].T.astype(np.float64)) / 2.0  # (limit, 3)
        scores = sims[:, 1] * sims[:, 2] / (sims[:, 0] + 1e-6)
        return self._top(scores, (ia, ib, ic), topn, limit)

    # -- project format -------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, word2vec_text: bool = True) -> Path:
        """Write ``vectors.npy`` and ``vocab.tsv`` into ``folder`` (each file atomically).

        Counts default to 0 when unknown. With ``word2vec_text`` also ``vectors.txt``: the
        word2vec text format of :meth:`portable` (no special tokens), which gensim's
        ``KeyedVectors.load_word2vec_format`` and Google's tools read. Returns the folder.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        counts = self._counts if self._counts is not None else np.zeros(len(self), np.int64)
        with atomic_path(folder / VECTORS_FILE) as tmp_vec:
            np.save(tmp_vec, np.ascontiguousarray(self._vectors), allow_pickle=False)
            write_vocab_tsv(folder / VOCAB_FILE, self._words, counts)
        if word2vec_text:
            portable = self.portable()
            if dropped := len(self) - len(portable) - int(self.special_mask.sum()):
                log.warning(
                    "%s: %d words containing whitespace left out (word2vec cannot store them)",
                    folder / WORD2VEC_FILE,
                    dropped,
                )
            portable.save_word2vec(folder / WORD2VEC_FILE)
        return folder

    def portable(self) -> Embeddings:
        """The rows the word2vec formats can hold: no special tokens, no words with spaces."""
        keep = ~self.special_mask & np.fromiter(
            (_WHITESPACE.search(w) is None for w in self._words), dtype=bool, count=len(self)
        )
        return self if keep.all() else self.select(keep)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Embeddings:
        """Read a folder written by :meth:`save` (or by any stage using this format).

        Raises :class:`DataError` naming the file when a file is missing, malformed, or the
        number of vectors does not match the vocabulary.
        """
        folder = Path(folder)
        vec_path, vocab_path = folder / VECTORS_FILE, folder / VOCAB_FILE
        for p in (vec_path, vocab_path):
            if not p.is_file():
                raise DataError(
                    f"{p}: not found (expected {VECTORS_FILE} + {VOCAB_FILE} in {folder})"
                )
        words, counts = read_vocab_tsv(vocab_path)
        try:
            vectors = np.load(vec_path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DataError(f"{vec_path}: not a readable .npy array ({exc})") from exc
        if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.floating):
            raise DataError(
                f"{vec_path}: expected a 2-D float array, got {vectors.dtype} {vectors.shape}"
            )
        if vectors.shape[0] != len(words):
            raise DataError(
                f"{vec_path}: {vectors.shape[0]} rows but {vocab_path} lists {len(words)} tokens"
            )
        if not np.isfinite(vectors).all():
            raise DataError(f"{vec_path}: contains NaN or infinite values")
        if counts is not None and not counts.any():
            counts = None
        try:
            return cls(words, vectors, counts)
        except ValueError as exc:
            raise DataError(f"{vocab_path}: {exc}") from exc

    # -- word2vec formats --------------------------------------------------------------------
    def save_word2vec(self, path: str | os.PathLike, binary: bool = False) -> Path:
        """Write the word2vec text (``binary=False``) or binary format, atomically.

        Header ``"V D\\n"``; then per word either ``word v1 ... vD\\n`` (text, 9 significant
        digits: float32 round-trips exactly) or ``word`` + space + D little-endian float32 +
        ``\\n`` (binary, as Google's word2vec.c writes it).
        """
        path = Path(path)
        for w in self._words:
            if _WHITESPACE.search(w):
                raise DataError(
                    f"{path}: token {w!r} contains whitespace (word2vec cannot store it)"
                )
        vecs = np.ascontiguousarray(self._vectors, dtype="<f4")
        with atomic_open(path, "wb") as fh:
            fh.write(f"{len(self)} {self.dim}\n".encode())
            if binary:
                for w, row in zip(self._words, vecs, strict=True):
                    fh.write(w.encode("utf-8") + b" " + row.tobytes() + b"\n")
            else:
                row_format = " ".join(["%.9g"] * self.dim)
                # row by row: the whole matrix as Python floats would take ~30 bytes a value
                for w, row in zip(self._words, vecs, strict=True):
                    fh.write(f"{w} {row_format % tuple(row.tolist())}\n".encode())
        return path

    @classmethod
    def load_word2vec(
        cls,
        path: str | os.PathLike,
        binary: bool | None = None,
        limit: int | None = None,
        unicode_errors: str = "strict",
    ) -> Embeddings:
        """Read a word2vec text or binary file (gensim's or Google's).

        ``binary=None`` detects the format from the first record. ``limit`` reads only the
        first N vectors. Counts are not stored in this format (``counts`` is None).
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: not found")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file")
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            end = mm.find(b"\n")
            try:
                n_words, dim = parse_word2vec_header(mm[: end if end >= 0 else len(mm)])
            except ValueError:
                raise DataError(
                    f"{path}:1: bad word2vec header {bytes(mm[: max(end, 0)][:80])!r} "
                    "(expected 'VOCAB_SIZE DIM')"
                ) from None
            n = n_words if limit is None else min(n_words, max(int(limit), 0))
            start = end + 1
            if binary is None:
                binary = not _looks_like_text(mm, start, dim)
            reader = _read_binary if binary else _read_text
            words, vectors = reader(mm, start, n, dim, path, unicode_errors)
        try:
            return cls(words, vectors)
        except ValueError as exc:
            raise DataError(f"{path}: {exc}") from exc


def parse_word2vec_header(line: bytes) -> tuple[int, int]:
    """``(vocab_size, dim)`` from a word2vec header line; ``ValueError`` if it is not one."""
    fields = line.split()
    try:
        n_words, dim = int(fields[0]), int(fields[1])
    except IndexError:
        raise ValueError(f"not a word2vec header: {line[:80]!r}") from None
    if len(fields) != 2 or n_words < 0 or dim < 1:
        raise ValueError(f"not a word2vec header: {line[:80]!r}")
    return n_words, dim


def _looks_like_text(mm: mmap.mmap, start: int, dim: int) -> bool:
    """True if the first record after the header is a text line of a word and D numbers."""
    end = mm.find(b"\n", start)
    return is_text_record(mm[start : end if end >= 0 else len(mm)], dim)


def is_text_record(line: bytes, dim: int) -> bool:
    """True if ``line`` is a word2vec text record: a word followed by ``dim`` numbers."""
    parts = line.split()
    if len(parts) != dim + 1:
        return False
    try:
        [float(p) for p in parts[1:]]
    except ValueError:
        return False
    return True


def _read_binary(mm, start, n, dim, path, unicode_errors):
    words: list[str] = []
    vectors = np.empty((n, dim), dtype=np.float32)
    nbytes = 4 * dim
    pos = start
    size = len(mm)
    for i in range(n):
        while pos < size and mm[pos] in (0x0A, 0x20):  # '\n' after the previous vector
            pos += 1
        sp = mm.find(b" ", pos)
        if sp < 0 or sp + 1 + nbytes > size:
            raise DataError(f"{path}: truncated binary word2vec file at record {i + 1} of {n}")
        try:
            words.append(mm[pos:sp].decode("utf-8", errors=unicode_errors))
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: record {i + 1}: word is not UTF-8 ({exc})") from exc
        vectors[i] = np.frombuffer(mm, dtype="<f4", count=dim, offset=sp + 1)
        pos = sp + 1 + nbytes
    return words, vectors


def _read_text(mm, start, n, dim, path, unicode_errors):
    words: list[str] = []
    vectors = np.empty((n, dim), dtype=np.float32)
    pos = start
    size = len(mm)
    for i in range(n):
        lineno = i + 2
        if pos >= size:
            raise DataError(f"{path}: ends after {i} of {n} vectors (line {lineno})")
        end = mm.find(b"\n", pos)
        end = size if end < 0 else end
        raw = mm[pos:end]
        pos = end + 1
        try:
            parts = raw.decode("utf-8", errors=unicode_errors).rstrip().split(" ")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}:{lineno}: not UTF-8 ({exc})") from exc
        if len(parts) != dim + 1:
            raise DataError(
                f"{path}:{lineno}: expected a word and {dim} numbers, got {len(parts)} fields"
            )
        try:
            vectors[i] = np.array(parts[1:], dtype=np.float32)
        except ValueError as exc:
            raise DataError(f"{path}:{lineno}: {exc}") from exc
        words.append(parts[0])
    return words, vectors
