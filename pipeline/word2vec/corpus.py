"""The training words of word2vec: sentences of ids without specials, their jobs,
negative-sampling weights, Huffman tree and per-job seeds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from pipeline.core.errors import DataError
from pipeline.word2vec.huffman import build_huffman, first_occurrence

PAD, UNK, EOS = 0, 1, 2
N_SPECIAL = 3


@dataclass(frozen=True)
class TrainingWords:
    """Training words without specials, cut into sentences.

    ``words`` int32 (N,); sentence s is ``words[bounds[s]:bounds[s + 1]]``; ``counts``
    int64 (V,) counts of ``words`` (specials 0).
    """

    words: np.ndarray
    bounds: np.ndarray
    counts: np.ndarray

    @property
    def num_words(self) -> int:
        return int(self.words.shape[0])

    @property
    def num_sentences(self) -> int:
        return int(self.bounds.shape[0]) - 1


def make_corpus(
    ids: np.ndarray, vocab_size: int, max_sentence_length: int = 10000
) -> TrainingWords:
    """Drop ``<pad>``/``<unk>``, split at ``<eos>`` and at ``max_sentence_length`` words."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"corpus ids must be a 1-D integer array, got {ids.dtype} {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = int(np.flatnonzero((ids < 0) | (ids >= vocab_size))[0])
        raise DataError(
            f"corpus id {int(ids[bad])} at position {bad} is outside the vocabulary "
            f"(size {vocab_size})"
        )
    # Sentence s of ids runs up to and including its <eos>; its training words are the
    # kept ids in it. Counted per sentence with reduceat, so that no (N,) int64 array
    # (sentence number per word) is made: the corpus itself is the largest array here.
    keep = ids >= N_SPECIAL
    words = ids[keep].astype(np.int32, copy=False)
    starts = np.flatnonzero(ids == EOS) + 1
    starts = np.concatenate([[0], starts[starts < ids.shape[0]]]).astype(np.int64)
    if ids.shape[0] == 0:
        starts = starts[:0]
    per_sentence = np.add.reduceat(keep, starts, dtype=np.int64) if starts.size else starts
    bounds = np.unique(np.concatenate([[0], np.cumsum(per_sentence)]).astype(np.int64))
    lengths = np.diff(bounds)
    if lengths.size and lengths.max() > max_sentence_length:
        extra = [
            np.arange(b + max_sentence_length, e, max_sentence_length)
            for b, e in zip(bounds[:-1], bounds[1:], strict=True)
            if e - b > max_sentence_length
        ]
        bounds = np.unique(np.concatenate([bounds, *extra]))
    counts = word_counts(words, vocab_size)
    return TrainingWords(words=words, bounds=bounds, counts=counts)


def word_counts(words: np.ndarray, vocab_size: int, chunk: int = 1 << 20) -> np.ndarray:
    """int64 (V,) counts of ``words``, a chunk at a time (``np.bincount`` copies its input
    to int64 first: chunks keep that copy small)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for a in range(0, words.shape[0], chunk):
        counts += np.bincount(words[a : a + chunk], minlength=vocab_size)
    return counts


def huffman_tree(corpus: TrainingWords):
    """The Huffman tree of hierarchical softmax, built as word2vec builds it.

    Words of equal count are ordered by first occurrence in the training words (word2vec's
    vocabulary order before its count sort), not by id; see
    :func:`pipeline.word2vec.huffman.build_huffman`.
    """
    first = first_occurrence(corpus.words, int(corpus.counts.shape[0]))
    return build_huffman(corpus.counts, tie_rank=first)


def make_jobs(bounds: np.ndarray, batch_words: int) -> np.ndarray:
    """Sentence indices cutting the corpus into jobs of about ``batch_words`` words."""
    n_sent = bounds.shape[0] - 1
    total = int(bounds[-1])
    marks = np.arange(batch_words, total, batch_words)
    cuts = np.searchsorted(bounds, marks, side="left")
    edges = np.unique(np.concatenate([[0], cuts, [n_sent]])).astype(np.int64)
    return edges


def negative_distribution(counts: np.ndarray, exponent: float) -> np.ndarray:
    """Unigram counts raised to ``exponent`` (float64, not normalised; specials 0)."""
    w = np.asarray(counts, dtype=np.float64) ** exponent
    w[np.asarray(counts) <= 0] = 0.0
    return w


def job_seed(seed: int, epoch: int, job: int) -> int:
    """A 48-bit generator state for one job, independent of thread scheduling."""
    h = hashlib.blake2b(f"{seed}/{epoch}/{job}".encode(), digest_size=8).digest()
    return (int.from_bytes(h, "little") & 0xFFFFFFFFFFFF) | 1
