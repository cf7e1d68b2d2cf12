"""The distillation training loop: LoRA weights of a model trained toward purified sparse targets.

```
 samples (image, prompt, response, (n, k) targets) --> student_batch --> student = model + LoRA
        |                                                                 logits on the n response positions
        v
 distillation_loss(reverse_kl | forward_kl, float32) --> AdamW (LoRA params), lr_factor schedule
```

`train_adapter` is the loop that stage `distill` (`seed.stages.distill`) runs: offline on stored
targets, or online with targets computed each step by the adapter-disabled model
(`seed.model.teacher.teacher_targets`); data-parallel in N processes; resumable from checkpoints
(`seed.files.checkpoint`). The base model stays in eval mode; only the LoRA dropout modules train.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from seed.errors import ConfigError
from seed.model.parallel import Processes
from seed.model.student import DistillSample, stack_targets, stack_weights, student_batch, student_logits
from seed.model.teacher import ContrastSettings

if TYPE_CHECKING:
    import torch


# The params.yaml section of the settings this loop reads (`seed.stages.distill.DistillConfig`).
SECTION = "distill"


class TrainSettings(Protocol):
    """What the loop reads of its settings (stage `distill`'s `DistillConfig` has them all)."""

    loss: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    grad_clip: float
    max_steps: int
    seed: int
    device: str
    online: bool
    checkpoint_every: int
    gradient_checkpointing: bool


class OnlineSettings(ContrastSettings, Protocol):
    """What online distillation reads of the purify settings (`PurifyConfig` has them all)."""

    max_samples: int
    batch_size: int
    max_new_tokens: int


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier of 0-based ``step`` of ``total``: linear warm-up, then linear decay.

    ``(step + 1) / warmup`` during the first ``warmup`` steps, then ``(total - step) / (total - warmup)``:
    the peak lr is reached at step ``warmup - 1`` (or 0) and the last step still has a non-zero rate.
    """
    if step < warmup:
        return (step + 1) / warmup
    return (total - step) / max(1, total - warmup)


def _prepare_training(peft_model: Any) -> None:
    """Frozen weights in eval mode (exactly the teacher's function); LoRA dropout modules train."""
    peft_model.eval()
    for name, module in peft_model.named_modules():
        if name.endswith("lora_dropout") or ".lora_dropout." in name:
            module.train()


def enable_gradient_checkpointing(model: Any) -> None:
    """Recompute each layer's activations in the backward pass instead of storing them (in place).

    ``model`` is a PeftModel or a plain transformers model. transformers' activation checkpointing
    (non-reentrant `torch.utils.checkpoint`) is switched on for every repeated layer (decoder and
    vision-tower layers, `GradientCheckpointingLayer`). transformers checkpoints a layer only while it
    is in training mode, and distillation keeps the model in eval mode (`_prepare_training`), so the
    layer modules alone are flagged as training: their submodules (attention, dropout) stay in eval
    and every layer computes what it computed before. A pass without gradients (the adapter-off
    teacher under no_grad, generation) is not checkpointed. ``.eval()`` / ``.train()`` reset the flag:
    call this after them.
    """
    from transformers.modeling_layers import GradientCheckpointingLayer

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = [m for m in base.modules() if isinstance(m, GradientCheckpointingLayer)]
    if not layers:
        raise ConfigError(
            f"{SECTION}.gradient_checkpointing: {type(base).__name__} has no layer that supports it"
        )
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.2x; the old name warns there
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    for layer in layers:
        layer.training = True  # the layer alone (no .train(): that would switch its submodules too)


def online_samples(
    model: Any, processor: Any, data_dir: Path, config: OnlineSettings, progress: bool, procs: Processes
) -> list[DistillSample]:
    """Online mode: the model (before any adapter) answers the unlabelled split, greedily.

    Generation batch ``j`` runs on process ``j % world_size``; every process gets all samples back, in
    file order. The batches are those of one process, so the responses are too.
    """
    from tqdm import tqdm

    from seed.files.samples import IMAGES, load_samples
    from seed.model.generate import answer_batch, open_image, usable_response

    samples = load_samples(data_dir, config.max_samples)
    starts = list(range(0, len(samples), config.batch_size))
    mine = [j for j in range(len(starts)) if j % procs.world_size == procs.rank]
    answered: dict[int, list[DistillSample]] = {}
    for j in tqdm(mine, desc="generate", disable=not (progress and procs.is_main), dynamic_ncols=True):
        chunk = samples[starts[j] : starts[j] + config.batch_size]
        images = [open_image(data_dir / IMAGES / s.image) for s in chunk]
        answers = answer_batch(model, processor, images, [s.prompt for s in chunk], config.max_new_tokens)
        answered[j] = [
            DistillSample(s.sample_id, s.image, s.prompt, answer.strip())
            for s, answer in zip(chunk, answers, strict=True)
            if usable_response(processor, answer.strip())
        ]
    for part in procs.gather(answered) if procs.distributed else []:
        answered.update(part)
    return [s for j in range(len(starts)) for s in answered[j]]


def sample_order(num_samples: int, seed: int, epoch: int) -> list[int]:
    """The seeded shuffle of epoch ``epoch``: a permutation of ``range(num_samples)``."""
    import torch

    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(num_samples, generator=generator).tolist()


def local_indices(batch: Sequence[int], procs: Processes) -> tuple[list[int], bool]:
    """This process's share of one global batch: ``batch[rank::world_size]``, and whether it counts.

    A process left without a sample (a last batch smaller than the world) takes the batch's first
    sample with weight 0: DDP needs every process in every backward, and a zero loss adds nothing.
    """
    mine = list(batch[procs.rank :: procs.world_size])
    return (mine, True) if mine else (list(batch[:1]), False)


def counted_tokens(log_probs: torch.Tensor, weights: torch.Tensor | None = None) -> float:
    """Tokens that carry loss: those whose target has at least one real slot (see `seed.core.losses`);
    with (1, tokens) ``weights``, the sum of their weights (the denominator of the weighted mean)."""
    real = log_probs.isfinite().any(dim=-1)
    if weights is None:
        return int(real.sum())
    return float(weights.to(log_probs.device)[real].sum())


class TrainResult(NamedTuple):
    """What `train_adapter` returns: per-step losses, response tokens seen, and the step it resumed at."""

    losses: list[float]
    tokens_seen: int
    resumed_from_step: int


def train_adapter(
    peft_model: Any,
    processor: Any,
    data_dir: Path,
    samples: Sequence[DistillSample],
    config: TrainSettings,
    purify_config: OnlineSettings | None = None,
    targets_dir: Path | None = None,
    progress: bool = True,
    checkpoint_dir: Path | None = None,
    run_key: dict[str, Any] | None = None,
) -> TrainResult:
    """Train the LoRA weights of ``peft_model`` in place; returns the losses, tokens seen, resumed step.

    Each epoch visits the samples in `sample_order`, ``config.batch_size`` at a time. Offline, the
    samples carry their targets; online (``config.online``) each batch's targets are computed first
    by `seed.model.teacher.teacher_targets` with the adapter disabled (`seed.model.adapter.teacher_logits`).
    AdamW on the trainable (LoRA) parameters, `lr_factor` schedule, gradient clipping.

    Data-parallel (launched in N processes, `seed.model.parallel`): the model is wrapped in DDP by
    accelerate, each process takes `local_indices` of every global batch, and its loss is scaled so
    that the averaged gradient is the gradient of the mean over the *global* batch's tokens, as in
    one process: ``loss_r * n_r * N / n`` (``n_r`` tokens here, ``n`` in the global batch; with sample
    weights, their sums over those tokens). The logged loss is the global token mean. Same batches, same schedule, same steps as one process.

    With ``checkpoint_dir`` and ``config.checkpoint_every``, a checkpoint (`seed.files.checkpoint`) is
    written every ``checkpoint_every`` steps and the newest one with the same ``run_key`` is resumed
    from: the steps it covers are skipped, and weights, optimiser, scheduler and RNG states continue
    from it.
    """
    import torch
    from tqdm import tqdm

    from seed.core.losses import distillation_loss
    from seed.files.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
    from seed.model.adapter import teacher_logits
    from seed.model.generate import image_token_ids
    from seed.model.parallel import current_processes
    from seed.model.teacher import teacher_targets, to_device

    if config.online and purify_config is None:
        raise ConfigError(f"{SECTION}.online: online targets need the purify settings (purify_config)")
    procs = current_processes(config.device)
    _prepare_training(peft_model)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(peft_model)
    named = {name: p for name, p in peft_model.named_parameters() if p.requires_grad}
    trainable = list(named.values())
    optimiser = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = math.ceil(len(samples) / config.batch_size)
    total = config.epochs * per_epoch
    if config.max_steps:
        total = min(total, config.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: lr_factor(step, total, config.warmup_steps)
    )
    image_ids = image_token_ids(processor)
    use_cuda = str(peft_model.device).startswith("cuda")
    key = {**(run_key or {}), "processes": procs.world_size}
    checkpointing = checkpoint_dir is not None and config.checkpoint_every > 0

    losses: list[float] = []
    tokens_seen = 0
    done = 0
    if checkpointing:
        resumed = load_checkpoint(checkpoint_dir, key, named, optimiser, scheduler)
        if resumed is not None:
            set_rng_state(*resumed.rng[procs.rank])
            done, losses, tokens_seen = resumed.step, resumed.losses, resumed.tokens_seen

    student = peft_model
    if procs.distributed:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        # Buffers (rotary tables, position ids) are the same checkpoint on every process: no re-broadcast.
        ddp = DistributedDataParallelKwargs(broadcast_buffers=False)
        student = Accelerator(cpu=not use_cuda, kwargs_handlers=[ddp]).prepare_model(peft_model)

    def teacher(**inputs: Any) -> torch.Tensor:
        return teacher_logits(peft_model, **inputs)

    step = 0
    with tqdm(
        total=total,
        initial=done,
        desc="distill",
        unit="step",
        disable=not (progress and procs.is_main),
        dynamic_ncols=True,
    ) as bar:
        for epoch in range(config.epochs):
            order = sample_order(len(samples), config.seed, epoch)
            for b in range(per_epoch):
                if step >= total:
                    break
                step += 1
                if step <= done:  # covered by the checkpoint resumed from
                    continue
                local, counts = local_indices(
                    order[b * config.batch_size : (b + 1) * config.batch_size], procs
                )
                chunk = [samples[i] for i in local]
                batch = to_device(student_batch(processor, data_dir, chunk, targets_dir), peft_model.device)
                if config.online:
                    ids = [s.sample_id for s in chunk]
                    computed = teacher_targets(
                        teacher, batch, ids, purify_config, image_ids, peft_model.dtype
                    )
                    chunk = [
                        dataclasses.replace(s, targets=t.targets)
                        for s, t in zip(chunk, computed, strict=True)
                    ]
                indices, log_probs = stack_targets(chunk)
                weights = stack_weights(chunk)
                logits = student_logits(student, batch, peft_model.dtype)
                mask = torch.ones(indices.shape[:2], dtype=torch.bool, device=logits.device)
                loss = distillation_loss(
                    config.loss,
                    logits.unsqueeze(0),
                    indices.to(logits.device),
                    log_probs.to(logits.device),
                    mask,
                    None if weights is None else weights.to(logits.device),
                )
                if procs.distributed:
                    n_local = counted_tokens(log_probs, weights) if counts else 0
                    tokens = int(indices.shape[1]) if counts else 0
                    parts = procs.gather((n_local, float(loss.detach()) * n_local, tokens))
                    n_global = sum(p[0] for p in parts) or 1
                    logged = sum(p[1] for p in parts) / n_global
                    tokens = sum(p[2] for p in parts)
                    loss = loss * (n_local * procs.world_size / n_global)
                else:
                    logged, tokens = float(loss.detach()), int(indices.shape[1])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
                optimiser.step()
                scheduler.step()
                losses.append(logged)
                tokens_seen += tokens
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
                if checkpointing and step % config.checkpoint_every == 0 and step < total:
                    rng = procs.gather(rng_state(use_cuda))
                    if procs.is_main:
                        save_checkpoint(
                            checkpoint_dir, step, key, named, optimiser, scheduler, rng, losses, tokens_seen
                        )
    return TrainResult(losses, tokens_seen, done)
