"""The ``distill`` section of ``--shape`` (`bench.scale7b`): distillation step time and peak memory.

`seed.model.trainer.train_adapter` step time (offline targets, ``distill.batch_size``), then peak GPU
memory of online distillation at several batch sizes with the adapter-off teacher (`train_adapter`
itself), with a separate teacher copy and the same LoRA (`train_separate_lora`), and with a separate
teacher and full fine-tuning (`bench.memory.train_separate`, last: it may run out of memory, which is
then the result).

All three train with ``distill.gradient_checkpointing`` as set (params.yaml, or ``bench.run
--gradient-checkpointing``): the same setting for every mode, recorded in the JSON. With it on, the
offline step is also timed without it, in the same process.
"""

from __future__ import annotations

import copy
import gc
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import Runtime, ratio, timed


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


def train_separate_lora(
    peft_model: Any, teacher: Any, processor: Any, data: Path, samples: list, config: Any, purify_config: Any
) -> list[float]:
    """`train_adapter`'s steps with the targets from ``teacher``, a separate copy (its adapter disabled)."""
    from bench.memory import train_against
    from seed.model.adapter import teacher_logits
    from seed.model.trainer import enable_gradient_checkpointing

    if config.gradient_checkpointing:
        enable_gradient_checkpointing(peft_model)
    return train_against(
        peft_model, lambda **i: teacher_logits(teacher, **i), processor, data, samples, config, purify_config
    )


def adapter_losses(*args: Any) -> list[float]:
    """`train_adapter`'s losses (adapter-off teacher), no progress bar."""
    from seed.model.trainer import train_adapter

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
    from seed.model.adapter import attach_adapter
    from seed.model.trainer import train_adapter

    size, processor, data = w["size"], w["processor"], w["data"]
    base = w["distill_config"]

    def config(batch: int, steps: int, online: bool) -> Any:
        # balance reads stored targets' answers (stage distill); online runs have none, and the step's
        # cost does not depend on it
        return dataclasses.replace(
            base, batch_size=batch, max_steps=steps, warmup_steps=0, online=online, balance="none"
        )

    torch.manual_seed(base.seed)
    peft_model = attach_adapter(w["model"], base.adapter)
    checkpointed = base.gradient_checkpointing
    out: dict[str, Any] = {
        "gradient_checkpointing": checkpointed,
        "steps_timed": size["distill_steps"],
        "batch": size["distill_batch"],
    }
    targeted = w.get("targeted") or []
    if targeted:
        b = size["distill_batch"]

        def offline_seconds_per_step(gradient_checkpointing: bool) -> float:
            run = dataclasses.replace(
                config(b, size["distill_steps"], False), gradient_checkpointing=gradient_checkpointing
            )
            warm_up = dataclasses.replace(run, max_steps=1)
            train_adapter(peft_model, processor, data, targeted, warm_up, progress=False)
            seconds, _ = timed(
                rt, lambda: train_adapter(peft_model, processor, data, targeted, run, progress=False)
            )
            return seconds / size["distill_steps"]

        if checkpointed:  # the same steps without it first, for the cost of recomputing
            out["offline_seconds_per_step_without_checkpointing"] = offline_seconds_per_step(False)
        out["offline_seconds_per_step"] = offline_seconds_per_step(checkpointed)
        if checkpointed:
            out["checkpointing_step_time_ratio"] = ratio(
                out["offline_seconds_per_step"], out["offline_seconds_per_step_without_checkpointing"]
            )
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
