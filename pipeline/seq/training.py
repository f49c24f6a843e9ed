"""Lightning ``Trainer`` construction shared by the sequence-model stages.

One place decides precision (bf16-mixed on GPU, 32 on CPU), early stopping on the
validation metric, the checkpoint at a fixed path (``<checkpoint_dir>/model.ckpt``, so
DVC sees fixed paths), seeding and deterministic CPU runs::

    trainer = build_trainer(TrainerSettings(max_epochs=5), "data/interim/train_lm_word",
                            logger=tracker.lightning_logger())
    best = fit(trainer, module, (train_loader, val_loader))

The stages go through :func:`train_resumable`, which adds resuming (only a checkpoint of
the same fingerprint), per-epoch seeding and the divergence guard around the two.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from pipeline.core.errors import ConfigError
from pipeline.seq.quiet import quiet_third_party

CHECKPOINT_NAME = "model"
LAST_NAME = "last"  # the state after the latest epoch: what a killed run resumes from
FINGERPRINT_FILE = "fingerprint.txt"  # the fingerprint of the run the checkpoints belong to


@dataclass(frozen=True)
class TrainerSettings:
    """What the Lightning ``Trainer`` does; validated from a config section.

    ``gradient_clip_val`` clips the gradient norm (0 disables). ``patience``: validation
    checks without improvement of ``monitor`` before stopping (0 disables early stopping).
    ``precision: auto`` is ``bf16-mixed`` on a GPU and ``32-true`` on CPU.
    ``deterministic`` applies to CPU runs (on GPU cuDNN RNNs are left fast).
    ``limit_*_batches``: a fraction (float <= 1) or a number of batches (int).
    ``max_time_s``: stop training after this many seconds (None: no limit).
    ``devices``: processes per node (GPUs, or CPU processes); ``auto`` is every visible
    GPU on a GPU and one process on CPU. ``num_nodes``: machines. With more than one
    process in all, training is data-parallel (``strategy: auto`` or ``ddp``: DDP; see
    :mod:`pipeline.seq.distributed` for how batches and metrics are split).
    """

    max_epochs: int = field(default=10, metadata={"min": 1})
    gradient_clip_val: float = field(default=1.0, metadata={"min": 0.0})
    patience: int = field(default=3, metadata={"min": 0})
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = "auto"
    deterministic: bool = True
    seed: int = 0
    log_every_n_steps: int = field(default=10, metadata={"min": 1})
    limit_train_batches: int | float = field(default=1.0, metadata={"gt": 0})
    limit_val_batches: int | float = field(default=1.0, metadata={"gt": 0})
    max_time_s: float | None = field(default=None, metadata={"gt": 0})
    progress_bar: bool = True
    num_threads: int = field(default=0, metadata={"min": 0})  # torch CPU threads; 0 = default
    strategy: Literal["auto", "ddp"] = "auto"
    devices: int | Literal["auto"] = field(default=1, metadata={"min": 1})
    num_nodes: int = field(default=1, metadata={"min": 1})


def uses_gpu(settings: TrainerSettings) -> bool:
    """Whether the trainer will run on a CUDA device."""
    if settings.accelerator == "cpu":
        return False
    available = torch.cuda.is_available()
    if settings.accelerator in ("gpu", "cuda") and not available:
        raise ConfigError(f"accelerator: {settings.accelerator!r} asked for but no GPU is visible")
    return available


def processes_per_node(settings: TrainerSettings) -> int:
    """``settings.devices`` as a number (``auto``: every visible GPU, or 1 on CPU)."""
    if settings.devices != "auto":
        return int(settings.devices)
    return max(1, torch.cuda.device_count()) if uses_gpu(settings) else 1


def world_size(settings: TrainerSettings) -> int:
    """How many training processes the settings ask for (all nodes together)."""
    return processes_per_node(settings) * settings.num_nodes


def resolve_precision(settings: TrainerSettings) -> str:
    """``auto`` -> ``bf16-mixed`` on GPU, ``32-true`` on CPU; anything else unchanged."""
    if settings.precision != "auto":
        return settings.precision
    return "bf16-mixed" if uses_gpu(settings) else "32-true"


def checkpoint_file(checkpoint_dir: str | os.PathLike) -> Path:
    """Where :func:`build_trainer`'s checkpoint callback writes the best model."""
    return Path(checkpoint_dir) / f"{CHECKPOINT_NAME}.ckpt"


def last_checkpoint_file(checkpoint_dir: str | os.PathLike) -> Path:
    """Where :func:`build_trainer` writes the state after every epoch (model, optimizer,
    epoch, early-stopping and best-model bookkeeping): pass it to :func:`fit` as
    ``ckpt_path`` to resume. Resuming from the best checkpoint instead would repeat the
    epochs after the best one, and a finished run would not reproduce its result."""
    return Path(checkpoint_dir) / f"{LAST_NAME}.ckpt"


def clear_checkpoints(checkpoint_dir: str | os.PathLike) -> None:
    """Remove the best and the last checkpoint (a fresh start)."""
    checkpoint_file(checkpoint_dir).unlink(missing_ok=True)
    last_checkpoint_file(checkpoint_dir).unlink(missing_ok=True)


def build_trainer(
    settings: TrainerSettings,
    checkpoint_dir: str | os.PathLike,
    logger: Any = None,
    callbacks: list | None = None,
):
    """A seeded ``lightning.Trainer`` with early stopping and a fixed-path checkpoint.

    ``logger``: e.g. ``tracker.lightning_logger()`` (None: no logging). The best model
    (by ``settings.monitor``) is written to ``checkpoint_file(checkpoint_dir)``, the state
    after each epoch to ``last_checkpoint_file(checkpoint_dir)`` (for resuming).
    With several processes (``settings.devices`` x ``settings.num_nodes``) it is a DDP
    trainer whose processes each train on their share of the batches and validate on
    the whole validation set (:mod:`pipeline.seq.distributed`); only rank 0 writes the
    checkpoints and logs.
    """
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar

    L.seed_everything(settings.seed, workers=True, verbose=False)
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    gpu = uses_gpu(settings)
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    cbs: list = [
        ModelCheckpoint(
            dirpath=checkpoint_dir,
            filename=CHECKPOINT_NAME,
            monitor=settings.monitor,
            mode=settings.mode,
            save_top_k=1,
            save_last=False,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        ),
        # every epoch, whether it improved or not (save_last only follows the best)
        ModelCheckpoint(
            dirpath=checkpoint_dir,
            filename=LAST_NAME,
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        ),
    ]
    if settings.patience > 0:
        cbs.append(
            EarlyStopping(monitor=settings.monitor, mode=settings.mode, patience=settings.patience)
        )
    if settings.progress_bar:
        cbs.append(TQDMProgressBar(refresh_rate=max(1, settings.log_every_n_steps)))
    cbs.extend(callbacks or [])
    if settings.max_time_s is not None:
        from datetime import timedelta

        from pipeline.seq.callbacks import RunTimer  # a resumed run gets its own budget

        cbs.append(RunTimer(duration=timedelta(seconds=settings.max_time_s)))
    strategy: Any = "auto"
    if world_size(settings) > 1:  # "auto" and "ddp" alike: one device needs no DDP
        from pipeline.seq.distributed import sharding_ddp_strategy

        strategy = sharding_ddp_strategy()
    quiet_third_party()
    return L.Trainer(
        accelerator="gpu" if gpu else "cpu",
        devices=processes_per_node(settings),
        num_nodes=settings.num_nodes,
        strategy=strategy,
        use_distributed_sampler=False,  # the strategy shards the training batches itself
        precision=resolve_precision(settings),
        max_epochs=settings.max_epochs,
        gradient_clip_val=settings.gradient_clip_val or None,
        gradient_clip_algorithm="norm",
        deterministic=settings.deterministic and not gpu,
        logger=logger if logger is not None else False,
        callbacks=cbs,
        enable_progress_bar=settings.progress_bar,
        enable_model_summary=False,
        log_every_n_steps=settings.log_every_n_steps,
        limit_train_batches=settings.limit_train_batches,
        limit_val_batches=settings.limit_val_batches,
        default_root_dir=str(checkpoint_dir),
        num_sanity_val_steps=0,
    )


def fit(trainer, module, data, ckpt_path: str | os.PathLike | None = None) -> Path | None:
    """Train ``module``; ``data`` is a ``LightningDataModule`` or ``(train, val)`` loaders.

    ``ckpt_path``: resume from this checkpoint (model, optimizer, epoch and callbacks).
    Returns the path of the best checkpoint (None if none was written).
    """
    import lightning as L

    ckpt = str(ckpt_path) if ckpt_path is not None else None
    if isinstance(data, L.LightningDataModule):
        trainer.fit(module, datamodule=data, ckpt_path=ckpt)
    else:
        train_loader, val_loader = data
        trainer.fit(
            module, train_dataloaders=train_loader, val_dataloaders=val_loader, ckpt_path=ckpt
        )
    cb = trainer.checkpoint_callback
    best = getattr(cb, "best_model_path", "") if cb is not None else ""
    return Path(best) if best else None


@dataclass
class TrainingRun:
    """What :func:`train_resumable` returns: the module (its ``model`` holds the best
    weights), the trainer after ``fit``, the checkpoint the weights came from and whether
    the run continued an earlier one."""

    module: Any
    trainer: Any
    best: Path
    resumed: bool


def train_resumable(
    make_module: Callable[[], Any],
    data: Any,
    settings: TrainerSettings,
    checkpoint_dir: str | os.PathLike,
    fingerprint_value: str,
    *,
    resume: bool,
    lr_key: str,
    lr: float | None = None,
    logger: Any = None,
    callbacks: list | None = None,
) -> TrainingRun:
    """The one training driver of the sequence stages: stamp, clear, fit, reload best.

    1. ``<checkpoint_dir>/fingerprint.txt`` is compared with ``fingerprint_value`` (see
       :func:`pipeline.core.checkpoint.fingerprint`; built from everything that changes
       what training computes, never from ``resume`` or the stopping rules). Only with
       ``resume`` and the same fingerprint is ``last.ckpt`` continued; otherwise both
       checkpoints are removed, so a checkpoint of other settings or data is never used.
    2. The fingerprint file is written, whether ``resume`` is set or not, so a run killed
       with ``resume: false`` can be continued by a rerun with ``resume: true``.
    3. ``make_module()`` is called after :func:`build_trainer` has seeded everything (a
       seeded initialisation) and fitted with :class:`~pipeline.seq.callbacks.EpochSeeder`
       (every epoch draws from ``(seed, epoch)``: a resumed run equals the uninterrupted
       one on CPU) and :class:`~pipeline.seq.callbacks.DivergenceGuard` (``lr_key`` is
       the setting its error names).
    4. The best checkpoint's weights are loaded into ``module.model``; a run stopped by
       ``max_time_s`` before its first validation keeps (and saves) its last weights.
    """
    from pipeline.core.atomic import atomic_open
    from pipeline.seq.callbacks import DivergenceGuard, EpochSeeder

    ckdir = Path(checkpoint_dir)
    ckdir.mkdir(parents=True, exist_ok=True)
    last, stamp = last_checkpoint_file(ckdir), ckdir / FINGERPRINT_FILE
    same = stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == fingerprint_value
    resumed = bool(resume and same and last.is_file())
    if not resumed:
        clear_checkpoints(ckdir)
    with atomic_open(stamp) as fh:
        fh.write(fingerprint_value + "\n")
    where = lr_key.split(".")[0]
    guard = DivergenceGuard(where, lr_key, lr)
    cbs = [*(callbacks or []), EpochSeeder(settings.seed), guard]
    trainer = build_trainer(settings, ckdir, logger, callbacks=cbs)
    module = make_module()  # after seed_everything: seeded initialisation
    best = fit(trainer, module, data, ckpt_path=last if resumed else None)
    if best is None or not best.is_file():
        best = checkpoint_file(ckdir)
        if not best.is_file():  # stopped (max_time) before the first validation
            trainer.save_checkpoint(best)
    module.model.load_state_dict(load_state_dict(best))
    return TrainingRun(module=module, trainer=trainer, best=best, resumed=resumed)


def load_state_dict(path: str | os.PathLike, prefix: str = "model.") -> dict[str, torch.Tensor]:
    """The plain ``nn.Module`` weights inside a Lightning checkpoint (never unpickles).

    Keys of the LightningModule's ``state_dict`` starting with ``prefix`` are returned with
    the prefix removed (the thin wrappers in :mod:`pipeline.seq.lit` keep the model in
    ``self.model``).
    """
    from pipeline.core.errors import DataError

    ckpt = _read_checkpoint(path)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise DataError(f"{path}: no state_dict in checkpoint")
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _read_checkpoint(path: str | os.PathLike):
    """``torch.load`` of a checkpoint with ``weights_only=True`` (never unpickles code);
    a missing or unreadable file is a :class:`~pipeline.core.errors.DataError` naming it."""
    from pipeline.core.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a data error here
        raise DataError(f"{path}: cannot read checkpoint ({exc})") from exc


def export_weights(checkpoint: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Write the weights of a Lightning checkpoint, and nothing else, to ``dest``
    (``{"state_dict": ...}``, readable by :func:`load_state_dict`).

    A stage's model output must depend only on the weights: a Lightning checkpoint also
    holds its callbacks' state (the absolute ``dirpath`` of the checkpoint folder, so
    every checkout hashed differently in ``dvc.lock``), the optimizer and the loop state.
    """
    from pipeline.core.errors import DataError

    ckpt = _read_checkpoint(checkpoint)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise DataError(f"{checkpoint}: no state_dict in checkpoint")
    torch.save({"state_dict": ckpt["state_dict"]}, dest)


def epoch_timer():
    """A Lightning callback recording the wall time of each training epoch (``.seconds``)."""
    import time

    from lightning.pytorch.callbacks import Callback

    class EpochTimer(Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self._t0 = 0.0

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.seconds.append(time.perf_counter() - self._t0)

    return EpochTimer()
