"""Pick the compute device for the trainers that run outside Lightning (GloVe, skip-gram)."""

from __future__ import annotations

from pipeline.core.errors import ConfigError


def resolve_device(device: str, key: str = "device") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``.

    An explicit ``cuda`` without a GPU is a :class:`ConfigError` naming ``key``
    (e.g. ``glove.device``), rather than a crash deep inside torch. An explicit ``cpu``
    does not import torch (about 200 MB of a process that trains on numba alone).
    """
    if device == "cpu":
        return device
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        has_cuda = False
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device == "cuda" and not has_cuda:
        raise ConfigError(f"{key}: cuda requested but no CUDA device is available")
    return device
