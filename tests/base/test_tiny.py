from __future__ import annotations

import time

import pytest
import torch
import transformers
from PIL import Image

from seed.base.tiny import ARCHS, build_tiny, build_tokenizer, load_tiny, save_tiny
from seed.errors import ConfigError
from seed.model.processors import has_torchvision, load_processor, processor_class

CLASSES = {
    "llava": ("LlavaForConditionalGeneration", "LlavaProcessor"),
    "qwen2_vl": ("Qwen2VLForConditionalGeneration", "Qwen2VLProcessor"),
    "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor"),
    "internvl": ("InternVLForConditionalGeneration", "InternVLProcessor"),
}
# Placeholder tokens each processor needs in the vocabulary, as single special tokens.
SPECIALS = {
    "llava": ["<image>", "<s>", "</s>", "<pad>"],
    "qwen2_vl": ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>", "<|im_start|>"],
    "qwen2_5_vl": ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|im_start|>", "<|im_end|>"],
    "internvl": ["<img>", "</img>", "<IMG_CONTEXT>", "<|im_start|>", "<|im_end|>"],
}
PROMPT = "Is there a cat in the image?"


def _images():
    return [Image.new("RGB", (40, 28), (200, 30, 30)), Image.new("RGB", (64, 48), (30, 200, 30))]


def _inputs(processor):
    messages = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]] * 2
    texts = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(images=[[im] for im in _images()], text=texts, return_tensors="pt", padding=True)


@pytest.fixture(scope="module", params=ARCHS)
def tiny(request):
    return request.param, *build_tiny(request.param)


def test_real_classes_small_and_reachable_through_auto(tiny):
    arch, model, processor = tiny
    model_name, processor_name = CLASSES[arch]
    assert type(model).__name__ == model_name
    assert isinstance(processor, getattr(transformers, processor_name))
    auto = transformers.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING[type(model.config)]
    assert auto is type(model)
    n_params = sum(p.numel() for p in model.parameters())
    assert 50_000 < n_params < 1_000_000
    assert not model.training


def test_tokenizer_has_the_special_tokens_the_processor_needs(tiny):
    arch, _, processor = tiny
    tokenizer = processor.tokenizer
    assert isinstance(tokenizer, transformers.PreTrainedTokenizerFast)
    for token in SPECIALS[arch]:
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
        assert ids == [tokenizer.convert_tokens_to_ids(token)], token
    assert processor.image_token_id == tokenizer.convert_tokens_to_ids(processor.image_token)
    assert model_image_token_id(tiny) == processor.image_token_id
    text = "Yes, there is a zebra (striped) next to the giraffe!"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text  # byte-level BPE: any text round-trips, no unknown token


def model_image_token_id(tiny) -> int:
    _, model, _ = tiny
    return model.config.image_token_id


def test_forward_on_two_images_is_fast_and_uses_the_image(tiny):
    _, model, processor = tiny
    inputs = _inputs(processor)
    n_image_tokens = int((inputs["input_ids"] == processor.image_token_id).sum())
    assert n_image_tokens > 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # timed alone: two threads on two busy cores can spin 100x slower
    try:
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            with torch.no_grad():
                logits = model(**inputs).logits
            seconds.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    assert min(seconds) < 0.5
    assert logits.shape == (*inputs["input_ids"].shape, len(processor.tokenizer))
    assert torch.isfinite(logits).all()
    # the two images differ, the prompts do not: the image must change the output
    last = inputs["attention_mask"].sum(1) - 1
    assert not torch.allclose(logits[0, last[0]], logits[1, last[1]])


def test_same_seed_same_weights_other_seed_other_weights():
    a, _ = build_tiny("llava", seed=3)
    b, _ = build_tiny("llava", seed=3)
    c, _ = build_tiny("llava", seed=4)
    pa, pb, pc = (dict(m.named_parameters()) for m in (a, b, c))
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not torch.equal(pa[name], pc[name])


def test_tokenizer_is_deterministic():
    assert build_tokenizer("qwen2_vl").get_vocab() == build_tokenizer("qwen2_vl").get_vocab()


def test_unknown_arch_is_a_config_error():
    with pytest.raises(ConfigError, match="llava"):
        build_tiny("blip9")


@pytest.mark.parametrize("arch", ["llava", "qwen2_vl", "internvl"])
def test_save_reloads_through_auto_classes(arch, tmp_path):
    model, processor = build_tiny(arch)
    save_tiny(arch, tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "chat_template.jinja").is_file()
    reloaded = transformers.AutoModelForImageTextToText.from_pretrained(tmp_path)
    assert type(reloaded) is type(model)
    if arch == "llava" or has_torchvision():
        reprocessor = transformers.AutoProcessor.from_pretrained(tmp_path)
    else:
        reprocessor = load_processor(tmp_path)
    assert isinstance(reprocessor, getattr(transformers, CLASSES[arch][1]))
    assert reprocessor.chat_template == processor.chat_template
    before, after = _inputs(processor), _inputs(reprocessor)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with torch.no_grad():
        assert torch.equal(model(**before).logits, reloaded.eval()(**after).logits)
    model2, processor2 = load_tiny(tmp_path)
    assert type(model2) is type(model) and type(processor2).__name__ == CLASSES[arch][1]


@pytest.mark.skipif(has_torchvision(), reason="documents the torchvision-less path only")
def test_without_torchvision_video_processors_are_dropped_not_faked(tmp_path):
    save_tiny("qwen2_vl", tmp_path)
    # transformers 5.24 cannot load a processor that has a video processor without torchvision ...
    with pytest.raises(Exception, match="video processor"):
        transformers.AutoProcessor.from_pretrained(tmp_path)
    # ... so the image-only variant keeps the real class's code and name, and just has no video slot.
    cls = processor_class(transformers.Qwen2VLProcessor)
    assert issubclass(cls, transformers.Qwen2VLProcessor) and cls.__name__ == "Qwen2VLProcessor"
    assert cls.get_attributes() == ["image_processor", "tokenizer"]
    assert processor_class(transformers.LlavaProcessor) is transformers.LlavaProcessor
