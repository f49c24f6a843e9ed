"""Stage train_ner on a tiny generated CoNLL dataset (smoke profile) in tmp_path."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.embeddings.vectors import Embeddings
from stages.train_ner import main
from tests.conftest import write_params

REPO = Path(__file__).resolve().parents[1]
FILLER = ["said", "on", "for", "with", "by", "at", "from", "was", "is", "new"]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _conll(rng: random.Random, n: int, names: list[str]) -> str:
    """Capitalised word after "mr": B-PER, after "in": B-LOC, after "the": O."""
    lines = ["-DOCSTART- -X- -X- O", ""]
    for _ in range(n):
        for _ in range(rng.randint(1, 4)):
            r = rng.random()
            if r < 0.35:
                lines += ["mr NN B-NP O", f"{rng.choice(names)} NNP I-NP B-PER"]
            elif r < 0.6:
                lines += ["in IN B-PP O", f"{rng.choice(names)} NNP B-NP B-LOC"]
            elif r < 0.8:
                lines += ["the DT B-NP O", f"{rng.choice(names)} NNP I-NP O"]
            else:
                lines.append(f"{rng.choice(FILLER)} NN B-NP O")
        lines.append("")
    return "\n".join(lines) + "\n"


@pytest.fixture
def ner_dir(tmp_path, smoke_params, monkeypatch):
    rng = random.Random(0)
    names = [
        "".join(rng.choice("bcdfgklmnprst") + rng.choice("aeiou") for _ in range(3)).capitalize()
        for _ in range(60)
    ]
    raw = tmp_path / "data/raw/conll2003"
    raw.mkdir(parents=True)
    for split, n in (("train", 240), ("valid", 60), ("test", 60)):
        (raw / f"{split}.txt").write_text(_conll(rng, n, names))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(folder: Path, params: dict, **ner) -> dict:
    params["ner"].update(ner)
    write_params(folder, params)
    main([])
    return json.loads((folder / "metrics/train_ner.json").read_text())


def test_stage_trains_writes_outputs_and_resumes(ner_dir, smoke_params):
    m = _run(ner_dir, smoke_params, resume=True)  # nothing to resume yet
    for key in ("test_f1", "valid_f1", "test_precision", "test_recall", "test_f1_PER", "test_f1_LOC",
                "time_per_epoch_s", "embedding_missing"):  # fmt: skip
        assert m[key] is not None, key
    assert m["test_f1"] > 60 and m["valid_f1"] > 60, m  # the planted rule is learnt in 2 epochs
    assert m["embedding_missing"] == 0 and m["epochs"] == 2 and not m["resumed"]
    model_dir = ner_dir / "data/processed/models/ner"
    assert {p.name for p in model_dir.iterdir()} == {
        "model.ckpt",
        "vocab.tsv",
        "chars.tsv",
        "tags.json",
        "hparams.json",
    }
    assert json.loads((model_dir / "tags.json").read_text()) == ["O", "B-LOC", "B-PER"]
    ckpt = torch.load(model_dir / "model.ckpt", map_location="cpu", weights_only=True)
    assert any(k.startswith("model.crf.") for k in ckpt["state_dict"])
    pred = (ner_dir / "reports/ner/predictions.txt").read_text().split("\n\n")
    assert len([s for s in pred if s.strip()]) == 60
    assert all(len(line.split()) == 3 for line in pred[0].splitlines())
    assert (ner_dir / "reports/ner/confusion.png").read_bytes()[:4] == b"\x89PNG"
    report = (ner_dir / "reports/ner/conlleval.txt").read_text()
    assert f"FB1: {m['test_f1']:6.2f}" in report
    script = REPO / "data/raw/conll2003/conlleval"
    if script.exists():  # the perl script agrees on the written predictions file
        with open(ner_dir / "reports/ner/predictions.txt") as fh:
            perl = subprocess.run(
                ["perl", str(script)], stdin=fh, capture_output=True, text=True, timeout=60
            )
        assert perl.stdout == report
    predictions = (ner_dir / "reports/ner/predictions.txt").read_bytes()
    # same seed on CPU, trained again from scratch: identical predictions
    fresh = _run(ner_dir, json.loads(json.dumps(smoke_params)), resume=False)
    assert not fresh["resumed"] and fresh["test_f1"] == m["test_f1"]
    assert (ner_dir / "reports/ner/predictions.txt").read_bytes() == predictions
    # same config and data: resumes from the checkpoint and reproduces the scores
    again = _run(ner_dir, json.loads(json.dumps(smoke_params)), resume=True)
    assert again["resumed"] and again["test_f1"] == m["test_f1"]


def test_stage_with_pretrained_embeddings(ner_dir, smoke_params):
    dim = smoke_params["ner"]["encoder"]["embedding_dim"]
    train = (ner_dir / "data/raw/conll2003/train.txt").read_text().split()
    name = train[train.index("B-PER") - 3]  # a capitalised name, e.g. "Bakora"
    # exact matches (mr, in), one through the lower-case fallback (name), one never found:
    # the vocabulary keeps case here and holds "the", not "The"
    words = ["mr", "in", name.lower(), "The"]
    vectors = np.random.default_rng(0).normal(size=(len(words), dim))
    Embeddings(words, vectors).save(ner_dir / "data/processed/embeddings/glove")
    params = json.loads(json.dumps(smoke_params))
    params["ner"]["trainer"]["max_epochs"] = 1
    params["ner"]["data"]["lowercase"] = False
    params["ner"]["data"]["add_embedding_words"] = False  # count only the training words
    m = _run(ner_dir, params, embedding="glove")
    vocab = (ner_dir / "data/processed/models/ner/vocab.tsv").read_text().splitlines()[1:]
    tokens = [line.split("\t")[1] for line in vocab][3:]  # without <pad> <unk> <eos>
    assert name in tokens and "the" in tokens
    assert m["embedding"] == "glove" and m["embedding_missing"] == len(tokens) - 3


def test_stage_rejects_bad_config(ner_dir, smoke_params, capsys):
    (ner_dir / "data/processed/embeddings/sgns").mkdir(parents=True)
    Embeddings(["mr"], np.ones((1, 3))).save(ner_dir / "data/processed/embeddings/sgns")
    for override, message in (
        ({"embedding": "sgns"}, "ner.encoder.embedding_dim"),
        ({"embedding": "glove"}, "embeddings not found"),
        ({"model": {"output": "hmm"}}, "ner.model.output"),
    ):
        params = json.loads(json.dumps(smoke_params))
        with pytest.raises(SystemExit) as exc:
            _run(ner_dir, params, **override)
        assert exc.value.code == 1
        assert message in capsys.readouterr().err
    assert not (ner_dir / "metrics/train_ner.json").exists()


def test_stage_with_frozen_pretrained_rows_and_their_dimension(ner_dir, smoke_params):
    # a lower-case artifact with words never seen in training (ner.embedding_dim: null)
    words = ["mr", "in", "the", "paris", "london", "unseenword"]
    vectors = np.random.default_rng(1).normal(size=(len(words), 6))
    Embeddings(words, vectors).save(ner_dir / "data/processed/embeddings/lower6")
    params = json.loads(json.dumps(smoke_params))
    params["ner"]["trainer"]["max_epochs"] = 1
    params["ner"]["encoder"]["embedding_dim"] = None
    params["ner"]["encoder"]["tune_embeddings"] = "listed"
    params["ner"]["data"]["add_embedding_words"] = True
    m = _run(ner_dir, params, embedding="lower6")
    vocab = (ner_dir / "data/processed/models/ner/vocab.tsv").read_text().splitlines()[1:]
    tokens = [line.split("\t")[1] for line in vocab]
    assert tokens[-3:] == ["paris", "london", "unseenword"]  # kept, after the training words
    hp = json.loads((ner_dir / "data/processed/models/ner/hparams.json").read_text())
    assert hp["encoder"]["embedding_dim"] == 6
    state = torch.load(ner_dir / "data/processed/models/ner/model.ckpt", weights_only=True)
    state = state["state_dict"]
    frozen = state["model.encoder.embedding.frozen"]
    assert frozen.shape == (len(tokens), 6)  # the model file holds every pretrained row
    np.testing.assert_allclose(frozen[-1].numpy(), vectors[-1], rtol=1e-6)
    # only the training words (+ <unk>, <eos>) have a trainable delta
    assert state["model.encoder.embedding.delta.weight"].shape[0] == len(tokens) - 3
    assert m["vocab_size"] == len(tokens)
