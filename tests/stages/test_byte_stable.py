"""Every file the pipeline's stages write is byte-stable: two runs, and a run in a clean copy of the
project, write the same bytes (the clock's numbers go to files that git ignores: timings*.json)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from seed.base.tiny import save_tiny
from seed.stages import STAGE_TABLE, StagePaths
from seed.stages.distill import DistillConfig
from seed.stages.evaluate import EvaluateConfig
from seed.stages.evolve import EvolveConfig
from seed.stages.purify import PurifyConfig
from seed.stages.validate import ValidateConfig
from seed.world.config import WorldConfig
from seed.world.synth import synthesize

CONFIGS = {
    "validate": ValidateConfig(),
    "purify": PurifyConfig(max_new_tokens=4, batch_size=4, shard_size=6, top_k=8),
    "distill": DistillConfig(epochs=1, batch_size=4, lr=1e-3),
    "evolve": EvolveConfig(rounds=2),  # round 2 reads purify and distill from the project's params.yaml
    "evaluate": EvaluateConfig(
        batch_size=8, max_new_tokens=3, caption_max_new_tokens=5, bootstrap_resamples=50
    ),
}
OUTPUTS = ("reports", "artifacts/targets", "artifacts/adapter", "artifacts/seed-model", "artifacts/rounds")


def files(root: Path) -> dict[str, bytes]:
    """Every output file under ``root`` (relative path -> bytes), the git-ignored timings left out."""
    found = {}
    for output in OUTPUTS:
        for path in sorted((root / output).rglob("*")):
            if path.is_file() and not path.name.startswith("timings"):
                found[str(path.relative_to(root))] = path.read_bytes()
    return found


def run_pipeline(
    root: Path, monkeypatch, stages=("validate", "purify", "distill", "evolve", "evaluate")
) -> None:
    """The stages on the project layout of ``root`` (relative paths, as `dvc repro` runs them)."""
    monkeypatch.chdir(root)
    for stage in stages:
        STAGE_TABLE[stage].run(StagePaths(), CONFIGS[stage], False)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stable") / "project"
    world = WorldConfig(n_train=8, n_seed=4, n_pope_images=4, n_mme_images=2, n_chair_images=2)
    synthesize(root / "data", world, progress=False)
    save_tiny("llava", root / "artifacts" / "base-model", seed=0)
    sections = {name: dataclasses.asdict(CONFIGS[name]) for name in ("purify", "distill")}
    (root / "params.yaml").write_text(yaml.safe_dump(sections))
    return root


def test_two_runs_and_a_clean_copy_write_the_same_bytes(project, tmp_path, monkeypatch):
    clean = tmp_path / "clone"
    clean.mkdir()
    shutil.copytree(project / "data", clean / "data")
    shutil.copytree(project / "artifacts" / "base-model", clean / "artifacts" / "base-model")
    shutil.copy(project / "params.yaml", clean / "params.yaml")

    run_pipeline(project, monkeypatch)
    first = files(project)
    assert {"reports/metrics.json", "reports/validation.json", "artifacts/targets/manifest.json"} <= set(
        first
    )
    assert any(name.startswith("artifacts/adapter/") for name in first)
    assert {"artifacts/rounds/rounds.json", "artifacts/rounds/round-2/model/model.safetensors"} <= set(first)
    assert (project / "reports" / "timings.json").is_file()
    # distill wrote the adapter's card and evaluate filled in the results of the final round's
    from huggingface_hub import ModelCard

    card = ModelCard.load(project / "artifacts" / "rounds" / "round-2" / "adapter" / "README.md")
    assert card.data.to_dict()["pipeline_tag"] == "image-text-to-text" and card.data.library_name == "peft"
    assert {r.dataset_name for r in card.data.eval_results} >= {"POPE adversarial", "POPE counterfactual"}
    assert "[More Information Needed]" not in card.text

    run_pipeline(project, monkeypatch, ("purify",))  # again, reusing every shard of the first run
    assert files(project) == first
    shutil.rmtree(project / "artifacts" / "targets")  # and from nothing
    run_pipeline(project, monkeypatch, ("purify",))
    assert files(project) == first

    run_pipeline(clean, monkeypatch)
    second = files(clean)
    assert sorted(second) == sorted(first)
    assert [name for name in first if first[name] != second[name]] == []
