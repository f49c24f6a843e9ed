"""Benchmark co-occurrence counting: tokens/s and peak memory, as JSON.

Two corpora: the default prepared corpus (``data/processed/sotu/train.npy``), and a
generated Zipfian corpus of ``--big-tokens`` ids (100M by default) written to disk and
read a chunk at a time. Each count runs in its own subprocess, so ``peak_rss_mb`` is the
whole process's maximum resident memory while it counts (interpreter, numpy and numba
included; on Linux the peak is reset once the kernels are loaded), the
number Stanford GloVe's ``cooccur`` is measured by: about 2.2 s and 377 MB for the 2.0M
tokens of ``sotu`` at window 15 on 2 cores. Each child loads the numba kernels first;
its resident memory then is the interpreter's footprint (``interpreter_mb``), and
``count_mem_mb`` (peak minus footprint) is what the counting added, which the budget
``--memory-mb`` bounds (``within_budget``).

``--baseline-rev REV`` also runs the previous implementation (``git show
REV:pipeline/glove/cooccur.py``, loaded from a temporary folder) on the same corpora and
prints the ratios new / previous.

    python benchmarks/bench_cooccur.py                       # both corpora
    python benchmarks/bench_cooccur.py --big-tokens 0        # default corpus only
    python benchmarks/bench_cooccur.py --big-tokens 20000000 --baseline-rev HEAD~1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import queue
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.core.memory import process_peak_mb

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GLOVE_C = {"corpus": "sotu", "tokens": 2.0e6, "seconds": 2.2, "peak_rss_mb": 377.0}


def _module(baseline: str | None):
    """The co-occurrence module: this checkout's, or a previous one loaded by path."""
    if baseline is None:
        from pipeline.glove import cooccur

        return cooccur
    spec = importlib.util.spec_from_file_location("cooccur_baseline", baseline)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cooccur_baseline"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        return int(next(x for x in fh if x.startswith(field + ":")).split()[1]) / 1024


def _reset_peak() -> bool:
    """Reset this process's peak resident memory to its current one (Linux), so the peak
    read later is the counting's alone: ``ru_maxrss`` would also hold the start-up's, and
    the parent's resident memory when it started this process."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        _status_mb("VmHWM")
    except (OSError, StopIteration):
        return False
    return True


def _count(ids_path: str, vocab_size: int, out: str, window: int, memory_mb: float,
           baseline: str | None, q) -> None:  # fmt: skip
    import psutil

    count_cooccurrences = _module(baseline).count_cooccurrences
    # load the cached numba kernels first (a count that spills and merges, and one that
    # does not): the timing below is the counting only, and the memory resident now is
    # the interpreter's footprint
    ids = np.random.default_rng(0).integers(1, 400, 5000).astype(np.int32)
    count_cooccurrences(ids, 400, out, window=2, memory_mb=0.001)
    count_cooccurrences(ids[:50], 400, out, window=2)
    hwm = _reset_peak()
    start_mb = psutil.Process().memory_info().rss / 2**20
    t0, c0 = time.perf_counter(), time.process_time()
    stats = count_cooccurrences(ids_path, vocab_size, out, window=window, memory_mb=memory_mb)
    seconds = time.perf_counter() - t0
    peak = _status_mb("VmHWM") if hwm else process_peak_mb()
    q.put(
        {
            "implementation": "previous" if baseline else "current",
            "tokens": stats.tokens,
            "vocab_size": vocab_size,
            "window": window,
            "memory_mb": memory_mb,
            "nnz": stats.nnz,
            "pairs": stats.pairs,
            "spills": stats.spills,
            "seconds": seconds,
            "cpu_seconds": time.process_time() - c0,
            "count_seconds": stats.extra["count_seconds"],
            "finish_seconds": stats.extra["finish_seconds"],
            "tokens_per_second": stats.tokens / seconds,
            "peak_rss_mb": peak,
            "interpreter_mb": start_mb,
            "count_mem_mb": peak - start_mb,
            "within_budget": peak <= start_mb + memory_mb,
            "output_mb": Path(out).stat().st_size / 2**20,
        }
    )


def measure(ids_path: Path, vocab_size: int, window: int, memory_mb: float, tmp: Path,
            baseline: str | None = None) -> dict:  # fmt: skip
    ctx = mp.get_context("spawn")  # a fresh process: its peak RSS is this count's alone
    q = ctx.Queue()
    args = (str(ids_path), vocab_size, str(tmp / "c.npz"), window, memory_mb, baseline, q)
    p = ctx.Process(target=_count, args=args)
    p.start()
    while p.is_alive() or not q.empty():
        try:
            result = q.get(timeout=1.0)
            break
        except queue.Empty:
            continue
    else:
        raise SystemExit(f"the counting process failed (exit code {p.exitcode})")
    p.join()
    (tmp / "c.npz").unlink(missing_ok=True)
    return result


def compare(ids_path: Path, vocab_size: int, args, tmp: Path, baseline: str | None) -> dict:
    """The current implementation, and the previous one when given, with the ratios."""
    r = measure(ids_path, vocab_size, args.window, args.memory_mb, tmp)
    if baseline is None:
        return r
    b = measure(ids_path, vocab_size, args.window, args.memory_mb, tmp, baseline)
    return {
        "current": r,
        "previous": b,
        "ratio_current_vs_previous": {
            "tokens_per_second": r["tokens_per_second"] / b["tokens_per_second"],
            "peak_rss_mb": r["peak_rss_mb"] / b["peak_rss_mb"],
            "same_nnz": r["nnz"] == b["nnz"],
        },
    }


def generate(path: Path, tokens: int, vocab_size: int, seed: int = 0) -> None:
    """Zipfian ids (a = 1.1, folded into the vocabulary), a paragraph end every ~100 ids."""
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.int32, shape=(tokens,))
    step = 10_000_000
    for s in range(0, tokens, step):
        n = min(step, tokens - s)
        ids = (rng.zipf(1.1, n) - 1) % (vocab_size - 3) + 3
        ids[rng.random(n) < 0.01] = 2
        out[s : s + n] = ids
    out.flush()
    del out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", default="data/processed/sotu", type=Path)
    parser.add_argument("--window", type=int, default=15)
    parser.add_argument("--memory-mb", type=float, default=128.0)
    parser.add_argument("--big-tokens", type=int, default=100_000_000)
    parser.add_argument("--big-vocab", type=int, default=100_000)
    parser.add_argument("--tmp", default=None, help="folder for the generated corpus")
    parser.add_argument(
        "--baseline-rev", default=None, help="git revision of the previous implementation"
    )
    args = parser.parse_args(argv)

    from pipeline.data.vocab import Vocabulary

    report: dict = {"reference_glove_c": GLOVE_C}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        baseline = None
        if args.baseline_rev:
            source = subprocess.run(
                ["git", "show", f"{args.baseline_rev}:pipeline/glove/cooccur.py"],
                cwd=REPO, capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            baseline = str(tmp / "cooccur_baseline.py")
            Path(baseline).write_text(source, encoding="utf-8")
            report["baseline_rev"] = args.baseline_rev
        if (args.corpus / "train.npy").is_file():
            vocab = Vocabulary.load_tsv(args.corpus / "vocab.tsv")
            r = compare(args.corpus / "train.npy", len(vocab), args, tmp, baseline)
            cur = r.get("current", r)
            cur["speed_ratio_vs_glove_c"] = GLOVE_C["seconds"] / cur["seconds"]
            cur["memory_ratio_vs_glove_c"] = cur["peak_rss_mb"] / GLOVE_C["peak_rss_mb"]
            report["default_corpus"] = {"path": str(args.corpus), **r}
        else:
            report["default_corpus"] = f"{args.corpus}/train.npy not found (run prepare)"
        if args.big_tokens:
            path = tmp / "big.npy"
            t0 = time.perf_counter()
            generate(path, args.big_tokens, args.big_vocab)
            gen = time.perf_counter() - t0
            r = compare(path, args.big_vocab, args, tmp, baseline)
            report["generated_corpus"] = {"generate_seconds": gen, **r}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
