"""pipeline.core.devices: `auto` resolves to what is there; an impossible request names its key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.core.devices import resolve_device
from pipeline.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_auto_and_explicit_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    assert resolve_device("cpu") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_names_the_key():
    with pytest.raises(ConfigError, match="glove.device: cuda requested"):
        resolve_device("cuda", "glove.device")


def test_explicit_cpu_does_not_import_torch():
    code = (
        "import sys; from pipeline.core.devices import resolve_device; "
        "assert resolve_device('cpu') == 'cpu'; assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)
