"""The study's grid: blocks of axes, each axis value a set of overrides, expanded into
points (one DVC experiment each).

The mapping is the ``study`` section of the configuration (see ``conf/study/base.yaml``);
nothing here runs DVC: :func:`expand` returns the points and the ``-S`` arguments.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Task:
    """A downstream result: ``score`` of the metrics ``file``; runs differ by ``seed``."""

    name: str
    file: str
    score: str
    seed: str
    label: str


@dataclass(frozen=True)
class Point:
    """One grid point: experiment ``name``, its block, its axis values (``labels``), the
    overrides, the stages it reproduces and the paths it needs."""

    name: str
    block: str
    labels: dict[str, str]
    overrides: dict[str, Any]
    targets: list[str]
    needs: list[str] = field(default_factory=list)

    def set_args(self) -> list[str]:
        """``-S key=value`` arguments (values as YAML/Hydra literals)."""
        out: list[str] = []
        for key, value in self.overrides.items():
            out += ["-S", f"{key}={format_value(value)}"]
        return out


def queue_order(points: list[Point]) -> list[Point]:
    """The points in the order to queue them: the first value of each block's last axis
    (its seeds) for every point, then the second, ...

    Points that differ only in that last axis share their upstream stages (the skip-gram
    vectors of a word2vec variant, NER for a reused seed). Run side by side, two
    experiments would both train them; run one wave after the other, the later waves
    restore them from DVC's run-cache.
    """
    rank: dict[tuple[str, str], int] = {}
    for p in points:
        if p.labels:
            last = list(p.labels)[-1]
            rank.setdefault((p.block, p.labels[last]), len(rank))
    firsts: dict[str, int] = {}
    for (block, _), i in rank.items():
        firsts.setdefault(block, i)

    def wave(p: Point) -> int:
        if not p.labels:
            return 0
        return rank[(p.block, p.labels[list(p.labels)[-1]])] - firsts[p.block]

    return sorted(points, key=wave)  # stable: the grid's order within a wave


def format_value(value: Any) -> str:
    """A Hydra override literal: null, true/false, numbers, plain strings."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return json.dumps(value)


def _mapping(node: Any, where: str) -> Mapping[str, Any]:
    if node is None:
        return {}
    if not isinstance(node, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(node).__name__}")
    return node


def tasks(study: Mapping[str, Any]) -> dict[str, Task]:
    """The ``study.tasks`` entries."""
    out = {}
    for name, spec in _mapping(study.get("tasks"), "study.tasks").items():
        spec = _mapping(spec, f"study.tasks.{name}")
        missing = [k for k in ("file", "score", "seed") if k not in spec]
        if missing:
            raise ConfigError(f"study.tasks.{name}: missing {', '.join(missing)}")
        out[name] = Task(name, spec["file"], spec["score"], spec["seed"], spec.get("label", name))
    return out


def expand(study: Mapping[str, Any]) -> list[Point]:
    """Every point of every block, in order (the last axis varies fastest)."""
    prefix = str(study.get("name", "study"))
    common = dict(_mapping(study.get("set"), "study.set"))
    known = tasks(study)
    points: list[Point] = []
    blocks = _mapping(study.get("blocks"), "study.blocks")
    if not blocks:
        raise ConfigError("study.blocks: no block to run")
    for block, spec in blocks.items():
        where = f"study.blocks.{block}"
        spec = _mapping(spec, where)
        for t in spec.get("tasks") or []:
            if t not in known:
                raise ConfigError(f"{where}.tasks: {t!r} is not one of study.tasks {list(known)}")
        axes = _mapping(spec.get("axes"), f"{where}.axes")
        if not axes:
            raise ConfigError(f"{where}.axes: a block needs at least one axis")
        values = []
        for axis, entries in axes.items():
            entries = _mapping(entries, f"{where}.axes.{axis}")
            if not entries:
                raise ConfigError(f"{where}.axes.{axis}: no values")
            values.append(
                [
                    (axis, str(v), _mapping(e, f"{where}.axes.{axis}.{v}"))
                    for v, e in entries.items()
                ]
            )
        for combo in itertools.product(*values):
            overrides = {**common, **_mapping(spec.get("set"), f"{where}.set")}
            needs: list[str] = []
            for axis, value, entry in combo:
                unknown = set(entry) - {"set", "needs"}
                if unknown:
                    raise ConfigError(
                        f"{where}.axes.{axis}.{value}: unknown key(s) {sorted(unknown)}"
                    )
                overrides.update(_mapping(entry.get("set"), f"{where}.axes.{axis}.{value}.set"))
                if entry.get("needs"):
                    needs.append(str(entry["needs"]))
            name = "-".join([prefix, block, *(value for _, value, _ in combo)])
            if not _NAME.fullmatch(name):
                raise ConfigError(f"{where}: {name!r} is not a valid experiment name")
            points.append(
                Point(
                    name=name,
                    block=block,
                    labels={axis: value for axis, value, _ in combo},
                    overrides=overrides,
                    targets=[str(t) for t in spec.get("targets") or []],
                    needs=needs,
                )
            )
    names = [p.name for p in points]
    if len(set(names)) != len(names):
        raise ConfigError("study.blocks: two points have the same experiment name")
    return points


def available(points: list[Point], root: str | Path = ".") -> tuple[list[Point], list[Point]]:
    """Split points into (runnable, skipped): skipped ones need a path missing under root."""
    run, skip = [], []
    for p in points:
        (run if all((Path(root) / n).exists() for n in p.needs) else skip).append(p)
    return run, skip
