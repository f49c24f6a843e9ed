"""Which process of a distributed run this is, before and after the process group exists.

A distributed Lightning run starts the same stage command once per process: Lightning's
own launcher re-runs it with ``LOCAL_RANK``/``NODE_RANK`` set, ``torchrun`` sets ``RANK``,
SLURM's ``srun`` sets ``SLURM_PROCID``. Only the first process (global rank 0) may write
outputs, metrics and tracking records; the others train and exit.
"""

from __future__ import annotations

import os

# Set by the launchers named above; a process is rank 0 only if none says otherwise.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def global_rank() -> int:
    """This process's global rank: from ``torch.distributed`` once it is initialised, else
    from the launcher's environment (0 for a plain, single-process run).

    Before the process group exists the exact global rank is not always known (Lightning's
    launcher sets only the local and the node rank), so any non-zero launcher variable
    gives a positive number: enough to tell rank 0 from the others.
    """
    import sys

    dist = sys.modules.get("torch.distributed")  # never import torch just to ask
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    values = []
    for name in RANK_VARIABLES:
        raw = os.environ.get(name, "").strip()
        if raw.isdigit():
            values.append(int(raw))
    return max(values, default=0)


def is_rank_zero() -> bool:
    """Whether this process writes outputs (True in a single-process run)."""
    return global_rank() == 0
