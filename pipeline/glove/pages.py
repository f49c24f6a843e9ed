"""The co-occurrences as shuffled pages on disk: what the CPU trainer reads each epoch.

The CPU trainer keeps only the parameters and one page per thread in memory, whatever
the number of non-zeros, as Stanford GloVe's C tool keeps only its parameters and reads
its shuffled file in pieces. :func:`build_pages` writes, in two passes over the triples
(read a chunk at a time), four flat files in a folder: ``rows.bin``, ``cols.bin``
(int32), ``logx.bin`` and ``fx.bin`` (``log x`` and ``f(x)`` in the parameter dtype);
entry ``k`` is at position ``k`` of each. Their order:

- by block ``b = (row % T) * T + col % T`` of the ``T x T`` blocks of stratified SGD
  (``T`` threads);
- inside a block, by page: each block has ``P = ceil(nnz / T^2 / page_entries)`` pages
  and every entry goes to a page drawn uniformly at random (a generator seeded by
  ``(seed, T, page_entries)``, one draw per entry in input order, so the layout does not
  depend on the size of the chunks read). A page is thus a random sample of its block,
  of about ``page_entries`` entries.

Page ``q = b * P + p`` is ``offsets[q]:offsets[q + 1]``. The trainer visits the pages of
a block in a random order and the entries of a page in a random order, both drawn anew
every epoch (see :func:`pipeline.glove.train.train_glove_on`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.glove.triples import TriplesDigest

PAGE_ENTRIES = 1 << 16  # entries per page: 1 MiB of float32 records, about an L2 cache
READ_CHUNK = 1 << 16  # triples read at a time while building the pages (~6 MB of work)
FILES = ("rows", "cols", "logx", "fx")
_O_BINARY = getattr(os, "O_BINARY", 0)


@dataclass
class Pages:
    """A folder of pages (see the module docstring) and what was learned building it."""

    folder: Path
    n_blocks: int  # T: blocks per side (threads)
    pages_per_block: int  # P
    offsets: np.ndarray  # (T * T * P + 1,) int64: page q is entries offsets[q]:offsets[q + 1]
    dtype: np.dtype  # of logx and fx
    nnz: int
    digest: str  # sha256 of the input triples (TriplesDigest)
    seen: np.ndarray  # (V,) bool: words with at least one co-occurrence
    reference: float  # the untrained (all-zero) model's loss per non-zero

    def page(self, block: int, page: int) -> tuple[int, int]:
        """``(start, stop)`` entry positions of page ``page`` of block ``block``."""
        q = block * self.pages_per_block + page
        return int(self.offsets[q]), int(self.offsets[q + 1])

    @property
    def max_page(self) -> int:
        """Entries of the largest page (the size of a reader's buffers)."""
        return int(np.diff(self.offsets).max()) if self.offsets.size > 1 else 0


def page_ids(rows, cols, uniforms, n_blocks: int, pages_per_block: int) -> np.ndarray:
    """Page ``q = block * P + page`` of each entry (int64), ``page = floor(u * P)``."""
    block = (rows % n_blocks).astype(np.int64) * n_blocks + cols % n_blocks
    page = np.minimum((uniforms * pages_per_block).astype(np.int64), pages_per_block - 1)
    return block * pages_per_block + page


def build_pages(triples, folder: str | os.PathLike, *, threads: int, seed: int,
                constants: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                page_entries: int = PAGE_ENTRIES, read_chunk: int = READ_CHUNK) -> Pages:  # fmt: skip
    """Write the pages of ``triples`` (an :class:`~pipeline.glove.triples.ArrayTriples` or
    :class:`~pipeline.glove.triples.NpzTriples`) into ``folder``, reading ``read_chunk``
    triples at a time; ``constants(values)`` gives ``(log x, f(x))`` in the parameter
    dtype. Memory: a few times ``read_chunk`` entries, whatever the nnz."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_blocks = threads
    pages_per_block = max(1, math.ceil(triples.nnz / n_blocks**2 / page_entries))
    n_pages = n_blocks**2 * pages_per_block
    logx_dtype = constants(np.ones(1, np.float32))[0].dtype

    def uniforms():
        return np.random.default_rng(np.random.SeedSequence([seed, threads, page_entries]))

    # pass 1: page sizes, and what needs every entry once (digest, seen words, start loss)
    counts = np.zeros(n_pages, np.int64)
    digest = TriplesDigest(triples.vocab_size)
    seen = np.zeros(triples.vocab_size, bool)
    reference = 0.0
    rng = uniforms()
    for rows, cols, values in triples.chunks(read_chunk):
        digest.update(rows, cols, values)
        seen[rows] = True
        logx, fx = constants(values)
        lx = logx.astype(np.float64)
        reference += float(np.dot(fx.astype(np.float64) * lx, lx))
        q = page_ids(rows, cols, rng.random(rows.size), n_blocks, pages_per_block)
        counts += np.bincount(q, minlength=n_pages)
    offsets = np.zeros(n_pages + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])

    # pass 2: the same draws again; each chunk's entries go, grouped by page, to the
    # next free positions of their pages
    cursor = offsets[:-1].copy()
    rng = uniforms()
    fds = [os.open(folder / f"{name}.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_BINARY)
           for name in FILES]  # fmt: skip
    try:
        for rows, cols, values in triples.chunks(read_chunk):
            q = page_ids(rows, cols, rng.random(rows.size), n_blocks, pages_per_block)
            by_page = np.argsort(q, kind="stable")
            q = q[by_page]
            logx, fx = constants(values[by_page])
            columns = (rows[by_page], cols[by_page], logx, fx)
            starts = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
            ends = np.r_[starts[1:], q.size]
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
                page = int(q[s])
                for fd, col in zip(fds, columns, strict=True):
                    _pwrite_all(fd, col[s:e], int(cursor[page]) * col.itemsize)
                cursor[page] += e - s
    finally:
        for fd in fds:
            os.close(fd)
    return Pages(folder=folder, n_blocks=n_blocks, pages_per_block=pages_per_block,
                 offsets=offsets, dtype=logx_dtype, nnz=triples.nnz, digest=digest.hexdigest(),
                 seen=seen, reference=0.5 * reference / max(triples.nnz, 1))  # fmt: skip


def _pwrite_all(fd: int, array: np.ndarray, offset: int) -> None:
    view = memoryview(np.ascontiguousarray(array)).cast("B")
    while view.nbytes:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


class PageReader:
    """One thread's file handles and buffers: :meth:`read` a page into them."""

    def __init__(self, pages: Pages):
        self.fds = [os.open(pages.folder / f"{name}.bin", os.O_RDONLY | _O_BINARY)
                    for name in FILES]  # fmt: skip
        n = max(pages.max_page, 1)
        self.buffers = (np.empty(n, np.int32), np.empty(n, np.int32),
                        np.empty(n, pages.dtype), np.empty(n, pages.dtype))  # fmt: skip

    def read(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        """Entries ``start:stop``: views ``(rows, cols, logx, fx)`` into the buffers."""
        out = []
        for fd, buf in zip(self.fds, self.buffers, strict=True):
            view = buf[: stop - start]
            _pread_into(fd, view, start * buf.itemsize)
            out.append(view)
        return tuple(out)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _pread_into(fd: int, array: np.ndarray, offset: int) -> None:
    view = memoryview(array).cast("B")
    while view.nbytes:
        if hasattr(os, "preadv"):
            n = os.preadv(fd, [view], offset)
        else:  # pragma: no cover - platforms without preadv
            data = os.pread(fd, view.nbytes, offset)
            n = len(data)
            view[:n] = data
        if n == 0:
            raise OSError(f"page file ended early at byte {offset}")
        view, offset = view[n:], offset + n
