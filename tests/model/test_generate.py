"""seed.model.generate: the exact prompt the model reads, and batched answering with any architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from seed.base.modeling import IMAGE_TOKEN, ModelConfig, build_processor, build_tokenizer
from seed.base.tiny import build_tiny
from seed.eval.pope import build_pope_prompt
from seed.model.generate import answer_all, answer_batch, eos_token_ids, prompt_text
from seed.model.vcd import DecodeStats, VCDSettings

POPE_QUESTION = "Is there a fork in the image?"


def _images(n: int, size: int = 40, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def test_pope_prompt_snapshot_for_the_default_model():
    """Freeze the exact text and tokens of a POPE question as the default model reads them."""
    question = build_pope_prompt(POPE_QUESTION)
    tokenizer = build_tokenizer([question, "Yes No"])
    processor = build_processor(tokenizer, ModelConfig())
    text = prompt_text(processor, question)
    assert text == (
        "USER: <image>\nIs there a fork in the image?\nAnswer the question using a single word or phrase."
        " ASSISTANT:"
    )
    ids = processor(images=_images(1, 48), text=[text], return_tensors="pt")["input_ids"][0]
    tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
    n_image = ModelConfig().num_image_tokens
    assert tokens == ["USER", ":"] + [IMAGE_TOKEN] * n_image + (
        [
            "Is",
            "there",
            "a",
            "fork",
            "in",
            "the",
            "image",
            "?",
            "Answer",
            "the",
            "question",
            "using",
            "a",
            "single",
            "word",
            "or",
            "phrase",
            ".",
            "ASSISTANT",
            ":",
        ]
    )
    assert tokenizer.unk_token not in tokens


@pytest.mark.parametrize("arch", ["llava", "qwen2_vl", "internvl"])
def test_answer_batch_equals_generate_greedy(arch):
    model, processor = build_tiny(arch, seed=1)
    questions = ["Is there a cat?", "Describe this image in detail, what is on the table?"]
    images = _images(2)
    answers = answer_batch(model, processor, images, questions, max_new_tokens=6)
    texts = [prompt_text(processor, q) for q in questions]
    inputs = processor(images=images, text=texts, padding=True, padding_side="left", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=6,
            pad_token_id=processor.tokenizer.pad_token_id,
            top_k=None,
        )
    reference = processor.tokenizer.batch_decode(
        out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    )
    assert answers == [r.strip() for r in reference]
    assert all(answers)


@pytest.fixture(scope="module")
def llava():
    return build_tiny("llava", seed=2)


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, image in enumerate(_images(5, seed=4)):
        paths.append(folder / f"img_{i}.png")
        image.save(paths[-1])
    return paths


QUESTIONS = [
    "Is there a dog?",
    "What color is the bus?",
    "Is there a person in the image?",
    "Describe it.",
    "Yes?",
]


@pytest.mark.parametrize("mode", ["greedy", "sample", "vcd"])
def test_answers_do_not_depend_on_the_batch(llava, image_files, mode):
    model, processor = llava
    kwargs = {"max_new_tokens": 5, "progress": False, "seed": 3}
    if mode == "sample":
        kwargs["do_sample"] = True
    if mode == "vcd":
        kwargs["vcd"] = VCDSettings(cd_alpha=1.0, cd_beta=0.1, noise_step=500)
    one_batch = answer_all(model, processor, image_files, QUESTIONS, batch_size=5, **kwargs)
    pairs = answer_all(model, processor, image_files, QUESTIONS, batch_size=2, **kwargs)
    assert one_batch == pairs and len(pairs) == 5


def test_sampling_is_seeded(llava, image_files):
    model, processor = llava
    run = [
        answer_all(
            model, processor, image_files, QUESTIONS, max_new_tokens=5, do_sample=True, seed=s, progress=False
        )
        for s in (0, 0, 1)
    ]
    assert run[0] == run[1]
    assert run[0] != run[2]
    greedy = answer_all(model, processor, image_files, QUESTIONS, max_new_tokens=5, progress=False)
    assert run[0] != greedy


def test_stats_count_forwards_per_method(llava, image_files):
    model, processor = llava
    regular, vcd = DecodeStats(), DecodeStats()
    answer_all(
        model,
        processor,
        image_files,
        QUESTIONS,
        batch_size=2,
        max_new_tokens=4,
        progress=False,
        stats=regular,
    )
    answer_all(
        model,
        processor,
        image_files,
        QUESTIONS,
        batch_size=2,
        max_new_tokens=4,
        progress=False,
        vcd=VCDSettings(),
        stats=vcd,
    )
    assert regular.steps == vcd.steps == 3 * 4  # three batches, no eos from a random model
    assert regular.forwards_per_token == 1.0 and vcd.forwards_per_token == 2.0
    assert regular.tokens == vcd.tokens == 5 * 4


def test_eos_ids_merge_generation_config_and_tokenizer(llava):
    model, processor = llava
    assert eos_token_ids(model, processor) == [processor.tokenizer.eos_token_id]
    model.generation_config.eos_token_id = [5, processor.tokenizer.eos_token_id]
    try:
        assert eos_token_ids(model, processor) == sorted({5, processor.tokenizer.eos_token_id})
    finally:
        model.generation_config.eos_token_id = processor.tokenizer.eos_token_id


def test_answer_batch_rejects_mismatched_inputs(llava):
    model, processor = llava
    with pytest.raises(ValueError, match="2 images for 1 questions"):
        answer_batch(model, processor, _images(2), ["Is there a cat?"])


def test_margins_are_the_first_token_yes_minus_no_logits_and_the_bias_shifts_them(llava, image_files):
    from seed.model.generate import open_image, yes_no_token_ids

    model, processor = llava
    yes, no = yes_no_token_ids(processor)
    margins: list[float] = []
    answer_all(
        model,
        processor,
        image_files,
        QUESTIONS,
        batch_size=2,
        max_new_tokens=2,
        progress=False,
        margins=margins,
    )
    texts = [prompt_text(processor, q) for q in QUESTIONS]
    images = [open_image(p) for p in image_files]
    inputs = processor(images=images, text=texts, padding=True, padding_side="left", return_tensors="pt")
    with torch.no_grad():
        last = model(**inputs).logits[:, -1, :]
    assert margins == pytest.approx((last[:, yes] - last[:, no]).tolist(), abs=1e-4)
    # a yes bias of b adds b to "Yes" and takes b from "No": a large one makes every first token "Yes"
    biased = answer_batch(model, processor, images, QUESTIONS, max_new_tokens=1, yes_bias=1e4)
    assert biased == [processor.tokenizer.decode([yes]).strip()] * len(QUESTIONS)
    again: list[float] = []
    answer_batch(model, processor, images, QUESTIONS, max_new_tokens=1, yes_bias=3.0, margins=again)
    assert again == pytest.approx(margins, abs=1e-4)  # margins are read before the bias


def test_vcd_margins_are_the_contrasted_first_token_logits(llava, image_files):
    from seed.model.generate import image_token_ids, open_image, yes_no_token_ids
    from seed.model.teacher import noise_pixels
    from seed.model.vcd import contrast_logits

    model, processor = llava
    yes, no = yes_no_token_ids(processor)
    settings = VCDSettings(cd_alpha=1.0, cd_beta=0.0, noise_step=500)  # beta 0: every token plausible
    images = [open_image(p) for p in image_files[:2]]
    margins: list[float] = []
    answer_batch(
        model, processor, images, QUESTIONS[:2], max_new_tokens=1, vcd=settings, seed=0, margins=margins
    )
    texts = [prompt_text(processor, q) for q in QUESTIONS[:2]]
    inputs = processor(images=images, text=texts, padding=True, padding_side="left", return_tensors="pt")
    noised = noise_pixels(inputs, ["0", "1"], 500, 0, image_token_ids(processor))
    with torch.no_grad():
        clean = model(**inputs).logits[:, -1, :]
        other = model(**{**inputs, "pixel_values": noised}).logits[:, -1, :]
    scores = contrast_logits(clean, other, 1.0, 0.0)  # 2 l - n
    want = (scores[:, yes] - scores[:, no]).tolist()
    assert torch.isfinite(scores[:, [yes, no]]).all()
    assert margins == pytest.approx(want, abs=1e-3)
    plain = (clean[:, yes] - clean[:, no]).tolist()
    assert margins != pytest.approx(plain, abs=1e-3)  # the contrast changed them
