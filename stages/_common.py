"""What every stage entry point shares: read ``params.yaml``, validate a section into a
dataclass, open the stage's MLflow run, write ``metrics/<name>.json``, exit cleanly on
user errors.

A stage module looks like::

    def run(args: argparse.Namespace) -> None:
        params = load_params()
        cfg = section(params, "cooccur", CooccurConfig)
        with stage_run("cooccur", cfg) as tracker:
            ...  # call the library
            write_metrics("cooccur", metrics, tracker)

    def main(argv=None) -> None:
        stage_main(run, argv, description=__doc__)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pipeline.core.atomic import write_json
from pipeline.core.config import from_mapping, to_flat_dict
from pipeline.core.errors import ConfigError, PipelineError
from pipeline.core.tracking import Tracker
from pipeline.core.tracking import stage_run as _stage_run

T = TypeVar("T")

PARAMS_FILE = "params.yaml"
METRICS_DIR = Path("metrics")


def load_params(path: str | os.PathLike = PARAMS_FILE) -> dict[str, Any]:
    """Read ``params.yaml`` (composed from ``conf/``) from the working folder."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found (run from the repository root, or `make params`)")
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def lookup(params: Mapping[str, Any], dotted: str) -> Any:
    """``params["a"]["b"]`` for ``"a.b"``; a missing key is a :class:`ConfigError`."""
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"{dotted}: missing from {PARAMS_FILE}")
        node = node[part]
    return node


def section(params: Mapping[str, Any], dotted: str, cls: type[T]) -> T:
    """Validate the section at ``dotted`` into the dataclass ``cls``."""
    return from_mapping(cls, lookup(params, dotted), where=dotted)


def stage_run(stage: str, *configs: Any):
    """The stage's MLflow run, with the given dataclass configs logged as params."""
    params: dict[str, Any] = {}
    for cfg in configs:
        params.update(to_flat_dict(cfg, prefix=f"{type(cfg).__name__}."))
    return _stage_run(stage, params)


def write_metrics(name: str, metrics: Mapping[str, Any], tracker: Tracker | None = None) -> Path:
    """Write ``metrics/<name>.json`` atomically and log its numbers to MLflow."""
    path = METRICS_DIR / f"{name}.json"
    write_json(path, dict(metrics))
    if tracker is not None:
        tracker.log_metrics(metrics)
        tracker.log_artifact(path, "metrics")
    return path


class Timer:
    """``with Timer() as t: ...; t.seconds``"""

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0


def stage_main(
    run: Callable[[argparse.Namespace], None],
    argv: Sequence[str] | None = None,
    description: str | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse ``argv``, call ``run``; a :class:`PipelineError` exits 1 with a one-line message."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run(args)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
