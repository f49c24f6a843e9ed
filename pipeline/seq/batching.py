"""Training batches of sentences of similar length, shared by NER and sentiment.

A recurrent encoder over a packed batch runs as many steps as the batch's longest
sentence: batches cut from length-sorted pools need far fewer steps than random ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch


class BucketBatchSampler(torch.utils.data.Sampler):
    """Batches of sentences of similar length (less padding, faster RNNs).

    With ``shuffle``: each epoch shuffles (seed + epoch), sorts within pools of 50 batches
    by length, cuts batches, and shuffles the batch order. Without: sorted by length.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int = 0):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at each epoch start (also on resume)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        n, bs = len(self.lengths), self.batch_size
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            yield from (order[i : i + bs].tolist() for i in range(0, n, bs))
            return
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n)
        pool = bs * 50
        batches = []
        for i in range(0, n, pool):
            chunk = order[i : i + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches.extend(chunk[j : j + bs].tolist() for j in range(0, len(chunk), bs))
        for k in rng.permutation(len(batches)):
            yield batches[k]
