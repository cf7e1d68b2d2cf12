"""The ``generate``, ``purify`` and ``decode`` sections of ``--shape`` (`bench.scale7b`): rates."""

from __future__ import annotations

import copy
from typing import Any

from bench.common import Runtime, ratio, summary, timed
from bench.scale7b_memory import free

PROMPT = "Describe the image in detail."
IMAGE_FILES = 8  # distinct images; samples cycle through them


def prompt_batch(rt: Runtime, processor: Any, images: list[Any]) -> dict[str, Any]:
    """The processor's left-padded batch of generation prompts on ``images``, on the device."""
    from seed.model.generate import prompt_text

    text = prompt_text(processor, PROMPT)
    inputs = processor(
        images=images, text=[text] * len(images), padding=True, padding_side="left", return_tensors="pt"
    )
    inputs = {k: v.to(rt.device) if hasattr(v, "to") else v for k, v in inputs.items()}
    inputs["pixel_values"] = inputs["pixel_values"].to(rt.torch_dtype)
    return inputs


def pad_id(processor: Any) -> int:
    tok = processor.tokenizer
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def measure_generate(rt: Runtime, w: dict[str, Any]) -> dict[str, Any]:
    """Tokens/s and samples/s of greedy answering with a KV cache (`seed.model.vcd.decode`), fixed length."""
    from seed.model.vcd import decode

    size, processor, model = w["size"], w["processor"], w["model"]
    batch, tokens = size["generate_batch"], size["response_tokens"]
    inputs = prompt_batch(rt, processor, [w["images"][i % IMAGE_FILES] for i in range(batch)])
    times = []
    for repeat in range(size["repeats"] + 1):  # round 0 warms up
        seconds, out = timed(rt, lambda: decode(model, inputs, tokens, [], pad_id(processor)))
        if tuple(out.shape) != (batch, tokens):
            raise RuntimeError(f"generated {tuple(out.shape)}, expected ({batch}, {tokens})")
        if repeat:
            times.append(seconds)
    med = summary(times)["median"]
    return {
        "batch": batch,
        "new_tokens": tokens,
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "seconds": summary(times),
        "tokens_per_second": batch * tokens / med,
        "samples_per_second": batch / med,
    }


def measure_purify(rt: Runtime, w: dict[str, Any]) -> dict[str, Any]:
    """Samples/s and FLOP/s of the teacher pass (`teacher_targets` + `plain_logits`), and its targets."""
    import dataclasses

    from bench.metrics import llava_forward_flops
    from seed.model.student import student_batch
    from seed.model.teacher import plain_logits, response_positions, teacher_targets, to_device

    size, processor, model, config = w["size"], w["processor"], w["model"], w["purify_config"]
    b = size["teacher_batch"]

    def teach(chunk: list[Any]) -> tuple[dict[str, Any], list[Any]]:
        batch = to_device(student_batch(processor, w["data"], chunk), rt.device)
        forward = lambda **i: plain_logits(model, **i)  # noqa: E731
        return batch, teacher_targets(
            forward, batch, [s.sample_id for s in chunk], config, w["image_ids"], model.dtype
        )

    batch, _ = teach(w["samples"][:b])
    ids = [s.sample_id for s in w["samples"][:b]]
    forward = lambda **i: plain_logits(model, **i)  # noqa: E731
    times = []
    for repeat in range(size["repeats"] + 1):
        seconds, _ = timed(
            rt, lambda: teacher_targets(forward, batch, ids, config, w["image_ids"], model.dtype)
        )
        if repeat:
            times.append(seconds)
    # Offline targets of every sample, for the distillation steps.
    targeted = []
    for start in range(0, len(w["samples"]), b):
        chunk = w["samples"][start : start + b]
        computed = teach(chunk)[1]
        targeted += [dataclasses.replace(s, targets=t.targets) for s, t in zip(chunk, computed, strict=True)]
    w["targeted"] = targeted
    med = summary(times)["median"]
    positions = int(response_positions(batch["labels"]).sum())
    flops = llava_forward_flops(model.config, 2 * b, batch["input_ids"].shape[1], 2 * positions)
    peak = (w["results"].get("peak") or {}).get("flops_per_second")
    return {
        "batch": b,
        "forward_batch": 2 * b,
        "seq": int(batch["input_ids"].shape[1]),
        "target_tokens": positions,
        "seconds": summary(times),
        "samples_per_second": b / med,
        "flops_per_batch": flops,
        "achieved_flops_per_second": flops / med,
        "fraction_of_peak": ratio(flops / med, peak),
        "flop_count": "analytic (bench.metrics.llava_forward_flops): matrix products of tower, projector, "
        "decoder and the head on the response positions, padding counted",
    }


def measure_decode(rt: Runtime, w: dict[str, Any]) -> dict[str, Any]:
    """Tokens/s of base, VCD, unmerged and merged SEED, taking turns in every round (order rotated).

    Unmerged SEED is a copy of the base weights with a LoRA adapter (`seed.model.adapter.attach_adapter`,
    B filled with small random values as a trained one has); merged SEED is a copy of that, merged
    (`seed.model.adapter.merge_adapter`). Both copies are dropped afterwards.
    """
    import torch

    from seed.model.adapter import attach_adapter, merge_adapter
    from seed.model.teacher import noise_pixels
    from seed.model.vcd import DecodeStats, decode

    size, processor, evaluate = w["size"], w["processor"], w["evaluate_config"]
    batch, tokens = size["decode_batch"], size["decode_tokens"]
    inputs = prompt_batch(rt, processor, [w["images"][i % IMAGE_FILES] for i in range(batch)])
    ids = [f"d{i}" for i in range(batch)]
    torch.manual_seed(rt.seed)
    unmerged = attach_adapter(copy.deepcopy(w["model"]), w["distill_config"].adapter).eval()
    with torch.no_grad():  # a trained adapter's B is not zero: merging must change the weights
        for name, parameter in unmerged.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.01)
    merged = merge_adapter(copy.deepcopy(unmerged)).eval()
    models = {"base": w["model"], "seed_merged": merged, "seed_unmerged": unmerged, "vcd": w["model"]}
    methods = list(models)
    speeds: dict[str, list[float]] = {m: [] for m in methods}
    forwards: dict[str, float] = {}

    def run(method: str) -> float:
        stats = DecodeStats()
        vcd = method == "vcd"

        def go() -> Any:
            noised = noise_pixels(inputs, ids, evaluate.noise_step, rt.seed, w["image_ids"]) if vcd else None
            return decode(
                models[method],
                inputs,
                tokens,
                [],
                pad_id(processor),
                noised_pixel_values=noised,
                cd_alpha=evaluate.cd_alpha if vcd else 0.0,
                cd_beta=evaluate.cd_beta if vcd else 0.0,
                stats=stats,
            )

        seconds, out = timed(rt, go)
        forwards[method] = stats.forwards_per_token
        return out.numel() / seconds

    for repeat in range(size["decode_repeats"] + 1):  # round 0 warms up
        shift = repeat % len(methods)
        for method in methods[shift:] + methods[:shift]:
            speed = run(method)
            if repeat:
                speeds[method].append(speed)
    models.clear()
    merged = unmerged = None
    free(rt)
    median = {m: summary(v)["median"] for m, v in speeds.items()}
    paired = {
        m: summary([a / b for a, b in zip(speeds[m], speeds["base"], strict=True)])["median"] for m in methods
    }
    return {
        "batch": batch,
        "new_tokens": tokens,
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "vcd": {
            "cd_alpha": evaluate.cd_alpha,
            "cd_beta": evaluate.cd_beta,
            "noise_step": evaluate.noise_step,
        },
        "methods": {
            m: {"tokens_per_second": summary(v), "forwards_per_token": forwards[m]} for m, v in speeds.items()
        },
        "paired_median_vs_base": paired,
        "seed_merged_vs_base": ratio(median["seed_merged"], median["base"]),
        "seed_merged_vs_vcd": ratio(median["seed_merged"], median["vcd"]),
        "seed_unmerged_vs_base": ratio(median["seed_unmerged"], median["base"]),
        "vcd_vs_base": ratio(median["vcd"], median["base"]),
    }
