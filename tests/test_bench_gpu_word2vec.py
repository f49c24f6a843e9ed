"""benchmarks/bench_gpu_word2vec.py: the runs it plans, its table, one tiny run on CPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from pipeline.data.vocab import SPECIALS, Vocabulary
from tests.test_skipgram import IDS, VOCAB

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_gpu_word2vec as bg  # noqa: E402


def test_triton_runs_for_ns_and_hs_with_cap_damping():
    runs = bg.variants(["sgns", "hs", "cbow", "softmax"], ["torch", "triton"], 32.0)
    assert [(m, k) for m, k, _ in runs] == [
        ("sgns", "torch"), ("sgns", "triton"), ("hs", "torch"), ("hs", "triton"),
        ("cbow", "torch"), ("cbow", "triton"), ("softmax", "torch"),
    ]  # fmt: skip
    flags = dict(zip(runs[1][2][::2], runs[1][2][1::2], strict=True))
    assert flags["--torch-kernel"] == "triton" and flags["--torch-damping"] == "cap"
    assert flags["--torch-dup-cap"] == "32.0" and flags["--torch-negatives"] == "shared"


def test_table_puts_gensim_beside_ours_and_shows_errors():
    report = {
        "gensim": {"sgns": {"raw_words_per_sec": 2e6, "scores": {"ws353": 0.5}}},
        "rows": [
            {"model": "sgns", "kernel": "torch",
             "ours": {"raw_words_per_sec": 4e7, "scores": {"ws353": 0.48, "men": 0.4}}},
            {"model": "sgns", "kernel": "triton", "ours": {"error": "timed out after 9 s"}},
        ],
    }  # fmt: skip
    lines = bg.table(report).splitlines()
    assert lines[2].split(" | ")[2:6] == ["40.00M", "2.00M", "20.0x", "-"]
    assert "0.480 / 0.500" in lines[2] and "| 0.400 |" in lines[2]
    assert "timed out after 9 s" in lines[3]


def test_a_tiny_cpu_run_writes_the_json_and_prints_the_table(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    np.save(corpus / "train.npy", IDS.astype(np.int32))
    counts = np.bincount(IDS, minlength=VOCAB)
    Vocabulary([*SPECIALS, *(f"w{i}" for i in range(3, VOCAB))], counts).save_tsv(
        corpus / "vocab.tsv"
    )
    out = tmp_path / "bench.json"
    argv = ["--device", "cpu", "--corpus", str(corpus), "--epochs", "1", "--models",
            "sgns,hs", "--kernels", "torch", "--no-gensim", "--bench-dir",
            str(tmp_path / "none"), "--out", str(out), "--", "--dim", "16"]  # fmt: skip
    bg.main(argv)
    report = json.loads(out.read_text())
    assert [(r["model"], r["kernel"]) for r in report["rows"]] == [
        ("sgns", "torch"),
        ("hs", "torch"),
    ]
    for row in report["rows"]:
        assert row["ours"]["device"] == "cpu" and row["ours"]["raw_words"] > 0
    assert report["hardware"]["cpu_count"] >= 1 and report["settings"]["extra"] == ["--dim", "16"]
    assert report["command"].endswith("-- --dim 16")
    assert "| sgns | torch |" in capsys.readouterr().out
