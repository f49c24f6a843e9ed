"""benchmarks/bench_skipgram.py on a tiny planted corpus: the JSON report and --profile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from pipeline.data.vocab import SPECIALS, Vocabulary
from tests.test_skipgram import IDS, VOCAB

REPO = Path(__file__).resolve().parents[1]


def _write_corpus(tmp_path: Path) -> Path:
    """A prepared corpus folder (``train.npy`` + ``vocab.tsv``) of the ids ``IDS``."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    np.save(corpus / "train.npy", IDS.astype(np.int32))
    counts = np.bincount(IDS, minlength=VOCAB)
    Vocabulary([*SPECIALS, *(f"w{i}" for i in range(3, VOCAB))], counts).save_tsv(
        corpus / "vocab.tsv"
    )
    return corpus


def test_profile_writes_the_top_ops_of_ours(tmp_path):
    corpus = _write_corpus(tmp_path)
    prof = tmp_path / "prof" / "sgns.txt"
    argv = [
        "--corpus", str(corpus), "--backend", "torch", "--epochs", "1", "--no-gensim",
        "--workers", "1", "--bench-dir", str(tmp_path / "none"), "--profile", str(prof),
    ]  # fmt: skip
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/bench_skipgram.py"), *argv],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    report = json.loads(out.stdout)
    ours = report["runs"][0]["ours"]
    assert (
        ours["backend"] == "torch" and ours["raw_words"] > 0 and "gensim" not in report["runs"][0]
    )
    table = prof.read_text()
    assert table.startswith("sorted by self_cpu_time_total")
    assert "index_add_" in table  # the sparse row updates show up among the top ops


def test_worker_list_interleaves_both_trainers_and_sums_up_the_scaling(tmp_path):
    corpus = _write_corpus(tmp_path)
    argv = ["--corpus", str(corpus), "--workers", "1,2", "--runs", "2", "--epochs", "1",
            "--dim", "16", "--no-eval"]  # fmt: skip
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/bench_skipgram.py"), *argv],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    report = json.loads(out.stdout)
    assert [r["workers"] for r in report["runs"]] == [1, 2, 1, 2]
    for run in report["runs"]:
        ours, gensim = run["ours"], run["gensim"]
        assert ours["workers"] == gensim["workers"] == run["workers"]
        assert ours["backend"] == "numba" and ours["scores"] == {} == gensim["scores"]
        assert ours["train_cpu_seconds"] > 0 and gensim["train_cpu_seconds"] > 0
        assert 0 < ours["train_peak_rss_mb"] <= ours["peak_rss_mb"]
        # the numba path on CPU needs neither torch nor MLflow
        assert ours["heavy_modules_imported"] == []
    summary = report["summary"]
    assert summary["ours"]["1"]["speedup"] == 1.0 and summary["ours"]["2"]["runs"] == 2
    two = summary["ours"]["2"]["speedup"] / summary["gensim"]["2"]["speedup"]
    assert summary["scaling_vs_gensim"]["2"] == two
    assert "speedup ours / speedup gensim at 2 workers" in out.stderr


def test_worker_list_rejects_a_count_below_one():
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/bench_skipgram.py"), "--workers", "1,0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2 and "--workers: expected N or N,M" in out.stderr
