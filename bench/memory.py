"""Peak memory of distillation: adapter-disabled teacher (seed.model.trainer) vs a frozen teacher copy + full fine-tuning.

Both runs distil the same untrained LLaVA (the default model's layout, widened so that weights
dominate memory; `SHAPE`) on the same samples, for the same steps, with online targets (the teacher
pass runs every step, as ``distill.online: true`` does):

- ``adapter``: `seed.model.trainer.train_adapter` itself: one copy of the weights, LoRA A/B train, the
  teacher is the same model with the adapter disabled (`seed.model.adapter.teacher_logits`);
- ``separate``: a deep copy of the model is the frozen teacher (eval, no grad) and every weight of
  the student trains with AdamW (weights, gradients and two moment buffers).

Each run is its own process (``python -m bench.memory --mode ...``), so one cannot inherit the
other's allocations. Memory is the process's peak resident set (``getrusage(RUSAGE_SELF).ru_maxrss``)
on the CPU, and ``torch.cuda.max_memory_allocated`` on a GPU. The RSS after imports is reported too:
it is the same in both and is part of both peaks.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Runtime, ratio

# Decoder widened to ~156M parameters (0.6 GB of float32 weights); the vision tower stays the default's.
# Two samples a step, so that weights, not activations, dominate memory (as for a 7B model at batch 16).
SHAPE = {"text_hidden": 1024, "text_layers": 12, "text_heads": 16, "text_intermediate": 2816}
MODES = ("adapter", "separate")


def sizes(rt: Runtime) -> dict[str, Any]:
    return {"shape": SHAPE, "steps": 3, "batch": 2}


def rss_now() -> int:
    """Current resident set size of this process, in bytes (Linux ``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def train_against(
    student: Any,
    teacher_forward: Any,
    processor: Any,
    data: Path,
    samples: list,
    config: Any,
    purify_config: Any,
) -> list[float]:
    """The steps of `seed.model.trainer.train_adapter` (batches in `sample_order`, online teacher targets,
    `distillation_loss`, clipping, AdamW) on ``student``'s trainable weights, with the targets from
    ``teacher_forward(**inputs) -> logits``, a separate teacher. Returns the per-step losses."""
    import dataclasses

    import torch

    from seed.core.losses import distillation_loss
    from seed.model.generate import image_token_ids
    from seed.model.student import stack_targets, student_batch, student_logits
    from seed.model.teacher import teacher_targets, to_device
    from seed.model.trainer import sample_order

    trainable = [p for p in student.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    image_ids = image_token_ids(processor)
    order = sample_order(len(samples), config.seed, 0)
    losses: list[float] = []
    for step in range(config.max_steps):
        chunk = [samples[i] for i in order[step * config.batch_size : (step + 1) * config.batch_size]]
        batch = to_device(student_batch(processor, data, chunk), student.device)
        computed = teacher_targets(
            teacher_forward, batch, [s.sample_id for s in chunk], purify_config, image_ids, student.dtype
        )
        chunk = [dataclasses.replace(s, targets=t.targets) for s, t in zip(chunk, computed, strict=True)]
        indices, log_probs = stack_targets(chunk)
        logits = student_logits(student, batch, student.dtype)
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


def train_separate(
    model: Any, processor: Any, data: Path, samples: list, config: Any, purify_config: Any
) -> list[float]:
    """Full fine-tuning of ``model`` against a frozen deep copy of itself as teacher (online targets).

    The same steps as `seed.model.trainer.train_adapter` (``config.gradient_checkpointing`` included), except
    that every weight trains and the teacher is a copy.
    """
    import copy

    from seed.model.teacher import plain_logits
    from seed.model.trainer import enable_gradient_checkpointing

    teacher = copy.deepcopy(model).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    model.eval()  # no dropout in the layers, as train_adapter keeps the base model
    if config.gradient_checkpointing:  # as train_adapter does with this config
        enable_gradient_checkpointing(model)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return train_against(
        model, lambda **i: plain_logits(teacher, **i), processor, data, samples, config, purify_config
    )


def measure(mode: str, rt: Runtime) -> dict[str, Any]:
    """One distillation run of ``mode`` in this process; returns its peak memory and what it ran."""
    import peft  # noqa: F401  (both modes pay the same imports)
    import torch

    from bench.common import build_llava, load_processor, parameters, teacher_samples, world
    from seed.model.adapter import attach_adapter
    from seed.model.student import DistillSample
    from seed.model.trainer import train_adapter
    from seed.stages import load_stage_config

    size = sizes(rt)
    if rt.cuda:
        torch.cuda.reset_peak_memory_stats(rt.device)
    after_imports = rss_now()
    processor = load_processor(rt)
    data = world(rt)
    samples = [
        DistillSample(s.sample_id, s.image, s.prompt, s.response)
        for s in teacher_samples(rt, size["steps"] * size["batch"])
    ]
    model = build_llava(rt, **size["shape"])
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    params = parameters(model)
    after_model = rss_now()
    purify_config = load_stage_config("purify", rt.params, device=rt.device, dtype=rt.dtype)
    config = load_stage_config(
        "distill",
        rt.params,
        device=rt.device,
        dtype=rt.dtype,
        batch_size=size["batch"],
        max_steps=size["steps"],
        warmup_steps=0,
        online=True,
        balance="none",  # online targets carry no stored answers to balance; the step costs the same
    )
    start = time.perf_counter()
    if mode == "adapter":
        torch.manual_seed(config.seed)
        peft_model = attach_adapter(model, config.adapter)
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        losses = train_adapter(peft_model, processor, data, samples, config, purify_config, progress=False)[0]
    else:
        trainable = params
        losses = train_separate(model, processor, data, samples, config, purify_config)
    rt.sync()
    return {
        "mode": mode,
        "peak_bytes": torch.cuda.max_memory_allocated(rt.device) if rt.cuda else peak_rss(),
        "measure": "torch.cuda.max_memory_allocated" if rt.cuda else "ru_maxrss (RUSAGE_SELF)",
        "peak_rss_bytes": peak_rss(),
        "rss_after_imports_bytes": after_imports,
        "rss_after_model_bytes": after_model,
        "parameters": params,
        "weight_bytes": weights,
        "trainable_parameters": trainable,
        "steps": len(losses),
        "batch": size["batch"],
        "shape": size["shape"],
        "train_seconds": time.perf_counter() - start,
    }


def run_memory(rt: Runtime, threads: int = 0) -> dict[str, Any]:
    """Both modes, each in a fresh subprocess; the ratio of their peaks (adapter over separate)."""
    runs: dict[str, Any] = {}
    for mode in MODES:
        cmd = [
            sys.executable,
            "-m",
            "bench.memory",
            "--mode",
            mode,
            "--device",
            rt.device,
            "--dtype",
            rt.dtype,
            "--threads",
            str(threads),
            "--scratch",
            str(rt.scratch),
        ] + (["--quick"] if rt.quick else [])
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
        runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    a, s = runs["adapter"], runs["separate"]
    return {
        "runs": runs,
        "model_parameters": a["parameters"],
        "model_weight_bytes": a["weight_bytes"],
        "adapter_teacher_vs_separate_teacher": ratio(a["peak_bytes"], s["peak_bytes"]),
        "adapter_vs_separate_above_imports": ratio(
            a["peak_bytes"] - (0 if rt.cuda else a["rss_after_imports_bytes"]),
            s["peak_bytes"] - (0 if rt.cuda else s["rss_after_imports_bytes"]),
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one distillation memory run (see bench/memory.py)")
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--scratch", type=Path, default=Runtime.scratch)
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rt = Runtime(device=args.device, dtype=args.dtype, quick=args.quick, scratch=args.scratch)
    result = measure(args.mode, rt)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
