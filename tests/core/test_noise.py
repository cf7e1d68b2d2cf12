from __future__ import annotations

import math

import pytest
import torch

from seed.core.noise import add_diffusion_noise, diffusion_schedule, noise_coefficients, sample_seed


@pytest.fixture(autouse=True)
def _fixed_seed():
    """Every test sees the same random inputs."""
    torch.manual_seed(0)


def expected_abar(step: int, num_steps: int = 1000) -> float:
    """abar_T straight from the formula, in float64 Python arithmetic."""
    prod = 1.0
    for i in range(step + 1):
        x = -6.0 + 12.0 * i / (num_steps - 1)
        beta = 1.0 / (1.0 + math.exp(-x)) * (5e-3 - 1e-5) + 1e-5
        prod *= 1.0 - beta
    return prod


def test_schedule_matches_formula_and_is_decreasing():
    abar = diffusion_schedule(1000)
    assert abar.dtype == torch.float64 and abar.shape == (1000,)
    assert bool((abar[1:] < abar[:-1]).all())
    for step in (0, 10, 500, 999):
        assert float(abar[step]) == pytest.approx(expected_abar(step), rel=1e-12)


def test_coefficients_at_500_match_the_documented_values():
    signal, noise = noise_coefficients(500)
    abar = expected_abar(500)
    assert signal == pytest.approx(math.sqrt(abar), rel=1e-12)
    assert noise == pytest.approx(math.sqrt(1 - abar), rel=1e-12)
    assert signal == pytest.approx(0.863, abs=5e-4)
    assert noise == pytest.approx(0.505, abs=5e-4)
    assert signal**2 + noise**2 == pytest.approx(1.0)


def test_noised_tensor_is_signal_plus_noise():
    x = torch.randn(2, 3, 8, 8)
    seeds = [1, 2]
    eps = torch.stack([torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(s)) for s in seeds])
    signal, noise = noise_coefficients(500)
    out = add_diffusion_noise(x, 500, seeds=seeds)
    torch.testing.assert_close(out, signal * x + noise * eps)


def test_step_zero_is_nearly_identity():
    x = torch.randn(4, 3, 16, 16)
    out = add_diffusion_noise(x, 0, seeds=[0, 1, 2, 3])
    assert (out - x).abs().max() < 0.03  # sqrt(1 - abar_0) ~ 4.7e-3, times |eps| < ~5
    assert not torch.equal(out, x)


def test_reproducible_with_seeds_and_generator():
    x = torch.randn(3, 3, 8, 8)
    assert torch.equal(add_diffusion_noise(x, seeds=[5, 6, 7]), add_diffusion_noise(x, seeds=[5, 6, 7]))
    a = add_diffusion_noise(x, generator=torch.Generator().manual_seed(3))
    b = add_diffusion_noise(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, add_diffusion_noise(x, generator=torch.Generator().manual_seed(4)))


def test_per_sample_noise_independent_of_batch_composition_and_order():
    x = torch.randn(3, 3, 8, 8)
    batch = add_diffusion_noise(x, seeds=[10, 11, 12])
    alone = add_diffusion_noise(x[1:2], seeds=[11])
    reordered = add_diffusion_noise(x[[2, 0, 1]], seeds=[12, 10, 11])
    assert torch.equal(batch[1:2], alone)
    assert torch.equal(reordered, batch[[2, 0, 1]])
    # different seeds give different noise even for identical images
    same = add_diffusion_noise(x[[0, 0]], seeds=[1, 2])
    assert not torch.equal(same[0], same[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_shape_dtype_device_preserved(dtype):
    x = torch.randn(2, 5, 3, 4, 4).to(dtype)  # any (batch, ...) shape
    out = add_diffusion_noise(x, 500, seeds=[0, 1])
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert torch.isfinite(out.float()).all()


def test_bad_arguments_are_rejected():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="seeds"):
        add_diffusion_noise(x, seeds=[1])
    with pytest.raises(ValueError, match="noise_step"):
        add_diffusion_noise(x, noise_step=1000, seeds=[1, 2])


def test_sample_seed_is_stable_and_distinct():
    assert sample_seed("seed_000001", 0) == sample_seed("seed_000001", 0)
    assert sample_seed("seed_000001", 0) != sample_seed("seed_000002", 0)
    assert sample_seed("seed_000001", 0) != sample_seed("seed_000001", 1)
    assert 0 <= sample_seed("x") < 2**63
