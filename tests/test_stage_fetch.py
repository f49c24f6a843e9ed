"""The fetch stage end to end in tmp_path: params.yaml -> data/raw/<name>/ + MANIFEST."""

from __future__ import annotations

import hashlib
import json

import pytest

from stages.fetch import main
from tests.conftest import write_params
from tests.test_archives import make_tar


@pytest.fixture
def toy(tmp_path, smoke_params, monkeypatch):
    """Params with one local-archive dataset `toy`, cwd = tmp_path."""
    monkeypatch.delenv("WORDPIPE_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    arc = make_tar(
        tmp_path / "toy-1.0.tar.gz",
        {"toy-1.0/texts/a_gut.txt": b"To be, or not to be\n", "toy-1.0/setup.py": b"x"},
    )
    params = smoke_params
    params["fetch"] = {
        "cache_dir": str(tmp_path / "cache"),
        "datasets": {
            "toy": {
                "source": "path",
                "path": str(arc),
                "sha256": hashlib.sha256(arc.read_bytes()).hexdigest(),
                "members": [{"glob": "toy-1.0/texts/*_gut.txt", "strip": "toy-1.0/"}],
            }
        },
    }
    write_params(tmp_path, params)
    return params


def test_stage_fetches_and_writes_manifest(tmp_path, toy, capsys):
    main(["toy"])
    out = tmp_path / "data" / "raw" / "toy"
    assert (out / "texts" / "a_gut.txt").read_text() == "To be, or not to be\n"
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["dataset"] == "toy" and manifest["source"] == "path"
    assert manifest["sha256"] == toy["fetch"]["datasets"]["toy"]["sha256"]
    assert list(manifest["files"]) == ["texts/a_gut.txt"]
    metrics = json.loads((tmp_path / "metrics" / "fetch_toy.json").read_text())
    assert metrics["files"] == 1 and metrics["bytes"] == 20 and metrics["seconds"] >= 0
    assert "data/raw/toy: 1 files" in capsys.readouterr().out

    import mlflow

    runs = mlflow.search_runs(
        experiment_names=["wordpipe"], filter_string="tags.`dvc.stage` = 'fetch'"
    )
    assert len(runs) == 1
    assert runs.iloc[0]["params.fetch.dataset"] == "toy"
    assert runs.iloc[0]["params.DatasetSpec.source"] == "path"


def test_unknown_dataset_exits_1(tmp_path, toy, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["nope"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "fetch.datasets.nope: unknown dataset (known: toy)" in err
    assert not (tmp_path / "data").exists()


def test_checksum_mismatch_exits_1_nothing_written(tmp_path, toy, capsys, monkeypatch):
    # an unreachable store: tracking switches itself off at once (and keeps this test fast)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/missing/mlflow.db")
    toy["fetch"]["datasets"]["toy"]["sha256"] = "f" * 64
    write_params(tmp_path, toy)
    with pytest.raises(SystemExit) as exc:
        main(["toy"])
    assert exc.value.code == 1
    assert "has sha256" in capsys.readouterr().err
    assert not (tmp_path / "data" / "raw" / "toy").exists()
    assert not (tmp_path / "metrics").exists()


def test_bad_spec_key_exits_1(tmp_path, toy, capsys):
    toy["fetch"]["datasets"]["toy"]["memberz"] = []
    write_params(tmp_path, toy)
    with pytest.raises(SystemExit):
        main(["toy"])
    assert "fetch.datasets.toy.memberz: unknown key" in capsys.readouterr().err
