"""Isolate: noise an image so that the model falls back on its language prior.

SEED contrasts the frozen teacher on the clean image with the same teacher on a noised image
(method.md, step 2). The noise is the forward process of a diffusion model, applied as VCD does
to the processor's *normalised* pixel tensor:

    beta_i  = sigmoid(linspace(-6, 6, num_steps))_i * (5e-3 - 1e-5) + 1e-5
    abar_i  = prod_{j <= i} (1 - beta_j)
    x_T     = sqrt(abar_T) * x_0 + sqrt(1 - abar_T) * eps,      eps ~ N(0, I)

with ``T`` an index into the schedule (0-based, as VCD indexes it). At the default ``T = 500`` of a
1000-step schedule the signal keeps ``sqrt(abar_T) ~ 0.863`` and the noise gets
``sqrt(1 - abar_T) ~ 0.505``; at ``T = 0`` the image is left almost untouched.

Noise is drawn per sample from its own seed, so a sample's noised image (hence its purified
targets) does not depend on which batch it lands in or where.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEFAULT_NUM_STEPS = 1000
DEFAULT_NOISE_STEP = 500


def diffusion_schedule(num_steps: int = DEFAULT_NUM_STEPS) -> torch.Tensor:
    """Cumulative signal fraction ``abar`` of the sigmoid diffusion schedule, shape (num_steps,), float64.

    ``beta = sigmoid(linspace(-6, 6, num_steps)) * (5e-3 - 1e-5) + 1e-5``, ``abar = cumprod(1 - beta)``.
    Computed in float64; cast where it is used.
    """
    import torch

    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    betas = torch.sigmoid(torch.linspace(-6.0, 6.0, num_steps, dtype=torch.float64)) * (5e-3 - 1e-5) + 1e-5
    return torch.cumprod(1.0 - betas, dim=0)


def noise_coefficients(
    noise_step: int = DEFAULT_NOISE_STEP, num_steps: int = DEFAULT_NUM_STEPS
) -> tuple[float, float]:
    """Signal and noise weights ``(sqrt(abar_T), sqrt(1 - abar_T))`` at step ``T = noise_step``."""
    if not 0 <= noise_step < num_steps:
        raise ValueError(f"noise_step must lie in [0, {num_steps - 1}], got {noise_step}")
    abar = float(diffusion_schedule(num_steps)[noise_step])
    return abar**0.5, (1.0 - abar) ** 0.5


def sample_seed(sample_id: str, base_seed: int = 0) -> int:
    """A stable 63-bit seed for one sample: sha256 of ``"{base_seed}:{sample_id}"``.

    Python's ``hash`` changes between processes; this does not, so targets rebuilt later match.
    """
    digest = hashlib.sha256(f"{base_seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def add_diffusion_noise(
    pixel_values: torch.Tensor,
    noise_step: int = DEFAULT_NOISE_STEP,
    generator: torch.Generator | None = None,
    seeds: list[int] | None = None,
    num_steps: int = DEFAULT_NUM_STEPS,
) -> torch.Tensor:
    """Noise normalised pixels: ``x_T = sqrt(abar_T) * x_0 + sqrt(1 - abar_T) * eps``.

    Args:
        pixel_values: (batch, ...) the processor's normalised pixel tensor, any float dtype and device.
        noise_step: ``T``, a 0-based index into the ``num_steps`` schedule (default 500).
        generator: draws ``eps`` for the whole batch at once (batch-dependent); ignored when
            ``seeds`` is given.
        seeds: one seed per sample. Sample ``i``'s noise is drawn on the CPU from its own generator
            seeded with ``seeds[i]``, so it is the same alone, in any batch and at any position,
            and on any device.

    Returns:
        (batch, ...) the noised tensor, same shape, dtype and device as ``pixel_values``. The sum
        is formed in float32 (float64 for float64 input) and cast back once.
    """
    import torch

    signal, noise = noise_coefficients(noise_step, num_steps)
    compute_dtype = torch.float64 if pixel_values.dtype == torch.float64 else torch.float32
    x0 = pixel_values.to(compute_dtype)
    if seeds is not None:
        if pixel_values.dim() == 0 or len(seeds) != pixel_values.shape[0]:
            raise ValueError(
                f"seeds has {len(seeds)} entries but pixel_values has batch size "
                f"{pixel_values.shape[0] if pixel_values.dim() else 'none'}"
            )
        sample_shape = tuple(pixel_values.shape[1:])
        parts = []
        for seed in seeds:
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            parts.append(torch.randn(sample_shape, generator=gen, dtype=compute_dtype))
        eps = torch.stack(parts).to(pixel_values.device) if parts else torch.empty_like(x0)
    elif generator is not None:
        eps = torch.randn(x0.shape, generator=generator, dtype=compute_dtype, device=generator.device)
        eps = eps.to(pixel_values.device)
    else:
        eps = torch.randn_like(x0)
    return (signal * x0 + noise * eps).to(pixel_values.dtype)
