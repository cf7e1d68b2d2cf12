"""SEED's cost at a published model size (``--shape``): one process, one model, the product's own code paths.

    python -m bench.run --device cuda --dtype bfloat16 --shape llava-1.5-7b   # the 7B shape on one GPU
    python -m bench.run --shape llava-1.5-7b                                   # CPU: its 2-layer slice

Sections, in order (each one recorded even when another fails; the JSON is rewritten after each):

- ``peak``: dense bf16 (run dtype) matmul FLOP/s of an 8192^3 product, the ceiling for ``purify``;
- ``generate``: stage purify's answering, `seed.vcd.decode` with a KV cache on a batch of
  ``purify.batch_size`` prompts, ``purify.max_new_tokens`` tokens each (end-of-sequence ignored);
- ``purify``: the teacher pass, `seed.teacher.teacher_targets` (clean + noised as one forward of 2B),
  samples/s and analytic FLOP/s against ``peak``;
- ``decode``: base, VCD, unmerged SEED (PEFT, `seed.adapter.attach_adapter`) and merged SEED
  (`seed.adapter.merge_adapter`) through `seed.vcd.decode`, taking turns in every round (the two SEED
  models are copies of the weights, dropped afterwards);
- ``distill``: `seed.distill.train_adapter` step time (offline targets, ``distill.batch_size``), then
  peak GPU memory of online distillation at several batch sizes with the adapter-off teacher
  (`train_adapter` itself), with a separate teacher copy and the same LoRA (`train_separate_lora`),
  and with a separate teacher and full fine-tuning (`bench.memory.train_separate`, last: it may run
  out of memory, which is then the result).

The projection of one round (`bench.shape.project_round`) comes from these rates. Samples are
synthetic: random-noise images at the shape's size and responses of ``max_new_tokens`` words (one
token each), so every sample has the same length.
"""

from __future__ import annotations

import copy
import gc
import sys
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import Runtime, environment, ratio, summary, timed
from bench.shape import build_model, build_processor, image_tokens, load_shape, project_round, sliced

SECTIONS = ("peak", "generate", "purify", "decode", "distill")
PROMPT = "Describe the image in detail."
WORDS = [
    "a",
    "man",
    "woman",
    "dog",
    "cat",
    "car",
    "bus",
    "tree",
    "table",
    "chair",
    "cup",
    "plate",
    "fork",
    "knife",
    "red",
    "white",
    "blue",
    "on",
    "next",
    "to",
    "the",
]
IMAGE_FILES = 8  # distinct images; samples cycle through them
PROJECT_SAMPLES = (10_000, 100_000)
# (section, key, comparison, threshold): the acceptance checks of issue 15.
CHECKS = (
    ("decode", "seed_merged_vs_base", ">=", 0.95),
    ("decode", "seed_merged_vs_vcd", ">=", 1.8),
    ("distill", "adapter_teacher_vs_separate_teacher", "<=", 0.6),
    ("purify", "fraction_of_peak", ">=", 0.4),
)


def sizes(rt: Runtime, purify_batch: int, max_new_tokens: int, distill_batch: int) -> dict[str, Any]:
    """Batch sizes, lengths and repeats: the params.yaml batches on a GPU, small ones on a CPU."""
    if rt.cuda:
        return {
            "layers": None,
            "image_size": None,
            "generate_batch": purify_batch,
            "response_tokens": max_new_tokens,
            "teacher_batch": purify_batch,
            "repeats": 3,
            "decode_batch": 16,
            "decode_tokens": 32,
            "decode_repeats": 4,
            "distill_batch": distill_batch,
            "distill_steps": 3,
            "memory_batches": sorted({1, 4, distill_batch}),
            "memory_steps": 2,
            "full_finetune": True,
            "square": 8192,
        }
    return {
        "layers": 2,
        "image_size": None,
        "generate_batch": 2,
        "response_tokens": 6,
        "teacher_batch": 2,
        "repeats": 1,
        "decode_batch": 2,
        "decode_tokens": 3,
        "decode_repeats": 1,
        "distill_batch": 2,
        "distill_steps": 1,
        "memory_batches": [1],
        "memory_steps": 1,
        "full_finetune": False,  # in-process RSS cannot compare modes; the slice's AdamW state is 4x its weights
        "square": 1024,
    }


def free(rt: Runtime) -> None:
    gc.collect()
    if rt.cuda:
        import torch

        torch.cuda.empty_cache()


def peak_memory(rt: Runtime) -> int | None:
    if not rt.cuda:
        return None
    import torch

    return int(torch.cuda.max_memory_allocated(rt.device))


def reset_peak(rt: Runtime) -> None:
    free(rt)
    if rt.cuda:
        import torch

        torch.cuda.reset_peak_memory_stats(rt.device)


def make_samples(folder: Path, count: int, image_size: int, words: int, seed: int) -> list[Any]:
    """``count`` DistillSamples over `IMAGE_FILES` random-noise PNGs written under ``folder``/images/seed."""
    import numpy as np
    from PIL import Image

    from seed.distill import DistillSample
    from seed.teacher import IMAGES

    rng = np.random.default_rng(seed)
    (folder / IMAGES).mkdir(parents=True, exist_ok=True)
    for i in range(IMAGE_FILES):
        pixels = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / IMAGES / f"noise-{i}.png")
    samples = []
    for i in range(count):
        response = " ".join(rng.choice(WORDS, size=words).tolist())
        samples.append(DistillSample(f"s{i}", f"noise-{i % IMAGE_FILES}.png", PROMPT, response))
    return samples


def prompt_batch(rt: Runtime, processor: Any, images: list[Any]) -> dict[str, Any]:
    """The processor's left-padded batch of generation prompts on ``images``, on the device."""
    from seed.generate import prompt_text

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
    """Tokens/s and samples/s of greedy answering with a KV cache (`seed.vcd.decode`), fixed length."""
    from seed.vcd import decode

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
    from seed.distill import student_batch
    from seed.teacher import plain_logits, response_positions, teacher_targets, to_device

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

    Unmerged SEED is a copy of the base weights with a LoRA adapter (`seed.adapter.attach_adapter`,
    B filled with small random values as a trained one has); merged SEED is a copy of that, merged
    (`seed.adapter.merge_adapter`). Both copies are dropped afterwards.
    """
    import torch

    from seed.adapter import attach_adapter, merge_adapter
    from seed.teacher import noise_pixels
    from seed.vcd import DecodeStats, decode

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


def train_separate_lora(
    peft_model: Any, teacher: Any, processor: Any, data: Path, samples: list, config: Any, purify_config: Any
) -> list[float]:
    """`train_adapter`'s steps with the targets from ``teacher``, a separate copy (its adapter disabled)."""
    import dataclasses

    import torch

    from seed.adapter import teacher_logits
    from seed.distill import sample_order, stack_targets, student_batch, student_logits
    from seed.losses import distillation_loss
    from seed.teacher import image_token_ids, teacher_targets, to_device

    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    order = sample_order(len(samples), config.seed, 0)
    losses = []
    for step in range(config.max_steps):
        chunk = [samples[i] for i in order[step * config.batch_size : (step + 1) * config.batch_size]]
        batch = to_device(student_batch(processor, data, chunk), peft_model.device)
        computed = teacher_targets(
            lambda **i: teacher_logits(teacher, **i),
            batch,
            [s.sample_id for s in chunk],
            purify_config,
            image_token_ids(processor),
            peft_model.dtype,
        )
        chunk = [dataclasses.replace(s, targets=t.targets) for s, t in zip(chunk, computed, strict=True)]
        indices, log_probs = stack_targets(chunk)
        logits = student_logits(peft_model, batch, peft_model.dtype)
        mask = torch.ones(indices.shape[:2], dtype=torch.bool, device=logits.device)
        loss = distillation_loss(
            config.loss, logits.unsqueeze(0), indices.to(logits.device), log_probs.to(logits.device), mask
        )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
        optimiser.step()
        losses.append(float(loss.detach()))
    return losses


def adapter_losses(*args: Any) -> list[float]:
    """`train_adapter`'s losses (adapter-off teacher), no progress bar."""
    from seed.distill import train_adapter

    return train_adapter(*args, progress=False).losses


def memory_run(rt: Runtime, mode: str, batch: int, fn: Any, steps: int) -> dict[str, Any]:
    """Peak memory and seconds/step of ``fn()`` (a run of ``steps`` steps); an out-of-memory is the result."""
    import torch

    reset_peak(rt)
    try:
        seconds, losses = timed(rt, fn)
    except torch.cuda.OutOfMemoryError as exc:
        row = {"mode": mode, "batch": batch, "oom": True, "error": str(exc).splitlines()[0][:300]}
        row["peak_bytes"] = peak_memory(rt)
        free(rt)
        return row
    return {
        "mode": mode,
        "batch": batch,
        "oom": False,
        "peak_bytes": peak_memory(rt),
        "seconds_per_step": seconds / steps,
        "finite_loss": all(x == x for x in losses),
    }


def measure_distill(rt: Runtime, w: dict[str, Any]) -> dict[str, Any]:
    """Offline step time, then peak memory of the three ways of online distillation."""
    import dataclasses

    import torch

    from bench.memory import train_separate
    from seed.adapter import attach_adapter
    from seed.distill import train_adapter

    size, processor, data = w["size"], w["processor"], w["data"]
    base = w["distill_config"]

    def config(batch: int, steps: int, online: bool) -> Any:
        return dataclasses.replace(base, batch_size=batch, max_steps=steps, warmup_steps=0, online=online)

    torch.manual_seed(base.seed)
    peft_model = attach_adapter(w["model"], base.adapter)
    out: dict[str, Any] = {"steps_timed": size["distill_steps"], "batch": size["distill_batch"]}
    targeted = w.get("targeted") or []
    if targeted:
        b = size["distill_batch"]
        train_adapter(peft_model, processor, data, targeted, config(b, 1, False), progress=False)  # warm-up
        seconds, _ = timed(
            rt,
            lambda: train_adapter(
                peft_model, processor, data, targeted, config(b, size["distill_steps"], False), progress=False
            ),
        )
        out["offline_seconds_per_step"] = seconds / size["distill_steps"]
    steps, rows = size["memory_steps"], []
    samples = [dataclasses.replace(s, targets=None) for s in w["samples"]]
    purify = w["purify_config"]
    for b in size["memory_batches"]:
        run = partial(adapter_losses, peft_model, processor, data, samples, config(b, steps, True), purify)
        rows.append(memory_run(rt, "adapter_teacher", b, run, steps))
        print(f"bench: distill adapter_teacher batch {b}: {rows[-1]}", flush=True)
    teacher = copy.deepcopy(peft_model).eval()
    for b in size["memory_batches"]:
        run = partial(
            train_separate_lora, peft_model, teacher, processor, data, samples, config(b, steps, True), purify
        )
        rows.append(memory_run(rt, "separate_teacher_lora", b, run, steps))
        print(f"bench: distill separate_teacher_lora batch {b}: {rows[-1]}", flush=True)
    teacher = None
    w["model"] = peft_model.unload()
    peft_model = None
    if size["full_finetune"]:
        model = w["model"]
        for b in size["memory_batches"]:
            run = partial(train_separate, model, processor, data, samples, config(b, steps, True), purify)
            rows.append(memory_run(rt, "separate_teacher_full", b, run, steps))
            for parameter in model.parameters():
                parameter.grad = None
                parameter.requires_grad_(False)
            free(rt)
            print(f"bench: distill separate_teacher_full batch {b}: {rows[-1]}", flush=True)
            if rows[-1]["oom"]:
                break
    out["memory"] = rows
    out["memory_measure"] = "torch.cuda.max_memory_allocated" if rt.cuda else "not measured on the CPU"
    peaks = {(r["mode"], r["batch"]): r.get("peak_bytes") for r in rows if not r["oom"]}
    by_batch = {
        str(b): ratio(peaks.get(("adapter_teacher", b)), peaks.get(("separate_teacher_lora", b)))
        for b in size["memory_batches"]
    }
    out["adapter_teacher_vs_separate_teacher_by_batch"] = by_batch
    out["adapter_teacher_vs_separate_teacher"] = by_batch.get(str(size["distill_batch"]))
    out["adapter_teacher_vs_separate_teacher_batch1"] = by_batch.get("1")
    online = [r for r in rows if r["mode"] == "adapter_teacher" and r["batch"] == size["distill_batch"]]
    if online and not online[0]["oom"]:
        out["online_seconds_per_step"] = online[0]["seconds_per_step"]
    return out


def projection(results: dict[str, Any], size: dict[str, Any]) -> dict[str, Any] | None:
    """One round's wall time for `PROJECT_SAMPLES` samples from the measured rates (None if one is missing)."""
    gen, pur, dis = (results.get(k) or {} for k in ("generate", "purify", "distill"))
    if (
        "samples_per_second" not in gen
        or "samples_per_second" not in pur
        or "offline_seconds_per_step" not in dis
    ):
        return None
    rates = {
        "generate_samples_per_second": gen["samples_per_second"],
        "teacher_samples_per_second": pur["samples_per_second"],
        "distill_seconds_per_step": dis["offline_seconds_per_step"],
        "distill_batch": size["distill_batch"],
        "epochs": 1,
    }
    return {"rates": rates, "rounds": [project_round(n, rates) for n in PROJECT_SAMPLES]}


def setup(
    rt: Runtime, shape_name: str, size: dict[str, Any], purify: Any, distill: Any, evaluate: Any
) -> dict[str, Any]:
    """The shape (sliced on a CPU), its processor and model on the device, the synthetic samples."""
    from seed.generate import open_image
    from seed.teacher import IMAGES, image_token_ids

    shape = load_shape(shape_name)
    if size["layers"]:
        shape = sliced(shape, size["layers"])
    image_size = size["image_size"] or shape["vision_config"]["image_size"]
    data = rt.scratch / "shape-world"
    count = max(
        size["distill_batch"] * (size["distill_steps"] + 1),
        max(size["memory_batches"]) * size["memory_steps"],
    )
    samples = make_samples(data, count, image_size, size["response_tokens"], rt.seed)
    processor = build_processor(shape, [PROMPT, " ".join(WORDS)], image_size=size["image_size"])
    start = time.perf_counter()
    model = build_model(shape, processor, rt.device, rt.torch_dtype, rt.seed, image_size=size["image_size"])
    rt.sync()
    return {
        "shape": shape,
        "size": size,
        "processor": processor,
        "model": model,
        "build_seconds": time.perf_counter() - start,
        "data": data,
        "samples": samples,
        "images": [open_image(data / IMAGES / f"noise-{i}.png") for i in range(IMAGE_FILES)],
        "image_ids": image_token_ids(processor),
        "purify_config": purify,
        "distill_config": distill,
        "evaluate_config": evaluate,
    }


def run_shape(
    rt: Runtime,
    shape_name: str,
    json_path: Path,
    only: list[str],
    size: dict[str, Any] | None = None,
    command: str = "",
) -> tuple[dict[str, Any], list[str]]:
    """Every section of ``only`` in order; ``json_path`` is rewritten after each. Returns (results, failed)."""
    from bench.purify_throughput import matmul_peak
    from bench.run import acceptance
    from bench.shape import parameter_count
    from seed.atomic import write_json
    from seed.stages import load_stage_config

    purify = load_stage_config("purify", rt.params, device=rt.device, dtype=rt.dtype)
    distill = load_stage_config("distill", rt.params, device=rt.device, dtype=rt.dtype, checkpoint_every=0)
    evaluate = load_stage_config("evaluate", rt.params)
    size = size or sizes(rt, purify.batch_size, purify.max_new_tokens, distill.batch_size)
    results: dict[str, Any] = {"environment": environment(rt), "command": command, "shape_name": shape_name}
    seconds: dict[str, float] = {}
    failed: list[str] = []

    def record(name: str, fn: Any) -> None:
        print(f"bench: {name} ...", flush=True)
        start = time.perf_counter()
        try:
            results[name] = fn()
        except Exception as exc:  # record it and go on with the other sections
            failed.append(name)
            results[name] = {
                "error": f"{type(exc).__name__}: {exc}"[:2000],
                "traceback": traceback.format_exc()[-4000:],
            }
            print(f"bench: {name} failed: {exc}", file=sys.stderr, flush=True)
            free(rt)
        seconds[name] = round(time.perf_counter() - start, 1)
        results["seconds"] = seconds
        results["projection"] = projection(results, size)
        write_json(json_path, results)
        print(f"bench: {name} done in {seconds[name]} s", flush=True)

    if "peak" in only:
        square = size["square"]
        record(
            "peak",
            lambda: {"shape": [square] * 3, "flops_per_second": matmul_peak(rt, square, square, square)},
        )
    w: dict[str, Any] = {"results": results}
    record("model", lambda: w.update(setup(rt, shape_name, size, purify, distill, evaluate)) or model_info(w))
    if "model" in failed:
        return results, failed
    for name, fn in (
        ("generate", measure_generate),
        ("purify", measure_purify),
        ("decode", measure_decode),
        ("distill", measure_distill),
    ):
        if name in only:
            record(name, lambda fn=fn: fn(rt, w))
    results["published_parameters"] = parameter_count(load_shape(shape_name))
    results["acceptance"] = acceptance(results, CHECKS)
    write_json(json_path, results)
    return results, failed


def model_info(w: dict[str, Any]) -> dict[str, Any]:
    model, shape = w["model"], w["shape"]
    return {
        "source": shape["source"],
        "sliced_to_layers": shape.get("sliced_to_layers"),
        "vision_layers": shape["vision_config"]["num_hidden_layers"],
        "text_layers": shape["text_config"]["num_hidden_layers"],
        "text_hidden": model.config.text_config.hidden_size,
        "vocab_size": model.config.text_config.vocab_size,
        "image_tokens": image_tokens(shape, w["size"]["image_size"]),
        "parameters": sum(p.numel() for p in model.parameters()),
        "weight_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "tokenizer_size": len(w["processor"].tokenizer),
        "build_seconds": w["build_seconds"],
        "sizes": w["size"],
    }
