"""The study's grid expansion and report, on made-up experiment records (no DVC)."""

from __future__ import annotations

import pytest
import yaml

from pipeline.core.errors import ConfigError
from pipeline.study import grid, report
from tests.conftest import REPO

STUDY = {
    "name": "st",
    "set": {"ner.trainer.max_epochs": 2},
    "tasks": {
        "ner": {"file": "metrics/ner.json", "score": "f1", "seed": "ner.seed"},
        "avg": {"file": "metrics/avg.json", "score": "acc", "seed": "sent.seed"},
    },
    "probe_score": "probe_acc",
    "blocks": {
        "transfer": {
            "targets": ["train"],
            "tasks": ["ner", "avg"],
            "axes": {
                "embedding": {
                    "sgns": {"set": {"emb": "sgns"}},
                    "sgns_debiased": {"set": {"emb": "sgns_debiased"}},
                    "later": {"set": {"emb": "later"}, "needs": "data/later"},
                },
                "seed": {
                    "s0": {"set": {"ner.seed": 0, "sent.seed": 0}},
                    "s1": {"set": {"ner.seed": 1, "sent.seed": 1}},
                    "s2": {"set": {"ner.seed": 0, "sent.seed": 2}},
                },
            },
        }
    },
}


def test_expand_names_overrides_and_skips(tmp_path):
    points = grid.expand(STUDY)
    assert len(points) == 9 and points[0].name == "st-transfer-sgns-s0"
    assert points[0].set_args() == [
        "-S", "ner.trainer.max_epochs=2", "-S", "emb=sgns", "-S", "ner.seed=0", "-S", "sent.seed=0",
    ]  # fmt: skip
    run, skip = grid.available(points, tmp_path)
    assert len(run) == 6 and [p.name for p in skip][0] == "st-transfer-later-s0"
    (tmp_path / "data/later").mkdir(parents=True)
    assert len(grid.available(points, tmp_path)[0]) == 9
    with pytest.raises(ConfigError, match="not one of study.tasks"):
        grid.expand({**STUDY, "blocks": {"b": {"tasks": ["x"], "axes": {"a": {"v": {}}}}}})
    assert grid.format_value(True) == "true" and grid.format_value(None) == "null"


def test_the_queue_runs_each_seed_as_one_wave():
    points = grid.expand(STUDY)
    queued = grid.queue_order(points)
    assert sorted(p.name for p in queued) == sorted(p.name for p in points)
    seeds = [p.labels["seed"] for p in queued]
    assert seeds == sorted(seeds)  # every s0, then every s1, then every s2
    assert [p.name for p in queued[:3]] == [p.name for p in points[::3]]


def test_the_default_grid_counts():
    study = yaml.safe_load((REPO / "params.yaml").read_text())["study"]
    points = grid.expand(study)
    blocks = [p.block for p in points]
    assert blocks.count("transfer") == 8 * 2 * 3 and blocks.count("word2vec") == 7 * 3
    assert sum(bool(p.needs) for p in points) == 2 * 2 * 3  # glove6b and its debiased copy


def _records():
    recs = {}
    scores = {"sgns": [0.70, 0.72, 0.74], "sgns_debiased": [0.69, 0.70, 0.71]}
    f1 = {"sgns": [80.0, 82.0], "sgns_debiased": [79.0, 80.0]}
    for emb in scores:
        for i in range(3):
            recs[f"st-transfer-{emb}-s{i}"] = {
                "rev": "x",
                "params": {"ner.seed": [0, 1, 0][i], "sent.seed": i},
                "metrics": {
                    "metrics/ner.json": {"f1": f1[emb][[0, 1, 0][i]]},
                    "metrics/avg.json": {"acc": scores[emb][i], "probe_acc": 0.5 + 0.1 * i},
                },
            }
    return recs


def test_report_means_dedupe_debias_cost_and_files(tmp_path):
    points, skipped = grid.available(grid.expand(STUDY), tmp_path)
    runs = {p.name: f"{i:032x}" for i, p in enumerate(points)}
    text, df = report.build(points, skipped, _records(), grid.tasks(STUDY), STUDY, tmp_path, runs)
    # NER: seed-0 runs of s0 and s2 are one run -> 2 rows per embedding
    assert len(df[df.task == "ner"]) == 4 and len(df[df.task == "avg"]) == 6
    assert "0.720 ± 0.020" in text  # sgns avg over 3 seeds
    assert "81.0 ± 1.4" in text  # sgns NER over 2 seeds
    assert "st-transfer-sgns-s0 st-transfer-sgns-s1 st-transfer-sgns-s2" in text
    cost = report.debias_cost(df, points)
    row = cost[cost.task == "avg"].iloc[0]
    assert row["difference"] == pytest.approx(-0.02) and row["n"] == 3
    assert row["std"] == pytest.approx(0.01)
    assert "Skipped (embedding not in the workspace): 3 points, data/later." in text
    assert "0.600 ± 0.100" in text  # the probe
    assert (tmp_path / "transfer_ner.png").stat().st_size > 1000
    assert (tmp_path / "results.csv").read_text().count("\n") == 11


def test_records_from_exp_show_walks_the_nesting():
    doc = [
        {"rev": "workspace", "name": None, "data": {"metrics": {}}, "experiments": None},
        {
            "rev": "abc",
            "name": "main",
            "data": {"params": {}, "metrics": {}},
            "experiments": [
                {
                    "name": "e1",
                    "revs": [
                        {
                            "rev": "def",
                            "name": "e1",
                            "data": {
                                "params": {"params.yaml": {"data": {"a": {"b": 1}}}},
                                "metrics": {"metrics/x.json": {"data": {"acc": 0.5}}},
                            },
                        }
                    ],
                }
            ],
        },
    ]
    recs = report.records_from_exp_show(doc)
    assert recs["e1"] == {
        "rev": "def",
        "params": {"a.b": 1},
        "metrics": {"metrics/x.json": {"acc": 0.5}},
    }


def test_intrinsic_coverage_is_shown_but_not_correlated(tmp_path):
    study = {
        "name": "w2v",
        "tasks": {"avg": {"file": "metrics/avg.json", "score": "acc", "seed": "sent.seed"}},
        "intrinsic_scores": ["analogy_total", "ws353"],
        "intrinsic_context": ["analogy_coverage"],
        "blocks": {
            "word2vec": {
                "targets": ["train"],
                "tasks": ["avg"],
                "intrinsic": "metrics/eval.json",
                "axes": {"variant": {v: {"set": {"obj": v}} for v in ("a", "b", "c")}},
            }
        },
    }
    intrinsic = {"a": (0.10, 0.30, 0.90), "b": (0.45, 0.20, 0.05), "c": (0.20, 0.40, 0.80)}
    records = {
        f"w2v-word2vec-{v}": {
            "rev": "x",
            "params": {"sent.seed": 0},
            "metrics": {
                "metrics/avg.json": {"acc": 0.6 + 0.1 * i},
                "metrics/eval.json": dict(
                    zip(("analogy_total", "ws353", "analogy_coverage"), intrinsic[v], strict=True)
                ),
            },
        }
        for i, v in enumerate(("a", "b", "c"))
    }
    points = grid.expand(study)
    text, _ = report.build(points, [], records, grid.tasks(study), study, tmp_path)
    section = text.split("## Intrinsic and downstream scores (word2vec)")[1]
    table, corr = section.split("Spearman correlation")
    assert "| variant | analogy_total | ws353 | analogy_coverage | avg |" in table
    assert "| b | 0.45 | 0.2 | 0.05 | 0.7 |" in table.replace("0.7000000000000001", "0.7")
    assert "analogy_coverage" not in corr and "| ws353 |" in corr
