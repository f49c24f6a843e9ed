"""The embedding study: queue a grid of DVC experiments, run the queue, write the report.

    python -m stages.study queue    # dvc exp run --queue -n <name> <targets> -S ... per point
    python -m stages.study run      # dvc exp run --run-all -j <study.jobs> (waits)
    python -m stages.study report   # dvc exp show --json -> reports/study/embeddings.md + PNGs
    python -m stages.study all      # the three in turn (`make study`)

Reads only the ``study`` section of params.yaml (composed from conf/study/);
``--profile gpu`` composes conf/ with that profile instead and runs every point with it
(``make study STUDY_PROFILE=gpu``). Not a DVC stage: it
drives DVC. Every experiment's MLflow parent run is tagged with its name and grid point.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline.core.atomic import write_json
from pipeline.core.errors import ConfigError, PipelineError
from pipeline.core.tracking import tag_experiment_parents
from pipeline.study import grid, report
from stages._common import load_params, lookup, stage_main

MANIFEST = "points.json"


def _dvc(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("DVC_NO_ANALYTICS", "1")
    cmd = [sys.executable, "-m", "dvc", *args]
    proc = subprocess.run(cmd, env=env, capture_output=capture, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or "")[-2000:] if capture else ""
        raise PipelineError(f"`dvc {' '.join(args[:4])} ...` failed ({proc.returncode}) {detail}")
    return proc


def _study(profile: str | None = None) -> dict:
    """The ``study`` section of params.yaml, or of conf/ composed with ``profile``
    (then every point also sets ``profile``)."""
    if profile is None:
        study = lookup(load_params(), "study")
    else:
        import tempfile

        from stages.compose_params import compose

        with tempfile.TemporaryDirectory() as tmp:
            study = lookup(
                load_params(compose(Path(tmp) / "params.yaml", [f"profile={profile}"])), "study"
            )
    if not isinstance(study, dict):
        raise ConfigError("study: expected a mapping in params.yaml")
    if profile is not None:
        study["set"] = {"profile": profile, **(study.get("set") or {})}
    return study


def _out_dir(study: dict) -> Path:
    return Path(study.get("report_dir") or "reports/study")


def queue(study: dict) -> list[grid.Point]:
    points = grid.expand(study)
    run, skipped = grid.available(points)
    run = grid.queue_order(run)
    stages = set(_dvc("stage", "list", "--name-only", capture=True).stdout.split())
    for p in run:  # before anything is queued
        for t in p.targets:
            if t not in stages and not any(s.startswith(f"{t}@") for s in stages):
                raise ConfigError(
                    f"study.blocks.{p.block}.targets: {t!r} is not a stage of dvc.yaml"
                )
    existing = set(_dvc("exp", "list", "--all-commits", "--name-only", capture=True).stdout.split())
    stale = [p.name for p in run if p.name in existing]
    if stale:  # a new run of the study replaces its experiments of the same name
        _dvc("exp", "remove", *stale)
    for i, p in enumerate(run, start=1):
        print(f"[{i}/{len(run)}] queue {p.name}", file=sys.stderr, flush=True)
        _dvc("exp", "run", "--queue", "-n", p.name, *p.targets, *p.set_args(), capture=True)
    baseline = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    manifest = {
        "queued_at": time.time(),
        "baseline": baseline.stdout.strip(),
        "points": [p.name for p in run],
        "skipped": [p.name for p in skipped],
    }
    write_json(_out_dir(study) / MANIFEST, manifest)
    print(f"queued {len(run)} experiments, skipped {len(skipped)}", file=sys.stderr)
    return run


def run_queue(study: dict) -> float:
    t0 = time.perf_counter()
    _dvc("exp", "run", "--run-all", "-j", str(int(study.get("jobs") or 1)))
    seconds = time.perf_counter() - t0
    path = _out_dir(study) / MANIFEST
    if path.exists():
        manifest = json.loads(path.read_text())
        manifest["run_seconds"] = seconds
        write_json(path, manifest)
    return seconds


def write_report(study: dict) -> Path:
    out = _out_dir(study)
    points = grid.expand(study)
    _, skipped = grid.available(points)
    names = {p.name for p in skipped}
    points = [p for p in points if p.name not in names]
    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    # the experiments hang off the commit they were queued from (HEAD may have moved on)
    rev = ["--rev", manifest["baseline"]] if manifest.get("baseline") else []
    doc = json.loads(_dvc("exp", "show", "--json", *rev, capture=True).stdout or "[]")
    records = report.records_from_exp_show(doc)
    tags = {
        p.name: {
            "study.name": study.get("name", "study"),
            "study.block": p.block,
            "study.point": p.name,
            **{f"study.{k}": v for k, v in p.labels.items()},
        }
        for p in points
        if p.name in records
    }
    runs = tag_experiment_parents(tags)
    header = []
    if "run_seconds" in manifest:
        header.append(
            f"The queue ran {len(manifest.get('points', []))} experiments in "
            f"{manifest['run_seconds'] / 60:.1f} min ({study.get('jobs', 1)} at a time)."
        )
    header.append(
        "Each row names its DVC experiments (`dvc exp show`, `dvc exp apply <name>`) and the "
        "first 8 characters of their MLflow parent runs (`make mlflow-ui`, tag `study.point`)."
    )
    report.build(points, skipped, records, grid.tasks(study), study, out, runs, header)
    print(out / "embeddings.md")
    return out / "embeddings.md"


def run(args: argparse.Namespace) -> None:
    study = _study(args.profile)
    if args.step in ("queue", "all"):
        queue(study)
    failed: PipelineError | None = None
    if args.step in ("run", "all"):
        try:
            run_queue(study)
        except PipelineError as exc:  # a failed experiment: report the others, then fail
            failed = exc
    if args.step in ("report", "all"):
        write_report(study)
    if failed is not None:
        raise failed


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("step", choices=["queue", "run", "report", "all"])
    parser.add_argument("--profile", help="compose conf/ with this profile (cpu, gpu, smoke)")


def main(argv: list[str] | None = None) -> None:
    stage_main(run, argv, description=__doc__, add_arguments=_add_arguments)


if __name__ == "__main__":
    main()
