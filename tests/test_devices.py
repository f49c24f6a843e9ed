"""pipeline.core.devices: `auto` resolves to what is there; an impossible request names its key."""

from __future__ import annotations

import pytest
import torch

from pipeline.core.devices import resolve_device
from pipeline.core.errors import ConfigError


def test_auto_and_explicit_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    assert resolve_device("cpu") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_names_the_key():
    with pytest.raises(ConfigError, match="glove.device: cuda requested"):
        resolve_device("cuda", "glove.device")
