from __future__ import annotations

import json
from pathlib import Path

import pytest

from seed.base.tiny import load_tiny, save_tiny
from seed.errors import ConfigError
from seed.files.hashing import content_hash
from seed.files.manifest import read_manifest
from seed.model.adapter import AdapterConfig
from seed.stages.distill import DistillConfig
from seed.stages.evolve import evolve, round_dir
from seed.stages.purify import PurifyConfig
from seed.world.config import WorldConfig
from seed.world.synth import synthesize

PURIFY = PurifyConfig(max_new_tokens=4, batch_size=8, top_k=8, max_samples=8)
DISTILL = DistillConfig(batch_size=4, max_steps=2, lr=1e-2, warmup_steps=0, adapter=AdapterConfig(lora_r=2))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("evolve") / "world"
    config = WorldConfig(n_train=8, n_seed=4, n_pope_images=4, n_mme_images=2, n_chair_images=2)
    synthesize(out, config, progress=False)
    return out


@pytest.fixture(scope="module")
def llava(tmp_path_factory) -> Path:
    return save_tiny("llava", tmp_path_factory.mktemp("evolve") / "llava")


def test_two_rounds_each_teach_with_the_previous_model(world, llava, tmp_path):
    seen: list[Path] = []

    def evaluate(model_dir: Path) -> dict:
        seen.append(model_dir)
        load_tiny(model_dir)  # each round's model is a loadable checkpoint
        return {"round_model": model_dir.parent.name}

    summaries = evolve(llava, world, tmp_path, PURIFY, DISTILL, rounds=2, evaluate=evaluate, progress=False)
    assert [s["round"] for s in summaries] == [1, 2]
    assert seen == [round_dir(tmp_path, 1) / "model", round_dir(tmp_path, 2) / "model"]
    assert [s["eval"] for s in summaries] == [{"round_model": "round-1"}, {"round_model": "round-2"}]
    for r in (1, 2):
        folder = round_dir(tmp_path, r)
        assert {p.name for p in folder.iterdir()} >= {"targets", "adapter", "model", "round.json"}
        assert json.loads((folder / "round.json").read_text())["round"] == r
    # round 1 is taught by the base model, round 2 by round 1's merged model
    assert summaries[0]["generator"] == str(llava)
    assert summaries[1]["generator"] == str(round_dir(tmp_path, 1) / "model")
    assert read_manifest(round_dir(tmp_path, 1) / "targets").meta["model_hash"] == content_hash(llava)
    round_two = read_manifest(round_dir(tmp_path, 2) / "targets").meta["model_hash"]
    assert round_two == content_hash(round_dir(tmp_path, 1) / "model") != content_hash(llava)
    assert all(s["distill"]["steps"] == 2 for s in summaries)
    assert json.loads((tmp_path / "summaries.json").read_text()) == json.loads(json.dumps(summaries))


def test_online_round_writes_no_targets(world, llava, tmp_path):
    online = DistillConfig(batch_size=8, max_steps=1, online=True, adapter=AdapterConfig(lora_r=2))
    summaries = evolve(llava, world, tmp_path, PURIFY, online, rounds=1, progress=False)
    assert summaries[0]["targets"] is None and summaries[0]["distill"]["online"]
    assert not (round_dir(tmp_path, 1) / "targets").exists()
    assert (round_dir(tmp_path, 1) / "model" / "model.safetensors").is_file()


def test_rounds_must_be_positive(world, llava, tmp_path):
    with pytest.raises(ConfigError, match="evolve.rounds"):
        evolve(llava, world, tmp_path, PURIFY, DISTILL, rounds=0)


# ---------------------------------------------------------------------------------------------------
# The stage in the pipeline: round 1 is purify + distill, rounds 2..N are this stage


def round_one(world: Path, llava: Path, root: Path):
    """A pipeline's paths under ``root`` with round 1 (stages purify and distill) done."""
    from seed.stages import StagePaths
    from seed.stages.distill import run as run_distill
    from seed.stages.purify import build_targets as purify

    paths = StagePaths(
        data=world,
        model=llava,
        targets=root / "targets",
        adapter=root / "adapter",
        seed_model=root / "seed-model",
        rounds=root / "rounds",
        reports=root / "reports",
    )
    purify(llava, world, paths.targets, PURIFY, progress=False)
    run_distill(paths, DISTILL)
    return paths


def test_stage_runs_rounds_two_to_n_from_the_first_rounds_model_and_lists_them(world, llava, tmp_path):
    from seed.files.rounds import read_rounds
    from seed.stages.evolve import EvolveConfig, run

    paths = round_one(world, llava, tmp_path)
    summary = run(paths, EvolveConfig(rounds=3), purify_config=PURIFY, distill_config=DISTILL)
    entries = read_rounds(paths.rounds)
    assert [e["round"] for e in entries] == [1, 2, 3] and summary["final"] == entries[-1]
    assert entries[0] == {
        "round": 1,
        "generator": str(llava),
        "targets": str(paths.targets),
        "adapter": str(paths.adapter),
        "model": str(paths.seed_model),
    }
    assert entries[1]["generator"] == str(paths.seed_model)
    assert entries[2]["generator"] == entries[1]["model"] == str(round_dir(paths.rounds, 2) / "model")
    for previous, current in zip(entries, entries[1:], strict=False):  # each taught by the one before
        taught_by = read_manifest(Path(current["targets"])).meta["model_hash"]
        assert taught_by == content_hash(previous["model"])
    # one round again: the list says so and the later rounds' folders are gone
    run(paths, EvolveConfig(rounds=1), purify_config=PURIFY, distill_config=DISTILL)
    assert read_rounds(paths.rounds) == entries[:1]
    assert not round_dir(paths.rounds, 2).exists()


def test_stage_round_needs_the_previous_rounds_model(world, tmp_path):
    from seed.errors import DataError
    from seed.stages import StagePaths
    from seed.stages.evolve import pipeline_round

    paths = StagePaths(data=world, seed_model=tmp_path / "missing", rounds=tmp_path / "rounds")
    with pytest.raises(DataError, match="round 1's merged model is missing"):
        pipeline_round(paths, 2, PURIFY, DISTILL)


def test_a_new_run_forgets_the_last_runs_rounds_and_evaluate_names_a_missing_adapter(world, tmp_path):
    from seed.errors import DataError
    from seed.files.rounds import ROUNDS_NAME, read_rounds, write_rounds
    from seed.stages import StagePaths
    from seed.stages.evaluate import EvaluateConfig
    from seed.stages.evaluate import run as evaluate_run
    from seed.stages.evolve import first_round, start_rounds

    paths = StagePaths(data=world, adapter=tmp_path / "adapter", rounds=tmp_path / "rounds")
    second = {"round": 2, "generator": "g", "targets": "", "adapter": str(tmp_path / "gone"), "model": "m"}
    write_rounds(paths.rounds, [first_round(paths), second])
    with pytest.raises(DataError, match=f"{ROUNDS_NAME}.*round 2's adapter .*gone is missing"):
        evaluate_run(paths, EvaluateConfig())
    # a run that stops before its rounds list is written leaves none, not the last run's
    assert start_rounds(paths) == [first_round(paths)] and read_rounds(paths.rounds) == []


def test_two_rounds_through_dvc_repro(world, llava, tmp_path, monkeypatch):
    """The repository's dvc.yaml stages purify, distill and evolve (code deps left out) with
    ``evolve.rounds: 2``: `dvc repro` runs both rounds, and setting one round reruns evolve only."""
    import os
    import shutil
    import sys

    import yaml
    from dvc.repo import Repo

    from seed.files.rounds import read_rounds

    repo_root = Path(__file__).parents[2]
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    project = tmp_path / "project"
    Repo.init(str(project), no_scm=True).close()
    shutil.copytree(world, project / "data")
    shutil.copytree(llava, project / "artifacts" / "base-model")
    wanted = {}
    for name in ("purify", "distill", "evolve"):
        stage = dict(stages[name])
        stage["deps"] = [d for d in stage["deps"] if not str(d).startswith("seed/")]
        wanted[name] = stage
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": wanted}))
    tiny = {
        "purify": {"max_new_tokens": 4, "batch_size": 8, "top_k": 8, "max_samples": 8},
        "distill": {"batch_size": 4, "max_steps": 2, "lr": 1e-2, "warmup_steps": 0, "adapter": {"lora_r": 2}},
    }
    params = project / "params.yaml"
    params.write_text(yaml.safe_dump({**tiny, "evolve": {"rounds": 2}}))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(project)

    with Repo(str(project)) as repo:
        ran = {stage.addressing for stage in repo.reproduce("evolve")}
        assert ran == {"purify", "distill", "evolve"}
        assert repo.status() == {}
    entries = read_rounds(project / "artifacts" / "rounds")
    assert [e["generator"] for e in entries] == ["artifacts/base-model", "artifacts/seed-model"]
    assert (project / "artifacts/rounds/round-2/model/model.safetensors").is_file()
    assert read_manifest(project / "artifacts/rounds/round-2/targets").meta["model_hash"] == content_hash(
        project / "artifacts/seed-model"
    )

    params.write_text(yaml.safe_dump({**tiny, "evolve": {"rounds": 1}}))
    with Repo(str(project)) as repo:
        assert {stage.addressing for stage in repo.reproduce("evolve")} == {"evolve"}
    assert len(read_rounds(project / "artifacts" / "rounds")) == 1
    assert not (project / "artifacts/rounds/round-2").exists()
