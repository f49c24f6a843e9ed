"""Thin LightningModules: each receives a plain ``nn.Module`` and adds the loss, the
optimizer and per-epoch validation metrics. The model lives in ``self.model`` so its
weights are the checkpoint keys starting with ``model.`` (see
:func:`pipeline.seq.training.load_state_dict`).
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F

from pipeline.core.errors import TrainingDivergedError
from pipeline.seq.encoder import detach_hidden


def _adam(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    params = [p for p in module.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _check_finite(loss: torch.Tensor, where: str) -> None:
    if not torch.isfinite(loss):
        raise TrainingDivergedError(
            f"{where}: loss became {loss.item()} (lower lr, clip gradients)"
        )


class ClassifierModule(L.LightningModule):
    """Many-to-one classification: batches ``(ids (B, T), lengths (B,), labels (B,))``;
    ``model(ids, lengths) -> logits (B, C)``. Logs ``val_loss``, ``val_acc`` (and
    ``test_*``) per epoch."""

    def __init__(self, model: nn.Module, lr: float = 1e-3, weight_decay: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model(ids, lengths)

    def _step(self, batch, stage: str) -> torch.Tensor:
        ids, lengths, labels = batch
        logits = self.model(ids, lengths).float()  # (B, C)
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(-1) == labels).float().mean()
        on_step = stage == "train"
        bs = labels.shape[0]
        self.log(
            f"{stage}_loss",
            loss,
            on_step=on_step,
            on_epoch=True,
            batch_size=bs,
            prog_bar=stage != "train",
        )
        self.log(
            f"{stage}_acc",
            acc,
            on_step=False,
            on_epoch=True,
            batch_size=bs,
            prog_bar=stage != "train",
        )
        return loss

    def training_step(self, batch, batch_idx):
        loss = self._step(batch, "train")
        _check_finite(loss, "train_sentiment")
        return loss

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        return _adam(self.model, self.lr, self.weight_decay)


class LanguageModelModule(L.LightningModule):
    """Truncated BPTT: batches ``(x (B, T), y (B, T))`` are consecutive chunks of B
    parallel streams; the hidden state is carried (detached) from one chunk to the next
    and reset at the start of every epoch. ``model.nll(x, y, hidden) -> (nll (B * T,),
    hidden)``. Logs ``train_loss`` and, per epoch, ``val_loss`` (nats per token) and
    ``val_ppl``."""

    def __init__(self, model: nn.Module, lr: float = 2e-3, weight_decay: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay
        self._hidden = None
        self._val_hidden = None
        self._val_nll = 0.0
        self._val_n = 0

    def on_train_epoch_start(self) -> None:
        self._hidden = None

    def training_step(self, batch, batch_idx):
        x, y = batch
        nll, hidden = self.model.nll(x, y, self._hidden)  # (B * T,)
        self._hidden = detach_hidden(hidden)
        loss = nll.mean()
        _check_finite(loss, "train_lm")
        self.log(
            "train_loss", loss, on_step=True, on_epoch=True, batch_size=y.numel(), prog_bar=True
        )
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_hidden = None
        self._val_nll, self._val_n = 0.0, 0

    def validation_step(self, batch, batch_idx):
        x, y = batch
        nll, self._val_hidden = self.model.nll(x, y, self._val_hidden)
        self._val_nll += float(nll.sum())
        self._val_n += y.numel()

    def on_validation_epoch_end(self) -> None:
        if self._val_n:
            loss = self._val_nll / self._val_n
            self.log("val_loss", loss, prog_bar=True)
            self.log("val_ppl", math.exp(min(loss, 50.0)), prog_bar=True)

    def configure_optimizers(self):
        return _adam(self.model, self.lr, self.weight_decay)
