"""MLflow tracking for the pipeline: the only module that imports mlflow.

Every DVC stage is one MLflow run, nested under one parent run per pipeline execution
(one ``dvc repro`` or one ``dvc exp run``, queued ones included). The parent is found by
a key shared by all stages of one execution: ``WORDPIPE_PIPELINE_ID`` if set, else the
``dvc`` process that spawned this stage (pid + start time), else none (a stage run by hand
is a top-level run).

Tracking never breaks a stage: if the store cannot be reached, one warning is printed,
within seconds, and every later call is a no-op, so the stage still writes its DVC
outputs and metrics. In a distributed run only rank 0 records anything (the other
processes get a silent no-op tracker).

``MLFLOW_TRACKING_URI`` may point at a shared ``mlflow server`` (``make mlflow-server``):
the experiment is then created without an artifact location, so artifacts go where the
server puts them (its ``--artifacts-destination``), not into this checkout's ``mlruns/``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pipeline.core.distributed import is_rank_zero

# Fail fast instead of retrying for minutes against an unreachable server; quiet telemetry.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

EXPERIMENT_NAME = "wordpipe"
PIPELINE_TAG = "wordpipe.pipeline_id"


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The main repository root, also from inside a queued experiment's temporary copy.

    ``dvc exp run --queue`` runs stages in a temporary copy inside the repository's
    ``.dvc`` folder (under ``tmp``, ``exps``); results there must land in the main
    repository's store, not in the throw-away copy.
    """
    here = Path(start or os.getcwd()).resolve()
    parts = here.parts
    if ".dvc" in parts:
        i = parts.index(".dvc")
        return Path(*parts[:i])
    return here


def default_tracking_uri(start: str | os.PathLike | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<repo root>/mlflow.db`` (absolute)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{repo_root(start) / 'mlflow.db'}"


def _reachable(uri: str, timeout: float = 2.0) -> str | None:
    """Return None if the store looks reachable, else a reason (checked in about a second)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            with socket.create_connection((parsed.hostname, port), timeout=timeout):
                return None
        except OSError as exc:
            return f"cannot connect to {parsed.hostname}:{port} ({exc})"
    if parsed.scheme == "sqlite":
        db = Path(uri[len("sqlite:///") :])
        if not db.parent.is_dir() or not os.access(db.parent, os.W_OK):
            return f"folder of {db} is missing or not writable"
    return None


def _dvc_ancestor() -> str | None:
    """Key of the ``dvc`` process above this one (same for every stage of one repro)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return None
    try:
        proc = psutil.Process().parent()
        while proc is not None:
            cmd = " ".join(proc.cmdline()[:3])
            if "dvc" in Path(proc.cmdline()[0]).name or " -m dvc" in cmd or "/dvc " in cmd + " ":
                return f"{socket.gethostname()}-{proc.pid}-{int(proc.create_time())}"
            proc = proc.parent()
    except (psutil.Error, IndexError, OSError):
        return None
    return None


def pipeline_id() -> str | None:
    """The key that groups the stage runs of one pipeline execution, or None."""
    return os.environ.get("WORDPIPE_PIPELINE_ID") or _dvc_ancestor()


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


class Tracker:
    """A stage's MLflow run; every method is a no-op once tracking has failed once."""

    def __init__(self) -> None:
        self.enabled = True
        self.run_id: str | None = None
        self.tracking_uri: str | None = None
        self._warned = False

    def _fail(self, exc: BaseException | str) -> None:
        self.enabled = False
        if not self._warned:
            self._warned = True
            print(
                f"warning: MLflow tracking disabled for this stage ({exc}); "
                "outputs and metrics are still written",
                file=sys.stderr,
            )

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - tracking must never fail a stage
            self._fail(exc)

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.enabled or not params:
            return
        with self._guard():
            import mlflow

            clean = {k: ("" if v is None else str(v)[:6000]) for k, v in params.items()}
            items = list(clean.items())
            for i in range(0, len(items), 90):
                mlflow.log_params(dict(items[i : i + 90]), run_id=self.run_id)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numeric leaves of a (nested) metrics mapping; keys are flattened with '.'."""
        if not self.enabled:
            return
        flat = {
            k: float(v)
            for k, v in flatten(metrics).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        if not flat:
            return
        with self._guard():
            import mlflow

            mlflow.log_metrics(flat, step=step, run_id=self.run_id)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        if not self.enabled or not Path(path).exists():
            return
        with self._guard():
            import mlflow

            client = mlflow.MlflowClient()
            if Path(path).is_dir():
                client.log_artifacts(self.run_id, str(path), artifact_path)
            else:
                client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        if not self.enabled:
            return
        with self._guard():
            import mlflow

            mlflow.MlflowClient().log_text(self.run_id, text, artifact_file)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        with self._guard():
            import mlflow

            client = mlflow.MlflowClient()
            for k, v in tags.items():
                client.set_tag(self.run_id, k, str(v))

    def lightning_logger(self):
        """A Lightning ``MLFlowLogger`` that writes into this stage's run (or None)."""
        if not self.enabled or self.run_id is None:
            return None
        with self._guard():
            from lightning.pytorch.loggers import MLFlowLogger

            return MLFlowLogger(tracking_uri=self.tracking_uri, run_id=self.run_id)
        return None


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): obj}


def is_remote(uri: str) -> bool:
    """Whether ``uri`` is a tracking server (http/https) rather than a local store."""
    return urlparse(uri).scheme in ("http", "https")


def _experiment_id(mlflow, root: Path, uri: str) -> str:
    """The id of the project's experiment.

    On a tracking server the server decides where artifacts go (proxied to its artifact
    store). In a local store they go under ``root/mlruns``; in the repository's own store
    (``mlflow.db`` at ``root``), an experiment whose artifact location is elsewhere (the
    store was copied or moved with its checkout) is pointed at this checkout's
    ``mlruns/`` first, so that new runs never write into another checkout. Older runs
    keep the artifact paths they were logged with.
    """
    exp = mlflow.get_experiment_by_name(EXPERIMENT_NAME)
    if is_remote(uri):
        return exp.experiment_id if exp is not None else mlflow.create_experiment(EXPERIMENT_NAME)
    here = (root / "mlruns").as_uri()
    if exp is None:
        return mlflow.create_experiment(EXPERIMENT_NAME, artifact_location=here)
    if uri == f"sqlite:///{root / 'mlflow.db'}" and exp.artifact_location != here:
        _relocate_artifacts(root / "mlflow.db", exp.experiment_id, here)
    return exp.experiment_id


def _relocate_artifacts(db: Path, experiment_id: str, location: str) -> None:
    """Set the artifact location of one experiment of a local sqlite store.

    MLflow has no API to change it; the column is part of its stable sqlite schema.
    """
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
            (location, int(experiment_id)),
        )


def _parent_run(client, experiment_id: str, key: str) -> str:
    """Find or create the parent run of this pipeline execution."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PIPELINE_TAG}` = '{key}' and tags.`wordpipe.kind` = 'pipeline'",
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    exp_name = os.environ.get("DVC_EXP_NAME")
    name = f"exp {exp_name}" if exp_name else f"repro {time.strftime('%Y-%m-%d %H:%M:%S')}"
    run = client.create_run(
        experiment_id, run_name=name, tags={PIPELINE_TAG: key, "wordpipe.kind": "pipeline"}
    )
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


@contextlib.contextmanager
def stage_run(stage: str, params: Mapping[str, Any] | None = None) -> Iterator[Tracker]:
    """Open the MLflow run of one stage; it ends FINISHED, or FAILED on an exception.

    On a process other than rank 0 of a distributed run the tracker is a silent no-op.
    """
    tracker = Tracker()
    if not is_rank_zero():
        tracker.enabled = False
        tracker._warned = True
        yield tracker
        return
    root = repo_root()
    uri = default_tracking_uri()
    tracker.tracking_uri = uri
    reason = _reachable(uri)
    if reason:
        tracker._fail(f"store {uri} unreachable: {reason}")
    else:
        try:
            import mlflow

            mlflow.set_tracking_uri(uri)
            client = mlflow.MlflowClient()
            exp_id = _experiment_id(mlflow, root, uri)
            tags = {
                "dvc.stage": os.environ.get("DVC_STAGE", stage),
                "wordpipe.kind": "stage",
                "mlflow.runName": os.environ.get("DVC_STAGE", stage),
            }
            if os.environ.get("DVC_EXP_NAME"):
                tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
            commit = git_commit()
            if commit:
                tags["mlflow.source.git.commit"] = commit
                tags["git.commit"] = commit
            key = pipeline_id()
            if key:
                tags["mlflow.parentRunId"] = _parent_run(client, exp_id, key)
                tags[PIPELINE_TAG] = key
            run = client.create_run(exp_id, tags=tags)
            tracker.run_id = run.info.run_id
        except Exception as exc:  # noqa: BLE001 - tracking must never fail a stage
            tracker._fail(exc)
    if params:
        tracker.log_params(params)
    status = "FAILED"
    try:
        yield tracker
        status = "FINISHED"
    finally:
        if tracker.enabled and tracker.run_id:
            with tracker._guard():
                import mlflow

                mlflow.MlflowClient().set_terminated(tracker.run_id, status)


def tag_experiment_parents(
    tags_by_experiment: Mapping[str, Mapping[str, Any]],
    uri: str | None = None,
) -> dict[str, str]:
    """Tag the parent run of each named DVC experiment; return ``{name: parent run id}``.

    The parent is found through its stage runs (tag ``dvc.exp_name``; the latest one if
    the experiment ran twice). An experiment whose stages were all restored from DVC's
    run-cache logged nothing: it gets a parent of its own, tagged
    ``wordpipe.restored=true``, so that every experiment has a run to open. A store that
    cannot be reached gives a warning and an empty mapping.
    """
    uri = uri or default_tracking_uri()
    reason = _reachable(uri)
    if reason:
        print(f"warning: MLflow store {uri} unreachable: {reason}", file=sys.stderr)
        return {}
    out: dict[str, str] = {}
    try:
        import mlflow

        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient(tracking_uri=uri)
        root = repo_root()
        exp_id = _experiment_id(mlflow, root, uri)
        for name, tags in tags_by_experiment.items():
            stages = client.search_runs(
                [exp_id],
                filter_string=f"tags.`dvc.exp_name` = '{name}' and tags.`wordpipe.kind` = 'stage'",
                order_by=["attributes.start_time DESC"],
                max_results=50,
            )
            parent = next(
                (
                    r.data.tags["mlflow.parentRunId"]
                    for r in stages
                    if "mlflow.parentRunId" in r.data.tags
                ),
                None,
            )
            if parent is None:
                run = client.create_run(
                    exp_id,
                    run_name=f"exp {name}",
                    tags={"wordpipe.kind": "pipeline", "wordpipe.restored": "true"},
                )
                client.set_terminated(run.info.run_id, "FINISHED")
                parent = run.info.run_id
            for key, value in {"dvc.exp_name": name, **tags}.items():
                client.set_tag(parent, key, str(value))
            out[name] = parent
    except Exception as exc:  # noqa: BLE001 - the study report still works without runs
        print(f"warning: MLflow tagging stopped ({exc})", file=sys.stderr)
    return out
