"""The co-occurrence triples ``(rows, cols, values)`` read a chunk at a time.

Two sources with one interface (``nnz``, ``vocab_size``, ``where``, ``chunks(size)``,
``arrays()``): :class:`ArrayTriples` over arrays already in memory and
:class:`NpzTriples` over a ``cooccur.npz`` (as the ``cooccur`` stage writes it), which
reads the three members side by side, ``size`` entries at a time, so that the matrix is
never whole in memory. Both yield the same chunks for the same matrix; every chunk is
checked (indices inside the vocabulary, values positive and finite), errors name the
source.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from pipeline.core.errors import DataError

Chunk = tuple[np.ndarray, np.ndarray, np.ndarray]  # rows int32, cols int32, values float32
_MEMBERS = (("rows", np.int32), ("cols", np.int32), ("values", np.float32))


def check_chunk(rows, cols, values, vocab_size: int, where: str) -> None:
    """Raise :class:`DataError` naming ``where`` unless indices lie in ``[0, vocab_size)``
    and values are positive and finite."""
    if rows.size == 0:
        return
    if min(rows.min(), cols.min()) < 0 or max(rows.max(), cols.max()) >= vocab_size:
        raise DataError(f"{where}: indices outside [0, {vocab_size})")
    if not (np.all(values > 0) and np.all(np.isfinite(values))):
        raise DataError(f"{where}: values must be positive and finite")


class ArrayTriples:
    """Triples held in memory (tests, benchmarks, the GPU back end)."""

    def __init__(self, rows, cols, values, vocab_size: int, where: str = "co-occurrences"):
        rows, cols, values = np.asarray(rows), np.asarray(cols), np.asarray(values)
        if not (rows.shape == cols.shape == values.shape) or rows.ndim != 1:
            raise DataError(f"{where}: rows, cols and values must be 1-D of equal length")
        self._arrays = (rows, cols, values)
        self.nnz = int(rows.size)
        self.vocab_size = int(vocab_size)
        self.where = where

    def chunks(self, size: int) -> Iterator[Chunk]:
        """``(rows, cols, values)`` of at most ``size`` entries each, in order, checked."""
        rows, cols, values = self._arrays
        for s in range(0, self.nnz, size):
            chunk = (
                np.ascontiguousarray(rows[s : s + size], dtype=np.int32),
                np.ascontiguousarray(cols[s : s + size], dtype=np.int32),
                np.ascontiguousarray(values[s : s + size], dtype=np.float32),
            )
            check_chunk(*chunk, self.vocab_size, self.where)
            yield chunk

    def arrays(self) -> Chunk:
        """All the triples at once (int32, int32, float32), checked."""
        return next(self.chunks(max(self.nnz, 1)), _empty())


class NpzTriples:
    """The triples of a ``cooccur.npz`` (uncompressed or deflated; never unpickles)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.where = str(self.path)
        if not self.path.is_file():
            raise DataError(f"{path}: co-occurrence file not found (run the cooccur stage)")
        try:
            with zipfile.ZipFile(self.path) as zf:
                names = set(zf.namelist())
                required = [f"{m}.npy" for m, _ in _MEMBERS] + ["shape.npy"]
                missing = [n[:-4] for n in required if n not in names]
                if missing:
                    raise DataError(f"{path}: missing arrays {missing}")
                shapes = []
                for name, _ in _MEMBERS:
                    with zf.open(f"{name}.npy") as fh:
                        shapes.append(_read_header(fh, self.where, name)[0])
                with zf.open("shape.npy") as fh:
                    shape = np.lib.format.read_array(fh, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: cannot read ({exc})") from exc
        if not (shapes[0] == shapes[1] == shapes[2] and len(shapes[0]) == 1):
            raise DataError(f"{path}: rows, cols and values must be 1-D of the same length")
        if shape.shape != (2,) or shape[0] != shape[1]:
            raise DataError(f"{path}: shape must be [V, V], got {shape.tolist()}")
        self.nnz = int(shapes[0][0])
        self.vocab_size = int(shape[0])

    def chunks(self, size: int) -> Iterator[Chunk]:
        """``(rows, cols, values)`` of at most ``size`` entries each, in order, checked;
        memory: one chunk (plus its bytes as read)."""
        try:
            with ExitStack() as stack:
                zf = stack.enter_context(zipfile.ZipFile(self.path))
                members = []
                for name, want in _MEMBERS:
                    fh = stack.enter_context(zf.open(f"{name}.npy"))
                    _, dtype = _read_header(fh, self.where, name)
                    members.append((fh, dtype, want))
                for s in range(0, self.nnz, size):
                    n = min(size, self.nnz - s)
                    chunk = tuple(_read_items(fh, dtype, n, self.where).astype(want, copy=False)
                                  for fh, dtype, want in members)  # fmt: skip
                    check_chunk(*chunk, self.vocab_size, self.where)
                    yield chunk
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"{self.path}: cannot read ({exc})") from exc

    def arrays(self) -> Chunk:
        """All the triples at once (int32, int32, float32), checked."""
        return next(self.chunks(max(self.nnz, 1)), _empty())


def _empty() -> Chunk:
    return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32)


def npy_header(fh) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of the ``.npy`` data whose header starts at the
    file's position; leaves it at the first byte of the data (``ValueError`` if it is no
    ``.npy`` header)."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    return np.lib.format.read_array_header_2_0(fh)


def _read_header(fh, where: str, name: str) -> tuple[tuple[int, ...], np.dtype]:
    shape, fortran, dtype = npy_header(fh)
    if fortran and len(shape) > 1:
        raise DataError(f"{where}: {name} is stored in Fortran order")
    if dtype.hasobject or dtype.kind not in "iuf":
        raise DataError(f"{where}: {name} has dtype {dtype}, expected numbers")
    return shape, dtype


def _read_items(fh, dtype: np.dtype, n: int, where: str) -> np.ndarray:
    data = fh.read(n * dtype.itemsize)
    if len(data) != n * dtype.itemsize:
        raise DataError(f"{where}: truncated member ({len(data)} of {n * dtype.itemsize} bytes)")
    return np.frombuffer(data, dtype=dtype)


class TriplesDigest:
    """sha256 of a matrix's triples, fed chunk by chunk: the same for any chunking and
    for either source (each array's bytes are hashed as int32 / int32 / float32)."""

    def __init__(self, vocab_size: int):
        self._vocab_size = vocab_size
        self._nnz = 0
        self._hashes = [hashlib.sha256() for _ in _MEMBERS]

    def update(self, rows, cols, values) -> None:
        for h, arr in zip(self._hashes, (rows, cols, values), strict=True):
            h.update(np.ascontiguousarray(arr).view(np.uint8).data)
        self._nnz += int(rows.size)

    def hexdigest(self) -> str:
        head = f"triples nnz={self._nnz} vocab_size={self._vocab_size}"
        parts = [head] + [h.hexdigest() for h in self._hashes]
        return hashlib.sha256(" ".join(parts).encode()).hexdigest()
