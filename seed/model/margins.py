"""The first answer token's yes-minus-no margin of a VLM, on the clean image and on the noised one.

`first_token_margins` reads it as `seed.model.vcd.decode`'s first step does; `image_answer_bias`
averages the noised margin (or a given contrast image's) over an image's existence questions ("Is
there a ...?"), the answer bias
that ``purify.centre: image`` removes before the contrast (or finds the shift that keeps the split's
"yes" rate, ``purify.centre: rate``). `seed.eval.probe` and
`bench.contrast_probe` read these margins to probe a base model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

QUESTION_RE = re.compile(r"^Is there an? (.+?) in the image\?")


def first_token_margins(
    model: Any,
    processor: Any,
    images: Sequence[Any],
    prompts: Sequence[str],
    sample_ids: Sequence[str],
    noise_step: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    with_clean: bool = True,
    draws: int = 1,
) -> tuple[list[float] | None, list[float] | None]:
    """The first answer token's yes-minus-no logit per pair, on the clean image and on the noised one.

    Batches are built as `seed.model.generate.answer_batch` builds them (chat template, left padding) and
    read by `seed.model.vcd.decode`'s first step, so the clean margins equal ``answer_all(margins=...)``'s.
    The noised image is the one VCD contrasts: `seed.model.teacher.noise_pixels` with ``sample_ids`` and
    ``seed``; with ``draws`` K > 1 the noised margin is the mean over K noisings seeded ``seed``, ...,
    ``seed + K - 1`` (the noised view of ``purify.noise_draws``). Returns ``(clean, noised)``, each one
    float per pair; ``noised`` is None without ``noise_step``, ``clean`` is None with
    ``with_clean=False`` (the clean pass is then skipped).
    """
    from seed.model.generate import eos_token_ids, image_token_ids, prompt_text, yes_no_token_ids
    from seed.model.teacher import noise_pixels
    from seed.model.vcd import decode

    yes, no = yes_no_token_ids(processor)
    tok = processor.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    eos = eos_token_ids(model, processor)
    clean: list[float] | None = [] if with_clean else None
    noised: list[float] | None = [] if noise_step is not None else None
    for start in range(0, len(prompts), batch_size):
        stop = start + batch_size
        inputs = processor(
            images=list(images[start:stop]),
            text=[prompt_text(processor, p) for p in prompts[start:stop]],
            padding=True,
            padding_side="left",
            return_tensors="pt",
        )
        inputs = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        scores: list[torch.Tensor] = []
        if clean is not None:
            decode(model, inputs, 1, eos, pad, first_scores=scores)
            clean.extend((scores[0][:, yes] - scores[0][:, no]).tolist())
        if noised is not None:
            total = None
            for draw in range(draws):
                pixels = noise_pixels(
                    inputs, sample_ids[start:stop], noise_step, seed + draw, image_token_ids(processor)
                )
                scores = []
                decode(model, {**inputs, "pixel_values": pixels}, 1, eos, pad, first_scores=scores)
                margin = scores[0][:, yes] - scores[0][:, no]
                total = margin if total is None else total + margin
            noised.extend((total / draws).tolist())
    return clean, noised


def image_answer_bias(
    model: Any,
    processor: Any,
    images: dict[str, Any],
    rows: Sequence[tuple[str, str, str]],
    noise_step: int,
    seed: int = 0,
    batch_size: int = 64,
    over: str = "image",
    draws: int = 1,
    contrast: tuple[float, float, str, bool] = (3.0, 0.1, "max_prob", True),
    contrast_images: dict[str, Any] | None = None,
) -> dict[str, float]:
    """The noised view's answer bias per image: for the existence questions ("Is there a ...?") among
    ``rows`` (sample id, image name, prompt), the mean first-token yes-minus-no margin on the noised
    image over the questions about the same image (``over="image"``) or over every question of
    ``rows`` (``over="split"``: one bias for all), keyed by each question's sample id. ``over="rate"``
    gives every question the one shift after which the contrast keeps the split's "yes" rate:
    `seed.core.purify.answer_rate_shift` on both views' margins, with ``contrast`` = (cd_alpha, cd_beta,
    confidence method, adaptive). The noise is seeded by sample id, as the teacher pass's, and
    averaged over ``draws`` noisings as its noised view is. With ``contrast_images`` (image name ->
    the image to contrast with, ``purify.contrast_dir``) the contrast image's margin stands for the
    noised one: read unnoised, as the teacher pass reads it. No label is read."""
    if over not in ("image", "split", "rate"):
        raise ValueError(f"over = {over!r} must be 'image', 'split' or 'rate'")
    asked = [row for row in rows if QUESTION_RE.match(row[2])]
    prompts, ids = [prompt for _, _, prompt in asked], [sample_id for sample_id, _, _ in asked]
    pictures = [images[name] for _, name, _ in asked]
    if contrast_images is None:
        clean, noised = first_token_margins(
            model,
            processor,
            pictures,
            prompts,
            ids,
            noise_step,
            seed,
            batch_size=batch_size,
            with_clean=over == "rate",  # the other biases are the noised view's alone
            draws=draws,
        )
    else:
        others = [contrast_images[name] for _, name, _ in asked]
        noised, _ = first_token_margins(model, processor, others, prompts, ids, batch_size=batch_size)
        clean = None
        if over == "rate":
            clean, _ = first_token_margins(model, processor, pictures, prompts, ids, batch_size=batch_size)
    if over == "rate":
        import torch

        from seed.core.purify import answer_rate_shift

        shift = answer_rate_shift(torch.tensor(clean), torch.tensor(noised), *contrast)
        return {sample_id: shift for sample_id, _, _ in asked}
    by_image: dict[str, list[float]] = {}
    group = (lambda name: name) if over == "image" else (lambda name: "")
    for (_, name, _), margin in zip(asked, noised, strict=True):
        by_image.setdefault(group(name), []).append(margin)
    means = {key: sum(values) / len(values) for key, values in by_image.items()}
    return {sample_id: means[group(name)] for sample_id, name, _ in asked}
