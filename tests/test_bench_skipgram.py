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


def test_profile_writes_the_top_ops_of_ours(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    np.save(corpus / "train.npy", IDS.astype(np.int32))
    counts = np.bincount(IDS, minlength=VOCAB)
    Vocabulary([*SPECIALS, *(f"w{i}" for i in range(3, VOCAB))], counts).save_tsv(
        corpus / "vocab.tsv"
    )
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
