"""Teacher throughput of stage purify: the batched clean+noised pass against a naive per-sample loop.

Both compute the same purified sparse targets of the same samples (the unlabelled split with the
responses of ``artifacts/targets``) with the same model and `seed.core.purify` functions:

- batched (what `seed.model.teacher.teacher_targets` does): ``purify.batch_size`` samples at a time, clean
  and noised copies stacked into one forward of 2B sequences;
- naive: one sample at a time, one forward on the clean image, a second on the noised image.

Inputs are built before the timer starts (processor and image decoding are the same work for both);
the timed part is noising, the forwards, purification and top-k. Throughput is in teacher tokens:
the real (unpadded) sequence tokens of both passes. FLOPs are counted analytically
(`bench.metrics.llava_forward_flops`, padding included, as the hardware computes it) and compared with
this machine's dense matmul throughput measured at the decoder MLP's shape and at a large square
shape, in the run's dtype.
"""

from __future__ import annotations

from typing import Any

from bench.common import Runtime, base_model, ratio, summary, teacher_samples, timed, world
from bench.metrics import llava_forward_flops, matmul_flops


def sizes(rt: Runtime) -> dict[str, int]:
    square = 8192 if rt.cuda else 2048
    if rt.quick:
        return {"samples": 32, "repeats": 3, "square": square}
    return {"samples": 64, "repeats": 5, "square": square}


def matmul_peak(rt: Runtime, m: int, k: int, n: int, min_seconds: float = 0.3) -> float:
    """Measured FLOP/s of ``(m, k) @ (k, n)`` in the run's dtype on the run's device (best of 3 rounds)."""
    import torch

    generator = torch.Generator().manual_seed(rt.seed)
    a = torch.randn(m, k, generator=generator).to(rt.device, rt.torch_dtype)
    b = torch.randn(k, n, generator=generator).to(rt.device, rt.torch_dtype)
    out = torch.empty(m, n, device=rt.device, dtype=rt.torch_dtype)

    def products(calls: int) -> None:
        for _ in range(calls):
            torch.mm(a, b, out=out)

    products(3)  # warm-up
    best = 0.0
    for _ in range(3):
        seconds, _ = timed(rt, lambda: products(1))
        calls = max(1, int(min_seconds / max(seconds, 1e-6)))
        seconds, _ = timed(rt, lambda calls=calls: products(calls))
        best = max(best, calls * matmul_flops(m, k, n) / seconds)
    return best


def naive_targets(model: Any, batch: dict[str, Any], sample_id: str, config: Any, image_ids: set[int]) -> Any:
    """One sample's targets with two forwards (clean, then noised): the loop the batched pass replaces."""
    from seed.core.identify import token_confidence
    from seed.core.purify import purify_logits, sparsify_targets
    from seed.model.teacher import noise_pixels, plain_logits, response_positions

    positions = response_positions(batch["labels"])
    noised = noise_pixels(batch, [sample_id], config.noise_step, config.seed, image_ids)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    logits = []
    for pixels in (inputs["pixel_values"], noised.to(model.dtype)):
        out = plain_logits(model, **{**inputs, "pixel_values": pixels}, logits_to_keep=positions)
        logits.append(out[positions] if out.dim() == 3 else out)
    log_probs, support = purify_logits(
        logits[0], logits[1], config.cd_alpha, config.cd_beta, config.confidence, config.adaptive
    )
    return sparsify_targets(log_probs, support, config.top_k), token_confidence(logits[0], config.confidence)


def run_purify(rt: Runtime) -> dict[str, Any]:
    """Seconds, teacher tokens/s, achieved FLOP/s of both ways, and the fraction of measured matmul peak."""
    import torch

    from seed.files.samples import IMAGES
    from seed.model.batching import build_batch
    from seed.model.generate import image_token_ids, load_model, open_image
    from seed.model.teacher import plain_logits, response_positions, teacher_targets, to_device
    from seed.stages import load_stage_config

    size = sizes(rt)
    config = load_stage_config("purify", rt.params, device=rt.device, dtype=rt.dtype)
    model, processor = load_model(base_model(rt), dtype=rt.dtype, device=rt.device)
    samples = teacher_samples(rt, size["samples"])
    data = world(rt)
    images = {s.image: open_image(data / IMAGES / s.image) for s in samples}
    image_ids = image_token_ids(processor)

    def make(chunk: list) -> dict[str, Any]:
        batch = build_batch(
            processor,
            [images[s.image] for s in chunk],
            [s.prompt for s in chunk],
            [s.response for s in chunk],
        )
        return to_device(batch, rt.device)

    step = config.batch_size
    batches = [
        (make(samples[i : i + step]), [s.sample_id for s in samples[i : i + step]])
        for i in range(0, len(samples), step)
    ]
    singles = [(make([s]), s.sample_id) for s in samples]

    def batched() -> list:
        out = []
        for batch, ids in batches:
            out.extend(
                teacher_targets(
                    lambda **i: plain_logits(model, **i), batch, ids, config, image_ids, dtype=model.dtype
                )
            )
        return out

    def naive() -> list:
        return [naive_targets(model, batch, sid, config, image_ids) for batch, sid in singles]

    times: dict[str, list[float]] = {"batched": [], "naive": []}
    results: dict[str, Any] = {}
    for repeat in range(size["repeats"] + 1):  # round 0 warms up
        for name, fn in (("batched", batched), ("naive", naive))[:: 1 if repeat % 2 else -1]:
            seconds, results[name] = timed(rt, fn)
            if repeat:
                times[name].append(seconds)

    # Both ways must give the same targets (up to float rounding of another batch shape).
    diffs = [
        (a.targets.log_probs.float() - b[0].log_probs.cpu().float()).abs().nan_to_num(0.0).max().item()
        for a, b in zip(results["batched"], results["naive"], strict=True)
    ]
    same_ids = all(
        torch.equal(a.targets.indices, b[0].indices.cpu())
        for a, b in zip(results["batched"], results["naive"], strict=True)
    )

    real_tokens = 2 * sum(int(b["attention_mask"].sum()) for b, _ in batches)
    targets = sum(int(response_positions(b["labels"]).sum()) for b, _ in batches)
    flops_batched = sum(
        llava_forward_flops(
            model.config,
            2 * b["input_ids"].shape[0],
            b["input_ids"].shape[1],
            2 * int(response_positions(b["labels"]).sum()),
        )
        for b, _ in batches
    )
    flops_naive = sum(
        2
        * llava_forward_flops(
            model.config, 1, b["input_ids"].shape[1], int(response_positions(b["labels"]).sum())
        )
        for b, _ in singles
    )
    seconds = {name: summary(values) for name, values in times.items()}
    med = {name: seconds[name]["median"] for name in seconds}
    text = model.config.text_config
    shape_m = 2 * batches[0][0]["input_ids"].numel()
    peak_shape = matmul_peak(rt, shape_m, text.hidden_size, text.intermediate_size)
    peak_square = matmul_peak(rt, size["square"], size["square"], size["square"])
    achieved = {"batched": flops_batched / med["batched"], "naive": flops_naive / med["naive"]}
    return {
        "workload": {
            "samples": len(samples),
            "batch_size": config.batch_size,
            "forward_batch": 2 * config.batch_size,
            "repeats": size["repeats"],
            "teacher_tokens": real_tokens,
            "target_tokens": targets,
            "dtype": rt.dtype,
        },
        "seconds": seconds,
        "teacher_tokens_per_second": {k: real_tokens / v for k, v in med.items()},
        "target_tokens_per_second": {k: targets / v for k, v in med.items()},
        "batched_vs_naive": ratio(med["naive"], med["batched"]),
        "flops": {"batched": flops_batched, "naive": flops_naive},
        "achieved_flops_per_second": achieved,
        "matmul_peak_flops_per_second": {
            f"model_shape_{shape_m}x{text.hidden_size}x{text.intermediate_size}": peak_shape,
            f"square_{size['square']}": peak_square,
        },
        "fraction_of_peak": achieved["batched"] / peak_square,
        "fraction_of_model_shape_peak": achieved["batched"] / peak_shape,
        "naive_fraction_of_peak": achieved["naive"] / peak_square,
        "same_targets": {"indices_equal": same_ids, "max_abs_log_prob_diff": max(diffs) if diffs else 0.0},
        "flop_count": "analytic: 2 FLOPs per multiply-add of every matrix product (vision tower incl. "
        "CLS, projector, decoder projections, full seq x seq attention, vocabulary head on the kept "
        "positions); padding counted; norms and activations not",
    }
