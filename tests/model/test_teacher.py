from __future__ import annotations

import torch

from seed.core.noise import add_diffusion_noise, sample_seed
from seed.model.teacher import contrast_batch, noise_pixels, response_positions, response_token_ids


def test_response_positions_shift_by_one():
    labels = torch.tensor([[-100, -100, 5, 7, -100], [-100, 3, 0, -100, -100]])
    expected = torch.tensor([[False, True, True, False, False], [True, True, False, False, False]])
    assert torch.equal(response_positions(labels), expected)
    ids = response_token_ids(labels)
    assert ids[0].tolist() == [5, 7] and ids[1].tolist() == [3, 0]


def test_noise_is_per_sample_whatever_the_batch_and_layout():
    pixels = torch.randn(3, 3, 4, 4)
    batch = {"input_ids": torch.zeros(3, 5, dtype=torch.long), "pixel_values": pixels}
    noised = noise_pixels(batch, ["a", "b", "c"], 500, 0, {9})
    alone = add_diffusion_noise(pixels[1:2], 500, seeds=[sample_seed("b", 0)])
    assert torch.equal(noised[1:2], alone)
    assert not torch.equal(noise_pixels(batch, ["a", "b", "c"], 500, 1, {9}), noised)  # seed matters
    # Qwen2-VL: flattened patches, image_grid_thw rows per image (1*2*2 = 4 and 1*2*3 = 6)
    qwen = {
        "input_ids": torch.zeros(2, 5, dtype=torch.long),
        "pixel_values": torch.randn(10, 12),
        "image_grid_thw": torch.tensor([[1, 2, 2], [1, 2, 3]]),
    }
    out = noise_pixels(qwen, ["a", "b"], 500, 0, {9})
    second = add_diffusion_noise(qwen["pixel_values"][None, 4:], 500, seeds=[sample_seed("b", 0)])[0]
    assert out.shape == (10, 12) and torch.equal(out[4:], second)
    # InternVL tiles: rows follow the image tokens (16 per tile): one tile, then two
    ids = torch.tensor([[9] * 16 + [0] * 16, [9] * 32])
    tiles = {"input_ids": ids, "pixel_values": torch.randn(3, 3, 4, 4)}
    out = noise_pixels(tiles, ["a", "b"], 500, 0, {9})
    second = add_diffusion_noise(tiles["pixel_values"][None, 1:], 500, seeds=[sample_seed("b", 0)])[0]
    assert torch.equal(out[1:], second)


def test_contrast_batch_is_clean_then_noised():
    batch = {
        "input_ids": torch.tensor([[1, 2], [3, 4]]),
        "attention_mask": torch.ones(2, 2, dtype=torch.long),
        "labels": torch.tensor([[-100, 2], [-100, 4]]),
        "pixel_values": torch.zeros(2, 3, 2, 2),
        "image_grid_thw": torch.tensor([[1, 1, 1], [1, 1, 2]]),
    }
    noised = torch.ones(2, 3, 2, 2)
    out = contrast_batch(batch, noised)
    assert "labels" not in out
    assert out["input_ids"].tolist() == [[1, 2], [3, 4], [1, 2], [3, 4]]
    assert out["image_grid_thw"].tolist() == [[1, 1, 1], [1, 1, 2], [1, 1, 1], [1, 1, 2]]
    assert torch.equal(out["pixel_values"][:2], batch["pixel_values"]) and torch.equal(
        out["pixel_values"][2:], noised
    )
