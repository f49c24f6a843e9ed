"""Whole-settings validation (pipeline.settings) and the `validate` stage that runs it
before every other stage: each bad value is refused naming its key, nothing is written,
and the stage's output does not change with valid values."""

from __future__ import annotations

import copy
import json

import pytest

from pipeline.core.errors import ConfigError
from pipeline.settings import SECTIONS, validate_settings
from stages.validate import main
from tests.conftest import write_params


def _set(params: dict, dotted: str, value) -> dict:
    *path, last = dotted.split(".")
    node = params
    for part in path:
        node = node[part]
    node[last] = value
    return params


def test_the_shipped_profiles_are_valid(smoke_params):
    assert validate_settings(smoke_params) == list(SECTIONS)
    assert set(smoke_params) == set(SECTIONS)  # every composed section has a validator


BAD = [
    ("glove.bogus", 1, "glove.bogus: unknown key"),
    ("skipgram.window", 0, "skipgram.window: 0 is below the minimum 1"),
    ("glove.alpha", 1.5, "glove.alpha: 1.5 is above the maximum"),
    ("glove.epochs", "ten", "glove.epochs: expected an integer"),
    ("cooccur.window", 0, "cooccur.window"),
    ("prepare.min_count", 0, "prepare.min_count: 0 is below the minimum 1"),
    ("prepare.corpora.sotu.bogus", 1, "prepare.corpora.sotu.bogus: unknown key"),
    ("fetch.max_extract_mb", 0, "fetch.max_extract_mb: 0.0 must be greater than 0"),
    ("fetch.datasets.sotu.source", "ftp", "fetch.datasets.sotu.source"),
    ("pretrained.sources.gnews.format", "pdf", "pretrained.sources.gnews.format"),
    ("evaluate.bogus", 1, "evaluate.bogus: unknown key"),
    ("debias.axis", "nope", "debias.axis: 'nope' is not one of debias.axes"),
    ("ner.trainer.bogus", 1, "ner.trainer.bogus: unknown key"),
    ("sentiment.models", ["avg", "cnn"], "sentiment.models: 'cnn' is not one of"),
    ("sentiment.batch_size", 0, "sentiment.batch_size"),
    ("sentiment.avg.word_dropout", 1.0, "sentiment.avg.word_dropout: 1.0 is above the maximum"),
    ("sentiment.encoder.pooling", "min", "sentiment.encoder.pooling"),
    ("sentiment.bucket_by_length", "yes", "sentiment.bucket_by_length: expected true or false"),
    ("lm.common.bogus", 1, "lm.common.bogus: unknown key"),
    ("lm.levels.word.bptt", 0, "lm.levels.word.bptt: 0 is below the minimum 1"),
    ("lm.bogus", 1, "lm.bogus: unknown key"),
    ("profile.bogus", 1, "profile.bogus: unknown key"),
    ("bogus", {"x": 1}, "bogus: unknown section"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_is_refused_naming_its_key(smoke_params, key, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        validate_settings(_set(smoke_params, key, value))


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"negative_draw": "centre", "output": "hs"}, "skipgram.negative_draw: 'centre'"),
        ({"negative_draw": "centre", "backend": "torch"}, "skipgram.negative_draw: 'centre'"),
        ({"context": "left", "backend": "torch"}, "skipgram.context: 'left'"),
    ],
)
def test_skipgram_settings_no_backend_trains_together_are_refused(smoke_params, sets, message):
    params = copy.deepcopy(smoke_params)
    for key, value in sets.items():
        _set(params, f"skipgram.{key}", value)
    with pytest.raises(ConfigError, match=message):
        validate_settings(params)
    alone = _set(copy.deepcopy(smoke_params), "skipgram.negative_draw", "centre")
    validate_settings(alone)  # skip-gram with negative sampling on the cpu: fine


def test_a_missing_section_is_refused(smoke_params):
    del smoke_params["glove"]
    with pytest.raises(ConfigError, match="glove: section missing"):
        validate_settings(smoke_params)


def test_stage_fails_with_the_way_back_and_writes_nothing(
    tmp_path, smoke_params, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, _set(smoke_params, "skipgram.window", 0))
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "skipgram.window: 0 is below the minimum 1" in err
    assert "git checkout params.yaml && dvc checkout" in err
    assert not (tmp_path / "metrics").exists()


def test_stage_output_does_not_change_with_valid_values(tmp_path, smoke_params, monkeypatch):
    """Every stage depends on this file: it must not make a valid change rerun them all."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "metrics" / "validate.json"
    contents = []
    for window in (2, 7):
        write_params(tmp_path, _set(smoke_params, "skipgram.window", window))
        main([])
        contents.append(out.read_bytes())
    assert contents[0] == contents[1]
    assert json.loads(contents[0]) == {"sections": len(SECTIONS)}
