"""Compose conf/ into params.yaml with DVC's own Hydra composer (as `dvc exp run` does).

python -m stages.compose_params [OVERRIDE ...]   # e.g. profile=smoke glove.epochs=2
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

CONF_DIR = Path("conf")
CONFIG_NAME = "config"


def compose(
    output: str | os.PathLike,
    overrides: list[str] | None = None,
    conf_dir: str | os.PathLike = CONF_DIR,
) -> Path:
    """Write the composed config to ``output`` and return its path."""
    from dvc.utils.hydra import compose_and_dump

    conf_dir = Path(conf_dir).resolve()
    compose_and_dump(output, str(conf_dir), None, CONFIG_NAME, str(conf_dir), list(overrides or []))
    return Path(output)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides")
    parser.add_argument("--output", default="params.yaml")
    args = parser.parse_args(argv)
    print(compose(args.output, args.overrides))


if __name__ == "__main__":
    main()
