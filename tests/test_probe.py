"""The base-model probes: linear probes on toy features, the feature extractor, `seed probe` end to end."""

from __future__ import annotations

import json

import pytest
import torch

from seed.eval.linear_probe import pooled_scores, train_probe
from seed.eval.pope import margin_auc
from seed.eval.probe import image_features, question_auc, question_category
from seed.model.margins import first_token_margins


def _toy(n: int = 200, patches: int = 4, hidden: int = 8, seed: int = 0):
    """Features where class c is present iff one patch carries +6 along axis c (3 classes)."""
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(n, patches, hidden, generator=g)
    labels = (torch.rand(n, 3, generator=g) < 0.4).float()
    for c in range(3):
        features[labels[:, c] == 1, c % patches, c] += 6.0
    return features, labels


def _auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return margin_auc(["yes" if y else "no" for y in labels.flatten().tolist()], scores.flatten().tolist())


def test_object_probe_separates_a_separable_toy_problem():
    features, labels = _toy()
    probe = train_probe(features, labels, "max", max_iter=100)
    test_features, test_labels = _toy(seed=1)
    assert _auc(probe.scores(test_features), test_labels) > 0.97


def test_probe_is_at_chance_on_shuffled_labels():
    features, labels = _toy()
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    probe = train_probe(features, shuffled, "max", max_iter=100)
    test_features, test_labels = _toy(seed=1)
    assert abs(_auc(probe.scores(test_features), test_labels) - 0.5) < 0.1


def test_scene_probe_learns_classes_from_mean_tokens_and_is_deterministic():
    g = torch.Generator().manual_seed(0)
    classes = torch.randint(0, 3, (150,), generator=g)
    features = torch.randn(150, 4, 8, generator=g)
    features[torch.arange(150), :, classes] += 2.0
    a = train_probe(features, classes, "mean", max_iter=50)
    b = train_probe(features, classes, "mean", max_iter=50)
    assert torch.equal(a.weight, b.weight)
    assert (a.scores(features).argmax(-1) == classes).float().mean() > 0.95


def test_pooled_scores_shapes_and_pooling():
    features = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # (1 image, 2 patches, hidden 2)
    weight, bias = torch.eye(2), torch.zeros(2)
    assert pooled_scores(features, weight, bias, "max").tolist() == [[1.0, 2.0]]
    assert pooled_scores(features, weight, bias, "mean").tolist() == [[0.5, 1.0]]
    with pytest.raises(ValueError, match="pooling"):
        pooled_scores(features, weight, bias, "sum")


def test_question_auc_reads_the_asked_category():
    categories = ["cup", "dog", "apple"]
    assert question_category("Is there a dog in the image?", categories) == 1
    assert question_category("Is there an apple in the image?", categories) == 2
    with pytest.raises(ValueError):
        question_category("Is there a cat in the image?", categories)
    scores = torch.tensor([[5.0, 0.0, 1.0], [0.0, 3.0, 2.0]])
    assert question_auc(scores, [0, 0, 1, 1], [0, 1, 1, 0], ["yes", "no", "yes", "no"]) == 1.0


@pytest.fixture(scope="module")
def tiny_llava():
    from seed.base.tiny import build_tiny

    return build_tiny("llava")


def test_image_features_shape_and_noise(tiny_llava):
    from PIL import Image

    model, processor = tiny_llava
    images = [Image.new("RGB", (48, 48), (i * 40, 100, 200)) for i in range(3)]
    clean = image_features(model, processor, images, batch_size=2)
    assert clean.shape == (3, 16, model.config.text_config.hidden_size)
    assert clean.dtype == torch.float32
    ids = ["a", "b", "c"]
    noised = image_features(model, processor, images, noise_step=500, sample_ids=ids, batch_size=2)
    alone = image_features(model, processor, images[1:2], noise_step=500, sample_ids=ids[1:2])
    assert not torch.allclose(clean, noised)
    assert torch.allclose(noised[1:2], alone, atol=1e-5)  # a sample's noise does not depend on its batch


def test_first_token_margins_match_answer_all(tiny_llava):
    from PIL import Image

    from seed.model.generate import answer_batch

    model, processor = tiny_llava
    images = [Image.new("RGB", (48, 48), (i * 60, 90, 30)) for i in range(3)]
    prompts = ["Is there a dog in the image?", "Is there a cat in the image?", "Is there a cup?"]
    clean, noised = first_token_margins(model, processor, images, prompts, ["a", "b", "c"], 500, batch_size=3)
    expected: list[float] = []
    answer_batch(model, processor, images, prompts, max_new_tokens=1, margins=expected)
    assert clean == pytest.approx(expected, abs=1e-5)
    assert len(noised) == 3 and noised != clean
    # two draws: the mean of the noised margins seeded 0 and 1
    _, second = first_token_margins(model, processor, images, prompts, ["a", "b", "c"], 500, 1, batch_size=3)
    _, both = first_token_margins(
        model, processor, images, prompts, ["a", "b", "c"], 500, batch_size=2, with_clean=False, draws=2
    )
    assert second != noised
    assert both == pytest.approx([(x + y) / 2 for x, y in zip(noised, second, strict=True)], abs=1e-5)


def test_seed_probe_writes_every_key(tmp_path):
    from seed.base.tiny import save_tiny
    from seed.cli import main
    from seed.world.config import WorldConfig
    from seed.world.synth import synthesize

    data = tmp_path / "world"
    synthesize(
        data, WorldConfig(n_train=4, n_seed=1, n_pope_images=4, n_mme_images=1, n_chair_images=1), False
    )
    model = save_tiny("llava", tmp_path / "model")
    out = tmp_path / "reports" / "base_probe.json"
    argv = ["-q", "probe", "--model", str(model), "--data", str(data), "--out", str(out)]
    assert main([*argv, "--probe-images", "40", "--noise-step", "900"]) == 0
    report = json.loads(out.read_text())
    for key in (
        "tower_auc_adversarial",
        "tower_auc_counterfactual",
        "lm_auc_counterfactual",
        "scene_accuracy",
        "noised_scene_accuracy",
        "noised_object_auc",
        "noised_object_auc_adversarial",
        "noised_lm_auc_counterfactual",
        "contrast_auc_counterfactual",
    ):
        assert 0.0 <= report[key] <= 1.0, key
    settings = report["settings"]
    assert settings["noise_step"] == 900 and settings["probe_world"]["cooccurrence"] == 0.0
    assert settings["probe_world"]["n_train"] == 40 and len(settings["model_hash"]) == 64
    assert settings["sizes"]["questions"]["counterfactual"] == 24
    first = out.read_bytes()
    assert main([*argv, "--probe-images", "40", "--noise-step", "900"]) == 0
    assert out.read_bytes() == first  # deterministic for fixed seeds


def test_seed_probe_names_a_missing_split(tmp_path, capsys):
    from seed.cli import main

    data = tmp_path / "world"
    (data / "pope").mkdir(parents=True)
    assert main(["-q", "probe", "--model", str(tmp_path / "m"), "--data", str(data), "--out", "x.json"]) == 2
    assert "world_pope_adversarial.json" in capsys.readouterr().err
