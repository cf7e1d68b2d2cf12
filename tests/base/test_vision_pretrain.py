from __future__ import annotations

import json

import pytest
import torch

from seed.base.modeling import ModelConfig, build_model, build_tokenizer
from seed.base.vision_pretrain import aligned_max_logits, object_labels, patch_max_logits, pretrain_vision
from seed.errors import DataError

TINY = ModelConfig(
    image_size=16,
    patch_size=8,
    vision_hidden=16,
    vision_layers=2,
    vision_heads=2,
    text_hidden=16,
    text_layers=1,
    text_heads=2,
    text_intermediate=32,
)


def test_patch_max_logits_matches_a_hand_computation():
    features = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # 1 image, 2 patches, hidden 2
    weight = torch.tensor([[1.0, 1.0], [1.0, -1.0]])  # 2 categories
    bias = torch.tensor([0.5, 0.0])
    # patch scores: cat0 -> 1.5, 2.5; cat1 -> 1.0, -2.0
    assert torch.equal(patch_max_logits(features, weight, bias), torch.tensor([[2.5, 1.0]]))


def test_aligned_max_logits_matches_a_hand_computation():
    projected = torch.tensor([[[3.0, 0.0], [1.0, 1.0]]])  # 1 image, 2 patches, text hidden 2
    embeddings = torch.tensor([[2.0, 0.0], [0.0, 5.0]])  # category words along x and along y
    bias = torch.tensor([0.5, -1.0])
    # cosines: cat0 -> 1, 1/sqrt2; cat1 -> 0, 1/sqrt2; times scale 10, plus bias, max over patches
    expected = torch.tensor([[10.5, 10 / 2**0.5 - 1]])
    assert torch.allclose(aligned_max_logits(projected, embeddings, 10.0, bias), expected)


def _coco(tmp_path, images, annotations):
    categories = [{"id": 1, "name": "cup"}, {"id": 2, "name": "plate"}, {"id": 3, "name": "fork"}]
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps({"images": images, "categories": categories, "annotations": annotations}))
    return path


def test_object_labels_are_multi_hot_and_ignore_evaluation_images(tmp_path):
    images = [
        {"id": 0, "file_name": "a.png", "split": "train"},
        {"id": 1, "file_name": "b.png", "split": "train"},
        {"id": 2, "file_name": "e.png", "split": "eval"},
    ]
    anns = [
        {"image_id": 0, "category_id": 3},
        {"image_id": 0, "category_id": 3},
        {"image_id": 1, "category_id": 1},
        {"image_id": 2, "category_id": 2},
    ]
    labels, names = object_labels(_coco(tmp_path, images, anns), ["b.png", "a.png"])
    assert names == ["cup", "plate", "fork"]
    assert labels.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    with pytest.raises(DataError, match="e.png"):  # an evaluation image is not a training image
        object_labels(_coco(tmp_path, images, anns), ["e.png"])


def test_object_labels_name_the_file_when_unreadable(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="annotations.json"):
        object_labels(path, ["a.png"])


def _two_patch_images():
    """Two kinds of 16 px image: bright top-left patch <-> category 0, bright bottom-right <-> 1.

    Returns pixels (8, 3, 16, 16) and multi-hot labels (8, 2).
    """
    pixels = torch.full((8, 3, 16, 16), -1.0)
    labels = torch.zeros(8, 2)
    pixels[:4, :, :8, :8] = 1.0
    labels[:4, 0] = 1.0
    pixels[4:, :, 8:, 8:] = 1.0
    labels[4:, 1] = 1.0
    return pixels, labels


def test_pretrain_vision_learns_labels_and_leaves_the_language_side_alone():
    torch.manual_seed(0)
    model = build_model(TINY, build_tokenizer(["is there a cup"]), seed=0)
    pixels, labels = _two_patch_images()
    language = {k: v.clone() for k, v in model.model.language_model.state_dict().items()}
    projector = {k: v.clone() for k, v in model.model.multi_modal_projector.state_dict().items()}
    history = pretrain_vision(
        model, pixels, labels, steps=150, batch_size=8, lr=1e-2, feature_layer=-2, seed=0, progress=False
    )
    assert len(history) == 150
    assert history[-1]["loss"] < 0.1 * history[0]["loss"]
    assert all(torch.equal(v, model.model.language_model.state_dict()[k]) for k, v in language.items())
    assert all(
        torch.equal(v, model.model.multi_modal_projector.state_dict()[k]) for k, v in projector.items()
    )


def test_aligned_stage_trains_projector_and_category_words_but_not_the_decoder():
    torch.manual_seed(0)
    tokenizer = build_tokenizer(["is there a cup or a fork"])
    model = build_model(TINY, tokenizer, seed=0)
    pixels, labels = _two_patch_images()
    word_ids = [tokenizer.convert_tokens_to_ids(w) for w in ("cup", "fork")]
    decoder = {k: v.clone() for k, v in model.model.language_model.state_dict().items() if "embed" not in k}
    projector = {k: v.clone() for k, v in model.model.multi_modal_projector.state_dict().items()}
    words = model.get_input_embeddings().weight[word_ids].detach().clone()
    history = pretrain_vision(
        model,
        pixels,
        labels,
        steps=200,
        batch_size=8,
        lr=3e-3,
        feature_layer=-2,
        seed=0,
        progress=False,
        word_ids=word_ids,
    )
    assert history[-1]["loss"] < 0.2 * history[0]["loss"]
    state = model.model.language_model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in decoder.items())
    assert not torch.equal(words, model.get_input_embeddings().weight[word_ids])
    assert any(
        not torch.equal(v, model.model.multi_modal_projector.state_dict()[k]) for k, v in projector.items()
    )
    # the image now points at its category's word: cosine of the projected bright patch to each word
    with torch.no_grad():
        hidden = model.model.vision_tower(pixels[[0, 4]], output_hidden_states=True).hidden_states[-2][:, 1:]
        logits = aligned_max_logits(
            model.model.multi_modal_projector(hidden), model.get_input_embeddings().weight[word_ids], 1.0, 0.0
        )
    assert logits[0, 0] > logits[0, 1] and logits[1, 1] > logits[1, 0]


def test_vision_lr_schedules_match_hand_computed_values():
    from seed.base.vision_pretrain import vision_lr_at

    # 20 steps: warm-up over the first 2 (0.5, 1.0 x lr), then constant or cosine to lr / 10
    assert vision_lr_at(0, 20, 1.0, "constant") == pytest.approx(0.5)
    assert vision_lr_at(1, 20, 1.0, "cosine") == pytest.approx(1.0)
    assert vision_lr_at(19, 20, 1.0, "constant") == pytest.approx(1.0)
    assert vision_lr_at(2, 20, 1.0, "cosine") == pytest.approx(1.0)
    assert vision_lr_at(19, 20, 1.0, "cosine") == pytest.approx(0.1)
    # halfway through the decay (step 2 + 17 / 2 = 10.5): cos = 0 -> 0.1 + 0.45
    assert vision_lr_at(10, 20, 2.0, "cosine") > vision_lr_at(11, 20, 2.0, "cosine")
    assert (vision_lr_at(10, 20, 2.0, "cosine") + vision_lr_at(11, 20, 2.0, "cosine")) / 2 == pytest.approx(
        2.0 * 0.55, rel=1e-2
    )
    with pytest.raises(ValueError, match="schedule"):
        vision_lr_at(5, 20, 1.0, "linear")
