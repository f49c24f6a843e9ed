"""The lab's stages on tiny generated data in tmp_path (smoke profile)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.core.atomic import save_npy
from pipeline.data.vocab import Vocabulary
from tests.conftest import write_params


@pytest.fixture
def lab_repo(tmp_path, monkeypatch, smoke_params):
    nouns = [w for pair in smoke_params["lab"]["agreement"]["nouns"] for w in pair]
    filler = [f"w{i}" for i in range(20)]
    tokens = ["<pad>", "<unk>", "<eos>", "the", "was", "were", *nouns, *filler]
    corpus = tmp_path / "data/processed/brown"
    corpus.mkdir(parents=True)
    Vocabulary(tokens, [0] * len(tokens)).save_tsv(corpus / "vocab.tsv")
    rng = np.random.default_rng(0)
    for split in ("train", "valid", "test"):
        ids = rng.integers(len(tokens) - len(filler) - 3, len(tokens), 400)  # some was/were too
        ids[::9] = 2
        save_npy(corpus / f"{split}.npy", ids.astype(np.int32))
    write_params(tmp_path, smoke_params)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_agreement_then_gradients_then_course(lab_repo):
    from stages import lab_agreement, lab_course, lab_gradients

    lab_agreement.main([])
    metrics = json.loads((lab_repo / "metrics/lab_agreement.json").read_text())
    assert {"acc_rnn1", "acc_lstm1", "acc_far_rnn1"} <= set(metrics)
    assert metrics["onehot_lookup_max_diff"] == 0.0
    table = (lab_repo / "reports/lab/agreement/table.md").read_text()
    assert "| rnn1 | 1 |" in table and "| 1-1 | 2-3 | 4-6 |" in table
    assert (lab_repo / "reports/lab/agreement/accuracy_vs_distance.png").stat().st_size > 0
    assert sorted(p.name for p in (lab_repo / "data/processed/lab/agreement").iterdir()) == [
        "lstm1.pt", "models.json", "rnn1.pt",
    ]  # fmt: skip

    lab_gradients.main([])
    grads = json.loads((lab_repo / "metrics/lab_gradients.json").read_text())
    assert {"slope_rnn1", "slope_lstm1", "exploded_noclip", "max_update_clip"} <= set(grads)
    assert grads["max_update_clip"] <= 0.5 * 1.0 + 1e-9  # lr x clip

    lab_course.main([])
    page = (lab_repo / "reports/course/index.md").read_text()
    assert page.count("\n1. ") == 1 and "\n20. **Debiasing" in page
    assert "[reports/lab/agreement/accuracy_vs_distance.png](../lab/agreement/" in page
    assert "missing `reports/ner/conlleval.txt`" in page  # no main-pipeline run here
    course = json.loads((lab_repo / "metrics/lab_course.json").read_text())
    assert course["ideas"] == 20 and course["linked"] > 0 and course["missing"] > 0


def test_seq2seq_stage_writes_examples(lab_repo):
    from stages import lab_seq2seq

    lab_seq2seq.main([])
    metrics = json.loads((lab_repo / "metrics/lab_seq2seq.json").read_text())
    assert metrics["test_examples"] == 10 and metrics["train_examples"] == 90
    assert 0.0 <= metrics["exact_match_beam"] <= 1.0
    assert (
        "| words (Tx) | digits | greedy | beam |"
        in (lab_repo / "reports/lab/seq2seq/examples.md").read_text()
    )


def test_agreement_noun_missing_from_vocabulary_fails_cleanly(lab_repo, smoke_params, capsys):
    from stages import lab_agreement

    smoke_params["lab"]["agreement"]["nouns"].append(["ox", "oxen"])
    write_params(lab_repo, smoke_params)
    with pytest.raises(SystemExit) as exc:
        lab_agreement.main([])
    assert exc.value.code == 1
    assert "lab.agreement.nouns" in capsys.readouterr().err
    assert not (lab_repo / "reports/lab/agreement").exists()


def test_lm_depth_compares_layer_counts(lab_repo):
    from stages import lab_lm_depth

    lab_lm_depth.main([])
    metrics = json.loads((lab_repo / "metrics/lab_lm_depth.json").read_text())
    assert metrics["parameters_layers2"] > metrics["parameters_layers1"]
    assert metrics["ppl_deepest"] == metrics["ppl_layers2"] and metrics["ppl_layers1"] > 1.0
    assert (
        "| layers | valid perplexity |" in (lab_repo / "reports/lab/lm_depth/report.md").read_text()
    )
