"""Validate every section of the composed settings at once, before any stage runs.

Each stage validates its own section when it starts, but by then DVC has already deleted
that stage's outputs. :func:`validate_settings` runs the same validation (the same
dataclasses through :func:`pipeline.core.config.from_mapping`, plus the cross-field
checks the stages make) over the whole mapping, so the ``validate`` stage that every
other stage depends on fails first and a bad value costs nothing::

    sections = validate_settings(yaml.safe_load(open(path)))   # ConfigError names the key

Heavy modules (torch, Lightning) are imported only here, when validating.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError


@dataclass(frozen=True)
class ProfileSection:
    """The ``profile`` section: which profile composed the settings."""

    name: str = ""


def _profile(value: Any) -> None:
    from_mapping(ProfileSection, value, where="profile")


def _fetch(value: Any) -> None:
    from pipeline.data.fetch import parse_settings

    parse_settings(value, where="fetch")


def _prepare(value: Any) -> None:
    from pipeline.data.encode import PrepareSection, resolve

    section = from_mapping(PrepareSection, value, where="prepare")
    for name in section.corpora:
        resolve(section, name)


def _cooccur(value: Any) -> None:
    from pipeline.glove.cooccur import CooccurConfig

    from_mapping(CooccurConfig, value, where="cooccur")


def _glove(value: Any) -> None:
    from pipeline.glove.train import GloveConfig

    from_mapping(GloveConfig, value, where="glove")


def _skipgram(value: Any) -> None:
    from pipeline.word2vec.config import SkipGramConfig, check_combination

    cfg = from_mapping(SkipGramConfig, value, where="skipgram")
    check_combination(cfg, cfg.backend)


def _pretrained(value: Any) -> None:
    from pipeline.embeddings.pretrained import PretrainedConfig

    from_mapping(PretrainedConfig, value, where="pretrained")


def _evaluate(value: Any) -> None:
    from pipeline.evaluation.intrinsic import EvaluateConfig

    from_mapping(EvaluateConfig, value, where="evaluate")


def _debias(value: Any) -> None:
    from pipeline.debias.hard import DebiasConfig

    cfg = from_mapping(DebiasConfig, value, where="debias")
    if cfg.axis not in cfg.axes:
        raise ConfigError(
            f"debias.axis: {cfg.axis!r} is not one of debias.axes ({', '.join(cfg.axes)})"
        )


def _ner(value: Any) -> None:
    from pipeline.seq.ner_lit import NerConfig

    from_mapping(NerConfig, value, where="ner")


def _sentiment(value: Any) -> None:
    from pipeline.seq.sentiment import SentimentConfig

    cfg = from_mapping(SentimentConfig, value, where="sentiment")
    for model in cfg.models:
        if model not in ("avg", "rnn"):
            raise ConfigError(f"sentiment.models: {model!r} is not one of ['avg', 'rnn']")


@dataclass(frozen=True)
class LMSection:
    """The ``lm`` section: ``common`` settings merged into each of ``levels``."""

    common: dict[str, Any]
    levels: dict[str, dict[str, Any]]


def _lm(value: Any) -> None:
    from pipeline.seq.lm import LMConfig, merge_sections

    section = from_mapping(LMSection, value, where="lm")
    known = {f.name for f in fields(LMConfig)}
    unknown = sorted(set(section.common) - known)
    if unknown:  # named under lm.common, not under the first level it is merged into
        raise ConfigError(
            f"lm.common.{unknown[0]}: unknown key (known keys: {', '.join(sorted(known))})"
        )
    for level, over in section.levels.items():
        merged = merge_sections(section.common, over)
        from_mapping(LMConfig, merged, where=f"lm.levels.{level}")


def _lab(value: Any) -> None:
    from pipeline.lab.agreement import AgreementStudy, LMAgreementConfig
    from pipeline.lab.course import CourseConfig
    from pipeline.lab.depth import DepthStudy
    from pipeline.lab.direction import DirectionStudy
    from pipeline.lab.gradients import GradientStudy
    from pipeline.lab.scoring import ScoresConfig
    from pipeline.lab.seq2seq import Seq2SeqStudy

    parts = {
        "agreement": AgreementStudy,
        "lm_agreement": LMAgreementConfig,
        "gradients": GradientStudy,
        "seq2seq": Seq2SeqStudy,
        "scores": ScoresConfig,
        "ner": DirectionStudy,
        "lm_depth": DepthStudy,
        "course": CourseConfig,
    }
    if not isinstance(value, Mapping):
        raise ConfigError(f"lab: expected a mapping, got {type(value).__name__}")
    for key, item in value.items():
        if key == "num_threads":
            if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                raise ConfigError(f"lab.num_threads: {item!r} is not a count >= 0")
        elif key in parts:
            from_mapping(parts[key], item, where=f"lab.{key}")
        else:
            known = ", ".join(["num_threads", *parts])
            raise ConfigError(f"lab.{key}: unknown key (known keys: {known})")


def _study(value: Any) -> None:
    from pipeline.study import grid

    grid.tasks(value)
    grid.expand(value)


# Section -> validator. A new settings section needs an entry here, or validation
# rejects it as unknown.
SECTIONS: dict[str, Callable[[Any], None]] = {
    "profile": _profile,
    "fetch": _fetch,
    "prepare": _prepare,
    "cooccur": _cooccur,
    "glove": _glove,
    "skipgram": _skipgram,
    "pretrained": _pretrained,
    "evaluate": _evaluate,
    "debias": _debias,
    "ner": _ner,
    "sentiment": _sentiment,
    "lm": _lm,
    "lab": _lab,
    "study": _study,
}


def validate_settings(params: Mapping[str, Any]) -> list[str]:
    """Validate every section of ``params``; return the section names, in order.

    Raises :class:`ConfigError` naming the first bad key: an unknown or missing section,
    an unknown key, a wrong type or an out-of-range value.
    """
    if not isinstance(params, Mapping):
        raise ConfigError(f"settings: expected a mapping, got {type(params).__name__}")
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"{unknown[0]}: unknown section (known sections: {', '.join(sorted(SECTIONS))})"
        )
    for name, check in SECTIONS.items():
        if name not in params:
            raise ConfigError(f"{name}: section missing")
        check(params[name])
    return list(SECTIONS)
