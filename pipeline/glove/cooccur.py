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
(key ``a * V + b`` with ``a <= b``, float64 value). When the hash table fills up, its
entries are radix-sorted by key (in place, the table's own memory as scratch) and
appended as a run to a temporary keys file and values file; every ``sample``-th key of
a run (1024 or more) stays in memory (a sparse index). At the end the dense table's non-zero cells
join as the last run, and a k-way merge (numba, a heap) walks the runs a key range at a
time, summing equal keys in run order (so the sums do not depend on the ranges), and
writes the upper triangle as raw ``rows``/``cols``/``values`` files; each ``.npz``
member is then the upper triangle and its mirror, copied a block at a time.

Memory: every buffer of every phase (the chunk of ids, the dense table, the hash table
and its sort scratch; the merge's input and output; the copy blocks) is carved from one
block (``_Arena``) allocated once, of ``memory_mb`` less 2% and 2 MiB that are left to
the sparse index and small objects, so the peak does not depend on how the allocator
reuses freed memory.
"""

from __future__ import annotations

import contextlib
import itertools
import math
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
from pipeline.glove.triples import NpzTriples, npy_header

PAD, UNK, EOS = 0, 1, 2
FIRST_WORD = 3  # ids below are specials
_HASH_MULT = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing
_EMPTY = -1.0  # key of an empty hash slot
# Bytes per hash slot: the table itself (int64 key + float64 value, 16 B) plus the
# scratch of the radix sort of up to 3/4 of the slots at a spill (sorted in place).
_BYTES_PER_SLOT = 16 + 0.75 * 16
_OUTSIDE_ARENA = 2 * 2**20  # bytes of the budget left to small allocations
_RADIX_BITS = 13  # bits of the key sorted per pass of the radix sort
_MIN_SLOTS = 64


@dataclass(frozen=True)
class CooccurConfig:
    """Settings of the ``cooccur`` stage.

    ``corpus`` names ``data/processed/<corpus>/`` (used by the stage only). ``memory_mb``
    bounds what the counting adds to the process: the chunk of ``chunk_tokens`` ids read
    at a time, the dense table, the hash table and its sort scratch, the merge's buffers,
    the index of the spilled runs. The whole process's peak is the interpreter's
    footprint (Python, numpy, the loaded numba kernels: the same for any corpus) plus at
    most ``memory_mb``, unless the budget is below the minimum sizes (a 64-slot table,
    the chunk, a merge range of ``runs * 1024`` entries): ``extra["over_budget_bytes"]``
    of :class:`CooccurStats` then says by how much it was exceeded.
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
def _count_kernel(ids, start, window, cross, unk_pos, ring, state, lim, off, dense, table,
                  max_fill, vocab_size, shift):  # fmt: skip
    """Count from ``ids[start:]`` until the end or until the hash table is full.

    ``table`` holds slot ``h`` at ``[2h, 2h + 1]``: the key (as a float64, exact below
    2**53; -1 when empty) and its value side by side, one cache line per probe.
    ``state`` = [positions in the current segment, hash fill, words, pairs], carried
    across calls so chunks and spills do not change the counts. Returns the next index.
    """
    n = ids.shape[0]
    pos = state[0]
    fill = state[1]
    words = state[2]
    pairs = state[3]
    mask = table.shape[0] // 2 - 1
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
                    fkey = np.float64(key)
                    h = np.int64((np.uint64(key) * _HASH_MULT) >> np.uint64(shift))
                    while True:
                        k = table[2 * h]
                        if k == fkey:
                            table[2 * h + 1] += w
                            break
                        if k == _EMPTY:
                            table[2 * h] = fkey
                            table[2 * h + 1] = w
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
def _compact(table, keys, vals):
    """Copy the filled slots of the hash table to ``keys``/``vals`` (in slot order);
    their count."""
    j = 0
    for h in range(table.shape[0] // 2):
        if table[2 * h] != _EMPTY:
            keys[j] = np.int64(table[2 * h])
            vals[j] = table[2 * h + 1]
            j += 1
    return j


@numba.njit(cache=True, nogil=True)
def _radix_sort(keys, vals, tmp_keys, tmp_vals, key_bits):
    """Sort ``(keys, vals)`` (keys ``>= 0``, below ``2**key_bits``) by key, least
    significant digit first; ``tmp_*`` are scratch of the same length. The result is in
    ``keys``/``vals`` when the function returns False, in ``tmp_*`` when it returns True.
    """
    n = keys.shape[0]
    passes = max(1, (key_bits + _RADIX_BITS - 1) // _RADIX_BITS)
    bits = (key_bits + passes - 1) // passes
    buckets = 1 << bits
    mask = buckets - 1
    counts = np.zeros((passes, buckets + 1), np.int64)
    for i in range(n):  # every digit's histogram in one read
        k = keys[i]
        for p in range(passes):
            counts[p, ((k >> (p * bits)) & mask) + 1] += 1
    src_k, src_v, dst_k, dst_v = keys, vals, tmp_keys, tmp_vals
    for p in range(passes):
        c = counts[p]
        for b in range(buckets):
            c[b + 1] += c[b]
        shift = p * bits
        for i in range(n):
            k = src_k[i]
            d = (k >> shift) & mask
            o = c[d]
            c[d] = o + 1
            dst_k[o] = k
            dst_v[o] = src_v[i]
        src_k, src_v, dst_k, dst_v = dst_k, dst_v, src_k, src_v
    return passes % 2 == 1


@numba.njit(cache=True, nogil=True)
def _dense_entries_into(dense, lim, off, vocab_size, ra, rb, out_k, out_v):
    """Copy the non-zero cells of the dense table from rank ``(ra, rb)`` on into
    ``out_k``/``out_v`` as sorted (key, value) entries, until ``out`` is full.
    Returns ``(entries written, next ra, next rb)``; ``next ra == len(lim)`` at the end."""
    cap = out_k.shape[0]
    j = 0
    while ra < lim.shape[0]:
        a = ra + 2
        while rb <= lim[ra]:
            if j == cap:
                return j, ra, rb
            v = dense[off[ra] + (rb - ra)]
            if v != 0.0:
                out_k[j] = a * vocab_size + rb + 2
                out_v[j] = v
                j += 1
            rb += 1
        ra += 1
        rb = ra
    return j, ra, rb


@numba.njit(cache=True, nogil=True, inline="always")
def _sift_down(heap_k, heap_r, size, i):
    """Restore the heap below ``i``; an entry is (next key of a run, the run), and run
    ``r`` comes before ``s`` if its key is smaller, or equal and ``r < s`` (so equal
    keys are summed in run order)."""
    k = heap_k[i]
    r = heap_r[i]
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        ck = heap_k[child]
        cr = heap_r[child]
        if child + 1 < size:
            k2 = heap_k[child + 1]
            r2 = heap_r[child + 1]
            if k2 < ck or (k2 == ck and r2 < cr):
                child += 1
                ck = k2
                cr = r2
        if ck < k or (ck == k and cr < r):
            heap_k[i] = ck
            heap_r[i] = cr
            i = child
        else:
            break
    heap_k[i] = k
    heap_r[i] = r


@numba.njit(cache=True, nogil=True)
def _merge_kernel(keys, vals, starts, ends, vocab_size, out_r, out_c, out_v, diag, n_diag,
                  first):  # fmt: skip
    """Merge the sorted runs ``keys[starts[r]:ends[r]]`` (with their ``vals``), summing
    equal keys in run order (deterministic sums), into the upper-triangle entries
    ``out_r``, ``out_c`` (int32) and ``out_v`` (float32; the diagonal doubled: both
    orders of a pair of equal words land on it). The entry numbers (from ``first``) of
    diagonal entries go to ``diag[n_diag:]``. Returns ``(entries, n_diag)``."""
    k = starts.shape[0]
    pos = starts.copy()
    heap_k = np.empty(k, np.int64)
    heap_r = np.empty(k, np.int64)
    size = 0
    for r in range(k):
        if pos[r] < ends[r]:
            heap_k[size] = keys[pos[r]]
            heap_r[size] = r
            size += 1
    for i in range(size // 2 - 1, -1, -1):
        _sift_down(heap_k, heap_r, size, i)
    o = 0
    last = np.int64(-1)
    acc = 0.0
    row = np.int64(0)
    row_end = np.int64(vocab_size)  # keys of ``row`` are below this
    while size > 0:
        key = heap_k[0]
        r = heap_r[0]
        p = pos[r]
        if key == last:
            acc += vals[p]
        else:
            if last >= 0:
                o, n_diag = _emit(last, acc, row, vocab_size, out_r, out_c, out_v, diag,
                                  n_diag, first, o)  # fmt: skip
            last = key
            acc = vals[p]
            if key >= row_end:  # keys are sorted: the row changes rarely
                row = key // vocab_size
                row_end = (row + 1) * vocab_size
        p += 1
        pos[r] = p
        if p < ends[r]:
            heap_k[0] = keys[p]
        else:
            size -= 1
            heap_k[0] = heap_k[size]
            heap_r[0] = heap_r[size]
        if size > 1:
            _sift_down(heap_k, heap_r, size, 0)
    if last >= 0:
        o, n_diag = _emit(last, acc, row, vocab_size, out_r, out_c, out_v, diag, n_diag,
                          first, o)  # fmt: skip
    return o, n_diag


@numba.njit(cache=True, nogil=True, inline="always")
def _emit(key, value, row, vocab_size, out_r, out_c, out_v, diag, n_diag, first, o):
    col = key - row * vocab_size
    out_r[o] = row
    out_c[o] = col
    if row == col:
        out_v[o] = np.float32(2.0 * value)
        diag[n_diag] = first + o
        n_diag += 1
    else:
        out_v[o] = np.float32(value)
    return o + 1, n_diag


@numba.njit(cache=True, nogil=True)
def _drop_entries(src, first, drop, d, dst):
    """Copy ``src`` (entries ``first..``) to ``dst`` without the entry numbers listed in
    ``drop[d:]`` (sorted); returns ``(entries copied, next d)``."""
    n = src.shape[0]
    j = 0
    for i in range(n):
        if d < drop.shape[0] and drop[d] == first + i:
            d += 1
            continue
        dst[j] = src[i]
        j += 1
    return j, d


# --------------------------------------------------------------------------- sizing
def dense_layout(n_ranks: int, max_product: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows of the dense table: rank ``ra`` (1-based) holds ranks ``ra..lim[ra]`` with
    ``ra * rb < max_product``. Returns ``(lim, off, cells)``; ``lim``/``off`` have one
    entry per rank that has a row (index 0 unused)."""
    if max_product <= 1 or n_ranks < 1:
        return np.zeros(1, np.int64), np.zeros(1, np.int64), 0
    # a row needs ra * ra < max_product: only the first isqrt(max_product - 1) ranks
    ra = np.arange(1, min(n_ranks, math.isqrt(max_product - 1)) + 1, dtype=np.int64)
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
    """Choose ``(max_product, hash_slots)`` so the counting buffers fit ``memory_mb``.

    ``reserved_bytes`` (the chunk of ids read at a time, the index of the spilled runs)
    comes out of the hash table's share. Each slot costs ``_BYTES_PER_SLOT``: the table
    (key and value) and the scratch that sorts up to 3/4 of it at a spill.
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


class _Arena:
    """One block of memory, allocated once, that every phase carves its arrays from, so
    the process's resident memory is the block plus small bookkeeping, whatever the
    allocator does with freed blocks. Pages are touched (and become resident) only
    where a phase writes."""

    def __init__(self, nbytes: int):
        self.buffer = np.empty(max(int(nbytes), 64), np.uint8)
        self.used = 0
        self.overflow = 0  # bytes allocated outside the block (budget too small)

    def take(self, n: int, dtype) -> np.ndarray:
        """An array of ``n`` items from the free part of the block (64-byte aligned)."""
        dtype = np.dtype(dtype)
        start = -(-self.used // 64) * 64
        stop = start + n * dtype.itemsize
        if stop > self.buffer.size:  # a budget below the minimum sizes: grow past it
            self.overflow += n * dtype.itemsize
            return np.empty(n, dtype)
        self.used = stop
        return self.buffer[start:stop].view(dtype)

    def free(self) -> int:
        return max(self.buffer.size - -(-self.used // 64) * 64, 0)

    def reset(self) -> None:
        self.used = 0


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
        out = np.empty(max(stop - start, 0), self.dtype)
        return self.read_into(start, out)

    def read_into(self, start: int, out: np.ndarray) -> np.ndarray:
        """Fill ``out`` (or its head, at the end of the file) from item ``start`` on;
        returns the part filled."""
        n = max(min(out.size, self.size - start), 0)
        if n == 0:
            return out[:0]
        with open(self.path, "rb") as fh:
            fh.seek(self.offset + start * self.dtype.itemsize)
            got = fh.readinto(memoryview(out[:n]).cast("B"))
        if got != n * self.dtype.itemsize:
            raise DataError(f"{self.path}: truncated (expected {self.size} items)")
        return out[:n]


def open_ids(path: str | os.PathLike) -> _RawArray:
    """The 1-D integer array of a ``.npy`` file as a reader of slices (no memory map)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: ids file not found")
    try:
        with open(path, "rb") as fh:
            shape, fortran, dtype = npy_header(fh)
            offset = fh.tell()
    except ValueError as exc:
        raise DataError(f"{path}: not a .npy file ({exc})") from exc
    if len(shape) != 1 or not np.issubdtype(dtype, np.integer) or dtype.hasobject:
        raise DataError(f"{path}: expected a 1-D integer array, got {dtype} {shape}")
    if not dtype.isnative:
        raise DataError(f"{path}: expected native byte order, got {dtype}")
    return _RawArray(path, dtype, shape[0], offset)


class _Runs:
    """Sorted (key, value) runs spilled one after the other to two raw files (keys,
    values) in a temporary folder.

    For each run every ``sample``-th key is kept in memory (a sparse index), so the merge
    can cut the key space into ranges of a bounded number of entries, even inside one
    row, and find each range in every run with one small read.
    """

    def __init__(self, folder: Path, sample: int = 1024):
        self.folder = folder
        self.sample = sample
        self.keys_path, self.vals_path = folder / "runs.keys", folder / "runs.vals"
        self._fk = open(self.keys_path, "wb")  # noqa: SIM115 - closed by close()
        self._fv = open(self.vals_path, "wb")  # noqa: SIM115
        self.runs: list[tuple[int, int, np.ndarray]] = []  # (first entry, size, index)
        self.entries = 0
        self._run_start = 0
        self._index: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.runs)

    def add(self, keys: np.ndarray, vals: np.ndarray) -> None:
        """Append one run: ``keys`` sorted and distinct (int64), ``vals`` float64."""
        self.extend(keys, vals)
        self.end_run()

    def extend(self, keys: np.ndarray, vals: np.ndarray) -> None:
        """Append the next piece of the current run (a run may be written in pieces)."""
        self._fk.write(memoryview(np.ascontiguousarray(keys, np.int64)).cast("B"))
        self._fv.write(memoryview(np.ascontiguousarray(vals, np.float64)).cast("B"))
        done = self.entries - self._run_start  # entries of this run before the piece
        self._index.append(keys[(-done) % self.sample :: self.sample].copy())
        self.entries += keys.size

    def end_run(self) -> None:
        size = self.entries - self._run_start
        if size:
            index = np.concatenate(self._index) if len(self._index) > 1 else self._index[0]
            self.runs.append((self._run_start, size, index))
        self._run_start = self.entries
        self._index = []

    def close(self) -> None:
        self._fk.close()
        self._fv.close()

    def index_bytes(self) -> int:
        return sum(index.nbytes for _, _, index in self.runs)

    def _position(self, fk, run: int, key: int) -> int:
        """Index (within the run) of the first entry ``>= key`` in run ``run``."""
        first, size, index = self.runs[run]
        i = int(np.searchsorted(index, key, side="left"))  # index[i-1] < key <= index[i]
        if i == 0:
            return 0
        lo = (i - 1) * self.sample
        n = min(i * self.sample, size) - lo
        fk.seek((first + lo) * 8)
        block = np.fromfile(fk, np.int64, n)
        return lo + int(np.searchsorted(block, key, side="left"))

    def ranges(self, max_entries: int) -> Iterator[list[tuple[int, int]]]:
        """Cut the key space into ranges of at most about ``max_entries`` entries (over
        all runs); yields, for each range, the ``(start, stop)`` of every run in it."""
        self.close()
        if not self.runs:
            return
        samples = np.sort(np.concatenate([index for _, _, index in self.runs]))
        # a range holding m sampled keys holds at most (m + runs) * sample entries
        step = max(1, max_entries // self.sample - len(self.runs))
        cuts = np.unique(samples[step::step]).tolist()
        del samples
        prev = [0] * len(self.runs)
        with open(self.keys_path, "rb") as fk:
            for cut in [*cuts, None]:
                pos = [
                    size if cut is None else self._position(fk, r, cut)
                    for r, (_, size, _) in enumerate(self.runs)
                ]
                yield list(zip(prev, pos, strict=True))
                prev = pos

    def read(self, spans: list[tuple[int, int]], keys: np.ndarray, vals: np.ndarray,
             fk, fv) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Read the ``spans`` of every run one after the other into ``keys``/``vals``
        (which must hold them all); returns each run's ``(starts, ends)`` there."""
        starts = np.zeros(len(spans), np.int64)
        ends = np.zeros(len(spans), np.int64)
        o = 0
        for r, (a, b) in enumerate(spans):
            first = self.runs[r][0]
            n = b - a
            starts[r] = o
            if n:
                for fh, out in ((fk, keys), (fv, vals)):
                    fh.seek((first + a) * 8)
                    if fh.readinto(memoryview(out[o : o + n]).cast("B")) != n * 8:
                        raise DataError(f"{self.folder}: a spilled run is truncated")
            o += n
            ends[r] = o
        return starts, ends

    def remove(self) -> None:
        self.close()
        self.keys_path.unlink(missing_ok=True)
        self.vals_path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- output
def _copy_member(zf: zipfile.ZipFile, name: str, dtype: str, n: int, parts) -> None:
    """Write the ``.npy`` member ``name`` of ``n`` items from ``parts`` (arrays)."""
    with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
        header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": (n,)}
        np.lib.format.write_array_header_1_0(fh, header)
        written = 0
        for part in parts:
            fh.write(memoryview(part).cast("B"))
            written += part.size
        if written != n:  # pragma: no cover - internal consistency
            raise RuntimeError(f"{name}: wrote {written} items, expected {n}")


def _file_blocks(path: Path, buf: np.ndarray) -> Iterator[np.ndarray]:
    """The items of a raw file, ``buf.size`` at a time, read into ``buf``."""
    with open(path, "rb") as fh:
        while True:
            got = fh.readinto(memoryview(buf).cast("B")) // buf.itemsize
            if got == 0:
                return
            yield buf[:got]


def _without(path: Path, buf: np.ndarray, out: np.ndarray, drop: np.ndarray):
    """The items of a raw file without the entry numbers in ``drop`` (sorted)."""
    first = d = 0
    for block in _file_blocks(path, buf):
        j, d = _drop_entries(block, first, drop, d, out)
        first += block.size
        yield out[:j]


def _write_npz(path, upper: dict[str, Path], n: int, diag: np.ndarray, vocab_size: int,
               arena: _Arena) -> int:  # fmt: skip
    """Write ``cooccur.npz`` from the upper triangle (``rows``/``cols``/``values`` raw
    files of ``n`` entries in canonical order) and the entry numbers of its diagonal
    (``diag``): each member is the upper triangle by (row, col), then the mirrored strict
    lower triangle by (col, row). Returns the number of non-zeros."""
    nnz = 2 * n - diag.size
    block = max(min(arena.free() // 8 // 4, 1 << 22), 1024)  # 4-byte items
    buf, out = arena.take(block, np.int32), arena.take(block, np.int32)
    members = (("rows", "<i4", "cols"), ("cols", "<i4", "rows"), ("values", "<f4", "values"))
    with (
        atomic_path(path) as tmp,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf,
    ):
        for name, dtype, mirror in members:
            b, o = buf.view(dtype), out.view(dtype)
            parts = itertools.chain(
                _file_blocks(upper[name], b), _without(upper[mirror], b, o, diag)
            )
            _copy_member(zf, name, dtype, nnz, parts)
        _copy_member(zf, "shape", "<i8", 2, [np.array([vocab_size, vocab_size], "<i8")])
    return nnz


def _merge_and_write(runs: _Runs, arena: _Arena, vocab_size: int, n_ranks: int,
                     output) -> int:  # fmt: skip
    """Merge the runs a key range at a time into the upper triangle (three raw files),
    then write ``output``; the buffers are carved from ``arena`` (the counting's are no
    longer needed). Returns the number of non-zeros."""
    arena.reset()
    diag = arena.take(n_ranks + 1, np.int64)  # at most one diagonal entry per word
    mark = arena.used
    # per entry of a range: key and value read (16 bytes), row, col, value written (12)
    cap = max(arena.free() // 28 - 64, 1024)
    in_k, in_v = arena.take(cap, np.int64), arena.take(cap, np.float64)
    out_r, out_c = arena.take(cap, np.int32), arena.take(cap, np.int32)
    out_v = arena.take(cap, np.float32)
    upper = {name: runs.folder / f"upper.{name}" for name in ("rows", "cols", "values")}
    n = n_diag = 0
    with contextlib.ExitStack() as stack:
        fk = stack.enter_context(open(runs.keys_path, "rb"))
        fv = stack.enter_context(open(runs.vals_path, "rb"))
        files = [stack.enter_context(open(upper[name], "wb")) for name in upper]
        for spans in runs.ranges(cap):
            total = sum(b - a for a, b in spans)
            if total == 0:
                continue
            if total > cap:  # a budget too small for the number of runs: grow past it
                cap = total
                arena.overflow += 28 * cap
                in_k, in_v = np.empty(cap, np.int64), np.empty(cap, np.float64)
                out_r, out_c = np.empty(cap, np.int32), np.empty(cap, np.int32)
                out_v = np.empty(cap, np.float32)
            starts, ends = runs.read(spans, in_k, in_v, fk, fv)
            o, n_diag = _merge_kernel(in_k, in_v, starts, ends, vocab_size, out_r, out_c,
                                      out_v, diag, n_diag, n)  # fmt: skip
            for fh, arr in zip(files, (out_r, out_c, out_v), strict=True):
                fh.write(memoryview(arr[:o]).cast("B"))
            n += o
    runs.remove()  # disk: the runs are no longer needed once merged
    del in_k, in_v, out_r, out_c, out_v
    arena.used = mark
    nnz = _write_npz(output, upper, n, diag[:n_diag], vocab_size, arena)
    for path in upper.values():
        path.unlink(missing_ok=True)
    return nnz


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
    if vocab_size * vocab_size >= 2**53:  # keys are exact float64 in the hash table
        raise ValueError(f"vocab_size must be below 94,906,266, got {vocab_size}")
    n = len(ids)
    n_ranks = max(vocab_size - FIRST_WORD, 0)
    budget = int(memory_mb * 2**20)
    chunk_tokens = max(1, min(chunk_tokens, n))
    from_file = isinstance(ids, _RawArray)
    chunk_bytes = chunk_tokens * np.dtype(ids.dtype).itemsize if from_file else 0
    # the sparse index of the spilled runs (8 bytes every `sample` entries, at most one
    # entry per pair of positions) and its sorted copy at the merge: about 2% of the budget
    sample = 1024
    while 3 * 8 * n * window / sample > 0.02 * budget and sample < 1 << 20:
        sample *= 2
    # outside the arena: that index, Python's own objects and small arrays, and the
    # rounding of the arena's resident part to whole (huge) pages
    outside = int(0.02 * budget) + _OUTSIDE_ARENA
    reserved = chunk_bytes + outside
    max_product, slots = plan_memory(n_ranks, memory_mb, dense_fraction, reserved)
    # no more slots than the pairs of the corpus could fill
    slots = min(slots, max(_MIN_SLOTS, 1 << int(np.ceil(np.log2(4 / 3 * n * window + 1)))))
    slots = max(slots, 1 << int(np.ceil(np.log2(4 * (window + 1)))))
    shift = 64 - int(slots).bit_length() + 1
    max_fill = min(int(0.75 * slots), slots - window - 1)
    lim, off, cells = dense_layout(n_ranks, max_product)
    key_bits = max(int(vocab_size * vocab_size - 1).bit_length(), 1)

    need = chunk_bytes + 8 * (cells + 2 * slots + 2 * (max_fill + window)) + 6 * 64
    arena = _Arena(max(budget - outside, need))
    chunk_buf = arena.take(chunk_tokens, ids.dtype) if from_file else None
    dense = arena.take(cells, np.float64)
    dense.fill(0.0)
    table = arena.take(2 * slots, np.float64)
    table.fill(_EMPTY)
    scratch_k = arena.take(max_fill + window, np.int64)
    scratch_v = arena.take(max_fill + window, np.float64)
    ring = np.full(window, -1, np.int64)
    state = np.zeros(4, np.int64)
    n_spills = 0

    folder = Path(tempfile.mkdtemp(prefix="cooccur.", dir=tmp_dir or Path(output).parent))
    runs = _Runs(folder, sample)

    def spill() -> None:
        nonlocal n_spills
        n_spills += 1
        count = _compact(table, scratch_k, scratch_v)
        k, v = scratch_k[:count], scratch_v[:count]
        # the table's own memory is the sort's scratch (it is emptied next)
        tk, tv = table[:count].view(np.int64), table[slots : slots + count]
        if _radix_sort(k, v, tk, tv, key_bits):
            k, v = tk, tv
        runs.add(k, v)
        table.fill(_EMPTY)
        state[1] = 0

    try:
        bar = tqdm(total=n, unit="tok", unit_scale=True, desc="cooccur", disable=not progress)
        for s in range(0, n, chunk_tokens):
            if from_file:
                chunk = ids.read_into(s, chunk_buf)
            else:
                chunk = np.ascontiguousarray(ids[s : s + chunk_tokens])
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
                                  dense, table, max_fill, vocab_size, shift)  # fmt: skip
                if state[1] >= max_fill:
                    spill()
            bar.update(chunk.shape[0])
        bar.close()
        t_count = time.perf_counter()
        words, pairs = int(state[2]), int(state[3])
        if state[1]:
            spill()
            n_spills -= 1  # the last flush is not a spill: the table was not full
        # the dense table's non-zero cells, sorted, as the last run (no key in common
        # with the hash table's runs), copied a scratch buffer's worth at a time
        ra, rb = 1, 1
        while ra < lim.shape[0]:
            j, ra, rb = _dense_entries_into(dense, lim, off, vocab_size, ra, rb, scratch_k,
                                            scratch_v)  # fmt: skip
            runs.extend(scratch_k[:j], scratch_v[:j])
        runs.end_run()
        # the counting's arrays are views of the arena, which the merge carves again
        nnz = _merge_and_write(runs, arena, vocab_size, n_ranks, output)
    finally:
        runs.close()
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
            "over_budget_bytes": arena.overflow,
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
    triples = NpzTriples(path)  # the same checks as the trainer's chunked reads
    rows, cols, values = triples.arrays()
    return rows, cols, values, triples.vocab_size
