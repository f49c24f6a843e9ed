"""conf/ composes, and the committed params.yaml is what conf/ composes to."""

from __future__ import annotations

import yaml

from stages.compose_params import compose
from tests.conftest import REPO


def test_params_yaml_is_up_to_date(tmp_path):
    fresh = compose(tmp_path / "params.yaml", [], conf_dir=REPO / "conf")
    committed = (REPO / "params.yaml").read_text()
    assert fresh.read_text() == committed, "params.yaml is stale: run `make params` and commit it"


def test_profiles_compose(tmp_path):
    for profile in ("cpu", "gpu", "smoke"):
        out = compose(tmp_path / f"{profile}.yaml", [f"profile={profile}"], conf_dir=REPO / "conf")
        data = yaml.safe_load(out.read_text())
        assert data["profile"]["name"] == profile
        for section in (
            "prepare",
            "cooccur",
            "glove",
            "skipgram",
            "evaluate",
            "debias",
            "ner",
            "sentiment",
            "lm",
            "lab",
            "fetch",
        ):
            assert section in data, f"{section} missing in profile {profile}"


def test_override_changes_value(tmp_path):
    out = compose(tmp_path / "p.yaml", ["prepare.min_count=10"], conf_dir=REPO / "conf")
    assert yaml.safe_load(out.read_text())["prepare"]["min_count"] == 10
