"""Trainer helpers: settings validation, CPU precision, fixed checkpoint path, resume,
determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError, DataError
from pipeline.seq.training import (
    TrainerSettings,
    build_trainer,
    checkpoint_file,
    clear_checkpoints,
    export_weights,
    fit,
    last_checkpoint_file,
    load_state_dict,
    resolve_precision,
)


def test_settings_validate_with_key_names():
    s = from_mapping(
        TrainerSettings, {"max_epochs": 3, "limit_train_batches": 5}, where="ner.trainer"
    )
    assert s.max_epochs == 3 and s.limit_train_batches == 5
    with pytest.raises(ConfigError, match="ner.trainer.precision"):
        from_mapping(TrainerSettings, {"precision": "fp8"}, where="ner.trainer")
    with pytest.raises(ConfigError, match="ner.trainer.max_epochs"):
        from_mapping(TrainerSettings, {"max_epochs": 0}, where="ner.trainer")


def test_cpu_precision_is_32():
    assert resolve_precision(TrainerSettings(accelerator="cpu")) == "32-true"
    assert (
        resolve_precision(TrainerSettings(accelerator="cpu", precision="bf16-mixed"))
        == "bf16-mixed"
    )


def _loaders(seed=0):
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(seed)
    x = torch.randint(3, 20, (64, 5), generator=g)
    y = (x[:, 0] > 10).long()  # label from the first token
    lengths = torch.full((64,), 5)
    ds = TensorDataset(x, lengths, y)
    return (
        DataLoader(ds, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0)),
        DataLoader(ds, batch_size=32),
    )


def _module():
    from pipeline.seq.lit import ClassifierModule
    from pipeline.seq.sentiment import AveragingClassifier

    return ClassifierModule(AveragingClassifier(20, 8), lr=0.05)


def _settings(**kw):
    return TrainerSettings(
        accelerator="cpu",
        progress_bar=False,
        patience=0,
        num_threads=1,
        monitor="val_acc",
        mode="max",
        seed=0,
        **kw,
    )


def test_fit_writes_fixed_checkpoint_resumes_and_is_deterministic(tmp_path):
    trainer = build_trainer(_settings(max_epochs=2), tmp_path / "a")
    module = _module()  # after seed_everything (inside build_trainer)
    best = fit(trainer, module, _loaders())
    assert best == checkpoint_file(tmp_path / "a") and best.name == "model.ckpt"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["last.ckpt", "model.ckpt"]
    weights = load_state_dict(best)
    assert set(weights) == {"embedding.weight", "proj.weight", "proj.bias"}

    # same seed -> identical weights
    trainer_b = build_trainer(_settings(max_epochs=2), tmp_path / "b")
    fit(trainer_b, _module(), _loaders())
    torch.testing.assert_close(
        load_state_dict(checkpoint_file(tmp_path / "b")), weights, rtol=0, atol=0
    )

    # resume: continues from epoch 2 to 4 instead of starting over
    trainer_c = build_trainer(_settings(max_epochs=4), tmp_path / "a")
    fit(trainer_c, _module(), _loaders(), ckpt_path=best)
    assert trainer_c.current_epoch == 4
    assert not np.allclose(
        load_state_dict(best)["proj.weight"].numpy(), weights["proj.weight"].numpy()
    )


def test_resume_from_last_checkpoint_of_a_finished_run_trains_nothing(tmp_path):
    # mode "min" on accuracy: the best checkpoint is an early epoch, not the last one
    settings = _settings(max_epochs=3)
    settings = type(settings)(**{**settings.__dict__, "mode": "min"})
    trainer = build_trainer(settings, tmp_path)
    fit(trainer, _module(), _loaders())
    last = last_checkpoint_file(tmp_path)
    epochs = {
        p.name: torch.load(p, map_location="cpu", weights_only=True)["epoch"]
        for p in (last, checkpoint_file(tmp_path))
    }
    assert epochs["last.ckpt"] == 2  # 0-based: the state after the third epoch
    before = {p: load_state_dict(p) for p in (last, checkpoint_file(tmp_path))}
    resumed = build_trainer(settings, tmp_path)
    fit(resumed, _module(), _loaders(), ckpt_path=last)
    assert resumed.current_epoch == 3 and resumed.global_step == trainer.global_step
    for path, weights in before.items():  # nothing retrained, nothing overwritten
        torch.testing.assert_close(load_state_dict(path), weights, rtol=0, atol=0)
    clear_checkpoints(tmp_path)
    assert not last.exists() and not checkpoint_file(tmp_path).exists()


def test_exported_weights_do_not_depend_on_the_checkpoint_folder(tmp_path):
    # Lightning checkpoints hold the callbacks' absolute dirpath: the same weights saved
    # from two checkouts hashed differently in dvc.lock. The export keeps the weights only.
    weights = {"model.w": torch.arange(6.0).reshape(2, 3), "model.b": torch.ones(2)}
    outs = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        ckpt = {
            "state_dict": weights,
            "callbacks": {"ModelCheckpoint": {"dirpath": str(folder.resolve())}},
            "optimizer_states": [{"step": len(name)}],
        }
        torch.save(ckpt, folder / "lightning.ckpt")
        export_weights(folder / "lightning.ckpt", folder / "model.ckpt")
        outs.append(folder / "model.ckpt")
    assert outs[0].read_bytes() == outs[1].read_bytes()
    loaded = load_state_dict(outs[0])
    assert set(loaded) == {"w", "b"} and torch.equal(loaded["w"], weights["model.w"])
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="junk.ckpt"):
        export_weights(tmp_path / "junk.ckpt", tmp_path / "out.ckpt")


def test_divergence_guard_checks_windows_against_the_first_step_and_weights():
    from types import SimpleNamespace

    from pipeline.core.errors import TrainingDivergedError
    from pipeline.seq.callbacks import DivergenceGuard

    guard = DivergenceGuard("lm", "lm.common.lr", lr=0.5, window=3)
    trainer = SimpleNamespace(global_step=0, current_epoch=0)
    module = torch.nn.Linear(2, 2)
    for loss in (2.0, 5.0, 19.0, 1.0):  # first step 2.0; window mean 8.3 < 20
        guard.on_train_batch_end(trainer, module, {"loss": torch.tensor(loss)}, None, 0)
    guard.on_train_epoch_end(trainer, module)
    assert guard.state_dict() == {"reference": 2.0}
    resumed = DivergenceGuard("lm", "lm.common.lr", lr=0.5, window=3)
    resumed.load_state_dict(guard.state_dict())  # a resumed run keeps the first step
    for loss in (30.0, 30.0):
        resumed.on_train_batch_end(trainer, module, torch.tensor(loss), None, 0)
    with pytest.raises(TrainingDivergedError, match=r"loss 30 is more than 10x its start 2 "
                       r"\(lm\.common\.lr = 0\.5\); lower lm\.common\.lr"):  # fmt: skip
        resumed.on_train_batch_end(trainer, module, torch.tensor(30.0), None, 0)
    with torch.no_grad():
        module.weight[0, 0] = 5e3
    with pytest.raises(TrainingDivergedError, match=r"parameter weight has \|w\| = 5000"):
        guard.on_train_epoch_end(trainer, module)


def test_run_timer_does_not_restore_the_time_of_an_earlier_run():
    from datetime import timedelta

    from pipeline.seq.callbacks import RunTimer

    timer = RunTimer(duration=timedelta(seconds=60))
    timer.load_state_dict({"time_elapsed": {"train": 1e6}})
    assert timer.time_elapsed("train") == 0
