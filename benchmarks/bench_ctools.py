"""Side by side: Stanford GloVe's C ``vocab_count`` + ``cooccur`` against ``prepare`` +
``cooccur`` of this project, on the same generated corpus. Prints one JSON object.

    python benchmarks/bench_ctools.py --glove-c GLOVE/build --tokens 2e7
    python benchmarks/bench_ctools.py --glove-c GLOVE/build --corpus DIR   # reuse zipf.txt

The corpus is the Zipfian text ``benchmarks/bench_prepare.py`` writes (``--vocab`` word
types, exponent ``--exponent``, lines of 5-35 words). Each step is one process, timed from
outside: wall seconds, CPU seconds (user + system of the finished child) and its peak
resident memory (``ru_maxrss``), after an untimed warm-up (the corpus read once, numba's
kernels compiled). The two tool chains run in turn, C first, ``--pairs``
times (A B A B ...), and the ratios are taken pair by pair: C / ours for time, ours / C
for memory; the whole path's time is the sum of its two steps, its memory the larger
peak.

Settings, the same on both sides as far as the tools allow:

- window 10, symmetric, weight ``1/d``, the window stops at a line end (C: a newline;
  here: the ``<eos>`` each line ends with);
- vocabulary: words seen at least ``--min-count`` (5) times; words outside it are
  skipped and take no position (C ``cooccur``; here ``unk_takes_position: false``);
- C ``cooccur -memory 4.0`` (its own budget, in GB, the figure GloVe's demo uses) and
  ``-overflow-file`` in a temporary folder; this project's ``cooccur`` at ``--memory-mb``
  (128, the default of ``params.yaml``).

Differences: C splits on whitespace only, keeps case and writes no ids; ``prepare`` runs
its tokenizer (regex, NFKC, lower case, digits -> ``0``) and writes the vocabulary and
the id stream (``train.npy``) that ``cooccur`` reads. On this corpus (lower-case letters
and spaces) both see the same words, so the two matrices have the same non-zeros
(``nnz`` is compared): C writes every (row, col) record as int32, int32, float64 (16
bytes); this project writes ``cooccur.npz`` (int32, int32, float32: 12 bytes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def step(cmd: list[str], *, stdin: Path | None = None, stdout: Path | None = None,
         cwd: Path | None = None) -> dict:  # fmt: skip
    """Run one process under ``/usr/bin/time``; its wall and CPU seconds, peak resident
    memory (MiB) and standard output. (``time`` is a small process: the peak of a child
    started straight from this Python process would include this process's own.)"""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        timed = ["/usr/bin/time", "-o", report.name, "-f", "%e %U %S %M", *cmd]
        with contextlib.ExitStack() as stack:
            fin = stack.enter_context(open(stdin, "rb")) if stdin else subprocess.DEVNULL
            fout = stack.enter_context(open(stdout, "wb")) if stdout else subprocess.PIPE
            proc = subprocess.run(timed, stdin=fin, stdout=fout, stderr=subprocess.PIPE,
                                  cwd=cwd, check=False)  # fmt: skip
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr.decode(errors="replace"))
            raise SystemExit(f"{' '.join(cmd[:3])} ... failed (exit code {proc.returncode})")
        wall, user, system, max_kb = report.read().split()[-4:]
    return {
        "seconds": float(wall),
        "cpu_seconds": round(float(user) + float(system), 2),
        "peak_rss_mb": round(int(max_kb) / 1024, 1),
        "stdout": proc.stdout.decode(errors="replace") if proc.stdout else "",
    }


def run_c(glove_c: Path, corpus: Path, work: Path, args) -> dict:
    """C ``vocab_count`` then ``cooccur``; the figures of each step."""
    work.mkdir(parents=True, exist_ok=True)
    vocab = step([str(glove_c / "vocab_count"), "-min-count", str(args.min_count),
                  "-verbose", "0"], stdin=corpus, stdout=work / "vocab.txt")  # fmt: skip
    cmd = [str(glove_c / "cooccur"), "-memory", str(args.c_memory), "-vocab-file",
           str(work / "vocab.txt"), "-verbose", "0", "-symmetric", "1", "-window-size",
           str(args.window), "-overflow-file", str(work / "overflow")]  # fmt: skip
    cooc = step(cmd, stdin=corpus, stdout=work / "cooccurrence.bin", cwd=work)
    for r in (vocab, cooc):
        del r["stdout"]
    with open(work / "vocab.txt", encoding="utf-8") as fh:
        vocab["vocab_size"] = sum(1 for _ in fh)
    cooc["nnz"] = (work / "cooccurrence.bin").stat().st_size // 16
    shutil.rmtree(work, ignore_errors=True)
    return {"vocab_count": vocab, "cooccur": cooc}


def run_ours(corpus_dir: Path, work: Path, args) -> dict:
    """This project's ``prepare`` then ``cooccur``, each in its own process."""
    out = work / "prepared"
    prep = step([sys.executable, str(REPO / "benchmarks" / "bench_prepare.py"), "--worker",
                 str(corpus_dir), str(out), "--min-count", str(args.min_count)])  # fmt: skip
    cmd = [sys.executable, __file__, "--cooccur-worker", str(out), str(work / "cooccur.npz"),
           "--window", str(args.window), "--memory-mb", str(args.memory_mb)]  # fmt: skip
    cooc = step(cmd)
    prep_metrics = json.loads(prep.pop("stdout").strip().splitlines()[-1])
    cooc_metrics = json.loads(cooc.pop("stdout").strip().splitlines()[-1])
    prep["vocab_size"] = prep_metrics["vocab_size"]
    prep["tokens"] = prep_metrics["tokens"]
    cooc.update(cooc_metrics)
    shutil.rmtree(work, ignore_errors=True)
    return {"prepare": prep, "cooccur": cooc}


def cooccur_worker(prepared: Path, output: Path, window: int, memory_mb: float) -> None:
    """Child process: count as the ``cooccur`` stage does; print its figures as JSON."""
    import resource

    from pipeline.data.vocab import Vocabulary
    from pipeline.glove.cooccur import count_cooccurrences, load_kernels

    vocab = Vocabulary.load_tsv(prepared / "vocab.tsv")
    load_kernels()
    interpreter_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stats = count_cooccurrences(prepared / "train.npy", len(vocab), output, window=window,
                                memory_mb=memory_mb)  # fmt: skip
    print(json.dumps({"nnz": stats.nnz, "spills": stats.spills,
                      "interpreter_mb": round(interpreter_mb, 1),
                      "count_seconds": round(stats.extra["count_seconds"], 2),
                      "finish_seconds": round(stats.extra["finish_seconds"], 2)}))  # fmt: skip


def warm_up(corpus: Path, base: Path, args) -> None:
    """Untimed: read the corpus once (into the page cache, for both tool chains) and run
    ``prepare`` + ``cooccur`` on its first 2 MB, so numba's cache of compiled kernels is
    filled before the timed runs (a fresh checkout compiles them on first use)."""
    warm = base / "warm"
    warm.mkdir()
    with open(corpus, "rb") as src, open(warm / "zipf.txt", "wb") as dst:
        dst.write(src.read(2 << 20).rsplit(b"\n", 1)[0] + b"\n")
        while src.read(64 << 20):
            pass
    run_ours(warm, base / "warm_out", args)
    shutil.rmtree(warm, ignore_errors=True)


def summarize(pairs: list[dict]) -> dict:
    """Medians of each step and of the whole path, and the ratios taken pair by pair."""

    def path(run: dict, a: str, b: str) -> dict:
        return {
            "seconds": run[a]["seconds"] + run[b]["seconds"],
            "cpu_seconds": run[a]["cpu_seconds"] + run[b]["cpu_seconds"],
            "peak_rss_mb": max(run[a]["peak_rss_mb"], run[b]["peak_rss_mb"]),
        }

    rows = {"c_vocab_count": [], "c_cooccur": [], "c_path": [], "ours_prepare": [],
            "ours_cooccur": [], "ours_path": []}  # fmt: skip
    ratios: dict[str, list[float]] = {}
    for p in pairs:
        c, o = p["c"], p["ours"]
        cp, op = path(c, "vocab_count", "cooccur"), path(o, "prepare", "cooccur")
        steps = {"c_vocab_count": c["vocab_count"], "c_cooccur": c["cooccur"], "c_path": cp,
                 "ours_prepare": o["prepare"], "ours_cooccur": o["cooccur"], "ours_path": op}  # fmt: skip
        for k, v in steps.items():
            rows[k].append(v)
        for name, (cs, os_) in {
            "vocab": (c["vocab_count"], o["prepare"]),
            "cooccur": (c["cooccur"], o["cooccur"]),
            "path": (cp, op),
        }.items():
            ratios.setdefault(f"{name}_seconds_c_over_ours", []).append(
                cs["seconds"] / os_["seconds"]
            )
            ratios.setdefault(f"{name}_cpu_c_over_ours", []).append(
                cs["cpu_seconds"] / os_["cpu_seconds"]
            )
            ratios.setdefault(f"{name}_memory_ours_over_c", []).append(
                os_["peak_rss_mb"] / cs["peak_rss_mb"]
            )
    med = {
        k: {
            f: round(statistics.median(r[f] for r in v), 2)
            for f in ("seconds", "cpu_seconds", "peak_rss_mb")
        }  # fmt: skip
        for k, v in rows.items()
    }
    return {"median": med,
            "ratios_median": {k: round(statistics.median(v), 3) for k, v in ratios.items()}}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--glove-c", type=Path, help="folder of the built C tools")
    parser.add_argument("--tokens", type=float, default=100e6)
    parser.add_argument("--vocab", type=int, default=500_000)
    parser.add_argument("--exponent", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", type=Path, default=None, help="a folder with zipf.txt")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--memory-mb", type=float, default=128.0)
    parser.add_argument("--c-memory", type=float, default=4.0, help="C cooccur -memory, GB")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--cooccur-worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cooccur_worker:
        cooccur_worker(*args.cooccur_worker, args.window, args.memory_mb)
        return
    if args.glove_c is None or not (args.glove_c / "cooccur").is_file():
        parser.error("--glove-c: the folder with GloVe's built vocab_count and cooccur")

    base = Path(tempfile.mkdtemp(prefix="bench_ctools.", dir=args.workdir))
    try:
        if args.corpus is None:
            sys.path.insert(0, str(REPO / "benchmarks"))
            from bench_prepare import generate

            corpus_dir = base / "corpus"
            corpus_dir.mkdir()
            generate(corpus_dir / "zipf.txt", int(args.tokens), args.vocab, args.exponent,
                     args.seed)  # fmt: skip
        else:
            corpus_dir = args.corpus
        corpus = corpus_dir / "zipf.txt"
        warm_up(corpus, base, args)
        pairs = []
        for i in range(args.pairs):
            c = run_c(args.glove_c.resolve(), corpus, base / f"c{i}", args)
            ours = run_ours(corpus_dir, base / f"ours{i}", args)
            pairs.append({"c": c, "ours": ours})
            print(json.dumps({"pair": i, **pairs[-1]}), file=sys.stderr)
        result = {
            "benchmark": "ctools",
            "corpus": {"path": str(corpus), "bytes": corpus.stat().st_size},
            "settings": {
                "window": args.window,
                "min_count": args.min_count,
                "memory_mb": args.memory_mb,
                "c_memory_gb": args.c_memory,
            },  # fmt: skip
            "pairs": pairs,
            **summarize(pairs),
            "same_nnz": all(
                p["c"]["cooccur"]["nnz"] == p["ours"]["cooccur"]["nnz"] for p in pairs
            ),  # fmt: skip
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_avg": os.getloadavg(),
            },  # fmt: skip
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
