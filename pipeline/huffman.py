"""Huffman tree over word counts for hierarchical softmax (word2vec's ``CreateBinaryTree``).

Every word is a leaf; its *code* is the sequence of left/right turns (0/1) from the root
and its *points* are the inner nodes visited on the way (row indices into the output
matrix ``syn1``, shape (V - 1, D)). Frequent words sit near the root, so they have short
codes: the expected code length is the entropy bound of the unigram distribution.

>>> tree = build_huffman([4, 2, 1, 1])
>>> tree.code(0), tree.code(3)
([1], [0, 0, 0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import DataError


@dataclass(frozen=True)
class HuffmanTree:
    """Codes and points of every word, padded to the longest code.

    ``codes`` uint8 (V, L), ``points`` int32 (V, L) with inner-node indices in
    ``[0, V - 2]`` (the root is ``V - 2``), ``lengths`` int32 (V,). Entries past a word's
    length are 0 and must be ignored.
    """

    codes: np.ndarray
    points: np.ndarray
    lengths: np.ndarray

    @property
    def num_inner(self) -> int:
        return int(self.codes.shape[0]) - 1

    def code(self, word: int) -> list[int]:
        """Root-first code of ``word`` as a list of 0/1."""
        return [int(c) for c in self.codes[word, : self.lengths[word]]]

    def path(self, word: int) -> list[int]:
        """Root-first inner nodes visited on the way to ``word``."""
        return [int(p) for p in self.points[word, : self.lengths[word]]]


def build_huffman(counts: np.ndarray | list[int]) -> HuffmanTree:
    """Build the Huffman tree of ``counts`` (one count per word id; zeros allowed).

    Follows word2vec's linear-time construction on the words sorted by count
    (descending, ties by id), so codes match the C tool: at each merge the smaller node
    gets bit 0 and the larger bit 1.
    """
    counts = np.asarray(counts, dtype=np.int64)
    v = int(counts.shape[0])
    if counts.ndim != 1 or v < 2:
        raise DataError(f"huffman: need at least 2 words, got {v}")
    if (counts < 0).any():
        raise DataError("huffman: counts must be non-negative")
    order = np.argsort(-counts, kind="stable")  # sorted position -> word id
    cnt = np.empty(2 * v - 1, dtype=np.int64)
    cnt[:v] = counts[order]
    cnt[v:] = np.iinfo(np.int64).max // 4
    pos1, pos2 = v - 1, v
    cnt_l = cnt.tolist()  # python ints: the loop is V long and scalar
    parent_l = [0] * (2 * v - 1)
    binary_l = [0] * (2 * v - 1)
    for a in range(v - 1):
        mins = []
        for _ in range(2):
            if pos1 >= 0 and cnt_l[pos1] < cnt_l[pos2]:
                mins.append(pos1)
                pos1 -= 1
            else:
                mins.append(pos2)
                pos2 += 1
        cnt_l[v + a] = cnt_l[mins[0]] + cnt_l[mins[1]]
        parent_l[mins[0]] = v + a
        parent_l[mins[1]] = v + a
        binary_l[mins[1]] = 1
    root = 2 * v - 2
    codes_list, points_list = [], []
    for s in range(v):
        code, point = [], []
        b = s
        while b != root:
            code.append(binary_l[b])
            b = parent_l[b]
            point.append(b - v)
        codes_list.append(code[::-1])
        points_list.append(point[::-1])
    maxlen = max(len(c) for c in codes_list)
    codes = np.zeros((v, maxlen), dtype=np.uint8)
    points = np.zeros((v, maxlen), dtype=np.int32)
    lengths = np.zeros(v, dtype=np.int32)
    for s, word in enumerate(order.tolist()):
        n = len(codes_list[s])
        codes[word, :n] = codes_list[s]
        points[word, :n] = points_list[s]
        lengths[word] = n
    return HuffmanTree(codes=codes, points=points, lengths=lengths)
