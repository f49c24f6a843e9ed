"""pipeline.core.atomic: outputs appear whole or not at all."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pipeline.core.atomic import atomic_dir, atomic_open, load_npy, save_npy, write_json


def test_atomic_open_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half")
        raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_open_replaces_existing(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_open(target) as fh:
        fh.write("new")
    assert target.read_text() == "new"


def test_atomic_dir(tmp_path):
    target = tmp_path / "d"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    assert (target / "a").read_text() == "1"
    with pytest.raises(ValueError), atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
        raise ValueError
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]
    with atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]


def test_npy_roundtrip_refuses_pickles(tmp_path):
    arr = np.arange(10, dtype=np.int32)
    save_npy(tmp_path / "a.npy", arr)
    assert np.array_equal(load_npy(tmp_path / "a.npy"), arr)
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        load_npy(tmp_path / "obj.npy")


def test_write_json_handles_numpy_and_nan(tmp_path):
    write_json(tmp_path / "m.json", {"a": np.float32(1.5), "b": math.nan, "c": np.arange(2)})
    data = json.loads((tmp_path / "m.json").read_text())
    assert data == {"a": 1.5, "b": None, "c": [0, 1]}
