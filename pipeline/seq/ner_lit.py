"""A thin LightningModule around :class:`pipeline.seq.ner.NerTagger`.

Training minimises the tagger's loss; each validation epoch decodes the validation
sentences and logs ``val_f1`` (entity-level, conlleval), ``val_loss`` and the epoch's
training time, so early stopping and the checkpoint follow the F1 score.
"""

from __future__ import annotations

import time

import lightning as L
import torch

from pipeline.errors import TrainingDivergedError
from pipeline.seq.conlleval import evaluate
from pipeline.seq.ner import NerModelConfig, NerTagger


class NerLit(L.LightningModule):
    """Wraps ``model`` (kept as ``self.model``: checkpoints hold ``model.*`` weights)."""

    def __init__(self, model: NerTagger, config: NerModelConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self._gold: list[list[str]] = []
        self._pred: list[list[str]] = []
        self._epoch_start = 0.0
        #: seconds of each finished training epoch (training steps only, no validation)
        self.epoch_times: list[float] = []
        self.history: list[dict[str, float]] = []

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        cfg = self.config
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()

    def training_step(self, batch, batch_idx):
        loss = self.model.loss(batch)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"ner: loss became {loss.item()} at epoch {self.current_epoch}, batch {batch_idx} "
                "(lower ner.model.lr or raise ner.trainer.gradient_clip_val)"
            )
        self.log("train_loss", loss, prog_bar=True, batch_size=int(batch["lengths"].numel()))
        return loss

    def on_train_epoch_end(self) -> None:
        self.epoch_times.append(time.perf_counter() - self._epoch_start)
        self.log("epoch_time_s", self.epoch_times[-1])

    def on_validation_epoch_start(self) -> None:
        self._gold, self._pred = [], []

    def validation_step(self, batch, batch_idx):
        em = self.model.emissions(batch)
        loss = self.model.loss(batch, em)
        tags = self.model.tags
        for row, path, n in zip(
            batch["tags"].tolist(),
            self.model.decode(batch, em),
            batch["lengths"].tolist(),
            strict=True,
        ):
            self._gold.append([tags[t] for t in row[:n]])
            self._pred.append([tags[t] for t in path])
        self.log("val_loss", loss, batch_size=int(batch["lengths"].numel()))

    def on_validation_epoch_end(self) -> None:
        result = evaluate(self._gold, self._pred)
        self.log("val_f1", result.f1, prog_bar=True)
        self.log("val_precision", result.precision)
        self.log("val_recall", result.recall)
        self.history.append({"epoch": self.current_epoch, "val_f1": result.f1})
