"""Readers of pretrained-vector formats besides word2vec (which lives in ``vectors.py``).

- **GloVe text** (``glove.6B.50d.txt``, ``glove.840B.300d.txt`` as Stanford distributes
  them): no header line, one ``word v1 ... vD`` per line. A few words of the 840B file
  contain spaces (``". . ."``), so a line's *last* D fields are the vector and everything
  before them is the word. D comes from the first line.
- **A matrix and its words**: a float ``.npy`` array (V, D), row i = word i, plus a parquet
  file with one string column holding the V words in row order (the layout of the GloVe
  6B wheel on PyPI).

Both return ``(words, vectors)``: a list of str and a float32 (N, D) array. Bad input is
a :class:`~pipeline.core.errors.DataError` naming the file (and the line or row).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.core.atomic import load_npy
from pipeline.core.errors import DataError

__all__ = ["looks_like_glove_text", "read_glove_text", "read_npy_words"]

_PROBE_BYTES = 1 << 16


def _numbers(fields: list[str]) -> bool:
    try:
        [float(f) for f in fields]
    except ValueError:
        return False
    return True


def looks_like_glove_text(line: bytes) -> bool:
    """True if ``line`` (the first line of a file) is ``word v1 ... vD`` with D >= 2 numbers."""
    parts = line.decode("utf-8", errors="replace").rstrip("\r\n").split(" ")
    return len(parts) >= 3 and bool(parts[0]) and _numbers(parts[1:])


def read_glove_text(
    path: str | os.PathLike, limit: int | None = None
) -> tuple[list[str], np.ndarray]:
    """Read a GloVe text file (no header; ``word v1 ... vD`` per line); first ``limit`` lines.

    The dimension D is the number of fields of the first line minus one; on every line the
    last D fields are the vector and the fields before them (joined by single spaces) the
    word. Blank lines at the end are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if limit is not None and len(words) >= limit:
                break
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not UTF-8 ({exc})") from exc
            if not line.strip():
                continue  # trailing blank lines
            parts = line.split(" ")
            if lineno == 1:
                if len(parts) < 2 or not _numbers(parts[1:]):
                    raise DataError(
                        f"{path}:1: not a GloVe text file (expected 'word v1 ... vD', "
                        f"got {line[:60]!r})"
                    )
                dim = len(parts) - 1
            if len(parts) < dim + 1:
                raise DataError(
                    f"{path}:{lineno}: expected a word and {dim} numbers, got {len(parts)} fields"
                )
            word = " ".join(parts[:-dim])
            if not word:
                raise DataError(f"{path}:{lineno}: empty word")
            try:
                rows.append(np.array(parts[-dim:], dtype=np.float32))
            except ValueError as exc:
                raise DataError(f"{path}:{lineno}: {exc}") from exc
            words.append(word)
    if not words:
        raise DataError(f"{path}: no vectors (only blank lines)")
    return words, np.stack(rows)


def read_npy_words(
    vectors_path: str | os.PathLike,
    words_path: str | os.PathLike,
    column: str | None = None,
    limit: int | None = None,
) -> tuple[list[str], np.ndarray]:
    """A (V, D) float ``.npy`` matrix and the parquet ``column`` of its V words (row order).

    ``column=None`` takes the file's only column. Checks: a 2-D float array (never
    unpickled), a string column without nulls or empty words, as many words as rows.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors_path, words_path = Path(vectors_path), Path(words_path)
    for p in (vectors_path, words_path):
        if not p.is_file():
            raise DataError(f"{p}: not found")
    try:
        matrix = load_npy(vectors_path, mmap=True)
    except (ValueError, OSError) as exc:
        raise DataError(f"{vectors_path}: not a readable .npy array ({exc})") from exc
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
        raise DataError(
            f"{vectors_path}: expected a 2-D float array (words x dim), "
            f"got {matrix.dtype} {matrix.shape}"
        )
    try:
        table = pq.read_table(words_path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{words_path}: not a readable parquet file ({exc})") from exc
    names = table.column_names
    if column is None:
        if len(names) != 1:
            raise DataError(f"{words_path}: {len(names)} columns {names}; name the words column")
        column = names[0]
    if column not in names:
        raise DataError(f"{words_path}: no column {column!r} (columns: {names})")
    col = table.column(column)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise DataError(f"{words_path}: column {column!r} holds {col.type}, not strings")
    words = col.to_pylist()
    if len(words) != matrix.shape[0]:
        raise DataError(
            f"{vectors_path}: {matrix.shape[0]} rows but {words_path} lists {len(words)} words"
        )
    for i, w in enumerate(words):
        if not w:
            raise DataError(f"{words_path}: row {i} of column {column!r} is empty or null")
    n = len(words) if limit is None else min(len(words), int(limit))
    return words[:n], np.asarray(matrix[:n], dtype=np.float32)
