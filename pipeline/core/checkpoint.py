"""Fingerprints and per-epoch checkpoints: the one resume mechanism of every trainer.

A *fingerprint* is the sha256 of everything that changes what a run computes: its
settings (as JSON), its input arrays and files. A checkpoint stores it, and a later run
resumes from the checkpoint only when its own fingerprint is the same, so a checkpoint
left by other settings or other data is never continued.

The numpy trainers (GloVe, word2vec) keep one ``.npz`` per run (:func:`save_npz`,
:func:`load_npz`), written atomically and read with ``allow_pickle=False``; the Lightning
stages keep Lightning's own checkpoint next to a fingerprint file
(:mod:`pipeline.seq.training`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.atomic import atomic_path

log = logging.getLogger(__name__)

_FP, _EPOCH, _STATE = "_fingerprint", "_epoch", "_state"


def fingerprint(
    settings: Any,
    *,
    arrays: Iterable[np.ndarray] = (),
    files: Iterable[str | os.PathLike] = (),
    texts: Iterable[str] = (),
) -> str:
    """sha256 of ``settings`` (JSON, keys sorted), then each array's bytes, each file's
    name and bytes, and each text (NUL-separated), in the order given."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(str(arr.dtype).encode() + str(arr.shape).encode())
        h.update(arr.view(np.uint8).reshape(-1).data if arr.size else b"")
    for path in files:
        path = Path(path)
        h.update(path.name.encode() + b"\0")
        with open(path, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def source_digest(*paths: str | os.PathLike) -> str:
    """sha256 of source files, so that a fixed kernel never resumes an old run."""
    h = hashlib.sha256()
    for path in paths:
        h.update(Path(path).read_bytes())
    return h.hexdigest()


@dataclass
class Checkpoint:
    """What :func:`load_npz` found: the epochs done, the arrays, the JSON state."""

    epoch: int
    arrays: dict[str, np.ndarray]
    state: dict[str, Any]


def save_npz(
    path: str | os.PathLike,
    fp: str,
    epoch: int,
    arrays: Mapping[str, np.ndarray],
    state: Mapping[str, Any] | None = None,
) -> None:
    """Write ``arrays`` and a JSON ``state`` to one ``.npz``, replaced atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        _FP: np.array(fp),
        _EPOCH: np.array(epoch, dtype=np.int64),
        _STATE: np.array(json.dumps(dict(state or {}))),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays, **meta)


def load_npz(
    path: str | os.PathLike, fp: str, names: Iterable[str], max_epoch: int | None = None
) -> Checkpoint | None:
    """The checkpoint at ``path`` if it exists, is readable and has fingerprint ``fp``
    (and at most ``max_epoch`` epochs); otherwise ``None``, said in the log."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z[_FP]) != fp:
                log.info("%s is for other inputs or settings: starting fresh", path)
                return None
            epoch = int(z[_EPOCH])
            if max_epoch is not None and epoch > max_epoch:
                log.info("%s has %d epochs, more than the %d asked: starting fresh",
                         path, epoch, max_epoch)  # fmt: skip
                return None
            arrays = {k: np.ascontiguousarray(z[k]).copy() for k in names}
            state = json.loads(str(z[_STATE]))
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring unreadable checkpoint %s (%s): starting fresh", path, exc)
        return None
    return Checkpoint(epoch=epoch, arrays=arrays, state=state)
