"""seed.controls: the bias control's tuning rule and the validation world it is tuned on."""

from __future__ import annotations

import json

import pytest

from seed.controls import CONTROLS, best_yes_bias, validation_world
from seed.errors import ConfigError
from seed.world.config import WorldConfig
from seed.world.synth import synthesize


def test_best_bias_is_the_smallest_that_maximises_mean_f1():
    # margins: present 1, -1; absent -2, -3. Unbiased: F1 2/3. Every b in (0.5, 1] separates them
    # (margin + 2b > 0 for -1, not for -2): the smallest such grid value is 0.55.
    labels = {"a": ["yes", "yes", "no", "no"]}
    margins = {"a": [1.0, -1.0, -2.0, -3.0]}
    bias, f1 = best_yes_bias(labels, margins)
    assert bias == pytest.approx(0.55) and f1 == pytest.approx(1.0)
    # a second split that prefers no bias: F1 1 up to b = 0.25, 2/3 beyond (-0.5 + 2b > 0). The mean
    # ties at 5/6 between b = 0 and b = 0.55; the tie goes to the smaller |b|
    labels["b"] = ["yes", "no", "no"]
    margins["b"] = [0.5, -0.5, -5.0]
    bias, f1 = best_yes_bias(labels, margins)
    assert bias == 0.0 and f1 == pytest.approx(5 / 6)


def test_unbiased_model_keeps_zero_bias_and_mismatched_splits_fail():
    assert best_yes_bias({"a": ["yes", "no"]}, {"a": [1.0, -1.0]}) == (0.0, 1.0)
    with pytest.raises(ValueError):
        best_yes_bias({"a": ["yes"]}, {"b": [1.0]})


def test_validation_world_is_another_seed_with_pope_only(tmp_path):
    data = tmp_path / "data"
    synthesize(
        data,
        WorldConfig(n_train=4, n_seed=2, n_pope_images=3, n_mme_images=2, n_chair_images=2),
        progress=False,
    )
    world = validation_world(data, tmp_path / "val", seed=5, n_pope_images=4)
    config = json.loads((world / "world.json").read_text())["config"]
    assert config["seed"] == 5 and config["n_pope_images"] == 4 and config["n_mme_images"] == 0
    assert len((world / "pope/world_pope_counterfactual.json").read_text().splitlines()) == 24
    with pytest.raises(ConfigError, match="validation_seed"):
        validation_world(data, tmp_path / "same", seed=0, n_pope_images=4)
    assert CONTROLS == ("base", "vcd", "seed", "seed_no_contrast", "bias", "seed_oracle")
