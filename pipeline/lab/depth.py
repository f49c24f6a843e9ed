"""Deep RNNs side by side: the word LM's settings with 1, 2, 3 ... stacked layers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.config import from_mapping
from pipeline.seq.lm import LMConfig, merge_sections


@dataclass(frozen=True)
class DepthStudy:
    """Layer counts compared, and the slices and epochs that fit the budget."""

    layers: list[int] = field(default_factory=lambda: [1, 2, 3])
    max_train_tokens: int = field(default=100000, metadata={"min": 100})
    max_eval_tokens: int = field(default=20000, metadata={"min": 100})
    max_epochs: int = field(default=1, metadata={"min": 1})

    def __post_init__(self) -> None:
        if not self.layers or min(self.layers) < 1:
            raise ValueError(f"layers: {self.layers} must be a non-empty list of counts >= 1")


def depth_configs(
    common: Mapping[str, Any], level: Mapping[str, Any], study: DepthStudy
) -> dict[int, LMConfig]:
    """One :class:`LMConfig` per layer count: ``lm.common`` merged with the level's
    settings, then the study's slices, epochs and ``arch.num_layers``."""
    out = {}
    for n in study.layers:
        merged = merge_sections(
            merge_sections(common, level),
            {
                "arch": {"num_layers": n},
                "max_train_tokens": study.max_train_tokens,
                "max_eval_tokens": study.max_eval_tokens,
                "resume": False,
                "trainer": {"max_epochs": study.max_epochs, "patience": 0, "progress_bar": False},
            },
        )
        out[n] = from_mapping(LMConfig, merged, where="lab.lm_depth")
    return out
