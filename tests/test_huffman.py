"""Huffman tree of hierarchical softmax: hand-checked codes, prefix-free, frequent = short."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.errors import DataError
from pipeline.word2vec.huffman import build_huffman, first_occurrence


def test_known_count_table_hand_checked():
    # counts a=4, b=2, c=1, d=1. word2vec merges d+c -> n0 (2), then n0+b -> n1 (4),
    # then n1+a -> root n2 (8); the second (larger) node of each merge gets bit 1.
    tree = build_huffman([4, 2, 1, 1])
    assert [tree.code(i) for i in range(4)] == [[1], [0, 1], [0, 0, 1], [0, 0, 0]]
    assert [tree.path(i) for i in range(4)] == [[2], [2, 1], [2, 1, 0], [2, 1, 0]]
    assert tree.lengths.tolist() == [1, 2, 3, 3]
    assert tree.num_inner == 3


def test_ids_need_not_be_sorted_by_count():
    tree = build_huffman([1, 4, 1, 2])  # same table, permuted: b=4, d=2, a=c=1
    assert tree.code(1) == [1]
    assert tree.code(3) == [0, 1]
    assert sorted([tree.code(0), tree.code(2)]) == [[0, 0, 0], [0, 0, 1]]


def test_prefix_free_kraft_and_frequent_words_near_root():
    rng = np.random.default_rng(0)
    counts = rng.zipf(1.3, size=300).clip(max=10**6)
    tree = build_huffman(counts)
    codes = ["".join(map(str, tree.code(i))) for i in range(len(counts))]
    assert len(set(codes)) == len(codes)
    for a in codes:  # no code is a prefix of another
        assert sum(b.startswith(a) for b in codes) == 1
    assert np.isclose(np.sum(2.0 ** -tree.lengths.astype(float)), 1.0)  # full binary tree
    order = np.argsort(-counts, kind="stable")
    assert np.all(np.diff(tree.lengths[order]) >= 0)  # more frequent -> not longer
    assert tree.points.max() <= len(counts) - 2
    assert np.all(tree.points[:, 0] == len(counts) - 2)  # every path starts at the root
    # optimal prefix code: expected length within one bit of the entropy
    p = counts / counts.sum()
    entropy = -(p * np.log2(p)).sum()
    assert entropy <= (p * tree.lengths).sum() < entropy + 1


def test_too_small_vocabulary():
    with pytest.raises(DataError):
        build_huffman([5])


def _siblings(tree, n):
    """Pairs of words that share their whole path (children of the same inner node)."""
    by_path = {}
    for w in range(n):
        if tree.lengths[w]:
            by_path.setdefault(tuple(tree.path(w)), []).append(w)
    return sorted(tuple(sorted(ws)) for ws in by_path.values() if len(ws) == 2)


def test_ties_follow_tie_rank_not_id():
    # Four words of equal count: word2vec pairs neighbours in its sorted vocabulary, which
    # is in first-occurrence order. Ordering ties by id instead (alphabetical in our vocab)
    # made equal-count neighbours share inner nodes and cost HS ~1-2 points on MEN.
    assert _siblings(build_huffman([1, 1, 1, 1]), 4) == [(0, 1), (2, 3)]
    tree = build_huffman([1, 1, 1, 1], tie_rank=[0, 2, 1, 3])  # sorted order 0, 2, 1, 3
    assert _siblings(tree, 4) == [(0, 2), (1, 3)]
    # the tie rank never overrides counts
    tree = build_huffman([4, 2, 1, 1], tie_rank=[3, 2, 1, 0])
    assert [tree.code(i) for i in range(4)] == [[1], [0, 1], [0, 0, 0], [0, 0, 1]]


def test_zero_count_words_get_no_code_and_do_not_shift_the_tree():
    ref = build_huffman([4, 2, 1, 1])
    tree = build_huffman([0, 4, 2, 0, 1, 1, 0])
    assert tree.lengths.tolist() == [0, 1, 2, 0, 3, 3, 0]
    assert [tree.code(w) for w in (1, 2, 4, 5)] == [ref.code(w) for w in range(4)]
    assert [tree.path(w) for w in (1, 2, 4, 5)] == [ref.path(w) for w in range(4)]
    with pytest.raises(DataError):
        build_huffman([3, 0, 0])


def test_first_occurrence():
    first = first_occurrence(np.array([5, 3, 5, 4, 3]), 7)
    assert first.tolist() == [5, 5, 5, 1, 3, 0, 5]
