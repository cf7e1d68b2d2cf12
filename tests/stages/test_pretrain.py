from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from seed.base.encoding import encode_conversations, render_conversation
from seed.base.modeling import ModelConfig, build_tokenizer
from seed.errors import ConfigError
from seed.files.conversation import load_conversations, to_messages
from seed.stages.pretrain import PretrainConfig, collect_texts, lr_at, pretrain
from seed.world.config import WorldConfig
from seed.world.synth import synthesize

TINY_MODEL = {
    "image_size": 16,
    "patch_size": 8,
    "vision_hidden": 16,
    "vision_layers": 1,
    "vision_heads": 2,
    "text_hidden": 16,
    "text_layers": 1,
    "text_heads": 2,
    "text_intermediate": 32,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("w") / "world"
    synthesize(
        out,
        WorldConfig(n_train=8, n_seed=2, n_pope_images=2, n_mme_images=1, n_chair_images=1, image_size=32),
        progress=False,
    )
    return out


def test_render_matches_the_chat_template_and_spans_cover_answers(world):
    records = load_conversations(world / "train" / "conversations.json")
    tokenizer = build_tokenizer(collect_texts(world))
    for record in records:
        messages = to_messages(record["conversations"])
        text, spans = render_conversation(messages)
        assert text == tokenizer.apply_chat_template(messages, tokenize=False)
        answers = [t["value"] for t in record["conversations"] if t["from"] == "gpt"]
        assert [text[a:b] for a, b in spans] == [answer + "</s>" for answer in answers]


def test_labels_are_only_answer_tokens_and_image_tokens_are_expanded(world):
    records = load_conversations(world / "train" / "conversations.json")
    tokenizer = build_tokenizer(collect_texts(world))
    messages = to_messages(records[0]["conversations"])
    ((ids, labels),) = encode_conversations(tokenizer, [messages], num_image_tokens=4)
    assert len(ids) == len(labels)
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    assert ids.count(image_id) == 4
    learned = [t for t in labels if t != -100]
    answers = [t["value"] for t in records[0]["conversations"] if t["from"] == "gpt"]
    expected = [t for a in answers for t in tokenizer(a + "</s>", add_special_tokens=False)["input_ids"]]
    assert learned == expected
    assert all(labels[i] == -100 for i, t in enumerate(ids) if t == image_id)


def test_pretrain_saves_a_loadable_model_and_is_reproducible(world, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    config = PretrainConfig(steps=3, batch_size=4, warmup_steps=1, model=TINY_MODEL | {"image_size": 32})
    first = pretrain(world, tmp_path / "a", config, progress=False)
    pretrain(world, tmp_path / "b", config, progress=False)
    assert first["steps"] == 3 and first["parameters"] > 0
    assert not (tmp_path / "a.tmp").exists()
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "a")
    processor = AutoProcessor.from_pretrained(tmp_path / "a")
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert processor.tokenizer.convert_tokens_to_ids("Yes") != processor.tokenizer.unk_token_id
    losses = json.loads((tmp_path / "a" / "pretrain_loss.json").read_text())
    assert len(losses) == 3 and all(row["loss"] > 0 for row in losses)


def test_bfloat16_autocast_trains_and_saves_float32_weights(world, tmp_path):
    config = PretrainConfig(
        steps=2, batch_size=4, warmup_steps=1, dtype="bfloat16", model=TINY_MODEL | {"image_size": 32}
    )
    summary = pretrain(world, tmp_path / "m", config, progress=False)
    weights = load_file(tmp_path / "m" / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}
    assert math.isfinite(summary["final_loss_ema"]) and summary["final_loss_ema"] > 0


def test_turn_mean_loss_is_the_one_trained(world, tmp_path):
    base = dict(steps=1, batch_size=4, warmup_steps=1, model=TINY_MODEL | {"image_size": 32})
    pretrain(world, tmp_path / "token", PretrainConfig(**base), progress=False)
    pretrain(world, tmp_path / "turn", PretrainConfig(**base, loss_mean="turn"), progress=False)
    token = json.loads((tmp_path / "token" / "pretrain_loss.json").read_text())[0]["loss"]
    turn = json.loads((tmp_path / "turn" / "pretrain_loss.json").read_text())[0]["loss"]
    # the same initial model and first batch: only the weighting of the answer turns differs
    assert math.isfinite(turn) and turn > 0 and abs(turn - token) > 1e-4


def test_learning_rate_warms_up_then_decays():
    config = PretrainConfig(steps=100, warmup_steps=10, lr=1e-3)
    assert lr_at(0, config) == pytest.approx(1e-4)
    assert lr_at(9, config) == pytest.approx(1e-3)
    assert lr_at(99, config) < lr_at(50, config) < lr_at(10, config)
    assert lr_at(99, config) >= 1e-4 - 1e-12


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("steps", 0),
        ("lr", 0.0),
        ("batch_size", 0),
        ("grad_clip", 0.0),
        ("device", "gpu"),
        ("dtype", "int8"),
        ("dtype", "float16"),
        ("loss_mean", "sum"),
        ("bias_cooccurrence", 1.5),
        ("bias_seed", -1),
        ("bias_world", "yes"),
    ],
)
def test_config_rejects_out_of_range_values_naming_the_key(field, value):
    with pytest.raises(ConfigError, match=f"pretrain.{field}"):
        PretrainConfig(**{field: value})


def test_model_section_is_read_from_a_mapping():
    assert PretrainConfig(model=TINY_MODEL).model == ModelConfig(**TINY_MODEL)


def test_degrade_noises_about_rate_of_the_images_and_leaves_the_rest():
    from seed.stages.pretrain import degrade

    pixels = torch.zeros(400, 3, 4, 4)
    out = degrade(pixels, 0.3, torch.Generator().manual_seed(0))
    changed = (out != 0).flatten(1).any(1)
    assert 0.22 < changed.float().mean() < 0.38  # a share near 0.3 of the images, the others untouched
    assert torch.equal(out[~changed], pixels[~changed]) and torch.equal(pixels, torch.zeros_like(pixels))
    again = degrade(pixels, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert degrade(pixels, 0.0, torch.Generator()) is pixels


def test_grounding_world_is_the_world_drawn_again_without_its_scene_prior(world, tmp_path):
    from seed.stages.pretrain import grounding_world

    config = PretrainConfig(steps=4, grounding_steps=2, grounding_seed=7)
    out = grounding_world(world, tmp_path / "g", config)
    meta = json.loads((out / "world.json").read_text())["config"]
    own = json.loads((world / "world.json").read_text())["config"]
    assert meta["seed"] == 7 and meta["cooccurrence"] == 0.0 and meta["hard_negative_rate"] == 0.5
    assert meta["n_train"] == own["n_train"] and meta["image_size"] == own["image_size"]
    assert meta["n_pope_images"] == 0 and not list((out / "images" / "eval").iterdir())


def test_bias_world_is_the_world_drawn_again_with_a_stronger_prior(world, tmp_path):
    from seed.stages.pretrain import bias_world

    config = PretrainConfig(bias_world=True, bias_seed=9, bias_cooccurrence=0.97)
    out = bias_world(world, tmp_path / "b", config)
    meta = json.loads((out / "world.json").read_text())["config"]
    own = json.loads((world / "world.json").read_text())["config"]
    assert meta["seed"] == 9 and meta["cooccurrence"] == 0.97
    assert {
        k: v for k, v in meta.items() if k not in ("seed", "cooccurrence") and not k.startswith("n_")
    } == {k: v for k, v in own.items() if k not in ("seed", "cooccurrence") and not k.startswith("n_")}
    assert meta["n_train"] == own["n_train"] and meta["n_pope_images"] == 0
    assert not list((out / "images" / "eval").iterdir())


def test_bias_world_replaces_the_data_folders_training_split(world, tmp_path, monkeypatch):
    from seed.stages import pretrain as stage

    read = []
    load_pixels = stage.load_pixels
    monkeypatch.setattr(
        stage, "load_pixels", lambda proc, paths: read.append(paths) or load_pixels(proc, paths)
    )
    shape = {"steps": 3, "batch_size": 4, "warmup_steps": 1, "model": TINY_MODEL | {"image_size": 32}}
    summary = pretrain(world, tmp_path / "a", PretrainConfig(bias_world=True, **shape), progress=False)
    assert len(read) == 1 and all("seed-pretrain-worlds-" in str(p) for p in read[0])
    assert len(read[0]) == summary["train_conversations"] == 8
    read.clear()
    pretrain(
        world, tmp_path / "b", PretrainConfig(grounding_steps=1, bias_world=True, **shape), progress=False
    )
    assert [p[0].parts[-4] for p in read] == ["world", "bias"]  # grounding first, then the bias world
    read.clear()
    pretrain(world, tmp_path / "c", PretrainConfig(**shape), progress=False)
    assert all(p.is_relative_to(world) for p in read[0])  # by default the data folder's own split
    a, c = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "c" / "model.safetensors")
    assert any(not torch.equal(a[k], c[k]) for k in a if k in c and a[k].shape == c[k].shape)


def test_curriculum_with_degraded_images_trains_reproducibly(world, tmp_path):
    config = PretrainConfig(
        steps=3,
        batch_size=4,
        warmup_steps=1,
        grounding_steps=2,
        degraded_rate=0.5,
        vision_steps=1,
        vision_batch_size=4,
        model=TINY_MODEL | {"image_size": 32},
    )
    pretrain(world, tmp_path / "a", config, progress=False)
    pretrain(world, tmp_path / "b", config, progress=False)
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = PretrainConfig(
        steps=3,
        batch_size=4,
        warmup_steps=1,
        vision_steps=1,
        vision_batch_size=4,
        model=TINY_MODEL | {"image_size": 32},
    )
    pretrain(world, tmp_path / "c", plain, progress=False)
    c = load_file(tmp_path / "c" / "model.safetensors")
    assert any(not torch.equal(a[k], c[k]) for k in a if k in c)  # the curriculum changes the weights
    with pytest.raises(ConfigError, match="grounding_steps"):
        PretrainConfig(steps=3, grounding_steps=4)


def test_freeze_vision_keeps_the_stage_0_tower(world, tmp_path):
    shape = {"batch_size": 4, "warmup_steps": 1, "vision_steps": 2, "vision_batch_size": 4}
    model = TINY_MODEL | {"image_size": 32}
    for name, steps, freeze in (("a", 2, True), ("b", 4, True), ("c", 4, False)):
        config = PretrainConfig(steps=steps, freeze_vision=freeze, model=model, **shape)
        pretrain(world, tmp_path / name, config, progress=False)
    a, b, c = (load_file(tmp_path / n / "model.safetensors") for n in "abc")
    tower = [k for k in a if "vision_tower" in k]
    assert tower and all(torch.equal(a[k], b[k]) for k in tower)  # LLaVA steps never touch it
    assert any(not torch.equal(b[k], c[k]) for k in tower)  # unfrozen, they do
    assert any(not torch.equal(a[k], b[k]) for k in a if "language_model" in k)


def test_fresh_vision_images_are_the_grounding_recipe_drawn_in_memory(world):
    from seed.stages.pretrain import fresh_vision_images
    from seed.world.redraw import draw_scene_images, world_config

    tokenizer = build_tokenizer(["a cat"])
    from seed.base.modeling import build_processor

    processor = build_processor(tokenizer, ModelConfig(**(TINY_MODEL | {"image_size": 48})))
    config = PretrainConfig(steps=2, vision_steps=1, vision_images=5, grounding_seed=11)
    pixels, labels = fresh_vision_images(world, processor, config, chunk=2)  # 3 chunks
    assert pixels.shape == (5, 3, 48, 48) and labels.shape[0] == 5
    import dataclasses

    recipe = dataclasses.replace(world_config(world), seed=11, cooccurrence=0.0)
    images, hot = draw_scene_images(recipe, 5)
    assert torch.equal(labels, torch.from_numpy(hot).float())
    expected = processor.image_processor(list(images), return_tensors="pt")["pixel_values"]
    assert torch.allclose(pixels, expected)
    with pytest.raises(ConfigError, match="vision_images"):
        PretrainConfig(vision_images=-1)
    with pytest.raises(ConfigError, match="vision_schedule"):
        PretrainConfig(vision_schedule="linear")


def test_freeze_projector_keeps_the_stage_0_projector(world, tmp_path):
    shape = {
        "batch_size": 4,
        "warmup_steps": 1,
        "vision_steps": 2,
        "vision_batch_size": 4,
        "vision_images": 8,
    }
    model = TINY_MODEL | {"image_size": 32}
    for name, steps in (("a", 2), ("b", 4)):
        config = PretrainConfig(steps=steps, freeze_vision=True, freeze_projector=True, model=model, **shape)
        pretrain(world, tmp_path / name, config, progress=False)
    a, b = (load_file(tmp_path / n / "model.safetensors") for n in "ab")
    frozen = [k for k in a if "vision_tower" in k or "multi_modal_projector" in k]
    assert any("multi_modal_projector" in k for k in frozen)
    assert all(torch.equal(a[k], b[k]) for k in frozen)
    assert any(not torch.equal(a[k], b[k]) for k in a if "language_model" in k)


def test_model_card_states_the_command_params_and_hashes(world, tmp_path):
    from huggingface_hub import ModelCard

    from seed.errors import DataError
    from seed.files.base_card import card_weights_sha256, pretrain_data_hash, verify_card, weights_sha256

    config = PretrainConfig(steps=2, batch_size=4, warmup_steps=1, version="v9", model=TINY_MODEL)
    out = tmp_path / "m"
    pretrain(world, out, config, progress=False)
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "image-text-to-text" and card.data.library_name == "transformers"
    meta = card.data.to_dict()["seed_base"]
    assert meta["version"] == "v9" and meta["data_sha256"] == pretrain_data_hash(world)
    assert card_weights_sha256(out) == weights_sha256(out) == verify_card(out)
    command = card.text.split("```")[1]
    assert f"seed pretrain \\\n  --data {world} --out {out} \\\n  --steps 2 \\\n  --batch-size 4" in command
    assert "--version v9" in command and "--freeze-vision false" in command
    assert "pretrain.model:" in command  # the tiny shape is not the default one
    assert '"version": "v9"' in card.text  # every parameter, in the JSON block
    (out / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(DataError, match="differs from the card"):
        verify_card(out)


def test_the_shipped_base_model_matches_its_card():
    from pathlib import Path

    from seed.files.base_card import verify_card

    shipped = Path(__file__).resolve().parents[2] / "artifacts" / "base-model"
    if not (shipped / "README.md").is_file():
        pytest.skip("no base checkpoint with a card in this checkout")
    verify_card(shipped)


def test_the_card_data_hash_covers_the_words_pretrain_reads(world, tmp_path):
    import shutil

    from seed.files.base_card import pretrain_data_hash

    copy = tmp_path / "w"
    shutil.copytree(world, copy)
    before = pretrain_data_hash(copy)
    for relative in ("pope", "mme", "seed/instructions.json", "train"):
        target = copy / relative
        files = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
        original = files[0].read_bytes()
        files[0].write_bytes(original + b"\n")
        assert pretrain_data_hash(copy) != before, relative  # the vocabulary depends on these words
        files[0].write_bytes(original)
    assert pretrain_data_hash(copy) == before
