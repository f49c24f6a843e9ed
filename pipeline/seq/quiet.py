"""Keep the console for progress and results: silence third-party chatter we know.

Lightning prints its hardware summary ("GPU available: False ..."), a tip to install a
cloud logger and notes on ``limit_*_batches`` through one INFO logger on every run, and
Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates (a FutureWarning per
run). Real warnings from those libraries still show.
"""

from __future__ import annotations

import logging
import warnings

_KNOWN_WARNINGS = (
    # lightning.pytorch.utilities._pytree on torch >= 2.10; harmless, fixed upstream later
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
)


def quiet_third_party() -> None:
    """Filter the known messages above (idempotent)."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric.utilities.rank_zero").setLevel(logging.WARNING)
    for category, message in _KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
