"""Turn a plain mapping (a section of ``params.yaml``) into a typed, validated dataclass.

Library modules declare their settings as dataclasses; range limits go into the field's
metadata::

    @dataclass(frozen=True)
    class GloveConfig:
        dim: int = field(default=100, metadata={"min": 1})
        alpha: float = field(default=0.75, metadata={"min": 0.0, "max": 1.0})
        device: Literal["auto", "cpu", "cuda"] = "auto"

    cfg = from_mapping(GloveConfig, params["glove"], where="glove")

Unknown keys, wrong types, NaN or infinite numbers and out-of-range values raise :class:`ConfigError` naming the
full key (``glove.alpha``), so a user can find the line in ``conf/`` to fix.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from pipeline.core.errors import ConfigError

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    if get_origin(tp) in (Union, types.UnionType):  # typing.Union's __name__ is just "Union"
        return " | ".join(_type_name(arg) for arg in get_args(tp))
    if get_origin(tp) is Literal:
        return " | ".join(repr(arg) for arg in get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widen to floats)."""
    if isinstance(value, float) and not math.isfinite(value):
        # NaN passes every range check (all comparisons are false) and infinity trains
        # nothing: neither is a setting
        raise ConfigError(f"{key}: {value!r} is not a finite number (NaN and infinity are refused)")
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{key}: {value!r} is not a valid {_type_name(tp)}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {list(allowed)}")
        return value
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (item_tp,) = get_args(tp)[:1] or (Any,)
        items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        args = get_args(tp)
        val_tp = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return from_mapping(tp, value, where=key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported annotation {_type_name(tp)}")  # pragma: no cover


def _check_range(value: Any, meta: Mapping[str, Any], key: str) -> None:
    # ranges bound numbers; a Literal word beside them (``int | Literal["auto"]``) has none
    if value is None or isinstance(value, bool | str):
        return
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo:
        raise ConfigError(f"{key}: {value!r} is below the minimum {lo!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{key}: {value!r} is above the maximum {hi!r}")
    gt = meta.get("gt")
    if gt is not None and not value > gt:
        raise ConfigError(f"{key}: {value!r} must be greater than {gt!r}")


def from_mapping(cls: type[T], mapping: Mapping[str, Any] | None, where: str) -> T:
    """Validate ``mapping`` into an instance of the dataclass ``cls``.

    ``where`` is the dotted key of the section, used in error messages. Missing keys take
    the dataclass defaults; a missing key without a default is an error.
    """
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown key (known keys: {', '.join(sorted(fields))})"
        )
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{where}.{name}"
        if name not in mapping:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key}: required key is missing")
            continue
        value = _coerce(mapping[name], hints[name], key)
        _check_range(value, f.metadata, key)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def to_flat_dict(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a dataclass (or nested mapping) into ``{"a.b": value}`` for MLflow params."""
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    out: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            out.update(to_flat_dict(v, f"{prefix}{k}."))
        return out
    out[prefix.rstrip(".")] = obj
    return out
