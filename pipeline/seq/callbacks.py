"""Lightning callbacks that make a sequence-model run safe to stop, resume and trust.

- :class:`DivergenceGuard`: stops a run whose loss climbs far above where it started or
  whose weights blow up (the rule of :mod:`pipeline.core.divergence`), naming the
  learning-rate setting.
- :class:`EpochSeeder`: seeds torch, numpy and ``random`` from ``(seed, epoch)`` at the
  first step of every training epoch, so an epoch's dropout masks (and anything else drawn
  from the global generators) do not depend on the epochs before it: a run resumed from
  the checkpoint of epoch k draws exactly what the uninterrupted run drew.
- :class:`RunTimer`: Lightning's ``Timer`` (``max_time_s``) without restoring the time
  spent by the run a checkpoint came from: a resumed run gets its own full budget.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, Timer

from pipeline.core.divergence import LOSS_FACTOR, MAX_ABS_WEIGHT, check_loss, check_weights


class DivergenceGuard(Callback):
    """Raise :class:`~pipeline.core.errors.TrainingDivergedError` naming ``lr_key`` when
    the mean training loss of a window of ``window`` steps is more than ``factor`` times
    the loss of the first step (the untrained model's), or at an epoch's end when a
    parameter is not finite or beyond ``bound``.

    Losses stay on the device and are read once per window (no sync every step). The
    reference loss is kept in checkpoints, so a resumed run compares with the same start.
    """

    def __init__(self, where: str, lr_key: str, lr: float | None = None, window: int = 20,
                 factor: float = LOSS_FACTOR, bound: float = MAX_ABS_WEIGHT) -> None:  # fmt: skip
        self.where, self.lr_key, self.lr = where, lr_key, lr
        self.window, self.factor, self.bound = window, factor, bound
        self.reference: float | None = None
        self._pending: list[torch.Tensor] = []

    def _kw(self, when: str) -> dict[str, Any]:
        return dict(where=self.where, lr_key=self.lr_key, lr=self.lr, when=when)

    def _check_window(self, trainer) -> None:
        if not self._pending:
            return
        mean = float(torch.stack(self._pending).float().mean())
        self._pending = []
        check_loss(mean, self.reference, factor=self.factor,
                   **self._kw(f"by step {trainer.global_step}"))  # fmt: skip

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        loss = loss.detach()
        if self.reference is None:
            self.reference = float(loss)  # the first step: before any update
            check_loss(self.reference, None, **self._kw(f"at step {trainer.global_step}"))
            return
        self._pending.append(loss)
        if len(self._pending) >= self.window:
            self._check_window(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check_window(trainer)  # the rest of the epoch: checkpoints hold no window
        check_weights(pl_module.named_parameters(), bound=self.bound,
                      **self._kw(f"in epoch {trainer.current_epoch + 1}"))  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {"reference": self.reference}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.reference = state_dict.get("reference")


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` (0-based): a function of ``(seed, epoch)`` only."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class EpochSeeder(Callback):
    """Seed torch (CPU and CUDA), numpy and ``random`` with :func:`epoch_seed` just before
    the first training step of every epoch.

    Not at ``on_train_epoch_start``: a resumed run makes its data loader iterator (which
    draws a base seed from the global generator) at another moment than an uninterrupted
    one, so only the first step is a point both reach with the same draws ahead.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx != 0:
            return
        s = epoch_seed(self.seed, trainer.current_epoch)
        torch.manual_seed(s)  # also every CUDA device
        np.random.seed(s)
        random.seed(s)


class RunTimer(Timer):
    """``Timer`` whose budget counts only this run: the elapsed time stored in a
    checkpoint by an earlier (killed) run is not restored."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        return None
