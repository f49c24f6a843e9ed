"""One-shot GPU measurement suite: every GPU figure of issues #3, #4 and #6 in one or two calls.

Runs the project's own stage code (``python -m stages.<name>`` subprocesses) and
``benchmarks/bench_skipgram.py`` in a work folder, on a params file composed here with
``profile=gpu`` (``benchmarks/gpu_bundle.sh`` makes it, with the packed raw data and the
gensim wheels). Each task gets a wall-time cap so that the whole run fits ``--budget-s``;
the Lightning stages get that cap as ``trainer.max_time_s``. A failing task never stops
the others: its error goes in the summary. After every task ``summary.json`` (every
metric, seconds, seconds per epoch, device, versions, which targets are met) and
``suite.log`` are rewritten in ``--out`` (default ``$OUT``), so a run killed at its time
limit still returns what it measured. See docs/GPU.md for the device calls.

    python benchmarks/gpu_suite.py --plan                       # what would run, with caps
    python benchmarks/gpu_suite.py --tasks emb --budget-s 380   # call 1 on the GPU machine
    python benchmarks/gpu_suite.py --tasks seq --budget-s 330   # call 2
    python benchmarks/gpu_suite.py --tasks lm_char --set lm.levels.char.trainer.max_epochs=5

Task groups: emb (prepare, cooccur, glove, evaluate, skipgram, the three benchmarks,
sentiment), seq (ner, lm_word, lm_char), public (the bigger corpus and SGNS, HS, CBOW and
full softmax on it), all; profile (torch.profiler tables, sorted-row-sum A/B) only on
request. Missing inputs of a chosen task (e.g. the prepared corpora on a fresh machine)
are produced first by their own tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / ".gpu"
# absent on the GPU machine (gensim comes as a wheel, for the benchmarks only)
BLOCKED_DEFAULT = ("mlflow", "dvc", "hydra", "omegaconf", "gensim")
LOG_TASK_CHARS = 200_000  # per task in suite.log: head and tail kept
SUMMARY_VERSION = 1

# --- the sitecustomize that makes chosen packages look uninstalled -------------------------

SITECUSTOMIZE = '''\
"""Written by benchmarks/gpu_suite.py: packages named in WORDPIPE_BLOCK_IMPORTS look
uninstalled (``import x`` raises ModuleNotFoundError, ``importlib.util.find_spec`` gives
None, ``importlib.metadata`` does not list them), as on the GPU machine."""
import os
import sys
from importlib.machinery import PathFinder

_BLOCKED = frozenset(n.strip() for n in os.environ.get("WORDPIPE_BLOCK_IMPORTS", "").split(",") if n.strip())


def _norm(name):
    return name.lower().replace("_", "-").replace(".", "-")


class _BlockingPathFinder(PathFinder):
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname.partition(".")[0] in _BLOCKED:
            return None
        return super().find_spec(fullname, path, target)

    @classmethod
    def find_distributions(cls, *args, **kwargs):
        for dist in super().find_distributions(*args, **kwargs):
            name = _norm(dist.metadata["Name"] or "")
            if not any(name == b or name.startswith(b + "-") for b in map(_norm, _BLOCKED)):
                yield dist


if _BLOCKED:
    sys.meta_path[:] = [_BlockingPathFinder if f is PathFinder else f for f in sys.meta_path]
    for _m in [m for m in sys.modules if m.partition(".")[0] in _BLOCKED]:
        del sys.modules[_m]

# chain to the sitecustomize this one shadows, if any
_here = os.path.dirname(os.path.abspath(__file__))
_spec = PathFinder.find_spec(
    "sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _here]
)
if _spec is not None and _spec.loader is not None and _spec.origin != __file__:
    import importlib.util as _u

    _mod = _u.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
'''


def write_blocker(folder: Path) -> Path:
    """Write the import-blocking ``sitecustomize.py`` into ``folder``; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder


# --- tasks and the time plan ---------------------------------------------------------------


@dataclass
class Task:
    """One measured step. ``argv`` items may hold ``{py}`` and ``{repo}``.

    A *fixed* task (``weight == 0``) runs to its end or is killed at its cap; an
    *elastic* one (``weight > 0``, a Lightning stage) gets a share of the time left and
    stops itself after ``cap - overhead_s`` seconds of training (``time_key``).
    """

    name: str
    argv: list[str]
    groups: tuple[str, ...] = ()
    expect_s: float = 10.0  # typical seconds: reserved for it while earlier tasks run
    max_s: float = 60.0  # never more than this
    min_s: float | None = None  # skipped when less is left (default: expect_s / 2)
    weight: float = 0.0
    time_key: str | None = None  # params key that receives max_time_s
    overhead_s: float = 0.0  # start-up, final evaluation and writing, inside the cap
    overrides: dict[str, Any] = field(default_factory=dict)
    deps: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()  # files (relative to the work folder) that show it done
    metrics: tuple[str, ...] = ()  # metrics/<name>.json files collected into the summary
    stdout_json: bool = False  # the command prints one JSON object (a benchmark)
    block: tuple[str, ...] = BLOCKED_DEFAULT

    @property
    def floor(self) -> float:
        """Seconds kept for this task while earlier tasks are planned."""
        return self.expect_s if self.weight <= 0 else self.least

    @property
    def least(self) -> float:
        return self.min_s if self.min_s is not None else self.expect_s / 2


def allot(task: Task, remaining: float, later: Iterable[Task]) -> float | None:
    """Seconds for ``task`` with ``remaining`` left and ``later`` tasks still to run.

    Later tasks keep their floor (fixed: expected time, elastic: minimum). A fixed task
    gets up to ``max_s``; an elastic one its weight's share of what the later fixed tasks
    leave, within ``[min_s, max_s]``. None: too little is left, skip it.
    """
    later = list(later)
    avail = remaining - sum(t.floor for t in later)
    if task.weight > 0:
        pool = remaining - sum(t.expect_s for t in later if t.weight <= 0)
        weights = task.weight + sum(t.weight for t in later if t.weight > 0)
        cap = min(max(pool * task.weight / weights, task.least), task.max_s, avail)
    else:
        cap = min(task.max_s, avail)
    return cap if cap >= task.least and cap > 0 else None


def expand(
    selected: Iterable[str], tasks: Mapping[str, Task], is_done: Callable[[Task], bool]
) -> list[Task]:
    """The selected tasks plus the not-yet-done tasks they depend on, in registry order."""
    chosen: set[str] = set()

    def add(name: str) -> None:
        if name not in tasks:
            raise SystemExit(f"gpu_suite: unknown task {name!r} (known: {', '.join(tasks)})")
        if name in chosen:
            return
        chosen.add(name)
        for dep in tasks[name].deps:
            if dep not in chosen and not is_done(tasks[dep]):
                add(dep)

    for name in selected:
        add(name)
    return [t for name, t in tasks.items() if name in chosen]


def select(spec: str, tasks: Mapping[str, Task]) -> list[str]:
    """``all``, a group name or task names, comma-separated; ``-name`` removes one.
    ``all`` leaves out the ``profile`` tasks (profiler runs, only on request)."""
    out: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item.startswith("-"):
            out = [n for n in out if n != item[1:] and item[1:] not in tasks[n].groups]
            continue
        names = [
            n for n, t in tasks.items()
            if (item == "all" and "profile" not in t.groups) or item in t.groups
        ] or [item]  # fmt: skip
        out += [n for n in names if n not in out]
    return out


def set_dotted(params: dict, dotted: str, value: Any) -> None:
    """``params[a][b] = value`` for ``"a.b"`` (missing mappings are created)."""
    node = params
    *parents, last = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def get_dotted(params: Mapping, dotted: str, default: Any = None) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def task_params(base: Mapping, task: Task, max_time_s: float | None) -> dict:
    """The params one task runs with: ``base`` plus its overrides and time cap."""
    params = json.loads(json.dumps(base))  # deep copy of plain data
    for key, value in task.overrides.items():
        set_dotted(params, key, value)
    if task.time_key and max_time_s is not None:
        set_dotted(params, task.time_key, round(max_time_s, 1))
    return params


# the bigger corpus of issue #4: conf/prepare/base.yaml's commented-out `public` entry
PUBLIC_CORPUS = {
    "dataset": ".",
    "reader": "concat",
    "parts": ["sotu", "brown", "shakespeare"],
    "level": "word",
    "split": "none",
    "min_count": 5,
    "normalize": {"lowercase": True},
    "max_lines": None,
}


def build_tasks(params: Mapping, args: argparse.Namespace) -> dict[str, Task]:
    """The suite's tasks, in the order they run (each after the tasks it depends on)."""
    py = ["{py}", "-m"]
    tasks: list[Task] = []
    # expected seconds: as measured on an H200 (2026-11-27), rounded up; bench_hs and
    # bench_softmax estimated (their first runs diverged, the second hit their caps)
    producers = {"glove": "glove", "sgns": "skipgram", "gnews": "import_gnews"}

    def emb_deps(name: str) -> tuple[str, ...]:
        return (producers[name],) if name in producers else ()

    corpora = list(get_dotted(params, "prepare.corpora", {}) or {})
    for corpus in ("sotu", "brown", "shakespeare"):
        if corpus in corpora:
            tasks.append(Task(
                f"prepare_{corpus}", [*py, "stages.prepare", corpus], ("emb",), 4, 120,
                outputs=(f"data/processed/{corpus}/train.npy",
                         f"data/processed/{corpus}/vocab.tsv"),
                metrics=(f"prepare_{corpus}",),
            ))  # fmt: skip
    cc = get_dotted(params, "cooccur.corpus", "sotu")
    sg = get_dotted(params, "skipgram.corpus", "sotu")
    tasks += [
        Task("cooccur", [*py, "stages.cooccur"], ("emb",), 10, 120, deps=(f"prepare_{cc}",),
             outputs=(f"data/processed/{cc}/cooccur.npz",), metrics=("cooccur",)),
        Task("glove", [*py, "stages.glove"], ("emb",), 15, 200, deps=("cooccur",),
             outputs=("data/processed/embeddings/glove/vectors.npy",), metrics=("glove",)),
        Task("evaluate_glove", [*py, "stages.evaluate", "glove"], ("emb",), 10, 120,
             deps=("glove",), metrics=("evaluate_glove",)),
        Task("skipgram", [*py, "stages.skipgram"], ("emb",), 35, 150, deps=(f"prepare_{sg}",),
             outputs=("data/processed/embeddings/sgns/vectors.npy",), metrics=("skipgram",)),
        Task("evaluate_sgns", [*py, "stages.evaluate", "sgns"], ("emb",), 10, 120,
             deps=("skipgram",), metrics=("evaluate_sgns",)),
    ]  # fmt: skip

    def bench_on(corpus: str) -> list[str]:
        return ["{py}", "{repo}/benchmarks/bench_skipgram.py", "--corpus",
                f"data/processed/{corpus}", "--device", args.device, *args.bench_arg]  # fmt: skip

    bench = bench_on(sg)
    no_gensim = tuple(b for b in BLOCKED_DEFAULT if b != "gensim")
    for model, expect, cap, repeat, extra in (
        ("sgns", 60, 200, args.repeat, []),
        ("hs", 150, 300, args.repeat, []),  # pair mode + gensim HS: over 115 s on an H200
        ("softmax", 40, 150, args.softmax_repeat, ["--no-gensim"]),
    ):
        tasks.append(Task(
            f"bench_{model}", [*bench, "--model", model, "--repeat", str(repeat), *extra],
            ("emb", "bench"), expect, cap, deps=(f"prepare_{sg}",), stdout_json=True,
            block=no_gensim,
        ))  # fmt: skip
    # issue #4's quality table on the bigger corpus (sotu + brown + shakespeare, 4M words,
    # vocabulary 24k): SGNS, SG-HS, CBOW (ours on cuda vs gensim on every core) and the
    # full softmax (ours only; about 15 h on 2 CPU cores)
    tasks.append(Task(
        "prepare_public", [*py, "stages.prepare", "public"], ("public",), 10, 120,
        overrides={"prepare.corpora.public": PUBLIC_CORPUS},
        outputs=("data/processed/public/train.npy", "data/processed/public/vocab.tsv"),
        metrics=("prepare_public",),
    ))  # fmt: skip
    pub = [*bench_on("public"), "--repeat", "1"]
    for model, expect, cap, extra in (
        ("sgns", 40, 150, []),
        ("hs", 80, 200, []),
        ("cbow", 30, 120, []),
        ("softmax", 60, 200, ["--no-gensim"]),
    ):
        tasks.append(Task(
            f"bench_public_{model}", [*pub, "--model", model, *extra], ("public", "bench"),
            expect, cap, deps=("prepare_public",), stdout_json=True, block=no_gensim,
        ))  # fmt: skip
    # where the time goes (torch.profiler, one epoch of sotu, ours only): only on request
    # (--tasks profile); the tables land in reports/profile/, inside results.tar.gz
    for model in ("sgns", "hs"):
        tasks.append(Task(
            f"profile_{model}",
            [*bench, "--model", model, "--epochs", "1", "--no-gensim",
             "--profile", f"reports/profile/{model}.txt"],
            ("profile",), 40, 120, deps=(f"prepare_{sg}",), stdout_json=True,
            block=no_gensim,
        ))  # fmt: skip
    # A/B of the curvature damping's row sums: sorted segment sums (no atomic adds into
    # hot rows) against bench_sgns / bench_hs (index_add_), ours only, same corpus
    for model, expect in (("sgns", 30), ("hs", 60)):
        tasks.append(Task(
            f"bench_{model}_sorted",
            [*bench, "--model", model, "--repeat", str(args.repeat), "--no-gensim",
             "--torch-scatter", "sorted"],
            ("profile", "bench"), expect, 150, deps=(f"prepare_{sg}",), stdout_json=True,
            block=no_gensim,
        ))  # fmt: skip
    tasks.append(Task(
        "import_gnews", [*py, "stages.import_embeddings", "gnews"], ("emb",), 5, 60,
        outputs=("data/processed/embeddings/gnews/vectors.npy",),
        metrics=("import_embeddings_gnews",),
    ))  # fmt: skip
    sent_emb = get_dotted(params, "sentiment.embedding", "random")
    for model, w, lo, hi in (("avg", 1.0, 25, 150), ("rnn", 1.5, 35, 240)):
        tasks.append(Task(
            f"sentiment_{model}", [*py, "stages.train_sentiment", model], ("emb", "sentiment"),
            lo, hi, min_s=lo, weight=w, time_key="sentiment.trainer.max_time_s",
            overhead_s=20, overrides={"sentiment.trainer.progress_bar": False},
            deps=emb_deps(sent_emb), metrics=(f"train_sentiment_{model}",),
        ))  # fmt: skip
    tasks.append(Task(
        "ner", [*py, "stages.train_ner"], ("seq",), 60, 540, min_s=60, weight=4.0,
        time_key="ner.trainer.max_time_s", overhead_s=30,
        overrides={"ner.trainer.progress_bar": False, "ner.resume": False},
        deps=emb_deps(get_dotted(params, "ner.embedding", "random")), metrics=("train_ner",),
    ))  # fmt: skip
    for level, w in (("word", 3.0), ("char", 4.0)):
        corpus = get_dotted(params, f"lm.levels.{level}.corpus") or get_dotted(
            params, "lm.common.corpus", level
        )
        tasks.append(Task(
            f"lm_{level}", [*py, "stages.train_lm", level], ("seq", "lm"), 60, 540, min_s=60,
            weight=w, time_key=f"lm.levels.{level}.trainer.max_time_s", overhead_s=35,
            # a fresh, measured run: on resume Lightning restores its Timer, so the time
            # of the earlier run counts against max_time_s and training stops at once
            overrides={f"lm.levels.{level}.trainer.progress_bar": False,
                       "lm.common.resume": False},
            deps=(f"prepare_{corpus}",), metrics=(f"train_lm_{level}",),
        ))  # fmt: skip
    return {t.name: t for t in tasks}


# --- targets -------------------------------------------------------------------------------

GLOVE_C_SECONDS = (104.0, 111.0)  # Stanford GloVe C, sotu, 2 cores (issue #3)
GLOVE_C_SCORES = {"analogy_total": 0.062, "ws353": 0.46, "simlex": 0.19, "men": 0.33}
QUALITY_KEYS = ("analogy_total", "ws353", "simlex", "men")


def _metric(results: Mapping, task: str, key: str, file: str | None = None) -> Any:
    res = results.get(task) or {}
    metrics = res.get("metrics") or {}
    m = metrics.get(file or next(iter(metrics), ""), {}) if metrics else {}
    return m.get(key) if isinstance(m, Mapping) else None


def _bench_run(results: Mapping, task: str) -> Mapping:
    runs = ((results.get(task) or {}).get("json") or {}).get("runs") or []
    return runs[0] if runs else {}


def _target(issue: int, what: str, value: Any, ok: Callable[[Any], bool], **extra) -> dict:
    met = None if value is None else bool(ok(value))
    return {"issue": issue, "target": what, "value": value, "met": met, **extra}


def check_targets(results: Mapping[str, Mapping]) -> dict[str, dict]:
    """Every target of issues #3, #4 and #6 the results can answer (met: None = no figure)."""
    out: dict[str, dict] = {}
    secs = _metric(results, "glove", "seconds")
    out["glove_time_vs_c_tool"] = _target(
        3, f"GloVe training faster than the C tool's {GLOVE_C_SECONDS[0]:.0f}-"
        f"{GLOVE_C_SECONDS[1]:.0f} s (sotu, 15 epochs)", secs, lambda v: v < GLOVE_C_SECONDS[0],
        device=_metric(results, "glove", "device"),
        speedup_vs_c=(GLOVE_C_SECONDS[0] / secs) if secs else None,
    )  # fmt: skip
    scores = {k: _metric(results, "evaluate_glove", k) for k in GLOVE_C_SCORES}
    have = all(v is not None for v in scores.values())
    out["glove_quality_vs_c_tool"] = _target(
        3, "GloVe scores >= the C tool's (analogy 6.2%, WS353 0.46, SimLex 0.19, MEN 0.33)",
        scores if have else None,
        lambda v: all(v[k] >= GLOVE_C_SCORES[k] - 1e-9 for k in GLOVE_C_SCORES),
    )  # fmt: skip
    for model, label in (("sgns", "NS"), ("hs", "HS")):
        run = _bench_run(results, f"bench_{model}")
        ratio = (run.get("ratio") or {}).get("raw_words_per_sec")
        out[f"skipgram_{model}_20x_gensim"] = _target(
            4, f"skip-gram {label} raw words/s >= 20x gensim (all cores, same machine)", ratio,
            lambda v: v >= 20.0,
            ours_raw_words_per_sec=(run.get("ours") or {}).get("raw_words_per_sec"),
            gensim_raw_words_per_sec=(run.get("gensim") or {}).get("raw_words_per_sec"),
        )  # fmt: skip
        diffs = (run.get("ratio") or {}).get("score_diff_points") or {}
        diffs = {k: diffs[k] for k in QUALITY_KEYS if k in diffs}
        out[f"skipgram_{model}_quality"] = _target(
            4, f"skip-gram {label} analogy/WS353/SimLex/MEN no more than 1 point below gensim",
            diffs or None, lambda v: all(d >= -1.0 for d in v.values()),
        )  # fmt: skip
    out["ner_test_f1"] = _target(
        6, "NER test F1 >= 89", _metric(results, "ner", "test_f1"), lambda v: v >= 89.0
    )
    accs = {m: _metric(results, f"sentiment_{m}", "test_acc") for m in ("avg", "rnn")}
    accs = {m: v for m, v in accs.items() if v is not None}
    out["sentiment_test_acc"] = _target(
        6, "sentiment test accuracy >= 0.80 (best model)", max(accs.values()) if accs else None,
        lambda v: v >= 0.80, per_model=accs,
    )  # fmt: skip
    out["brown_test_ppl"] = _target(
        6, "Brown word LM test perplexity <= 200", _metric(results, "lm_word", "test_ppl"),
        lambda v: v <= 200.0,
    )  # fmt: skip
    out["shakespeare_valid_nats"] = _target(
        6, "Shakespeare char LM validation <= 1.45 nats/char",
        _metric(results, "lm_char", "valid_nats_per_char"), lambda v: v <= 1.45,
    )  # fmt: skip
    return out


FIGURE_KEYS = {
    "prepare_": ("tokens", "vocab_size", "seconds"),
    "cooccur": ("nnz", "tokens", "seconds", "peak_mem_mb"),
    "glove": ("device", "epochs", "seconds", "seconds_per_epoch", "final_loss"),
    "evaluate_": ("analogy_total", "analogy_semantic", "analogy_syntactic", "analogy_coverage",
                  "ws353", "simlex", "men", "rw", "seconds"),
    "skipgram": ("device", "backend", "seconds", "raw_words_per_sec",
                 "effective_words_per_sec", "final_loss"),
    "sentiment_": ("test_acc", "test_f1", "valid_acc", "epochs", "time_per_epoch_s"),
    "ner": ("test_f1", "valid_f1", "epochs", "time_per_epoch_s", "train_time_s", "device"),
    "lm_word": ("test_ppl", "valid_ppl", "epochs", "time_per_epoch_s", "train_time_s"),
    "lm_char": ("valid_nats_per_char", "test_nats_per_char", "valid_bpc", "epochs",
                "time_per_epoch_s", "train_time_s"),
}  # fmt: skip


def figures(results: Mapping[str, Mapping]) -> dict[str, dict]:
    """A compact table: the headline numbers of every task that ran."""
    out: dict[str, dict] = {}
    for name, res in results.items():
        row: dict[str, Any] = {"status": res.get("status"), "seconds": res.get("seconds")}
        if name.startswith("bench_"):
            run = _bench_run(results, name)
            for who in ("ours", "gensim"):
                r = run.get(who) or {}
                for k in ("raw_words_per_sec", "effective_words_per_sec", "train_seconds"):
                    if r.get(k) is not None:
                        row[f"{who}_{k}"] = r[k]
                for k, v in (r.get("scores") or {}).items():
                    row[f"{who}_{k}"] = v
            row["ratio_raw_words_per_sec"] = (run.get("ratio") or {}).get("raw_words_per_sec")
        else:
            keys = next((v for k, v in FIGURE_KEYS.items() if name.startswith(k)), ())
            for k in keys:
                v = _metric(results, name, k)
                if v is not None:
                    row[k] = v
        out[name] = row
    return out


# --- running -------------------------------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str, allow_nan=True))
    os.replace(tmp, path)


def _clip(text: str, limit: int = LOG_TASK_CHARS) -> str:
    if len(text) <= limit:
        return text
    head = limit // 4
    return (
        text[:head] + f"\n[... {len(text) - limit} characters cut ...]\n" + text[-(limit - head) :]
    )


def environment(py: str, timeout: float = 120) -> dict[str, Any]:
    """Device name, versions and core count, read in a child process (a broken CUDA set-up
    is reported, not fatal)."""
    code = r"""
import json, os, platform, importlib.metadata as md
out = {"python": platform.python_version(), "cpu_count": os.cpu_count(),
       "hostname": platform.node()}
for p in ("torch", "lightning", "torchmetrics", "numpy", "numba", "scipy", "gensim",
          "smart_open", "scikit-learn", "mlflow", "dvc", "hydra-core", "omegaconf"):
    try:
        out[p] = md.version(p)
    except md.PackageNotFoundError:
        out[p] = None
try:
    import torch
    out["cuda"] = torch.cuda.is_available()
    out["device"] = torch.cuda.get_device_name(0) if out["cuda"] else "cpu"
    out["torch_cuda"] = torch.version.cuda
    if out["cuda"]:
        p = torch.cuda.get_device_properties(0)
        out["gpu_memory_gib"] = round(p.total_memory / 2**30, 1)
        out["bf16"] = torch.cuda.is_bf16_supported()
except Exception as exc:
    out["torch_error"] = repr(exc)
print(json.dumps(out))
"""
    try:
        done = subprocess.run(
            [py, "-c", code], capture_output=True, text=True, timeout=timeout, check=False
        )
        return json.loads(done.stdout.strip().splitlines()[-1])
    except Exception as exc:  # noqa: BLE001 - reported in the summary
        return {"error": repr(exc)}


def _last_json(text: str) -> Any:
    """The last top-level JSON object printed in ``text`` (a line starting with ``{``)."""
    decoder = json.JSONDecoder()
    starts = [0] if text.startswith("{") else []
    starts += [i + 1 for i in range(len(text) - 1) if text[i] == "\n" and text[i + 1] == "{"]
    for pos in reversed(starts):
        try:
            obj, _ = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


class Suite:
    """Runs planned tasks in a work folder and keeps the summary and log up to date."""

    def __init__(self, args: argparse.Namespace, tasks: Mapping[str, Task], base: dict):
        self.args = args
        self.tasks = tasks
        self.base = base
        self.work = Path(args.workdir)
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.log_path = self.out / "suite.log"
        self.t0 = time.monotonic()
        self.results: dict[str, dict] = {}
        self.summary: dict[str, Any] = {}
        prev = self.work / "summary.json"
        if prev.is_file() and not args.fresh:  # an earlier call on this (warm) machine
            try:
                old = json.loads(prev.read_text())
                self.results.update(old.get("tasks", {}))
                self.summary["earlier_calls"] = old.get("suite", {}).get("calls", [])
            except (OSError, json.JSONDecodeError):
                pass

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def log(self, text: str) -> None:
        line = f"[{self.elapsed():7.1f}s] {text}"
        print(line, flush=True)
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def is_done(self, task: Task) -> bool:
        return bool(task.outputs) and all((self.work / p).exists() for p in task.outputs)

    def params_for(self, task: Task, max_time_s: float | None) -> dict:
        return task_params(self.base, task, max_time_s)

    def env_for(self, task: Task) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(REPO)]
        if task.block:
            paths.insert(0, str(write_blocker(self.work / "_block")))
            env["WORDPIPE_BLOCK_IMPORTS"] = ",".join(task.block)
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{self.work / 'mlflow.db'}")
        env["WORDPIPE_PIPELINE_ID"] = "gpu-suite"
        return env

    def run_task(self, task: Task, cap: float) -> dict:
        max_time = max(5.0, cap - task.overhead_s) if task.time_key else None
        kill_at = cap + (task.overhead_s / 2 if task.time_key else 0.0)
        kill_at = max(1.0, min(kill_at, self.args.budget_s - self.elapsed()))
        params = self.params_for(task, max_time)
        (self.work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        argv = [a.replace("{py}", self.args.python).replace("{repo}", str(REPO)) for a in task.argv]
        res: dict[str, Any] = {"argv": argv, "cap_s": round(cap, 1), "kill_s": round(kill_at, 1)}
        if max_time is not None:
            res["max_time_s"] = round(max_time, 1)
        logs = self.work / "logs"
        logs.mkdir(exist_ok=True)
        out_file, err_file = logs / f"{task.name}.out", logs / f"{task.name}.err"
        self.log(
            f"start {task.name}: cap {cap:.0f} s"
            + (f", max_time_s {max_time:.0f}" if max_time else "")
        )
        for name in task.metrics:  # never report a stale file from an earlier run
            (self.work / "metrics" / f"{name}.json").unlink(missing_ok=True)
        t0 = time.monotonic()
        with open(out_file, "w") as fo, open(err_file, "w") as fe:
            try:
                proc = subprocess.Popen(
                    argv, cwd=self.work, env=self.env_for(task), stdout=fo, stderr=fe,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
            except OSError as exc:
                res.update(status="failed", error=f"cannot start: {exc}", seconds=0.0)
                return res
            try:
                rc = proc.wait(timeout=kill_at)
                res["status"] = "ok" if rc == 0 else "failed"
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                rc = proc.returncode
                res["status"] = "timeout"
                res["error"] = f"killed after {kill_at:.0f} s (its cap)"
        res["seconds"] = round(time.monotonic() - t0, 2)
        res["returncode"] = rc
        stdout, stderr = out_file.read_text(errors="replace"), err_file.read_text(errors="replace")
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(f"----- {task.name} stdout -----\n{_clip(stdout)}\n")
            fh.write(f"----- {task.name} stderr -----\n{_clip(stderr)}\n")
        if res["status"] == "failed":
            tail = [ln for ln in stderr.strip().splitlines() if ln.strip()][-15:]
            res["error"] = "\n".join(tail) or f"exit status {rc}"
        metrics = {}
        for name in task.metrics:
            path = self.work / "metrics" / f"{name}.json"
            if path.is_file():
                try:
                    metrics[name] = json.loads(path.read_text())
                except json.JSONDecodeError as exc:
                    metrics[name] = {"error": f"unreadable: {exc}"}
        if metrics:
            res["metrics"] = metrics
        if task.stdout_json:
            report = _last_json(stdout)
            if report is not None:
                res["json"] = report
            elif res["status"] == "ok":
                res.update(status="failed", error="no JSON report on stdout")
        if res["status"] == "ok" and task.metrics and not metrics:
            res.update(status="failed", error="exit 0 but no metrics file")
        return res

    def write_summary(self, plan: list[Task], env: dict, done: bool) -> None:
        calls = list(self.summary.get("earlier_calls", []))
        calls.append({"argv": sys.argv[1:], "budget_s": self.args.budget_s,
                      "elapsed_s": round(self.elapsed(), 1), "finished": done,
                      "tasks": [t.name for t in plan]})  # fmt: skip
        summary = {
            "suite": {"version": SUMMARY_VERSION, "profile": get_dotted(self.base, "profile.name"),
                      "params": str(self.args.params), "workdir": str(self.work),
                      "calls": calls},
            "env": env,
            "targets": check_targets(self.results),
            "figures": figures(self.results),
            "tasks": self.results,
        }  # fmt: skip
        _write_json(self.out / "summary.json", summary)
        if self.out.resolve() != self.work.resolve():
            _write_json(self.work / "summary.json", summary)

    def run(self, plan: list[Task], env: dict) -> dict:
        failed: set[str] = set()
        for i, task in enumerate(plan):
            bad = [d for d in task.deps if d in failed]
            remaining = self.args.budget_s - self.elapsed()
            cap = allot(task, remaining, plan[i + 1 :])
            if task.name in self.args.cap:
                cap = min(self.args.cap[task.name], max(remaining, 0.0))
            if bad:
                res = {"status": "skipped", "error": f"needs {', '.join(bad)}, which failed"}
            elif cap is None:
                res = {"status": "skipped", "error": f"budget: {remaining:.0f} s left"}
            else:
                try:
                    res = self.run_task(task, cap)
                except Exception as exc:  # noqa: BLE001 - one task never stops the suite
                    res = {"status": "failed", "error": f"suite error: {exc!r}"}
            if res["status"] != "ok":
                failed.add(task.name)
            self.results[task.name] = res
            self.log(f"{task.name}: {res['status']} in {res.get('seconds', 0):.1f} s"
                     + (f" ({res['error'].splitlines()[-1][:200]})" if res.get("error") else ""))  # fmt: skip
            self.write_summary(plan, env, done=False)
        self.write_summary(plan, env, done=True)
        return json.loads((self.out / "summary.json").read_text())


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the task and every process it started (its own session)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def prepare_workdir(args: argparse.Namespace) -> dict:
    """Work folder with the raw data; returns the base params (with ``--set`` applied)."""
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "data" / "raw"
    if args.raw:
        if not raw.exists():
            raw.parent.mkdir(parents=True, exist_ok=True)
            raw.symlink_to(Path(args.raw).resolve(), target_is_directory=True)
    elif not (raw / ".complete").exists():
        archive = Path(args.data)
        if not archive.is_file():
            raise SystemExit(f"gpu_suite: {archive}: raw data archive not found "
                             "(run benchmarks/gpu_bundle.sh here and carry .gpu)")  # fmt: skip
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
        (raw / ".complete").write_text("ok\n")
    params_file = Path(args.params)
    if not params_file.is_file():
        raise SystemExit(f"gpu_suite: {params_file}: params file not found")
    base = yaml.safe_load(params_file.read_text())
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"gpu_suite: --set {item!r}: expected KEY=VALUE")
        set_dotted(base, key.strip(), yaml.safe_load(value))
    return base


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", default="all", help="all | emb | seq | bench | profile | lm | sentiment | "
                   "task names, comma-separated; -name drops one (default all)")  # fmt: skip
    p.add_argument("--budget-s", type=float, default=540.0, help="wall seconds for the whole run")
    p.add_argument("--out", default=os.environ.get("OUT") or "gpu_out",
                   help="where summary.json and suite.log go (default $OUT, else ./gpu_out)")  # fmt: skip
    p.add_argument("--workdir", default="/tmp/wordpipe_gpu", help="stages run here (kept "
                   "between calls on a warm machine: earlier results are merged)")  # fmt: skip
    p.add_argument("--params", default=str(BUNDLE / "params_gpu.yaml"),
                   help="composed params file (gpu_bundle.sh writes it)")  # fmt: skip
    p.add_argument("--data", default=str(BUNDLE / "raw.tar.xz"), help="packed data/raw")
    p.add_argument("--raw", default=None, help="use this data/raw folder instead of --data")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a params value for every task (YAML value), repeatable")  # fmt: skip
    p.add_argument("--cap", action="append", default=[], metavar="TASK=SECONDS",
                   help="fix one task's cap instead of the planned share, repeatable")  # fmt: skip
    p.add_argument("--device", default="cuda", help="bench_skipgram --device (cuda | cpu)")
    p.add_argument("--repeat", type=int, default=5, help="corpus repeats for bench_sgns/hs")
    p.add_argument("--softmax-repeat", type=int, default=1, help="corpus repeats, bench_softmax")
    p.add_argument("--bench-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for bench_skipgram.py, repeatable (--bench-arg=--epochs "
                   "--bench-arg=1)")  # fmt: skip
    p.add_argument("--python", default=sys.executable, help="interpreter for the tasks")
    p.add_argument("--fresh", action="store_true", help="ignore results of earlier calls")
    p.add_argument("--plan", action="store_true", help="print the plan and caps, run nothing")
    args = p.parse_args(argv)
    caps = {}
    for item in args.cap:
        name, _, secs = item.partition("=")
        caps[name.strip()] = float(secs)
    args.cap = caps
    return args


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.plan:
        base = yaml.safe_load(Path(args.params).read_text()) if Path(args.params).is_file() else {}
        tasks = build_tasks(base, args)
        plan = expand(select(args.tasks, tasks), tasks, lambda t: False)
        rows, left = [], args.budget_s
        for i, t in enumerate(plan):  # as if every fixed task took its expected time
            cap = allot(t, left, plan[i + 1 :])
            rows.append({"task": t.name, "cap_s": None if cap is None else round(cap, 1),
                         "elastic": t.weight > 0, "deps": list(t.deps)})  # fmt: skip
            if cap is not None:
                left -= cap if t.weight > 0 else min(t.expect_s, cap)
        print(json.dumps({"budget_s": args.budget_s, "plan": rows}, indent=2))
        return None
    Path(args.out).mkdir(parents=True, exist_ok=True)
    base = prepare_workdir(args)
    tasks = build_tasks(base, args)
    suite = Suite(args, tasks, base)
    plan = expand(select(args.tasks, tasks), tasks, suite.is_done)
    suite.log(f"plan: {', '.join(t.name for t in plan)} (budget {args.budget_s:.0f} s)")
    env = environment(args.python)
    suite.log(f"env: {json.dumps(env)}")
    summary = suite.run(plan, env)
    _pack_results(Path(args.workdir), Path(args.out))
    for name, tgt in summary["targets"].items():
        mark = {True: "MET", False: "missed", None: "-"}[tgt["met"]]
        val = tgt["value"]
        val = f"{val:.4g}" if isinstance(val, float) else json.dumps(val, default=str)[:80]
        suite.log(f"target {name}: {mark} ({val})")
    return summary


def _pack_results(work: Path, out: Path) -> None:
    """metrics/, reports/ (plots, predictions, samples) and task logs as one small archive."""
    try:
        with tarfile.open(out / "results.tar.gz", "w:gz") as tar:
            for name in ("metrics", "reports", "logs", "params.yaml"):
                if (work / name).exists():
                    tar.add(work / name, arcname=name)
        if (out / "results.tar.gz").stat().st_size > 15 * 2**20:
            (out / "results.tar.gz").unlink()
            with tarfile.open(out / "results.tar.gz", "w:gz") as tar:
                tar.add(work / "metrics", arcname="metrics")
    except OSError as exc:
        print(f"gpu_suite: results.tar.gz not written ({exc})", file=sys.stderr)


if __name__ == "__main__":
    if shutil.which("nvidia-smi") is None:
        print("gpu_suite: no nvidia-smi here (fine for a CPU test run)", file=sys.stderr)
    main()
