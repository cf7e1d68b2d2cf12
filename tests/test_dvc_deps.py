"""dvc.yaml's code deps cannot drift: every module that a stage's command imports is under one of that
stage's deps, so editing it makes `dvc repro` rerun the stage (and DVC reruns what is downstream)."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest
import yaml

from seed.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("seed", cache_dir=None)


def modules_run_by(graph, stage: str) -> set[str]:
    """Every seed module that ``python -m seed.stages <stage>`` can import: the stage module, the
    dispatcher, everything they import (top-level, function-local or TYPE_CHECKING, transitively)
    and the package ``__init__`` of each (Python runs it on the way in)."""
    todo, seen = [f"seed.stages.{stage}", "seed.stages.__main__"], set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += [m for m in graph.find_modules_directly_imported_by(module) if m.split(".")[0] == "seed"]
    return seen


def module_file(module: str) -> Path:
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def uncovered(files: set[Path], deps: list[str]) -> list[str]:
    """The files (relative to the repository) that no dep (a file, or a folder above it) covers."""
    paths = [ROOT / dep for dep in deps]
    return sorted(str(f.relative_to(ROOT)) for f in files if not any(f == p or p in f.parents for p in paths))


def test_uncovered_names_a_file_outside_every_dep():
    files = {ROOT / "seed" / "core" / "noise.py", ROOT / "seed" / "model" / "vcd.py"}
    assert uncovered(files, ["seed/core", "seed/model/vcd.py"]) == []
    assert uncovered(files, ["seed/core", "seed/model/generate.py"]) == ["seed/model/vcd.py"]
    assert uncovered(files, ["seed/cor"]) == ["seed/core/noise.py", "seed/model/vcd.py"]


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_depends_on_every_module_it_runs(graph, stage):
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    files = {module_file(m) for m in modules_run_by(graph, stage)}
    assert ROOT / "seed" / "stages" / f"{stage}.py" in files and len(files) > 5
    assert all(f.is_file() for f in files)
    assert uncovered(files, dvc[stage]["deps"]) == [], f"add these to dvc.yaml stage {stage}'s deps"


def test_the_shipped_base_model_is_current_with_its_code_and_params():
    """artifacts/base-model is shipped in git, so dvc.lock's record of the `pretrain` stage's code and
    params must match the tree: otherwise `make demo` retrains the base model (minutes, and a
    checkpoint that is no longer the carded one). After editing its code run `dvc commit -f pretrain`
    (after `ruff format`). The world's files are not checked: a fresh clone builds them in the demo."""
    from dvc.repo import Repo

    stale = []
    for entry in Repo(str(ROOT)).status(targets=["pretrain"]).get("pretrain", []):
        if not isinstance(entry, dict):
            continue
        stale += [p for p in entry.get("changed deps", {}) if not p.startswith(("data/", "reports/"))]
        stale += list(entry.get("changed params", {}))
    assert not stale, f"dvc.lock is stale for stage pretrain: {stale}; run `dvc commit -f pretrain`"
