"""pipeline.core.config: typed validation of params sections with errors that name the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from pipeline.core.config import from_mapping, to_flat_dict
from pipeline.core.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    size: int = field(default=3, metadata={"min": 1})


@dataclass(frozen=True)
class Example:
    dim: int = field(default=100, metadata={"min": 1})
    alpha: float = field(default=0.75, metadata={"min": 0.0, "max": 1.0})
    device: Literal["auto", "cpu", "cuda"] = "auto"
    name: str | None = None
    words: list[str] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)
    flag: bool = False


def test_defaults_and_values():
    cfg = from_mapping(Example, {"dim": 5, "alpha": 1, "words": ["a", "b"]}, where="glove")
    assert cfg.dim == 5 and cfg.alpha == 1.0 and isinstance(cfg.alpha, float)
    assert cfg.words == ["a", "b"] and cfg.device == "auto" and cfg.inner.size == 3


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"dimm": 3}, "glove.dimm: unknown key"),
        ({"dim": "3"}, "glove.dim: expected an integer"),
        ({"dim": True}, "glove.dim: expected an integer"),
        ({"dim": 0}, "glove.dim: 0 is below the minimum 1"),
        ({"alpha": 1.5}, "glove.alpha: 1.5 is above the maximum 1.0"),
        ({"device": "tpu"}, "glove.device: 'tpu' is not one of"),
        ({"words": "a"}, "glove.words: expected a list"),
        ({"words": [1]}, "glove.words[0]: expected a string"),
        ({"inner": {"size": 0}}, "glove.inner.size: 0 is below the minimum 1"),
        ({"inner": {"bogus": 1}}, "glove.inner.bogus: unknown key"),
        ({"flag": "yes"}, "glove.flag: expected true or false"),
    ],
)
def test_errors_name_the_key(mapping, message):
    with pytest.raises(ConfigError) as err:
        from_mapping(Example, mapping, where="glove")
    assert message in str(err.value)


def test_optional_accepts_none_and_value():
    assert from_mapping(Example, {"name": None}, where="x").name is None
    assert from_mapping(Example, {"name": "n"}, where="x").name == "n"


def test_not_a_mapping():
    with pytest.raises(ConfigError, match="glove: expected a mapping"):
        from_mapping(Example, [1, 2], where="glove")


def test_flat_dict():
    flat = to_flat_dict(Example(), prefix="G.")
    assert flat["G.dim"] == 100 and flat["G.inner.size"] == 3


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("key", ["alpha", "name", "words"])
def test_nan_and_infinity_are_refused_naming_the_key(key, bad):
    value = [bad] if key == "words" else bad
    with pytest.raises(ConfigError) as err:
        from_mapping(Example, {key: value}, where="glove")
    named = "glove.words[0]" if key == "words" else f"glove.{key}"
    assert str(err.value).startswith(f"{named}: {bad!r} is not a finite number")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("glove", "alpha", float("nan")),
        ("glove", "x_max", float("inf")),
        ("glove", "lr", float("nan")),
        ("skipgram", "ns_exponent", float("nan")),
        ("skipgram", "lr", float("inf")),
    ],
)
def test_real_sections_refuse_nan_and_infinity(section, key, value):
    from pipeline.glove.train import GloveConfig
    from pipeline.word2vec.config import SkipGramConfig

    cls = {"glove": GloveConfig, "skipgram": SkipGramConfig}[section]
    with pytest.raises(ConfigError, match=rf"^{section}\.{key}: {value!r} is not a finite"):
        from_mapping(cls, {key: value}, where=section)


def test_yaml_nan_is_refused(tmp_path):
    import yaml

    params = yaml.safe_load("glove:\n  dim: 3\n  alpha: .nan\n")
    with pytest.raises(ConfigError, match=r"^glove\.alpha: nan is not a finite number"):
        from_mapping(Example, params["glove"], where="glove")
