"""A thin LightningModule around :class:`pipeline.seq.ner.NerTagger`.

Training minimises the tagger's loss; each validation epoch decodes the validation
sentences and logs ``val_f1`` (entity-level, conlleval), ``val_loss`` and the epoch's
training time, so early stopping and the checkpoint follow the F1 score.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning as L
import torch

from pipeline.core import checkpoint
from pipeline.core.errors import TrainingDivergedError
from pipeline.seq.conlleval import evaluate
from pipeline.seq.encoder import EncoderConfig
from pipeline.seq.ner import (
    EncodedSentence,
    NerDataConfig,
    NerModelConfig,
    NerTagger,
    make_loader,
)
from pipeline.seq.training import TrainerSettings, train_resumable


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


# --------------------------------------------------------------------------- one run
@dataclass(frozen=True)
class NerConfig:
    """The whole ``ner`` section: where things are, which embedding, and the settings of
    data, model, encoder and trainer. ``embedding``: ``random`` or the name of a folder
    under ``embeddings_dir`` (an :class:`~pipeline.embeddings.vectors.Embeddings` artifact)."""

    data_dir: str = "data/raw/conll2003"
    embeddings_dir: str = "data/processed/embeddings"
    model_dir: str = "data/processed/models/ner"
    reports_dir: str = "reports/ner"
    checkpoint_dir: str = "data/interim/train_ner"
    embedding: str = "random"  # random | a folder under embeddings_dir (glove, sgns, gnews, ...)
    resume: bool = False
    data: NerDataConfig = field(default_factory=NerDataConfig)
    model: NerModelConfig = field(default_factory=NerModelConfig)
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(bidirectional=True))
    trainer: TrainerSettings = field(
        default_factory=lambda: TrainerSettings(monitor="val_f1", mode="max")
    )


def fingerprint(config: NerConfig, files: list[Path]) -> str:
    """sha256 of the config and the input files: a checkpoint is resumed only if it matches."""
    # Where outputs go and whether to resume do not change what training computes.
    settings = {
        k: v
        for k, v in asdict(config).items()
        if k not in ("resume", "model_dir", "reports_dir", "checkpoint_dir")
    }
    return checkpoint.fingerprint(settings, files=files)


@dataclass
class NerRunResult:
    """A trained tagger and what the stage reports about its training."""

    model: NerTagger
    best_checkpoint: Path
    epoch_times: list[float]
    epochs_run: int
    resumed: bool
    history: list[dict[str, float]]
    device: str = "cpu"  # where it trained (after teardown the model is back on the CPU)


def train_tagger(
    model: NerTagger,
    train: list[EncodedSentence],
    valid: list[EncodedSentence],
    config: NerConfig,
    fingerprint_value: str,
    logger=None,
) -> NerRunResult:
    """Fit ``model`` with the shared driver
    (:func:`pipeline.seq.training.train_resumable`: early stopping and checkpoint on
    ``val_f1``, the fingerprint always stamped, ``<checkpoint_dir>/last.ckpt`` continued
    only with ``ner.resume`` and a matching fingerprint); returns the model loaded with
    the best weights. A diverging run stops with an error naming ``ner.model.lr``."""
    settings = config.trainer
    loaders = (
        make_loader(train, config.data.batch_size, shuffle=True, seed=settings.seed),
        make_loader(valid, config.data.eval_batch_size, shuffle=False),
    )
    run = train_resumable(
        lambda: NerLit(model, config.model), loaders, settings, config.checkpoint_dir, fingerprint_value,
        resume=config.resume, lr_key="ner.model.lr", lr=config.model.lr, logger=logger,
    )  # fmt: skip
    model.eval()
    return NerRunResult(
        model, run.best, run.module.epoch_times, run.trainer.current_epoch, run.resumed,
        run.module.history, device=run.trainer.strategy.root_device.type,
    )  # fmt: skip
