"""Decoding speed of base, SEED merged, SEED unmerged (PEFT adapter on) and VCD, on equal-length captions.

Every method runs through the one KV-cache loop of `seed.model.vcd.decode` (the loop `seed eval` uses) on
the same left-padded batch of caption prompts (the CHAIR images of the world, ``evaluate.caption_prompt``).
End-of-sequence is ignored (``eos_token_ids=[]``), so every row generates exactly ``new_tokens``
tokens and every method generates the same number of tokens: tokens/s compares per-token cost, not
answer lengths. VCD's timed region includes noising the images, as in `seed.model.generate.answer_batch`.
The methods take turns within each repeat (order rotated every repeat); after one warm-up round the
median over the repeats is reported, and the median of the per-round ratios to base beside it.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import Runtime, adapter, base_model, ratio, summary, timed, world

METHODS = ("base", "seed_merged", "seed_unmerged", "vcd")


def sizes(rt: Runtime) -> dict[str, int]:
    """Batch, new tokens per row, and timed repeats per method."""
    if rt.quick:
        return {"batch": 16, "new_tokens": 32, "repeats": 5}
    return {"batch": 16, "new_tokens": 32, "repeats": 9}


def caption_batch(rt: Runtime, processor: Any, batch: int, prompt: str) -> tuple[dict[str, Any], list[str]]:
    """The processor's left-padded batch of ``batch`` caption prompts on CHAIR images, and the pair ids."""
    import json

    from seed.model.generate import open_image, prompt_text

    data = world(rt)
    listing = json.loads((data / "chair" / "images.json").read_text())[:batch]
    if len(listing) < batch:
        raise ValueError(f"{data}/chair/images.json lists {len(listing)} images, the benchmark needs {batch}")
    images = [open_image(data / "images" / "eval" / item["file_name"]) for item in listing]
    text = prompt_text(processor, prompt)
    inputs = processor(
        images=images, text=[text] * batch, padding=True, padding_side="left", return_tensors="pt"
    )
    inputs = {k: v.to(rt.device) if hasattr(v, "to") else v for k, v in inputs.items()}
    inputs["pixel_values"] = inputs["pixel_values"].to(rt.torch_dtype)
    return inputs, [f"{item['file_name']}|{prompt}" for item in listing]


def load_methods(rt: Runtime) -> tuple[dict[str, Any], Any]:
    """The three models (base, merged SEED, unmerged PEFT SEED) and the processor."""
    from peft import PeftModel

    from seed.model.generate import load_model

    model_dir, adapter_dir = base_model(rt), adapter(rt)
    base, processor = load_model(model_dir, dtype=rt.dtype, device=rt.device)
    merged, _ = load_model(model_dir, adapter=adapter_dir, dtype=rt.dtype, device=rt.device)
    plain, _ = load_model(model_dir, dtype=rt.dtype, device=rt.device)
    unmerged = PeftModel.from_pretrained(plain, str(adapter_dir)).to(rt.device).eval()
    return {"base": base, "seed_merged": merged, "seed_unmerged": unmerged, "vcd": base}, processor


def run_decode(rt: Runtime) -> dict[str, Any]:
    """Tokens/s and forwards/token per method (median over repeats) and the ratios to base and VCD."""
    from seed.model.generate import image_token_ids
    from seed.model.teacher import noise_pixels
    from seed.model.vcd import DecodeStats, decode
    from seed.stages import load_stage_config

    size = sizes(rt)
    evaluate = load_stage_config("evaluate", rt.params)
    models, processor = load_methods(rt)
    inputs, ids = caption_batch(rt, processor, size["batch"], evaluate.caption_prompt)
    image_ids = image_token_ids(processor)
    tok = processor.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def run(method: str) -> tuple[float, float, Any]:
        stats = DecodeStats()
        model = models[method]

        def go() -> Any:
            noised = None
            if method == "vcd":
                noised = noise_pixels(inputs, ids, evaluate.noise_step, rt.seed, image_ids)
            return decode(
                model,
                inputs,
                size["new_tokens"],
                [],  # no end-of-sequence: every row generates new_tokens tokens
                pad,
                noised_pixel_values=noised,
                cd_alpha=evaluate.cd_alpha if method == "vcd" else 0.0,
                cd_beta=evaluate.cd_beta if method == "vcd" else 0.0,
                stats=stats,
            )

        seconds, tokens = timed(rt, go)
        if tuple(tokens.shape) != (size["batch"], size["new_tokens"]):
            raise RuntimeError(f"{method}: {tuple(tokens.shape)} tokens, expected the fixed length")
        return tokens.numel() / seconds, stats.forwards_per_token, tokens.cpu()

    speeds: dict[str, list[float]] = {m: [] for m in METHODS}
    forwards: dict[str, float] = {}
    outputs: dict[str, Any] = {}
    for repeat in range(size["repeats"] + 1):  # round 0 warms up
        shift = repeat % len(METHODS)
        for method in METHODS[shift:] + METHODS[:shift]:
            speed, fwd, tokens = run(method)
            if repeat:
                speeds[method].append(speed)
            forwards[method] = fwd
            outputs[method] = tokens
    per_method = {
        m: {"tokens_per_second": summary(speeds[m]), "forwards_per_token": forwards[m]} for m in METHODS
    }
    median = {m: per_method[m]["tokens_per_second"]["median"] for m in METHODS}
    agree = float((outputs["seed_merged"] == outputs["seed_unmerged"]).float().mean())
    # Ratios within each round (methods ran back to back), less exposed to slow drifts in machine load.
    paired = {
        m: statistics.median(a / b for a, b in zip(speeds[m], speeds["base"], strict=True)) for m in METHODS
    }
    return {
        "workload": {
            **size,
            "prompt": evaluate.caption_prompt,
            "prompt_tokens": int(inputs["input_ids"].shape[1]),
            "tokens_per_call": size["batch"] * size["new_tokens"],
            "eos": "ignored (fixed length)",
            "vcd": {
                "cd_alpha": evaluate.cd_alpha,
                "cd_beta": evaluate.cd_beta,
                "noise_step": evaluate.noise_step,
            },
        },
        "methods": per_method,
        "seed_merged_vs_base": ratio(median["seed_merged"], median["base"]),
        "seed_merged_vs_vcd": ratio(median["seed_merged"], median["vcd"]),
        "seed_unmerged_vs_base": ratio(median["seed_unmerged"], median["base"]),
        "vcd_vs_base": ratio(median["vcd"], median["base"]),
        "paired_median_vs_base": paired,
        "merged_unmerged_token_agreement": agree,
    }
