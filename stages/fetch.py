"""Stage fetch: download (or copy) one dataset into data/raw/<name>/ with a MANIFEST.json.

    python -m stages.fetch sotu

Settings: ``fetch.cache_dir`` (``$WORDPIPE_CACHE`` overrides), the download and extraction
limits (``fetch.timeout_s``, ``stall_timeout_s``, ``connect_timeout_s``, ``max_extract_mb``,
``max_members``) and ``fetch.datasets.<name>`` (see conf/fetch/default.yaml). Also writes
metrics/fetch_<name>.json (files, bytes, seconds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.core.errors import ConfigError
from pipeline.data.fetch import (
    MANIFEST,
    cache_dir,
    fetch_dataset,
    manifest_summary,
    parse_settings,
    parse_spec,
)
from stages._common import Timer, load_params, lookup, stage_main, stage_run, write_metrics

RAW_DIR = Path("data/raw")


def run(args: argparse.Namespace) -> None:
    settings = parse_settings(lookup(load_params(), "fetch"))
    if args.dataset not in settings.datasets:
        known = ", ".join(sorted(settings.datasets)) or "none"
        raise ConfigError(f"fetch.datasets.{args.dataset}: unknown dataset (known: {known})")
    where = f"fetch.datasets.{args.dataset}"
    spec = parse_spec(settings.datasets[args.dataset], where=where)
    cache = cache_dir(settings.cache_dir)
    out = RAW_DIR / args.dataset

    with stage_run("fetch", spec) as tracker:
        tracker.log_params({"fetch.dataset": args.dataset, "fetch.cache_dir": str(cache)})
        with Timer() as timer:
            manifest = fetch_dataset(
                args.dataset,
                spec,
                out,
                cache,
                limits=settings.deadlines,
                extract_limits=settings.extract_limits,
            )
        summary = manifest_summary(manifest)
        tracker.log_text(json.dumps(manifest, indent=2, sort_keys=True), f"fetch/{MANIFEST}")
        tracker.set_tags({"fetch.dataset": args.dataset, "fetch.sha256": manifest["sha256"]})
        write_metrics(
            f"fetch_{args.dataset}", {**summary, "seconds": round(timer.seconds, 3)}, tracker
        )
        print(f"{out}: {summary['files']} files, {summary['bytes']} bytes", flush=True)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="key under fetch.datasets in params.yaml")


def main(argv: list[str] | None = None) -> None:
    stage_main(run, argv, description=__doc__, add_arguments=_arguments)


if __name__ == "__main__":
    main()
