"""seed.model.vcd: contrast scores, token choice, and the two-cache decoding loop against references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from seed.base.tiny import build_tiny
from seed.core.noise import add_diffusion_noise
from seed.model.generate import prompt_text
from seed.model.vcd import DecodeStats, contrast_logits, decode, next_tokens

# Different lengths, so the batch is left-padded.
QUESTIONS = [
    "Is there a cat in the image?",
    "Describe this image in detail. What is on the table next to the man with the bottle?",
    "What color?",
]
MAX_NEW = 8


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_tiny("llava", seed=3)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)) for _ in QUESTIONS]
    texts = [prompt_text(processor, q) for q in QUESTIONS]
    inputs = processor(images=images, text=texts, padding=True, padding_side="left", return_tensors="pt")
    inputs = dict(inputs)
    noised = add_diffusion_noise(inputs["pixel_values"], 500, seeds=[11, 12, 13])
    tok = processor.tokenizer
    return {
        "model": model,
        "inputs": inputs,
        "noised": noised,
        "eos": [tok.eos_token_id],
        "pad": tok.pad_token_id,
    }


def test_inputs_are_left_padded(tiny):
    mask = tiny["inputs"]["attention_mask"]
    lengths = mask.sum(dim=1)
    assert len(set(lengths.tolist())) == 3  # three prompt lengths
    assert (mask[:, -1] == 1).all() and (mask[:, 0] == 0).any()


def test_contrast_logits_matches_hand_computation():
    clean = torch.tensor([[2.0, 1.0, math.log(0.05) + 2.0, -5.0]])
    noised = torch.tensor([[1.0, 3.0, 0.0, 0.0]])
    # cd_beta = 0.1: keep v with l_v - max l >= log 0.1 = -2.303 -> tokens 0 and 1 (token 2 is at -3.0)
    scores = contrast_logits(clean, noised, cd_alpha=1.0, cd_beta=0.1)
    assert scores[0, 0].item() == pytest.approx(2 * 2.0 - 1.0)
    assert scores[0, 1].item() == pytest.approx(2 * 1.0 - 3.0)
    assert torch.isinf(scores[0, 2:]).all() and (scores[0, 2:] < 0).all()
    assert scores.dtype == torch.float32


def test_contrast_with_zero_alpha_keeps_clean_logits_on_plausible_set():
    clean = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    noised = torch.randn(4, 50, generator=torch.Generator().manual_seed(1))
    scores = contrast_logits(clean, noised, cd_alpha=0.0, cd_beta=0.2)
    finite = scores.isfinite()
    assert torch.equal(scores[finite], clean[finite])
    assert torch.equal(scores.argmax(-1), clean.argmax(-1))
    with pytest.raises(ValueError, match="cd_alpha"):
        contrast_logits(clean, noised, cd_alpha=-1.0, cd_beta=0.1)


def test_next_tokens_greedy_and_seeded_sampling():
    scores = torch.tensor([[0.0, 3.0, float("-inf")], [5.0, 0.0, 1.0]])
    assert next_tokens(scores).tolist() == [1, 0]
    draws = [
        next_tokens(scores, True, [torch.Generator().manual_seed(s), torch.Generator().manual_seed(s + 1)])
        for s in range(200)
    ]
    stacked = torch.stack(draws)
    assert (stacked[:, 0] != 2).all()  # -inf is never drawn
    assert set(stacked[:, 0].tolist()) == {0, 1}  # but it is a draw, not the argmax
    again = next_tokens(scores, True, [torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)])
    assert torch.equal(again, draws[7])
    # a row's draw does not depend on the other rows of the batch
    alone = next_tokens(scores[1:], True, [torch.Generator().manual_seed(8)])
    assert alone.item() == draws[7][1].item()


def test_regular_decoding_equals_generate(tiny):
    model, inputs = tiny["model"], tiny["inputs"]
    with torch.no_grad():
        reference = model.generate(
            **inputs, do_sample=False, max_new_tokens=MAX_NEW, pad_token_id=tiny["pad"], top_k=None
        )[:, inputs["input_ids"].shape[1] :]
    tokens = decode(model, inputs, MAX_NEW, tiny["eos"], tiny["pad"])
    assert torch.equal(tokens, reference)


def test_vcd_with_zero_alpha_gives_exactly_the_regular_greedy_tokens(tiny):
    model, inputs = tiny["model"], tiny["inputs"]
    regular = decode(model, inputs, MAX_NEW, tiny["eos"], tiny["pad"])
    vcd = decode(
        model, inputs, MAX_NEW, tiny["eos"], tiny["pad"], noised_pixel_values=tiny["noised"], cd_alpha=0.0
    )
    assert torch.equal(vcd, regular)
    contrasted = decode(
        model, inputs, MAX_NEW, tiny["eos"], tiny["pad"], noised_pixel_values=tiny["noised"], cd_alpha=1.0
    )
    assert not torch.equal(contrasted, regular)  # the contrast does change something on this model


def _slow_vcd(model, inputs, noised, steps, cd_alpha, cd_beta):
    """Reference: no cache; both full sequences are recomputed from scratch at every step."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    out = []
    for _ in range(steps):
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        logits = []
        for pixels in (inputs["pixel_values"], noised):
            with torch.no_grad():
                result = model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=positions,
                    pixel_values=pixels,
                    use_cache=False,
                )
            logits.append(result.logits[:, -1, :])
        clean, bad = logits
        plausible = clean.softmax(-1) >= cd_beta * clean.softmax(-1).max(-1, keepdim=True).values
        scores = ((1 + cd_alpha) * clean - cd_alpha * bad).masked_fill(~plausible, float("-inf"))
        token = scores.argmax(-1)
        out.append(token)
        ids = torch.cat([ids, token[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    return torch.stack(out, dim=1)


def test_two_cache_vcd_equals_slow_reference_without_cache(tiny):
    model, inputs, noised = tiny["model"], tiny["inputs"], tiny["noised"]
    fast = decode(
        model, inputs, MAX_NEW, [-1], tiny["pad"], noised_pixel_values=noised, cd_alpha=1.0, cd_beta=0.1
    )
    slow = _slow_vcd(model, inputs, noised, MAX_NEW, cd_alpha=1.0, cd_beta=0.1)
    assert fast.shape == (3, MAX_NEW)
    assert torch.equal(fast, slow)


def test_forward_calls_per_token_are_counted(tiny):
    model, inputs = tiny["model"], tiny["inputs"]
    calls = []
    handle = model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        regular, vcd = DecodeStats(), DecodeStats()
        decode(model, inputs, 5, [-1], tiny["pad"], stats=regular)
        n_regular = len(calls)
        decode(model, inputs, 5, [-1], tiny["pad"], noised_pixel_values=tiny["noised"], stats=vcd)
        n_vcd = len(calls) - n_regular
    finally:
        handle.remove()
    assert (n_regular, n_vcd) == (5, 10)  # the hook sees the real model calls
    assert (regular.forwards, regular.steps, regular.tokens) == (5, 5, 15)
    assert (vcd.forwards, vcd.steps, vcd.tokens) == (10, 5, 15)
    assert regular.forwards_per_token == 1.0 and vcd.forwards_per_token == 2.0
    assert regular.seconds > 0 and regular.tokens_per_second == pytest.approx(15 / regular.seconds)
    assert set(vcd.as_dict()) >= {"forwards_per_token", "tokens_per_second"}


def test_rows_stop_at_eos_and_only_live_rows_count(tiny):
    model, inputs = tiny["model"], tiny["inputs"]
    free = decode(model, inputs, MAX_NEW, [-1], tiny["pad"])
    eos = int(free[0, 1])  # row 0 ends at its second token
    stats = DecodeStats()
    tokens = decode(model, inputs, MAX_NEW, [eos], tiny["pad"], stats=stats)
    first_eos = [(row == eos).nonzero()[0].item() if (row == eos).any() else None for row in free]
    for row, stop in enumerate(first_eos):
        if stop is None:
            n = tokens.shape[1]
            assert torch.equal(tokens[row], free[row, :n])
        else:
            assert torch.equal(tokens[row, : stop + 1], free[row, : stop + 1])
            assert (tokens[row, stop + 1 :] == tiny["pad"]).all()
    live = sum(MAX_NEW if s is None else s + 1 for s in first_eos)
    assert stats.tokens == live < 3 * MAX_NEW
