"""The house rules that keep the code easy to change and DVC's results trustworthy:
no import cycles, and every stage depends on every project module it runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from tests.architecture import closure, find_cycle, import_graph, module_files

ROOT = Path(__file__).resolve().parents[1]


PIPELINES = ("dvc.yaml", "lab/dvc.yaml")  # the default pipeline and the lab's (make lab)


def missing_deps(root: Path, pipelines=PIPELINES) -> dict[str, list[str]]:
    """Stage -> project files its command imports (transitively) that no dep covers."""
    dag = {}
    for name in pipelines:
        if (root / name).is_file():
            for stage, body in yaml.safe_load((root / name).read_text())["stages"].items():
                wdir = (root / Path(name).parent / body.get("wdir", ".")).resolve()
                assert wdir == root.resolve(), f"{name}:{stage}: must run from the root (wdir)"
                dag[stage] = body
    graph = import_graph(root)
    files = module_files(root)
    out: dict[str, list[str]] = {}
    for name, stage in dag.items():
        body = stage.get("do", stage)
        m = re.search(r"python -m (stages\.\w+)", body["cmd"])
        assert m, f"{name}: command does not run a stage module"
        deps = [str(d) for d in body.get("deps", [])]
        needed = sorted(str(files[mod].relative_to(root)) for mod in closure(graph, m.group(1)))
        lost = [
            f for f in needed if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)
        ]
        if lost:
            out[name] = lost
    return out


def test_no_import_cycles():
    assert find_cycle(import_graph(ROOT)) is None


def test_every_stage_depends_on_every_module_it_imports():
    assert missing_deps(ROOT) == {}


def test_library_does_not_import_stages_or_read_params():
    graph = import_graph(ROOT)
    for mod, deps in graph.items():
        if mod.startswith("pipeline"):
            assert not any(d.startswith("stages") for d in deps), mod
    for path in (ROOT / "pipeline").rglob("*.py"):  # no code names the file (docs may)
        consts = [
            n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
        ]
        assert not any(isinstance(c, str) and c.endswith("params.yaml") for c in consts), path


def test_only_one_module_imports_mlflow():
    users = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "pipeline").rglob("*.py")
        if re.search(r"^\s*(import mlflow|from mlflow)", p.read_text(), re.M)
    ]
    assert users == ["pipeline/core/tracking.py"]


# -- the checks themselves catch a planted violation ----------------------------------------
def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_a_planted_cycle_is_found(tmp_path):
    root = _plant(tmp_path, {
        "pipeline/__init__.py": "",
        "pipeline/a.py": "from pipeline.b import x\n",
        "pipeline/b.py": "def f():\n    from pipeline import a  # inside a function still counts\n",
        "stages/__init__.py": "",
    })  # fmt: skip
    cycle = find_cycle(import_graph(root))
    assert cycle is not None and set(cycle) == {"pipeline.a", "pipeline.b"}


def test_a_planted_missing_dep_is_found(tmp_path):
    root = _plant(tmp_path, {
        "pipeline/__init__.py": "",
        "pipeline/core/__init__.py": "",
        "pipeline/core/io.py": "from pipeline.util import y\n",
        "pipeline/util.py": "y = 1\n",
        "stages/__init__.py": "",
        "stages/s.py": "from pipeline.core import io\n",
        "dvc.yaml": yaml.safe_dump({"stages": {"s": {
            "cmd": "python -m stages.s",
            "deps": ["pipeline/__init__.py", "pipeline/core", "stages/__init__.py", "stages/s.py"],
        }}}),
    })  # fmt: skip
    assert missing_deps(root) == {"s": ["pipeline/util.py"]}


@pytest.mark.parametrize("param", ["debias.embeddings", "evaluate.embeddings"])
def test_a_foreach_list_does_not_rerun_its_items(param):
    """Adding an embedding to a foreach list must not rerun the other items' stages."""
    dag = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for stage in dag.values():
        assert param not in stage.get("do", stage).get("params", [])


def test_every_params_key_a_stage_names_exists():
    """A stage listing a key that params.yaml lacks would never rerun when it changes."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    dag = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in dag.items():
        body = stage.get("do", stage)
        for key in body.get("params", []):
            if "${" in str(key) or isinstance(key, dict):  # foreach items; whole files
                continue
            node = params
            for part in str(key).split("."):
                assert isinstance(node, dict) and part in node, f"{name}: params key {key}"
                node = node[part]


def test_makefile_phony_targets_exist():
    text = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", text, re.M).group(1).split()
    for target in phony:
        assert re.search(rf"^{re.escape(target)}:", text, re.M), target


# -- a bad setting must never cost the last good results -----------------------------------
VALIDATE_OUT = "metrics/validate.json"


def stages_not_behind_validate(root: Path) -> list[str]:
    """Stages that could run (and have DVC delete their outputs) before ``validate``:
    every stage but ``validate`` itself must depend on its output."""
    dag = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return sorted(
        name
        for name, stage in dag.items()
        if name != "validate" and VALIDATE_OUT not in stage.get("do", stage).get("deps", [])
    )


def test_every_stage_depends_on_validate():
    assert stages_not_behind_validate(ROOT) == []


def test_a_planted_stage_without_validate_is_found(tmp_path):
    root = _plant(tmp_path, {"dvc.yaml": yaml.safe_dump({"stages": {
        "validate": {"cmd": "python -m stages.validate", "metrics": [VALIDATE_OUT]},
        "ok": {"cmd": "python -m stages.ok", "deps": [VALIDATE_OUT, "x"]},
        "new": {"foreach": ["a"], "do": {"cmd": "python -m stages.new", "deps": ["x"]}},
    }})})  # fmt: skip
    assert stages_not_behind_validate(root) == ["new"]


def test_validate_reads_every_setting_and_its_output_is_cached():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["validate"]
    assert {"params.yaml": None} in stage["params"]  # the whole file, every section
    assert stage["metrics"] == [VALIDATE_OUT]  # cached: `dvc checkout` restores it


def test_every_uncached_output_is_a_git_tracked_metrics_file():
    """What a user reads is either in the DVC cache (`dvc checkout` brings it back) or a
    metrics file committed to git: nothing else may be `cache: false`."""
    dag = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    uncached = [
        path
        for stage in dag.values()
        for kind in ("outs", "metrics", "plots")
        for entry in stage.get("do", stage).get(kind, [])
        if isinstance(entry, dict)
        for path, opts in entry.items()
        if (opts or {}).get("cache") is False
    ]
    assert uncached and all(re.fullmatch(r"metrics/[\w${}.]+\.json", p) for p in uncached), uncached
