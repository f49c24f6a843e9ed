"""benchmarks/gpu_suite.py: the time plan, dependencies, failure handling, targets, and
the stages running with mlflow, dvc, hydra, omegaconf and gensim made unimportable."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, write_params

SPEC = importlib.util.spec_from_file_location("gpu_suite", REPO / "benchmarks" / "gpu_suite.py")
gs = importlib.util.module_from_spec(SPEC)
sys.modules["gpu_suite"] = gs
SPEC.loader.exec_module(gs)

BLOCK = "mlflow,dvc,hydra,omegaconf,gensim"


def _fixed(name, expect=10.0, cap=100.0, **kw):
    return gs.Task(name, ["{py}", "-c", "pass"], expect_s=expect, max_s=cap, **kw)


def _elastic(name, weight, lo=20.0, hi=1000.0, **kw):
    return gs.Task(name, ["{py}", "-c", "pass"], expect_s=lo, max_s=hi, min_s=lo, weight=weight,
                   time_key=f"{name}.trainer.max_time_s", **kw)  # fmt: skip


# --- plan ------------------------------------------------------------------------------------


def test_fixed_task_keeps_time_for_later_tasks():
    later = [_fixed("b", expect=30), _elastic("c", 1.0, lo=40)]
    # 200 left, 30 + 40 kept for the later tasks -> up to 130, but never above max_s
    assert gs.allot(_fixed("a", cap=500), 200, later) == pytest.approx(130)
    assert gs.allot(_fixed("a", cap=60), 200, later) == pytest.approx(60)
    # less than half the expected time left: skipped rather than killed half-way
    assert gs.allot(_fixed("a", expect=100, cap=500), 110, later) is None


def test_elastic_tasks_share_what_fixed_tasks_leave_by_weight():
    ner, lm = _elastic("ner", 3.0), _elastic("lm", 1.0)
    fixed_after = _fixed("f", expect=40)
    # pool = 440 - 40 = 400; ner's share 3/4 of it, capped so lm keeps its 20 s
    assert gs.allot(ner, 440, [lm, fixed_after]) == pytest.approx(300)
    assert gs.allot(lm, 100, []) == pytest.approx(100)
    assert gs.allot(_elastic("x", 1.0, hi=50), 100, []) == pytest.approx(50)  # max_s
    assert gs.allot(_elastic("y", 1.0, lo=30), 100, [_elastic("z", 9.0, lo=30)]) == 30  # min
    assert gs.allot(_elastic("w", 1.0, lo=30), 50, [_elastic("z", 1.0, lo=30)]) is None


def test_expand_adds_missing_dependencies_in_registry_order():
    tasks = {t.name: t for t in (
        _fixed("prep"), _fixed("other"), _fixed("emb", deps=("prep",)),
        _elastic("ner", 1.0, deps=("emb",)),
    )}  # fmt: skip
    plan = gs.expand(["ner"], tasks, is_done=lambda t: False)
    assert [t.name for t in plan] == ["prep", "emb", "ner"]
    # what is done already (a warm machine) is not redone
    plan = gs.expand(["ner"], tasks, is_done=lambda t: t.name == "emb")
    assert [t.name for t in plan] == ["ner"]
    with pytest.raises(SystemExit, match="unknown task"):
        gs.expand(["nope"], tasks, lambda t: False)


def test_real_plan_covers_every_issue_and_fits_the_budget():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    args = gs.parse_args(["--budget-s", "420"])
    tasks = gs.build_tasks(params, args)
    emb, seq = gs.select("emb", tasks), gs.select("seq", tasks)
    assert {"glove", "evaluate_glove", "bench_sgns", "bench_hs", "bench_softmax"} <= set(emb)
    assert seq == ["ner", "lm_word", "lm_char"]
    assert gs.select("all,-bench", tasks) == [
        n for n in tasks if not n.startswith(("bench_", "profile_"))
    ]
    assert gs.select("profile", tasks) == [
        "profile_sgns", "profile_hs", "bench_sgns_sorted", "bench_hs_sorted"
    ]  # fmt: skip
    argv = tasks["bench_hs_sorted"].argv
    assert argv[argv.index("--torch-scatter") + 1] == "sorted" and "--no-gensim" in argv
    public = gs.select("public", tasks)
    assert public[0] == "prepare_public" and len(public) == 5
    for name in public[1:]:
        argv = tasks[name].argv
        assert argv[argv.index("--corpus") + 1] == "data/processed/public"
        assert tasks[name].deps == ("prepare_public",)
    assert "--no-gensim" in tasks["bench_public_softmax"].argv
    assert "--no-gensim" not in tasks["bench_public_hs"].argv
    argv = tasks["profile_hs"].argv
    assert argv[argv.index("--profile") + 1] == "reports/profile/hs.txt" and "--no-gensim" in argv
    for name in ("bench_sgns", "bench_hs"):
        argv = tasks[name].argv
        assert argv[argv.index("--repeat") + 1] == "5" and "cuda" in argv
        assert "gensim" not in tasks[name].block  # the benchmark needs it
    assert "gensim" in tasks["glove"].block and "mlflow" in tasks["ner"].block
    plan = gs.expand(emb, tasks, lambda t: False)
    assert sum(t.floor for t in plan) <= 420  # every emb task fits call 1 at its floor
    lightning = {t.time_key for t in tasks.values() if t.weight > 0}
    assert "lm.levels.char.trainer.max_time_s" in lightning
    assert "ner.trainer.max_time_s" in lightning


# --- targets ---------------------------------------------------------------------------------


def _res(metrics=None, js=None, status="ok"):
    out = {"status": status}
    if metrics is not None:
        out["metrics"] = {"m": metrics}
    if js is not None:
        out["json"] = js
    return out


def test_targets_met_missed_and_unknown():
    bench = {"runs": [{"ours": {"raw_words_per_sec": 3.2e7}, "gensim": {"raw_words_per_sec": 1.5e6},
                       "ratio": {"raw_words_per_sec": 21.3, "score_diff_points": {
                           "analogy_total": 0.4, "ws353": -0.5, "simlex": 0.1, "men": -1.6}}}]}  # fmt: skip
    results = {
        "glove": _res({"seconds": 20.0, "device": "cuda"}),
        "bench_sgns": _res(js=bench),
        "ner": _res({"test_f1": 89.3}),
        "sentiment_avg": _res({"test_acc": 0.77}),
        "sentiment_rnn": _res({"test_acc": 0.805}),
        "lm_word": _res({"test_ppl": 212.0}),
    }
    t = gs.check_targets(results)
    assert t["glove_time_vs_c_tool"]["met"] is True
    assert t["glove_time_vs_c_tool"]["speedup_vs_c"] == pytest.approx(5.2)
    assert t["skipgram_sgns_20x_gensim"]["met"] is True
    assert t["skipgram_sgns_quality"]["met"] is False  # MEN 1.6 points below gensim
    assert t["skipgram_hs_20x_gensim"]["met"] is None  # not measured
    assert t["ner_test_f1"]["met"] is True
    assert t["sentiment_test_acc"]["value"] == pytest.approx(0.805)  # the best model
    assert t["sentiment_test_acc"]["met"] is True
    assert t["brown_test_ppl"]["met"] is False
    assert t["shakespeare_valid_nats"]["met"] is None
    assert t["glove_quality_vs_c_tool"]["met"] is None  # evaluate_glove did not run
    rows = gs.figures(results)
    assert rows["bench_sgns"]["ratio_raw_words_per_sec"] == pytest.approx(21.3)
    assert rows["ner"]["test_f1"] == pytest.approx(89.3)


def test_last_json_finds_the_benchmark_report():
    text = 'loading...\n{"not": json\n{\n  "runs": [\n    {"x": 1}\n  ]\n}\n'
    assert gs._last_json(text) == {"runs": [{"x": 1}]}
    assert gs._last_json("no report here") is None


# --- running: a failing task never stops the others -----------------------------------------


def test_suite_records_failures_timeouts_and_skips(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"profile": {"name": "test"}, "x": {}}))
    args = gs.parse_args([
        "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "out"), "--raw",
        str(tmp_path / "raw"), "--params", str(tmp_path / "p.yaml"), "--budget-s", "60",
        "--set", "x.answer=42", "--cap", "slow=2",
    ])  # fmt: skip
    base = gs.prepare_workdir(args)
    write = (
        "import json, os, yaml; p = yaml.safe_load(open('params.yaml'));"
        "os.makedirs('metrics', exist_ok=True);"
        "json.dump({'answer': p['x']['answer'], 'max_time': p['x'].get('max_time_s')},"
        " open('metrics/good.json', 'w'))"
    )
    tasks = {t.name: t for t in (
        gs.Task("good", ["{py}", "-c", write], metrics=("good",), weight=1.0, min_s=5,
                expect_s=5, time_key="x.max_time_s", overhead_s=2),
        gs.Task("bad", ["{py}", "-c", "import sys; sys.exit('boom: bad input')"]),
        gs.Task("slow", ["{py}", "-c", "import time; time.sleep(30)"], max_s=2),
        gs.Task("after_bad", ["{py}", "-c", "pass"], deps=("bad",)),
        gs.Task("blocked", ["{py}", "-c", "import mlflow"], block=("mlflow",)),
        gs.Task("bench", ["{py}", "-c", "print('x'); print('{\"runs\": []}')"],
                stdout_json=True),
    )}  # fmt: skip
    suite = gs.Suite(args, tasks, base)
    plan = gs.expand(list(tasks), tasks, suite.is_done)
    summary = suite.run(plan, {"device": "fake"})
    res = summary["tasks"]
    assert res["good"]["status"] == "ok"
    assert res["good"]["metrics"]["good"]["answer"] == 42  # --set reached the task
    assert 3 <= res["good"]["metrics"]["good"]["max_time"] <= 60  # its cap minus overhead
    assert res["bad"]["status"] == "failed" and "boom: bad input" in res["bad"]["error"]
    assert res["slow"]["status"] == "timeout" and res["slow"]["seconds"] < 20
    assert res["after_bad"]["status"] == "skipped" and "bad" in res["after_bad"]["error"]
    assert res["blocked"]["status"] == "failed"
    assert "No module named 'mlflow'" in res["blocked"]["error"]
    assert res["bench"]["status"] == "ok" and res["bench"]["json"] == {"runs": []}
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk["suite"]["calls"][-1]["finished"] is True
    assert set(on_disk["targets"]) >= {"ner_test_f1", "skipgram_sgns_20x_gensim"}
    log = (tmp_path / "out" / "suite.log").read_text()
    assert "boom: bad input" in log and "slow: timeout" in log
    # a second call on the same work folder keeps the first call's results
    args2 = gs.parse_args(["--workdir", str(tmp_path / "w"), "--out",
                           str(tmp_path / "out2"), "--raw", str(tmp_path / "raw"), "--params",
                           str(tmp_path / "p.yaml"), "--budget-s", "30"])  # fmt: skip
    suite2 = gs.Suite(args2, tasks, gs.prepare_workdir(args2))
    again = suite2.run([tasks["bench"]], {})
    assert again["tasks"]["good"]["status"] == "ok" and len(again["suite"]["calls"]) == 2


# --- the stages without mlflow, dvc, hydra, omegaconf and gensim ---------------------------


def _blocked_env(tmp_path) -> dict:
    env = dict(os.environ)
    folder = gs.write_blocker(tmp_path / "_block")
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(REPO)])
    env["WORDPIPE_BLOCK_IMPORTS"] = BLOCK
    return env


def test_blocker_makes_packages_look_uninstalled(tmp_path):
    code = (
        "import importlib.util, importlib.metadata as md\n"
        "for name in ('mlflow', 'dvc', 'hydra', 'omegaconf', 'gensim'):\n"
        "    assert importlib.util.find_spec(name) is None, name\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ModuleNotFoundError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit(name + ' imported')\n"
        "for dist in ('mlflow', 'hydra-core', 'gensim'):\n"
        "    try:\n"
        "        md.version(dist)\n"
        "    except md.PackageNotFoundError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit(dist + ' listed')\n"
        "import yaml, numpy\n"  # everything else still imports
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=_blocked_env(tmp_path), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_prepare_stage_runs_without_tracking_packages(tmp_path, smoke_params):
    speeches = tmp_path / "data" / "raw" / "sotu" / "speeches"
    speeches.mkdir(parents=True)
    (speeches / "1790-Washington-1.txt").write_text(
        "The state of the Union is strong.\nThe people of the Union ask for peace.\n" * 3
    )
    write_params(tmp_path, smoke_params)
    env = _blocked_env(tmp_path)
    env.pop("MLFLOW_TRACKING_URI", None)  # the default store, which is not there
    done = subprocess.run(
        [sys.executable, "-m", "stages.prepare", "sotu"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "tracking disabled" in done.stderr and "mlflow" in done.stderr
    metrics = json.loads((tmp_path / "metrics" / "prepare_sotu.json").read_text())
    assert metrics["vocab_size"] > 3
    assert (tmp_path / "data" / "processed" / "sotu" / "train.npy").is_file()
    assert not (tmp_path / "mlflow.db").exists()


def test_plan_command_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_suite.py"), "--plan", "--params",
         str(REPO / "params.yaml"), "--tasks", "seq", "--budget-s", "330"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)["plan"]
    assert [r["task"] for r in plan][-3:] == ["ner", "lm_word", "lm_char"]
    assert all(r["cap_s"] for r in plan)


@pytest.mark.slow
def test_sequence_stages_import_without_tracking_packages(tmp_path):
    code = (
        "import lightning, stages.train_lm, stages.train_ner, stages.train_sentiment\n"
        "import pipeline.seq.lm, pipeline.seq.ner_lit, pipeline.seq.sentiment, pipeline.glove.train\n"
        "import pipeline.word2vec.train, pipeline.word2vec.torch_backend, pipeline.evaluation.intrinsic, stages.evaluate\n"
        "from pipeline.core.tracking import stage_run\n"
        "with stage_run('x', {'a': 1}) as t:\n"
        "    assert t.lightning_logger() is None and not t.enabled\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=_blocked_env(tmp_path), cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


def test_every_task_params_of_the_gpu_profile_validate(tmp_path):
    """What each task runs with on the GPU machine (profile=gpu plus the suite's overrides
    and a time cap) passes the stage's own validation: no device time lost to a typo."""
    from pipeline.core.config import from_mapping
    from pipeline.data.encode import PrepareSection, resolve
    from pipeline.evaluation.intrinsic import EvaluateConfig
    from pipeline.glove.cooccur import CooccurConfig
    from pipeline.glove.train import GloveConfig
    from pipeline.seq import lm
    from pipeline.seq.ner_lit import NerConfig
    from pipeline.seq.sentiment import SentimentConfig
    from pipeline.word2vec.train import SkipGramConfig
    from stages.compose_params import compose

    base = yaml.safe_load(
        compose(tmp_path / "gpu.yaml", ["profile=gpu"], REPO / "conf").read_text()
    )
    tasks = gs.build_tasks(base, gs.parse_args([]))
    checked = set()
    for task in tasks.values():
        p = gs.task_params(base, task, 123.0)
        group = task.name.split("_")[0]
        if group == "prepare":
            resolve(from_mapping(PrepareSection, p["prepare"], where="prepare"), task.argv[-1])
        elif group == "cooccur":
            from_mapping(CooccurConfig, p["cooccur"], where="cooccur")
        elif group == "glove":
            assert from_mapping(GloveConfig, p["glove"], where="glove").device in ("auto", "cuda")
        elif group in ("skipgram", "bench", "profile"):
            assert from_mapping(SkipGramConfig, p["skipgram"], where="skipgram").device == "cuda"
        elif group == "import":
            from pipeline.embeddings.pretrained import PretrainedConfig

            cfg = from_mapping(PretrainedConfig, p["pretrained"], where="pretrained")
            assert task.argv[-1] in cfg.sources
        elif group == "evaluate":
            from_mapping(EvaluateConfig, p["evaluate"], where="evaluate")
        elif group == "sentiment":
            cfg = from_mapping(SentimentConfig, p["sentiment"], where="sentiment")
            assert cfg.trainer.max_time_s == pytest.approx(123.0)
        elif group == "ner":
            cfg = from_mapping(NerConfig, p["ner"], where="ner")
            assert cfg.trainer.max_time_s == pytest.approx(123.0) and not cfg.resume
        elif group == "lm":
            level = task.argv[-1]
            merged = lm.merge_sections(p["lm"]["common"], p["lm"]["levels"][level])
            cfg = from_mapping(lm.LMConfig, merged, where=f"lm.levels.{level}")
            assert cfg.trainer.max_time_s == pytest.approx(123.0) and not cfg.resume
        else:
            raise AssertionError(f"no check for {task.name}")
        checked.add(group)
    assert checked >= {"prepare", "glove", "bench", "sentiment", "ner", "lm"}
