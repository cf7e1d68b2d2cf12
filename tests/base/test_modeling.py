from __future__ import annotations

import pytest
import torch
from PIL import Image

from seed.base.modeling import (
    IMAGE_TOKEN,
    ModelConfig,
    build_model,
    build_processor,
    build_tokenizer,
    count_parameters,
    split_words,
)
from seed.errors import ConfigError

TEXTS = ["Is there a fork in the image?", "Yes", "No", "A kitchen with a red apple, two white plates."]


@pytest.fixture(scope="module")
def parts():
    config = ModelConfig(
        image_size=16,
        patch_size=8,
        vision_hidden=16,
        vision_layers=1,
        vision_heads=2,
        text_hidden=16,
        text_layers=1,
        text_heads=2,
        text_intermediate=32,
    )
    tokenizer = build_tokenizer(TEXTS)
    return config, tokenizer, build_processor(tokenizer, config), build_model(config, tokenizer)


def test_split_words_keeps_punctuation_and_image_token():
    assert split_words("<image>\nIs there a fork?") == ["<image>", "Is", "there", "a", "fork", "?"]


def test_tokenizer_round_trip_and_unknown_words(parts):
    _, tok, _, _ = parts
    ids = tok("Is there a fork in the image?", add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == "Is there a fork in the image?"
    assert tok("zebra", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]


def test_processor_places_one_image_token_per_patch(parts):
    config, tok, proc, _ = parts
    text = proc.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is there a fork?"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == "USER: <image>\nIs there a fork? ASSISTANT:"
    enc = proc(images=[Image.new("RGB", (16, 16))], text=[text], return_tensors="pt")
    n_image = int((enc["input_ids"] == tok.convert_tokens_to_ids(IMAGE_TOKEN)).sum())
    assert n_image == config.num_image_tokens == 4
    assert enc["pixel_values"].shape == (1, 3, 16, 16)


def test_save_and_reload_through_auto_classes(parts, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    config, _, proc, model = parts
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path)
    loaded_proc = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded).__name__ == "LlavaForConditionalGeneration"
    text = loaded_proc.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is there a fork?"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    enc = loaded_proc(images=[Image.new("RGB", (16, 16), (200, 10, 10))], text=[text], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model.eval()(**enc).logits, loaded.eval()(**enc).logits)
    assert count_parameters(loaded) == count_parameters(model)


def test_model_config_rejects_bad_shapes():
    with pytest.raises(ConfigError, match="pretrain.model.patch_size"):
        ModelConfig(image_size=48, patch_size=7)
    with pytest.raises(ConfigError, match="pretrain.model.text_layers"):
        ModelConfig(text_layers=0)
