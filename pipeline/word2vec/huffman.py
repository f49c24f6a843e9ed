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

from pipeline.core.errors import DataError


@dataclass(frozen=True)
class HuffmanTree:
    """Codes and points of every word, padded to the longest code.

    ``codes`` uint8 (V, L), ``points`` int32 (V, L) with inner-node indices in
    ``[0, V - 2]`` (the root is ``P - 2``, ``P`` the words of positive count; ``P = V``
    without zero counts), ``lengths`` int32 (V,), 0 for words of count 0. Entries past a
    word's length are 0 and must be ignored.
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


def first_occurrence(words: np.ndarray, vocab_size: int) -> np.ndarray:
    """Position of each word id's first occurrence in ``words`` (``len(words)`` if absent).

    int64 (vocab_size,). word2vec builds its vocabulary in this order and then sorts it by
    count, so this is the ``tie_rank`` that reproduces its Huffman tree.
    """
    words = np.asarray(words)
    first = np.full(vocab_size, words.shape[0], dtype=np.int64)
    ids, pos = np.unique(words, return_index=True)
    first[ids] = pos
    return first


def build_huffman(
    counts: np.ndarray | list[int], tie_rank: np.ndarray | list[int] | None = None
) -> HuffmanTree:
    """Build the Huffman tree of ``counts`` (one count per word id; zeros allowed).

    Follows word2vec's linear-time construction on the words sorted by count
    (descending), so codes match the C tool: at each merge the smaller node gets bit 0
    and the larger bit 1. Words of equal count are ordered by ``tie_rank`` (ascending;
    default: the word id). word2vec's vocabulary is in order of first occurrence before
    its count sort, so pass :func:`first_occurrence` of the training words to match it:
    ties by id put words of equal count in vocabulary order (alphabetical for
    :mod:`pipeline.data.vocab`) next to each other, where they share their deepest inner
    nodes, and that costs skip-gram HS about 1-2 points on MEN/SimLex against gensim.

    Words with count 0 get no code (length 0): they are never a target, and as leaves
    they would shift the pairing of every rare word (gensim and word2vec have no such
    leaves). Inner nodes are numbered ``[0, P - 2]`` with ``P`` the words of positive
    count; the root is ``P - 2``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 1:
        raise DataError(f"huffman: counts must be 1-D, got shape {counts.shape}")
    if (counts < 0).any():
        raise DataError("huffman: counts must be non-negative")
    n_words = int(counts.shape[0])
    rank = np.arange(n_words) if tie_rank is None else np.asarray(tie_rank)
    if rank.shape != counts.shape:
        raise DataError(f"huffman: tie_rank has shape {rank.shape}, counts {counts.shape}")
    order = np.lexsort((rank, -counts))  # sorted position -> word id
    order = order[counts[order] > 0]
    v = int(order.shape[0])
    if v < 2:
        raise DataError(f"huffman: need at least 2 words with a positive count, got {v}")
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
    codes = np.zeros((n_words, maxlen), dtype=np.uint8)
    points = np.zeros((n_words, maxlen), dtype=np.int32)
    lengths = np.zeros(n_words, dtype=np.int32)
    for s, word in enumerate(order.tolist()):
        n = len(codes_list[s])
        codes[word, :n] = codes_list[s]
        points[word, :n] = points_list[s]
        lengths[word] = n
    return HuffmanTree(codes=codes, points=points, lengths=lengths)
