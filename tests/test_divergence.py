"""pipeline.core.divergence: the loss and weight rules that stop a diverged run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core.divergence import check_loss, check_weights
from pipeline.core.errors import TrainingDivergedError

KW = dict(where="glove", lr_key="glove.lr", lr=100.0, when="in epoch 2")


def test_loss_far_above_its_start_or_not_finite_is_divergence():
    check_loss(9.9, 1.0, **KW)  # below 10x: fine
    check_loss(1e9, None, **KW)  # no reference yet: only finiteness is checked
    with pytest.raises(TrainingDivergedError, match=r"^glove: training diverged in epoch 2: "
                       r"loss 1e\+09 is more than 10x its start 0\.2 \(glove\.lr = 100\)"):  # fmt: skip
        check_loss(1e9, 0.2, **KW)
    with pytest.raises(TrainingDivergedError, match=r"loss became nan in epoch 2 .*glove\.lr"):
        check_loss(float("nan"), 0.2, **KW)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize(
    ("value", "message"),
    [(5e3, r"parameter b has \|w\| = 5000 \(bound 1000\)"), (-np.inf, "non-finite"),
     (np.nan, "non-finite")],
)  # fmt: skip
def test_weights_beyond_the_bound_or_not_finite_are_divergence(lib, value, message):
    good = np.ones((3, 4), np.float32)
    bad = good.copy()
    bad[1, 2] = value
    conv = torch.from_numpy if lib == "torch" else np.asarray
    check_weights([("a", conv(good)), ("empty", conv(np.zeros(0, np.float32)))], **KW)
    with pytest.raises(TrainingDivergedError, match=message + r".*lower glove\.lr"):
        check_weights([("a", conv(good)), ("b", conv(bad))], **KW)
