"""SEED's cost at a published model size (``--shape``): one process, one model, the product's own code paths.

    python -m bench.run --device cuda --dtype bfloat16 --shape llava-1.5-7b   # the 7B shape on one GPU
    python -m bench.run --shape llava-1.5-7b                                   # CPU: its 2-layer slice

Sections, in order (each one recorded even when another fails; the JSON is rewritten after each):

- ``peak``: dense bf16 (run dtype) matmul FLOP/s of an 8192^3 product, the ceiling for ``purify``;
- ``generate``: stage purify's answering, `seed.model.vcd.decode` with a KV cache on a batch of
  ``purify.batch_size`` prompts, ``purify.max_new_tokens`` tokens each (end-of-sequence ignored);
- ``purify``: the teacher pass, `seed.model.teacher.teacher_targets` (clean + noised as one forward of 2B),
  samples/s and analytic FLOP/s against ``peak``;
- ``decode``: base, VCD, unmerged SEED (PEFT, `seed.model.adapter.attach_adapter`) and merged SEED
  (`seed.model.adapter.merge_adapter`) through `seed.model.vcd.decode`, taking turns in every round (the two SEED
  models are copies of the weights, dropped afterwards);
- ``distill``: step time and peak memory of distillation (`bench.scale7b_memory.measure_distill`).

``generate``, ``purify`` and ``decode`` are measured in `bench.scale7b_speed`.

The projection of one round (`bench.shape.project_round`) comes from these rates. Samples are
synthetic: random-noise images at the shape's size and responses of ``max_new_tokens`` words (one
token each), so every sample has the same length.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import Runtime, environment
from bench.scale7b_memory import free, measure_distill
from bench.scale7b_speed import IMAGE_FILES, PROMPT, measure_decode, measure_generate, measure_purify
from bench.shape import build_model, build_processor, image_tokens, load_shape, project_round, sliced

SECTIONS = ("peak", "generate", "purify", "decode", "distill")
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
PROJECT_SAMPLES = (10_000, 100_000)
# (section, key, comparison, threshold): the acceptance checks of the 7B-scale benchmark.
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


def make_samples(folder: Path, count: int, image_size: int, words: int, seed: int) -> list[Any]:
    """``count`` DistillSamples over `IMAGE_FILES` random-noise PNGs written under ``folder``/images/seed."""
    import numpy as np
    from PIL import Image

    from seed.files.samples import IMAGES
    from seed.model.student import DistillSample

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
    from seed.files.samples import IMAGES
    from seed.model.generate import image_token_ids, open_image

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
    gradient_checkpointing: bool | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Every section of ``only`` in order; ``json_path`` is rewritten after each. Returns (results, failed).

    ``gradient_checkpointing`` overrides ``distill.gradient_checkpointing`` of params.yaml (None: keep it).
    """
    from bench.purify_throughput import matmul_peak
    from bench.run import acceptance
    from bench.shape import parameter_count
    from seed.files.atomic import write_json
    from seed.stages import load_stage_config

    purify = load_stage_config("purify", rt.params, device=rt.device, dtype=rt.dtype)
    overrides = {} if gradient_checkpointing is None else {"gradient_checkpointing": gradient_checkpointing}
    distill = load_stage_config(
        "distill", rt.params, device=rt.device, dtype=rt.dtype, checkpoint_every=0, **overrides
    )
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
