"""The teacher pass over a batch: one forward of the clean and noised copies, purified targets out.

```
 [prompt | response] with the clean image  --+
                                             +--> one forward of 2B --> l_t, n_t on response tokens
 [prompt | response] with the noised image --+        (logits at t predict the token at t + 1)
                  (K noised copies with ``noise_draws`` K: one forward of (1 + K)B, n_t their mean)
 purify_logits(l_t, n_t) --> sparsify_targets(top_k) --> one SampleTargets per sample
```

The teacher is the checkpoint itself, without adapter, in eval mode under ``no_grad``
(`plain_logits`). That is the same function as `seed.model.adapter.teacher_logits` on the freshly
adapted model of stage `distill` (``bias="none"``, adapter disabled), so the targets of stage
`purify` equal the ones the distill stage would compute online.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from seed.files.shards import SampleTargets

if TYPE_CHECKING:
    import torch


class ContrastSettings(Protocol):
    """What the teacher pass reads of its settings (stage `purify`'s `PurifyConfig` has them all)."""

    noise_step: int
    noise_draws: int
    seed: int
    cd_alpha: float
    cd_beta: float
    confidence: str
    adaptive: bool
    top_k: int


def response_positions(labels: torch.Tensor) -> torch.Tensor:
    """Positions whose logits predict a response token: ``mask[:, t] = labels[:, t + 1] != -100``.

    Args:
        labels: (batch, seq) labels from `seed.model.batching.build_batch` (-100 on prompt, image, padding).

    Returns:
        (batch, seq) bool; the last column is always False. ``logits[mask]`` (tokens, vocab) lines up
        with ``labels[:, 1:][mask[:, :-1]]``, the response token ids, sample after sample.
    """
    import torch

    from seed.model.batching import IGNORE_INDEX

    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return mask


def response_token_ids(labels: torch.Tensor) -> list[torch.Tensor]:
    """Per sample, the (n_i,) response token ids that the response positions predict."""
    mask = response_positions(labels)
    return [labels[i, 1:][mask[i, :-1]] for i in range(labels.shape[0])]


def _pixel_rows(batch: dict[str, Any], image_ids: set[int]) -> list[int]:
    """How many rows of ``pixel_values`` belong to each sample (one image per sample).

    LLaVA: one row per image; Qwen2-VL: ``prod(image_grid_thw)`` flattened patches per image;
    InternVL (tiles): rows in proportion to the sample's image tokens.
    """
    pixels = batch["pixel_values"]
    n = batch["input_ids"].shape[0]
    if "image_grid_thw" in batch:
        return [int(r) for r in batch["image_grid_thw"].prod(dim=-1).tolist()]
    if pixels.shape[0] == n:
        return [1] * n
    ids = batch["input_ids"]
    counts = sum((ids == i).sum(dim=1) for i in image_ids).tolist()
    total = sum(counts)
    rows = [c * pixels.shape[0] // total for c in counts] if total else []
    if not total or sum(rows) != pixels.shape[0] or any(c * pixels.shape[0] % total for c in counts):
        raise ValueError(
            f"cannot split pixel_values {tuple(pixels.shape)} over {n} samples with image tokens {counts}"
        )
    return rows


def noise_pixels(
    batch: dict[str, Any], sample_ids: Sequence[str], noise_step: int, seed: int, image_ids: set[int]
) -> torch.Tensor:
    """The batch's ``pixel_values`` noised sample by sample (`seed.core.noise.add_diffusion_noise`).

    Sample ``i``'s rows get noise drawn from ``sample_seed(sample_ids[i], seed)``, so its noised
    image is the same in any batch. Any processor layout works: (images, C, H, W), Qwen2-VL's
    flattened patches (its temporal copies get independent noise), InternVL tiles.
    """
    import torch

    from seed.core.noise import add_diffusion_noise, sample_seed

    pixels = batch["pixel_values"]
    parts = torch.split(pixels, _pixel_rows(batch, image_ids))
    if len(parts) != len(sample_ids):
        raise ValueError(f"{len(parts)} images for {len(sample_ids)} sample ids")
    noised = [
        add_diffusion_noise(part.unsqueeze(0), noise_step, seeds=[sample_seed(sid, seed)]).squeeze(0)
        for part, sid in zip(parts, sample_ids, strict=True)
    ]
    return torch.cat(noised)


def contrast_batch(
    batch: dict[str, Any], noised_pixels: torch.Tensor | Sequence[torch.Tensor]
) -> dict[str, Any]:
    """One batch of (1 + K)B: the B samples with clean pixels, then the same B once per noised copy.

    ``noised_pixels`` is one tensor laid out as the batch's ``pixel_values`` (K = 1, a batch of 2B)
    or a sequence of K of them (one per noise draw). Every tensor input is repeated along its first
    dimension (per-sample and per-image inputs alike: one image per sample); ``pixel_values`` becomes
    ``[clean; noised_1; ...; noised_K]``; ``labels`` are dropped.
    """
    import torch

    draws = [noised_pixels] if isinstance(noised_pixels, torch.Tensor) else list(noised_pixels)
    repeated: dict[str, Any] = {}
    for key, value in batch.items():
        if key == "labels":
            continue
        if key == "pixel_values":
            repeated[key] = torch.cat([value, *(d.to(value.dtype) for d in draws)])
        elif isinstance(value, torch.Tensor):
            repeated[key] = torch.cat([value] * (1 + len(draws)))
        else:
            repeated[key] = value
    return repeated


def plain_logits(model: Any, **inputs: Any) -> torch.Tensor:
    """Logits of a model without adapter, under ``no_grad`` (the model is already in eval mode)."""
    import torch

    inputs = {key: value for key, value in inputs.items() if key != "labels"}
    inputs.setdefault("use_cache", False)
    with torch.no_grad():
        return model(**inputs).logits


def teacher_targets(
    forward: Callable[..., torch.Tensor],
    batch: dict[str, Any],
    sample_ids: Sequence[str],
    config: ContrastSettings,
    image_ids: set[int],
    dtype: torch.dtype | None = None,
    contrast_pixels: torch.Tensor | None = None,
    answer_shifts: tuple[Sequence[float], int, int] | None = None,
) -> list[SampleTargets]:
    """Purified sparse targets of one training batch (`seed.model.batching.build_batch` output, with labels).

    Args:
        forward: ``forward(**inputs) -> logits`` of the teacher: `plain_logits` bound to the model,
            or `seed.model.adapter.teacher_logits` bound to a PEFT model (adapter disabled).
        batch: (batch, seq) inputs and labels on the model's device.
        sample_ids: one id per sample, seeding its image noise.
        config: contrast settings (noise_step, noise_draws, cd_alpha, cd_beta, adaptive, confidence,
            top_k, seed). With ``noise_draws`` K > 1 the noised view is K noisings of each image
            (draw ``j`` seeded by ``seed + j``, so draw 0 is the one-draw noise), forwarded with the
            clean copy as one batch of (1 + K)B, and its logits are the mean over the draws.
        image_ids: the processor's image placeholder ids (to split tiled pixel inputs).
        dtype: the model's dtype, for the pixel inputs (None keeps the processor's).
        contrast_pixels: pixel inputs of the images to contrast with, laid out as the batch's
            ``pixel_values``; None (default) contrasts with the batch's images noised at
            ``config.noise_step``.
        answer_shifts: ``(shifts, yes_id, no_id)``, one shift per sample: the noised view's (or the
            contrast image's, with ``contrast_pixels``)
            yes-minus-no margin at the sample's first response token is lowered by it before the
            contrast (`seed.core.purify.shift_answer_margin`); None (default) shifts nothing.

    Returns:
        One `SampleTargets` per sample, on the CPU, in the order of the batch.
    """
    from seed.core.identify import token_confidence
    from seed.core.purify import SparseTargets, purify_logits, sparsify_targets

    labels = batch["labels"]
    positions = response_positions(labels)
    if contrast_pixels is None:
        noised = [
            noise_pixels(batch, sample_ids, config.noise_step, config.seed + draw, image_ids)
            for draw in range(config.noise_draws)
        ]
    else:
        noised = [contrast_pixels]
    inputs = contrast_batch(batch, noised)
    if dtype is not None:
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    copies = 1 + len(noised)
    # Only the response positions are projected onto the vocabulary: (copies * tokens, vocab).
    logits = forward(**inputs, logits_to_keep=positions.repeat(copies, 1))
    if logits.dim() == 3:  # a model that ignores logits_to_keep returns every position
        logits = logits[positions.repeat(copies, 1)]
    tokens = int(positions.sum())
    clean = logits[:tokens]
    noised_logits = logits[tokens:].reshape(len(noised), tokens, -1).mean(dim=0)
    if answer_shifts is not None:
        import torch

        from seed.core.purify import shift_answer_margin

        shifts, yes_id, no_id = answer_shifts
        per_token = torch.zeros(tokens, device=noised_logits.device)
        firsts = torch.cumsum(positions.sum(dim=1), 0) - positions.sum(dim=1)  # each sample's first row
        per_token[firsts] = torch.tensor([float(x) for x in shifts], device=noised_logits.device)
        noised_logits = shift_answer_margin(noised_logits, per_token, yes_id, no_id)
    target_log_probs, support = purify_logits(
        clean, noised_logits, config.cd_alpha, config.cd_beta, config.confidence, config.adaptive
    )
    sparse = sparsify_targets(target_log_probs, support, config.top_k)
    confidence = token_confidence(clean, config.confidence).float()
    counts = positions.sum(dim=1).tolist()
    ids = response_token_ids(labels)
    out: list[SampleTargets] = []
    start = 0
    for i, count in enumerate(counts):
        span = slice(start, start + count)
        part = sparse[span]
        out.append(
            SampleTargets(
                SparseTargets(part.indices.cpu(), part.log_probs.cpu(), part.tail_mass.cpu()),
                confidence[span].cpu(),
                ids[i].cpu(),
            )
        )
        start += count
    return out


def to_device(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    """Every tensor of ``batch`` on ``device``."""
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
