"""Benchmark the `prepare` library on a generated Zipfian corpus (default 100M tokens).

    .venv/bin/python benchmarks/bench_prepare.py                # 100M tokens
    .venv/bin/python benchmarks/bench_prepare.py --tokens 5e6   # quick look
    .venv/bin/python benchmarks/bench_prepare.py --tokens 2e7 --keep --workdir DIR
    .venv/bin/python benchmarks/bench_prepare.py --corpus DIR --engines fast   # reuse

The corpus is written to disk chunk by chunk (never held in memory): ``--vocab`` distinct
letter-only words drawn with probability ~ 1/rank^``--exponent``, lines of 5-35 words.
The preparation (word level, min_count 5, digits -> 0) then runs once per engine, each
in a child process, so its peak memory (``ru_maxrss``, the whole process) is measured
alone: ``fast`` (the default engine) and ``reference`` (the previous implementation's
plain-Python count and encode passes, kept as the definition the fast engine is tested
against). Prints tokens/s, peak memory and the ratios fast / reference, and checks that
both wrote the same bytes. With ``--reference-tokens``, gensim's vocabulary scan
(``Word2Vec.build_vocab`` over ``LineSentence``, count only) runs on the first tokens.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def make_words(n: int) -> np.ndarray:
    """``n`` distinct lowercase letter-only words (base-26 spelling of the rank)."""
    out = []
    for i in range(n):
        s = []
        i += 1
        while i:
            i, r = divmod(i - 1, 26)
            s.append(LETTERS[r])
        out.append("".join(reversed(s)))
    return np.array(out, dtype=object)


def generate(path: Path, tokens: int, vocab: int, exponent: float, seed: int) -> dict:
    """Write a Zipfian corpus of ``tokens`` words to ``path``, 1M tokens at a time."""
    rng = np.random.default_rng(seed)
    words = make_words(vocab)
    cdf = np.cumsum(1.0 / np.arange(1, vocab + 1) ** exponent)
    cdf /= cdf[-1]
    t0 = time.perf_counter()
    written = 0
    lines = 0
    with open(path, "w", encoding="utf-8") as fh:
        while written < tokens:
            n = min(1_000_000, tokens - written)
            ids = np.minimum(np.searchsorted(cdf, rng.random(n)), vocab - 1)
            toks = words[ids].tolist()
            lengths = rng.integers(5, 36, size=n // 5 + 2)
            ends = np.cumsum(lengths)
            ends = ends[ends < n].tolist() + [n]
            start = 0
            chunk = []
            for end in ends:
                chunk.append(" ".join(toks[start:end]))
                start = end
            fh.write("\n".join(chunk) + "\n")
            lines += len(chunk)
            written += n
    return {
        "tokens": written,
        "lines": lines,
        "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def worker(corpus_dir: Path, out_dir: Path, min_count: int, engine: str = "fast") -> None:
    """Child process: prepare the corpus; print the result as JSON."""
    from pipeline.data.corpora import open_corpus
    from pipeline.data.encode import EncodeSettings, prepare_corpus
    from pipeline.data.text import NormalizeConfig

    corpus = open_corpus("text", corpus_dir, files="*.txt")
    settings = EncodeSettings(
        min_count=min_count,
        normalize=NormalizeConfig(digits="0"),
        progress=False,
        engine=engine,  # type: ignore[arg-type]
    )
    res = prepare_corpus(corpus, settings, out_dir)
    m = res.metrics()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    m["peak_rss_mb"] = ru.ru_maxrss / 1024
    m["cpu_seconds"] = ru.ru_utime + ru.ru_stime
    print(json.dumps(m))


def run_engine(corpus_dir: Path, out_dir: Path, min_count: int, engine: str) -> dict:
    """Prepare in a child process (its own peak memory); the figures as a dict."""
    t0 = time.perf_counter()
    cmd = [sys.executable, __file__, "--worker", str(corpus_dir), str(out_dir)]
    cmd += ["--min-count", str(min_count), "--engine", engine]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(proc.returncode)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "engine": engine,
        "tokens": res["tokens"],
        "words": res["words"],
        "vocab_size": res["vocab_size"],
        "oov_rate": res["oov_rate"],
        "seconds": res["seconds"],
        "count_seconds": res["count_seconds"],
        "encode_seconds": res["encode_seconds"],
        "wall_seconds_with_startup": round(wall, 2),
        "cpu_seconds": round(res["cpu_seconds"], 2),
        "tokens_per_second": res["tokens"] / res["seconds"],
        "tokens_per_cpu_second": res["tokens"] / res["cpu_seconds"],
        "peak_rss_mb": round(res["peak_rss_mb"], 1),
        "output_mb": round(sum(p.stat().st_size for p in out_dir.iterdir()) / 2**20, 1),
    }


def same_outputs(a: Path, b: Path) -> bool:
    names = ("vocab.tsv", "train.npy", "valid.npy", "test.npy")
    return all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def reference_gensim(corpus_file: Path, tokens: int, tmp: Path) -> dict:
    """gensim's vocabulary scan (count only) on the first ``tokens`` tokens."""
    from gensim.models.word2vec import LineSentence, Word2Vec

    head = tmp / "head.txt"
    n = 0
    with open(corpus_file, encoding="utf-8") as src, open(head, "w", encoding="utf-8") as dst:
        for line in src:
            dst.write(line)
            n += line.count(" ") + 1
            if n >= tokens:
                break
    model = Word2Vec(vector_size=10, min_count=5, workers=1)
    t0 = time.perf_counter()
    model.build_vocab(corpus_iterable=LineSentence(str(head)))
    dt = time.perf_counter() - t0
    head.unlink()
    return {
        "tokens": n,
        "seconds": round(dt, 3),
        "tokens_per_second": n / dt,
        "vocab": len(model.wv),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tokens", type=float, default=100e6, help="corpus size in tokens (default 1e8)"
    )
    parser.add_argument(
        "--vocab", type=int, default=500_000, help="distinct words (default 500000)"
    )
    parser.add_argument("--exponent", type=float, default=1.0, help="Zipf exponent (default 1.0)")
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument(
        "--engines",
        default="fast,reference",
        help="engines to run, comma-separated (default fast,reference)",
    )
    parser.add_argument(
        "--corpus", type=Path, default=None, help="a folder of *.txt to use instead of generating"
    )
    parser.add_argument(
        "--reference-tokens", type=float, default=0, help="gensim reference size (0: skip)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to write (default: a temp folder)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated corpus and outputs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="fast", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker[0], args.worker[1], args.min_count, args.engine)
        return

    base = Path(tempfile.mkdtemp(prefix="bench_prepare.", dir=args.workdir))
    try:
        if args.corpus is None:
            corpus_dir = base / "corpus"
            corpus_dir.mkdir()
            gen = generate(
                corpus_dir / "zipf.txt", int(args.tokens), args.vocab, args.exponent, args.seed
            )
            corpus = {"kind": "zipf", "vocab": args.vocab, "exponent": args.exponent, **gen}
        else:
            corpus_dir = args.corpus
            corpus = {"kind": "given", "path": str(corpus_dir)}
        result: dict = {"benchmark": "prepare", "corpus": corpus}
        engines = [e for e in args.engines.split(",") if e]
        for engine in engines:
            result[engine] = run_engine(corpus_dir, base / engine, args.min_count, engine)
        if "fast" in result and "reference" in result:
            fast, ref = result["fast"], result["reference"]
            result["ratio_fast_vs_reference"] = {
                "tokens_per_second": fast["tokens_per_second"] / ref["tokens_per_second"],
                "peak_rss_mb": fast["peak_rss_mb"] / ref["peak_rss_mb"],
                "same_outputs": same_outputs(base / "fast", base / "reference"),
            }
        result["machine"] = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg": os.getloadavg(),
        }
        if args.reference_tokens > 0:
            ref = reference_gensim(corpus_dir / "zipf.txt", int(args.reference_tokens), base)
            result["reference_gensim_build_vocab"] = ref
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
