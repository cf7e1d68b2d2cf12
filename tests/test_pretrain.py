from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from seed.conversation import load_conversations, to_messages
from seed.errors import ConfigError
from seed.modeling import ModelConfig, build_tokenizer
from seed.pretrain import (
    PretrainConfig,
    collect_texts,
    encode_conversations,
    lr_at,
    pretrain,
    render_conversation,
)
from seed.world.synth import WorldConfig, synthesize

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
    ],
)
def test_config_rejects_out_of_range_values_naming_the_key(field, value):
    with pytest.raises(ConfigError, match=f"pretrain.{field}"):
        PretrainConfig(**{field: value})


def test_model_section_is_read_from_a_mapping():
    assert PretrainConfig(model=TINY_MODEL).model == ModelConfig(**TINY_MODEL)
