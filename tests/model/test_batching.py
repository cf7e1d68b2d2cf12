from __future__ import annotations

import pytest
import torch
from PIL import Image

from seed.base.tiny import build_tiny
from seed.model.batching import IGNORE_INDEX, build_batch, render_completion, render_prompt, response_mask

PROMPTS = ["Is there a cat in the image?", "Describe the image in detail."]
RESPONSES = ["Yes, there is a cat.", "A red bus on a street next to a tree."]
# Image tokens per sample, worked out by hand from the tiny processors' settings:
# llava: 32 px crop / 8 px patches = 4x4 = 16 (CLS dropped); qwen2_vl: 40x28 -> 32x32 px -> 4x4 patches
# / 2x2 merge = 4, 64x48 -> 64x48 px -> 8x6 / 4 = 12; internvl: one 32 px tile, (32/4)^2 * 0.5^2 = 16.
IMAGE_TOKENS = {"llava": [16, 16], "qwen2_vl": [4, 12], "qwen2_5_vl": [4, 12], "internvl": [16, 16]}


def _images():
    return [Image.new("RGB", (40, 28), (200, 30, 30)), Image.new("RGB", (64, 48), (30, 200, 30))]


@pytest.fixture(scope="module", params=list(IMAGE_TOKENS))
def tiny(request):
    model, processor = build_tiny(request.param)
    batch = build_batch(processor, _images(), PROMPTS, RESPONSES)
    return request.param, model, processor, batch


def _prompt_only_ids(processor, image, prompt) -> list[int]:
    """What the processor alone gives for one rendered prompt: the reference prompt tokens."""
    out = processor(images=[[image]], text=[render_prompt(processor, prompt)], return_tensors="pt")
    return out["input_ids"][0].tolist()


def test_image_tokens_are_the_ones_the_processor_inserts(tiny):
    arch, _, processor, batch = tiny
    counts = (batch["input_ids"] == processor.image_token_id).sum(1).tolist()
    assert counts == IMAGE_TOKENS[arch]
    for i, image in enumerate(_images()):
        reference = _prompt_only_ids(processor, image, PROMPTS[i])
        assert reference.count(processor.image_token_id) == counts[i]


def test_labels_ignore_exactly_prompt_image_and_padding(tiny):
    _, _, processor, batch = tiny
    ids, labels, attention = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert labels.shape == ids.shape == attention.shape
    for i, image in enumerate(_images()):
        prompt = _prompt_only_ids(processor, image, PROMPTS[i])
        n_prompt, n_real = len(prompt), int(attention[i].sum())
        assert ids[i, :n_prompt].tolist() == prompt  # prompt tokens exactly as at generation time
        assert attention[i, :n_real].all() and not attention[i, n_real:].any()  # right padding
        expected = torch.full_like(labels[i], IGNORE_INDEX)
        expected[n_prompt:n_real] = ids[i, n_prompt:n_real]
        assert torch.equal(labels[i], expected)
        assert n_real > n_prompt
        assert (labels[i][ids[i] == processor.image_token_id] == IGNORE_INDEX).all()


def test_kept_label_tokens_decode_to_the_response_and_end_the_turn(tiny):
    _, _, processor, batch = tiny
    tokenizer = processor.tokenizer
    for i, response in enumerate(RESPONSES):
        kept = batch["labels"][i][batch["labels"][i] != IGNORE_INDEX]
        assert tokenizer.decode(kept, skip_special_tokens=True).strip() == response
        last = tokenizer.convert_ids_to_tokens(int(kept[-1]))
        assert last == tokenizer.eos_token  # </s> for LLaVA, <|im_end|> for ChatML


def test_model_loss_is_next_token_cross_entropy_on_response_tokens(tiny):
    _, model, _, batch = tiny
    with torch.no_grad():
        out = model(**batch)
    logits, labels = out.logits[:, :-1], batch["labels"][:, 1:]
    mask = response_mask(labels)
    manual = torch.nn.functional.cross_entropy(logits[mask], labels[mask])
    assert torch.isfinite(out.loss)
    assert torch.allclose(out.loss, manual, atol=1e-5)


def test_per_token_extras_follow_the_tokens(tiny):
    arch, _, processor, batch = tiny
    if "mm_token_type_ids" not in batch:
        assert arch in ("llava", "internvl")
        return
    types = batch["mm_token_type_ids"]
    assert types.shape == batch["input_ids"].shape
    assert torch.equal(types == 1, batch["input_ids"] == processor.image_token_id)


def test_generation_batch_is_left_padded_prompts_without_labels(tiny):
    _, model, processor, _ = tiny
    batch = build_batch(processor, _images(), PROMPTS, padding_side="left")
    assert "labels" not in batch
    assert batch["attention_mask"][:, -1].all()  # every prompt ends at the last column
    for i, image in enumerate(_images()):
        prompt = _prompt_only_ids(processor, image, PROMPTS[i])
        assert batch["input_ids"][i, -len(prompt) :].tolist() == prompt
        assert not batch["attention_mask"][i, : -len(prompt)].any()
    out = model.generate(**batch, max_new_tokens=2, do_sample=False)
    width = batch["input_ids"].shape[1]
    assert torch.equal(out[:, :width], batch["input_ids"]) and out.shape[1] > width


def test_left_padded_training_batch_keeps_labels_aligned():
    _, processor = build_tiny("llava")
    right = build_batch(processor, _images(), PROMPTS, RESPONSES)
    left = build_batch(processor, _images(), PROMPTS, RESPONSES, padding_side="left")
    for i in range(2):
        r_keep, l_keep = right["attention_mask"][i].bool(), left["attention_mask"][i].bool()
        assert torch.equal(right["input_ids"][i][r_keep], left["input_ids"][i][l_keep])
        assert torch.equal(right["labels"][i][r_keep], left["labels"][i][l_keep])
        assert (left["labels"][i][~l_keep] == IGNORE_INDEX).all()


def test_template_without_end_of_turn_gets_eos_appended():
    # LLaVA-1.5-hf's template renders the answer as "ASSISTANT: {text} " with no eos.
    _, processor = build_tiny("llava")
    processor.chat_template = processor.chat_template.replace("{{ eos_token }}", "{{ ' ' }}")
    assert render_completion(processor, PROMPTS[0], RESPONSES[0]) == " " + RESPONSES[0] + "</s>"
    batch = build_batch(processor, _images(), PROMPTS, RESPONSES)
    kept = batch["labels"][0][batch["labels"][0] != IGNORE_INDEX]
    assert processor.tokenizer.decode(kept) == " " + RESPONSES[0] + "</s>"


def test_bad_batches_are_rejected():
    _, processor = build_tiny("llava")
    with pytest.raises(ValueError, match="2 images, 1 prompts"):
        build_batch(processor, _images(), PROMPTS[:1])
    with pytest.raises(ValueError, match="padding_side"):
        build_batch(processor, _images(), PROMPTS, padding_side="middle")
    with pytest.raises(ValueError, match="image placeholder"):
        build_batch(processor, _images(), PROMPTS, ["<image> yes", "no"])


def test_response_mask_by_hand():
    labels = torch.tensor([[-100, -100, 5, 7, -100], [-100, 3, 0, -100, -100]])
    expected = torch.tensor([[False, False, True, True, False], [False, True, True, False, False]])
    mask = response_mask(labels)
    assert mask.dtype == torch.bool
    assert torch.equal(mask, expected)
