"""Data-parallel training (Lightning DDP) that keeps every task's data order and metrics.

Lightning's default distributed sampling does not fit these tasks: it cannot enter the
NER length-bucketing batch sampler, it shuffles the language model's consecutive BPTT
chunks (the hidden state is carried from one chunk to the next), and it pads validation
sets with repeated samples, so validation metrics would count some sentences twice.
Here instead:

- training: each process takes a contiguous block of the batches the task's own
  (seeded, hence identical on every process) loader yields in an epoch. Block ``r`` of
  ``W`` is batches ``[r * n // W, (r + 1) * n // W)`` cut to ``n // W`` so every process
  steps the same number of times (DDP synchronises every step); at most ``W - 1``
  batches of an epoch are left out.
- validation during ``fit``: every process runs the whole validation set, so the
  monitored metric (early stopping, best checkpoint) is exact and the same everywhere;
- test metrics and predictions: computed after ``fit`` by rank 0 only, by the stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from torch.utils.data import DataLoader, Sampler


class RankShard(Sampler):
    """The contiguous block of ``inner``'s items (batches or indices) for one process.

    ``inner`` must yield the same sequence on every process (seeded samplers do).
    """

    def __init__(self, inner: Iterable[Any], rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside [0, {world_size})")
        self.inner = inner
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return len(self.inner) // self.world_size  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        items = list(self.inner)
        per = len(items) // self.world_size
        start = self.rank * per
        yield from items[start : start + per]


def shard_loader(loader: DataLoader, rank: int, world_size: int) -> DataLoader:
    """``loader`` restricted to the block of process ``rank`` of ``world_size``."""
    common = {
        "collate_fn": loader.collate_fn,
        "num_workers": loader.num_workers,
        "pin_memory": loader.pin_memory,
        "worker_init_fn": loader.worker_init_fn,
        "persistent_workers": loader.persistent_workers if loader.num_workers else False,
        # the loader draws its workers' base seed from this generator before sampling:
        # keep it, or a sampler sharing the generator would yield another order
        "generator": loader.generator,
    }
    if loader.batch_sampler is not None:  # batches made by a (batch) sampler
        shard = RankShard(loader.batch_sampler, rank, world_size)
        return DataLoader(loader.dataset, batch_sampler=shard, **common)
    # batch_size=None: every item of the sampler is a whole batch (the LM's chunks)
    shard = RankShard(loader.sampler, rank, world_size)
    return DataLoader(loader.dataset, batch_size=None, sampler=shard, **common)


def sharding_ddp_strategy(**kwargs: Any):
    """A Lightning ``DDPStrategy`` that shards the training loader with :func:`shard_loader`
    and leaves validation loaders whole (use with ``use_distributed_sampler=False``).

    ``find_unused_parameters`` is on: a step may leave a parameter without a gradient (the
    CRF transitions in a batch of one-word sentences), and DDP would otherwise wait for it
    forever. The extra graph walk per step is small next to these recurrent models.
    """
    import warnings

    from lightning.pytorch.strategies import DDPStrategy

    kwargs.setdefault("find_unused_parameters", True)
    # every process validates on the whole set: its epoch metrics need no averaging
    warnings.filterwarnings("ignore", message=r"It is recommended to use `self\.log\(.*sync_dist")

    class ShardingDDPStrategy(DDPStrategy):
        def process_dataloader(self, dataloader: object) -> object:
            dataloader = super().process_dataloader(dataloader)
            trainer = self.lightning_module.trainer if self.lightning_module else None
            # ``trainer.training`` is set while the fit loop prepares its training data;
            # validation loaders are prepared with ``trainer.validating`` set instead.
            training = trainer is not None and trainer.training
            if training and isinstance(dataloader, DataLoader) and self.world_size > 1:
                return shard_loader(dataloader, self.global_rank, self.world_size)
            return dataloader

    return ShardingDDPStrategy(**kwargs)
