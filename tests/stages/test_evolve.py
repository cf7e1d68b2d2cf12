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
    assert json.loads((tmp_path / "rounds.json").read_text()) == json.loads(json.dumps(summaries))


def test_online_round_writes_no_targets(world, llava, tmp_path):
    online = DistillConfig(batch_size=8, max_steps=1, online=True, adapter=AdapterConfig(lora_r=2))
    summaries = evolve(llava, world, tmp_path, PURIFY, online, rounds=1, progress=False)
    assert summaries[0]["targets"] is None and summaries[0]["distill"]["online"]
    assert not (round_dir(tmp_path, 1) / "targets").exists()
    assert (round_dir(tmp_path, 1) / "model" / "model.safetensors").is_file()


def test_rounds_must_be_positive(world, llava, tmp_path):
    with pytest.raises(ConfigError, match="evolve.rounds"):
        evolve(llava, world, tmp_path, PURIFY, DISTILL, rounds=0)
