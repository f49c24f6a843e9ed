"""When a training run has diverged: the one rule every trainer applies.

A NaN loss is easy to see; a run with too high a learning rate more often stays finite,
with a loss orders of magnitude above where it started and weights in the thousands or
millions, and would pass on vectors that look like vectors. Every trainer therefore
stops with :class:`~pipeline.core.errors.TrainingDivergedError`, naming its
learning-rate setting, when

- a loss is not finite, or more than :data:`LOSS_FACTOR` times its reference (the loss
  the run started from: before training or in its first epoch or steps), or
- a parameter is not finite or larger in magnitude than :data:`MAX_ABS_WEIGHT`
  (trained embeddings and sequence models have entries of order 1-10).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from pipeline.core.errors import TrainingDivergedError

LOSS_FACTOR = 10.0
MAX_ABS_WEIGHT = 1e3


def check_loss(
    loss: float,
    reference: float | None,
    *,
    where: str,
    lr_key: str,
    lr: float | None,
    when: str,
    factor: float = LOSS_FACTOR,
) -> None:
    """Raise if ``loss`` is not finite or above ``factor`` x ``reference`` (when known).

    ``where``: who trains (``glove``); ``lr_key``: the setting to lower (``glove.lr``);
    ``when``: where in training (``in epoch 2``).
    """
    lr_text = f"{lr_key} = {lr:g}" if lr is not None else lr_key
    if not math.isfinite(loss):
        raise TrainingDivergedError(
            f"{where}: loss became {loss} {when} ({lr_text}); lower {lr_key}"
        )
    if reference is not None and reference > 0 and loss > factor * reference:
        raise TrainingDivergedError(
            f"{where}: training diverged {when}: loss {loss:.4g} is more than {factor:g}x "
            f"its start {reference:.4g} ({lr_text}); lower {lr_key}"
        )


def check_weights(
    weights: Iterable[tuple[str, object]],
    *,
    where: str,
    lr_key: str,
    lr: float | None,
    when: str,
    bound: float = MAX_ABS_WEIGHT,
) -> None:
    """Raise if any of the named arrays (numpy or torch) has a non-finite entry or one
    beyond ``bound`` in magnitude. Reads each array twice (max and min), copies nothing."""
    lr_text = f"{lr_key} = {lr:g}" if lr is not None else lr_key
    for name, array in weights:
        if hasattr(array, "detach"):  # a torch parameter: read without autograd
            array = array.detach()
        if (array.numel() if hasattr(array, "numel") else array.size) == 0:
            continue
        hi, lo = float(array.max()), float(array.min())  # NaN propagates through both
        if not (math.isfinite(hi) and math.isfinite(lo)):
            what = "non-finite values"
        elif max(hi, -lo) > bound:
            what = f"|w| = {max(hi, -lo):.4g} (bound {bound:g})"
        else:
            continue
        raise TrainingDivergedError(
            f"{where}: training diverged {when}: parameter {name} has {what} "
            f"({lr_text}); lower {lr_key}"
        )
