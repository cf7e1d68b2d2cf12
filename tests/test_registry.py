from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from seed.errors import ConfigError, DataError
from seed.registry import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    TAG_DECISION,
    TAG_REASON,
    TAG_SCORES,
    PromoteConfig,
    alias_version,
    answer,
    load_registered,
    method_scores,
    missing_scores,
    promote,
    promotion_decision,
    register_adapter,
    requirements,
)

MARGIN, TOL = 0.01, 0.02


def scores(
    random=0.80, popular=0.78, adversarial=0.75, existence=180.0, count=150.0, position=120.0, color=160.0
):
    return {
        "pope": {"random": random, "popular": popular, "adversarial": adversarial},
        "mme": {"existence": existence, "count": count, "position": position, "color": color},
    }


BASE = scores(adversarial=0.70)


# ---------------------------------------------------------------------------------------------------
# The gate, alone


def test_first_version_becomes_champion_only_if_it_beats_the_base_model():
    ok, reason = promotion_decision(scores(adversarial=0.75), None, BASE, MARGIN, TOL)
    assert ok and "base model's 0.7000" in reason and "+0.0500" in reason
    ok, reason = promotion_decision(scores(adversarial=0.705), None, BASE, MARGIN, TOL)
    assert not ok and "does not beat the base model's 0.7000" in reason and "margin 0.01" in reason


def test_better_than_the_champion_is_promoted():
    ok, reason = promotion_decision(scores(adversarial=0.80), scores(adversarial=0.75), BASE, MARGIN, TOL)
    assert ok and "champion's 0.7500" in reason


def test_worse_than_the_champion_is_not_promoted():
    ok, reason = promotion_decision(scores(adversarial=0.74), scores(adversarial=0.75), BASE, MARGIN, TOL)
    assert not ok and "does not beat the champion's 0.7500" in reason and "-0.0100" in reason


def test_a_tie_is_not_promoted_even_with_zero_margin():
    champion = scores()
    assert promotion_decision(scores(), champion, BASE, MARGIN, TOL)[0] is False
    assert promotion_decision(scores(), champion, BASE, 0.0, TOL)[0] is False
    # a gain of exactly the margin is not "more than the margin"; float noise does not change that
    assert promotion_decision(scores(adversarial=0.76), champion, BASE, 0.01, TOL)[0] is False
    assert promotion_decision(scores(adversarial=0.7601), champion, BASE, 0.01, TOL)[0] is True


def test_a_regression_on_one_pope_split_blocks_promotion():
    champion = scores()
    candidate = scores(adversarial=0.85, popular=0.78 - 0.03)
    ok, reason = promotion_decision(candidate, champion, BASE, MARGIN, TOL)
    assert not ok and "POPE popular F1 0.7500 < 0.7800" in reason and "tolerance 0.02" in reason
    assert "random" not in reason
    # a drop of exactly the tolerance is allowed
    assert promotion_decision(scores(adversarial=0.85, popular=0.76), champion, BASE, MARGIN, TOL)[0]


def test_a_regression_on_one_mme_subtask_blocks_promotion():
    champion = scores()
    # tolerance 0.02 of the 200-point scale = 4 points
    ok, reason = promotion_decision(scores(adversarial=0.85, count=145.0), champion, BASE, MARGIN, TOL)
    assert not ok and "MME count 145.0 < 150.0" in reason
    assert promotion_decision(scores(adversarial=0.85, count=146.0), champion, BASE, MARGIN, TOL)[0]


def test_incomplete_metrics_never_promote():
    partial = scores(adversarial=0.99)
    del partial["pope"]["popular"]
    ok, reason = promotion_decision(partial, None, BASE, MARGIN, TOL)
    assert not ok and "missing pope.popular" in reason
    for bad in (None, math.nan, "0.9", True):
        candidate = scores(adversarial=0.99)
        candidate["mme"]["color"] = bad
        assert promotion_decision(candidate, None, BASE, MARGIN, TOL) == (
            False,
            "incomplete metrics (missing mme.color): never promoted",
        )
    assert promotion_decision(None, None, BASE, MARGIN, TOL)[0] is False
    assert promotion_decision({}, scores(), BASE, MARGIN, TOL)[0] is False


def test_a_champion_without_complete_scores_is_replaced_by_the_base_model_as_reference():
    ok, reason = promotion_decision(scores(adversarial=0.75), {}, BASE, MARGIN, TOL)
    assert ok and "base model (the champion's scores are incomplete)" in reason
    assert promotion_decision(scores(), None, {}, MARGIN, TOL)[0] is False


def test_method_scores_reads_a_metrics_file():
    metrics = {
        "protocol": "greedy",
        "pope": {"seed": {"random": {"f1": 0.9, "accuracy": 0.5}, "popular": {"f1": 0.8}}},
        "mme": {
            "seed": {"existence": 190.0, "count": 100.0, "position": 80.0, "color": 150.0, "total": 520.0}
        },
    }
    got = method_scores(metrics, "seed")
    assert got == {
        "pope": {"random": 0.9, "popular": 0.8},
        "mme": {"existence": 190.0, "count": 100.0, "position": 80.0, "color": 150.0},
    }
    assert missing_scores(got) == ["pope.adversarial"]
    assert missing_scores(method_scores(metrics, "base")) == [
        "pope.random",
        "pope.popular",
        "pope.adversarial",
        "mme.existence",
        "mme.count",
        "mme.position",
        "mme.color",
    ]
    assert method_scores(None, "seed") == {"pope": {}, "mme": {}}


def test_promote_config_is_checked_by_key():
    assert PromoteConfig() == PromoteConfig(margin=0.005, tolerance=0.02)
    with pytest.raises(ConfigError, match=r"promote\.margin"):
        PromoteConfig(margin=-0.1)
    with pytest.raises(ConfigError, match=r"promote\.tolerance"):
        PromoteConfig(tolerance=2)


def test_requirements_are_pinned():
    pins = requirements()
    assert any(p.startswith("torch==") and "+" not in p for p in pins)
    assert any(p.startswith("peft==") for p in pins) and any(p.startswith("mlflow==") for p in pins)


# ---------------------------------------------------------------------------------------------------
# Registered versions (a tiny model, a local SQLite store)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, mlflow_template) -> dict[str, Path]:
    """A tiny LLaVA checkpoint and two different LoRA adapters for it, and an empty store to copy."""
    from seed.adapter import AdapterConfig, attach_adapter, save_adapter
    from seed.tiny import load_tiny, save_tiny

    root = tmp_path_factory.mktemp("registry")
    base = save_tiny("llava", root / "base")
    paths = {"base": base}
    for i, name in enumerate(["adapter_a", "adapter_b"]):
        model, _ = load_tiny(base)
        torch.manual_seed(i)
        peft_model = attach_adapter(model, AdapterConfig(lora_r=2, lora_alpha=4))
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:  # a non-zero adapter, so that it changes the answers
                torch.nn.init.normal_(p, std=0.5)
        paths[name] = save_adapter(peft_model, root / name)
    paths["template"] = mlflow_template
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 30, 30)).save(root / "red.png")
    paths["image"] = root / "red.png"
    return paths


@pytest.fixture
def store(tiny, tmp_path, monkeypatch):
    """A fresh registry in tmp_path (a copy of the empty store), set as MLflow's tracking URI."""
    from seed.tracking import configure

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(tiny["template"], tmp_path / "mlflow.db")
    return configure(tmp_path)


def _register(adapter: Path, base: Path, version_scores: dict, experiment_id: str):
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id):
        return register_adapter(adapter, base, version_scores)


def test_register_promote_and_load_by_alias(tiny, store):
    from mlflow import MlflowClient

    from seed.generate import answer_batch, load_model, open_image

    version, created = _register(tiny["adapter_a"], tiny["base"], scores(adversarial=0.75), store)
    assert created and version.version in (1, "1")
    assert json.loads(version.tags[TAG_SCORES]) == scores(adversarial=0.75)
    decision = promote(version.version, BASE, PromoteConfig(MARGIN, TOL))
    assert decision.champion and decision.changed and decision.alias == CHAMPION
    assert str(alias_version(CHAMPION).version) == "1"
    tags = MlflowClient().get_model_version(MODEL_NAME, "1").tags
    assert tags[TAG_DECISION] == CHAMPION and tags[TAG_REASON] == decision.reason

    model = load_registered(f"models:/{MODEL_NAME}@champion")
    got = answer(model, [tiny["image"], tiny["image"]], ["Is there a cat?", "What is this?"])
    reference, processor = load_model(tiny["base"], adapter=tiny["adapter_a"])
    image = open_image(tiny["image"])
    expected = answer_batch(reference, processor, [image, image], ["Is there a cat?", "What is this?"], 32)
    assert got == expected and all(isinstance(a, str) for a in got)
    base_model, _ = load_model(tiny["base"])
    assert answer_batch(base_model, processor, [image], ["What is this?"], 32) != expected[1:]  # adapter on

    # the same adapter again: no new version; promoting again changes nothing
    again, created = _register(tiny["adapter_a"], tiny["base"], scores(adversarial=0.75), store)
    assert not created and str(again.version) == "1"
    repeat = promote("1", BASE, PromoteConfig(MARGIN, TOL))
    assert repeat.champion and not repeat.changed and repeat.reason == decision.reason
    assert len(MlflowClient().search_model_versions(f"name = '{MODEL_NAME}'")) == 1


def test_a_worse_version_becomes_challenger_and_the_champion_stays(tiny, store):
    from mlflow import MlflowClient

    first, _ = _register(tiny["adapter_a"], tiny["base"], scores(adversarial=0.75), store)
    assert promote(first.version, BASE, PromoteConfig(MARGIN, TOL)).champion
    second, created = _register(tiny["adapter_b"], tiny["base"], scores(adversarial=0.74), store)
    assert created and str(second.version) == "2"
    decision = promote(second.version, BASE, PromoteConfig(MARGIN, TOL))
    assert not decision.champion and decision.alias == CHALLENGER
    assert "does not beat the champion's 0.7500" in decision.reason
    assert str(alias_version(CHAMPION).version) == "1" and str(alias_version(CHALLENGER).version) == "2"
    tags = MlflowClient().get_model_version(MODEL_NAME, "2").tags
    assert tags[TAG_DECISION] == CHALLENGER and tags[TAG_REASON] == decision.reason
    # rolling back is moving the alias; a later promotion compares against the moved champion
    MlflowClient().set_registered_model_alias(MODEL_NAME, CHAMPION, "2")
    assert str(alias_version(CHAMPION).version) == "2"


def test_incomplete_metrics_register_but_never_become_champion(tiny, store):
    partial = scores(adversarial=0.99)
    del partial["mme"]["position"]
    version, _ = _register(tiny["adapter_a"], tiny["base"], partial, store)
    decision = promote(version.version, BASE, PromoteConfig(MARGIN, TOL))
    assert not decision.champion and "missing mme.position" in decision.reason
    assert alias_version(CHAMPION) is None


def test_a_changed_base_model_is_refused_at_load_time(tiny, store, tmp_path):
    moved = Path(shutil.copytree(tiny["base"], tmp_path / "base-copy"))
    version, _ = _register(tiny["adapter_a"], moved, scores(), store)
    (moved / "config.json").write_text((moved / "config.json").read_text() + "\n")
    with pytest.raises(DataError, match="base_model_hash"):
        load_registered(f"models:/{MODEL_NAME}/{version.version}")
    # pointing the version at an unchanged copy works
    model = load_registered(f"models:/{MODEL_NAME}/{version.version}", base_model=str(tiny["base"]))
    assert len(answer(model, [tiny["image"]], ["Is there a cat?"])) == 1


def test_bad_input_names_the_columns(tiny, store):
    import pandas as pd

    version, _ = _register(tiny["adapter_a"], tiny["base"], scores(), store)
    model = load_registered(f"models:/{MODEL_NAME}/{version.version}")
    with pytest.raises(Exception, match="question"):
        model.predict(pd.DataFrame({"image": [str(tiny["image"])]}))
