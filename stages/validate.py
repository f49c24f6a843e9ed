"""Stage validate: check every section of params.yaml before any other stage runs.

    python -m stages.validate

Every other stage depends on its output, so DVC runs it first; a bad setting (an
unknown key, a wrong type, a value out of range) stops the pipeline here, before DVC
deletes any stage's outputs. Writes metrics/validate.json, whose content does not change
with the values of the settings, so a valid change reruns only the stages that read it.
"""

from __future__ import annotations

import argparse

from pipeline.core.errors import ConfigError
from pipeline.settings import validate_settings
from stages._common import PARAMS_FILE, load_params, stage_main, write_metrics

# `make params` rewrites params.yaml from conf/ (which `-S` overrides never touch); it
# also works when a failed `dvc exp run` left git's index blind to the changed file.
RECOVER = (
    f"no stage has run. To get back to the last good state: git checkout {PARAMS_FILE} "
    "&& dvc checkout (or: make params && dvc checkout); or fix the value and run again"
)


def run(args: argparse.Namespace) -> None:
    try:
        sections = validate_settings(load_params())
    except ConfigError as exc:
        raise ConfigError(f"{PARAMS_FILE}: {exc}; {RECOVER}") from None
    write_metrics("validate", {"sections": len(sections)})
    print(f"{PARAMS_FILE}: {len(sections)} sections valid", flush=True)


def main(argv: list[str] | None = None) -> None:
    stage_main(run, argv, description=__doc__)


if __name__ == "__main__":
    main()
