"""Stage `distill`: train a fresh LoRA adapter so that the model alone gives the purified distributions.

```
 targets dir (stage purify)          sample: image, prompt, response text, response token ids,
        |                                    (n, k) sparse targets log P*_t
        v
 build_batch(image, prompt, response) --> student = model + LoRA (adapter on, grads on A/B only)
        |                                    logits on the n response positions only
        v
 distillation_loss(reverse_kl | forward_kl, float32) --> AdamW (LoRA params) --> adapter folder
```

The student's inputs are rebuilt exactly as the teacher saw them: the clean image, the same prompt
and the same response text, through the same processor; the response token ids stored by stage
`purify` are checked against the rebuilt ones. Prompt and image positions carry no loss.

Offline (default) and online targets are the same thing. Stage `purify` computes them with the
checkpoint itself; the student here is that checkpoint plus a LoRA adapter with ``bias="none"``,
so the adapter-disabled student *is* the purify teacher, weight for weight. ``online: true`` computes
the targets at every step with `seed.model.adapter.teacher_logits` (adapter disabled, eval, no_grad) on
the one copy of the weights in memory, and gives the same targets up to float rounding; it costs a
2B teacher forward per step, which is why offline targets, computed once and reused across epochs
and ablations, are the default. Online mode reads no targets folder: it generates the responses
itself (greedy, with the model before the adapter is attached) and uses the `purify` settings.

The base model stays in eval mode during training (no dropout in frozen weights, so the student at
step 0 equals the teacher); only the LoRA dropout modules train. ``gradient_checkpointing: true``
recomputes each layer's activations in the backward pass instead of keeping them
(`enable_gradient_checkpointing`): the same loss and gradients, less memory, a slower step.

Launched in N processes (`seed.model.parallel`), training is data-parallel (DDP through accelerate) with
the one-process batches, schedule and gradient (see `train_adapter`). Every ``checkpoint_every``
steps, weights, optimiser, scheduler, RNG states and step go to a checkpoint (`seed.files.checkpoint`,
safetensors + JSON) beside the output folder; a killed run resumes from it to the same adapter.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from seed.core.losses import LOSS_KINDS
from seed.errors import ConfigError, DataError
from seed.files.atomic import write_json as _write_json
from seed.model.adapter import AdapterConfig
from seed.model.parallel import Processes
from seed.params import check_choice, check_integer, check_number, check_runtime
from seed.stages.purify import PurifyConfig

if TYPE_CHECKING:
    import torch

    from seed.core.purify import SparseTargets

SECTION = "distill"
LOSSES_NAME = "losses.json"
SUMMARY_NAME = "summary.json"


@dataclass
class DistillConfig:
    """Settings of stage `distill` (params.yaml section ``distill``).

    loss: ``reverse_kl`` (mode-seeking, default) or ``forward_kl`` (the ablation). epochs, batch_size,
    lr, weight_decay: AdamW on the LoRA weights. warmup_steps: linear warm-up, then linear decay.
    grad_clip: max gradient norm (0 = off). max_steps: stop early after this many steps (0 = no cap).
    seed: adapter init and shuffling. dtype / device: where the model runs. online: compute targets
    each step with the adapter disabled instead of reading a targets folder. checkpoint_every: save
    adapter, optimiser, scheduler, RNG states and step every this many steps, so that a killed run
    resumes where it stopped (0 = never). gradient_checkpointing: recompute every layer's activations
    in the backward pass instead of storing them (`enable_gradient_checkpointing`; same loss and
    gradients, less activation memory, a slower step; off by default). adapter: LoRA settings
    (`seed.model.adapter.AdapterConfig`; a mapping from YAML is accepted).
    """

    loss: str = "reverse_kl"
    epochs: int = 1
    batch_size: int = 16
    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup_steps: int = 10
    grad_clip: float = 1.0
    max_steps: int = 0
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"
    online: bool = False
    checkpoint_every: int = 50
    gradient_checkpointing: bool = False
    adapter: AdapterConfig = field(default_factory=AdapterConfig)

    def __post_init__(self) -> None:
        check_choice(SECTION, "loss", self.loss, LOSS_KINDS)
        check_integer(SECTION, "epochs", self.epochs, lo=1)
        check_integer(SECTION, "batch_size", self.batch_size, lo=1)
        check_number(SECTION, "lr", self.lr, lo=0, lo_open=True)
        check_number(SECTION, "weight_decay", self.weight_decay, lo=0)
        check_integer(SECTION, "warmup_steps", self.warmup_steps, lo=0)
        check_number(SECTION, "grad_clip", self.grad_clip, lo=0)
        check_integer(SECTION, "max_steps", self.max_steps, lo=0)
        check_integer(SECTION, "seed", self.seed, lo=0)
        check_runtime(SECTION, self.dtype, self.device)
        if not isinstance(self.online, bool):
            raise ConfigError(f"{SECTION}.online = {self.online!r} must be true or false")
        check_integer(SECTION, "checkpoint_every", self.checkpoint_every, lo=0)
        if not isinstance(self.gradient_checkpointing, bool):
            raise ConfigError(
                f"{SECTION}.gradient_checkpointing = {self.gradient_checkpointing!r} must be true or false"
            )
        if isinstance(self.adapter, dict):
            known = [f.name for f in dataclasses.fields(AdapterConfig)]
            unknown = sorted(set(self.adapter) - set(known))
            if unknown:
                raise ConfigError(
                    f"unknown key(s) {', '.join(f'{SECTION}.adapter.{k}' for k in unknown)}; "
                    f"known keys: {', '.join(known)}"
                )
            try:
                self.adapter = AdapterConfig(**self.adapter)
            except ConfigError as exc:
                # AdapterConfig names its keys "adapter.<field>"; in params.yaml they live under distill.
                message = str(exc)
                raise ConfigError(
                    f"{SECTION}.{message}" if message.startswith("adapter.") else message
                ) from exc
        elif not isinstance(self.adapter, AdapterConfig):
            raise ConfigError(f"{SECTION}.adapter = {self.adapter!r} must be a mapping of LoRA settings")


# ---------------------------------------------------------------------------------------------------
# Samples and targets


@dataclass(frozen=True)
class DistillSample:
    """One training sample; ``targets`` and ``response_ids`` are None in online mode."""

    sample_id: str
    image: str
    prompt: str
    response: str
    targets: SparseTargets | None = None
    response_ids: torch.Tensor | None = None


def load_targets(targets_dir: str | Path) -> tuple[list[DistillSample], dict[str, Any]]:
    """Every sample of a targets folder (stage `purify`), with its sparse targets; and the manifest meta.

    The manifest's shard hashes are verified, and each shard's sidecar must list the shard's samples.
    """
    from seed.files.shards import read_sidecar, sidecar_path
    from seed.files.targets import read_manifest, read_shard

    manifest = read_manifest(targets_dir)
    samples: list[DistillSample] = []
    for entry in manifest.shards:
        shard, ids = read_shard(entry.path)
        sidecar = read_sidecar(entry.path)
        if [s["id"] for s in sidecar["samples"]] != ids:
            raise DataError(
                sidecar_path(entry.path), f"samples differ from those of {entry.file}", field="samples"
            )
        if "response_ids" not in shard.extra:
            raise DataError(entry.path, "missing tensor", field="extra.response_ids")
        for i, info in enumerate(sidecar["samples"]):
            targets = shard[i]
            response_ids = shard.extra_for("response_ids", i)
            if response_ids.shape[0] != targets.indices.shape[0]:
                raise DataError(
                    entry.path, f"sample {info['id']}: token counts differ", field="extra.response_ids"
                )
            samples.append(
                DistillSample(
                    info["id"], info["image"], info["prompt"], info["response"], targets, response_ids
                )
            )
    return samples, manifest.meta


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier of 0-based ``step`` of ``total``: linear warm-up, then linear decay.

    ``(step + 1) / warmup`` during the first ``warmup`` steps, then ``(total - step) / (total - warmup)``:
    the peak lr is reached at step ``warmup - 1`` (or 0) and the last step still has a non-zero rate.
    """
    if step < warmup:
        return (step + 1) / warmup
    return (total - step) / max(1, total - warmup)


def stack_targets(samples: Sequence[DistillSample]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate per-sample targets into (1, tokens, k) indices (int64) and log-probs (float32)."""
    import torch

    indices = torch.cat([s.targets.indices for s in samples]).long()
    log_probs = torch.cat([s.targets.log_probs for s in samples]).float()
    return indices.unsqueeze(0), log_probs.unsqueeze(0)


def student_batch(
    processor: Any, data_dir: Path, samples: Sequence[DistillSample], where: Path | None = None
) -> dict[str, Any]:
    """`seed.model.batching.build_batch` of the samples, checked against the stored response token ids.

    ``where`` names the targets folder in the error when a rebuilt sample differs from what the
    teacher saw (another processor or tokenizer than the one used by stage `purify`).
    """
    import torch

    from seed.files.samples import IMAGES
    from seed.model.batching import build_batch
    from seed.model.generate import open_image
    from seed.model.teacher import response_token_ids

    images: dict[str, Any] = {}
    for s in samples:
        if s.image not in images:
            images[s.image] = open_image(data_dir / IMAGES / s.image)
    batch = build_batch(
        processor,
        [images[s.image] for s in samples],
        [s.prompt for s in samples],
        [s.response for s in samples],
    )
    for s, ids in zip(samples, response_token_ids(batch["labels"]), strict=True):
        if s.response_ids is not None and not torch.equal(ids, s.response_ids.to(ids.dtype)):
            raise DataError(
                where or data_dir,
                f"sample {s.sample_id}: the rebuilt response tokens differ from those the teacher saw "
                "(is this the model and processor that stage purify used?)",
                field="extra.response_ids",
            )
    return batch


def student_logits(peft_model: Any, batch: dict[str, Any], dtype: torch.dtype | None = None) -> torch.Tensor:
    """Student logits (tokens, vocab) at the response positions, adapter on, with gradients.

    ``batch`` comes from `seed.model.batching.build_batch` (labels define the positions); only these
    positions are projected onto the vocabulary.
    """
    from seed.model.teacher import response_positions

    positions = response_positions(batch["labels"])
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    if dtype is not None and "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    logits = peft_model(**inputs, use_cache=False, logits_to_keep=positions).logits
    return logits[positions] if logits.dim() == 3 else logits


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


def _online_samples(
    model: Any, processor: Any, data_dir: Path, config: PurifyConfig, progress: bool, procs: Processes
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


def counted_tokens(log_probs: torch.Tensor) -> int:
    """Tokens that carry loss: those whose target has at least one real slot (see `seed.core.losses`)."""
    return int(log_probs.isfinite().any(dim=-1).sum())


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
    config: DistillConfig,
    purify_config: PurifyConfig | None = None,
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
    one process: ``loss_r * n_r * N / n`` (``n_r`` tokens here, ``n`` in the global batch). The logged
    loss is the global token mean. Same batches, same schedule, same steps as one process.

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

    purify_config = purify_config or PurifyConfig()
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
                logits = student_logits(student, batch, peft_model.dtype)
                mask = torch.ones(indices.shape[:2], dtype=torch.bool, device=logits.device)
                loss = distillation_loss(
                    config.loss,
                    logits.unsqueeze(0),
                    indices.to(logits.device),
                    log_probs.to(logits.device),
                    mask,
                )
                if procs.distributed:
                    n_local = counted_tokens(log_probs) if counts else 0
                    tokens = int(indices.shape[1]) if counts else 0
                    parts = procs.gather((n_local, float(loss.detach()) * n_local, tokens))
                    n_global = max(1, sum(p[0] for p in parts))
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


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move the finished folder ``tmp`` to ``out_dir``, replacing an earlier one."""
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def checkpoint_path(out_dir: str | Path) -> Path:
    """Where stage distill keeps its training checkpoints: ``.<out name>.checkpoints`` beside ``out_dir``.

    Outside ``out_dir`` because ``dvc repro`` deletes a stage's outputs before running it; removed
    when the run finishes.
    """
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.checkpoints"


def checkpoint_key(
    model_hash: str,
    samples: Sequence[DistillSample],
    config: DistillConfig,
    targets: list[str] | None,
    purify_config: PurifyConfig | None,
) -> dict[str, Any]:
    """What a checkpoint must share with the run that resumes from it.

    The model's content hash, a sha256 over the samples (id, image, prompt, response), the targets'
    shard hashes (offline) or the purify settings (online), and every distill setting except
    ``checkpoint_every`` and ``gradient_checkpointing`` (neither changes the steps: a run that ran out
    of memory can resume with checkpointing on). The number of processes is added by `train_adapter`.
    """
    import hashlib

    digest = hashlib.sha256()
    for s in samples:
        digest.update("\0".join((s.sample_id, s.image, s.prompt, s.response)).encode() + b"\n")
    settings = dataclasses.asdict(config)
    settings.pop("checkpoint_every")
    settings.pop("gradient_checkpointing")
    return {
        "model_hash": model_hash,
        "samples": digest.hexdigest(),
        "targets": targets,
        "purify_config": None if purify_config is None else dataclasses.asdict(purify_config),
        "config": settings,
    }


def distill(
    model_path: str | Path,
    data_dir: str | Path,
    targets_dir: str | Path | None,
    out_dir: str | Path,
    config: DistillConfig | None = None,
    progress: bool = True,
    purify_config: PurifyConfig | None = None,
    checkpoint_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Stage `distill`: train a LoRA adapter on the purified targets and save it into ``out_dir``.

    Args:
        model_path: the checkpoint stage `purify` used (its content hash must match the targets').
        data_dir: the world (or data) folder; images are read from ``images/seed/``.
        targets_dir: the targets folder of stage `purify`; ignored (may be None) when ``config.online``.
        out_dir: written atomically: the PEFT adapter (``adapter_config.json``,
            ``adapter_model.safetensors``), ``losses.json`` (per-step loss) and ``summary.json``.
        config: `DistillConfig`.
        purify_config: contrast settings for online mode (defaults to `PurifyConfig()`).
        checkpoint_dir: training checkpoints (default `checkpoint_path` of ``out_dir``), written every
            ``config.checkpoint_every`` steps and resumed from; deleted once ``out_dir`` is written.

    Launched in N processes (`seed.model.parallel`) it trains data-parallel (see `train_adapter`); rank 0
    writes ``out_dir`` and the checkpoints, and every process returns the same summary.

    Returns:
        The summary: steps, mean loss over the first and last 10% of steps, seconds, trainable
        parameters, sample and token counts, processes, the step resumed from, and every config value.
    """
    import torch

    from seed.files.hashing import model_hash
    from seed.files.targets import read_manifest
    from seed.model.adapter import attach_adapter, save_adapter
    from seed.model.generate import load_pretrained
    from seed.model.parallel import current_processes

    config = config or DistillConfig()
    purify_config = purify_config or PurifyConfig()
    procs = current_processes(config.device)
    start_time = time.perf_counter()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else checkpoint_path(out_dir)
    targets_path = None if config.online or targets_dir is None else Path(targets_dir)
    if not config.online and targets_path is None:
        raise ConfigError(f"{SECTION}: a targets folder is needed unless {SECTION}.online is true")

    meta: dict[str, Any] = {}
    samples: list[DistillSample] = []
    model_digest: str | None = None
    if targets_path is not None:
        samples, meta = load_targets(targets_path)
        expected = meta.get("model_hash")
        if expected is not None:
            model_digest = model_hash(model_path)
            if expected != model_digest:
                raise DataError(
                    targets_path / "manifest.json",
                    f"the targets were built by another model than {model_path}; rerun stage purify",
                    field="meta.model_hash",
                )

    model, processor = load_pretrained(model_path, config.dtype, procs.device(config.device))
    if config.online:
        samples = _online_samples(model, processor, data_dir, purify_config, progress, procs)
    if not samples:
        raise DataError(targets_path or data_dir, "no samples to distil (every response was empty?)")
    key = None
    if config.checkpoint_every:
        shards = (
            None if targets_path is None else [e.sha256 for e in read_manifest(targets_path, False).shards]
        )
        online = purify_config if config.online else None
        key = checkpoint_key(model_digest or model_hash(model_path), samples, config, shards, online)
    torch.manual_seed(config.seed)
    peft_model = attach_adapter(model, config.adapter)
    losses, tokens_seen, resumed = train_adapter(
        peft_model,
        processor,
        data_dir,
        samples,
        config,
        purify_config,
        targets_path,
        progress,
        checkpoint_dir=checkpoint_dir if key is not None else None,
        run_key=key,
    )
    trainable = [p for p in peft_model.parameters() if p.requires_grad]

    tenth = max(1, math.ceil(len(losses) / 10))
    summary = {
        "stage": SECTION,
        "model": str(model_path),
        "targets": None if targets_path is None else str(targets_path),
        "online": config.online,
        "loss": config.loss,
        "steps": len(losses),
        "epochs": config.epochs,
        "samples": len(samples),
        "tokens_seen": tokens_seen,
        "loss_first": sum(losses[:tenth]) / tenth,
        "loss_last": sum(losses[-tenth:]) / tenth,
        "trainable_params": sum(p.numel() for p in trainable),
        "total_params": sum(p.numel() for p in peft_model.parameters()),
        "processes": procs.world_size,
        "resumed_from_step": resumed,
        "seconds": round(time.perf_counter() - start_time, 3),
        "config": dataclasses.asdict(config),
        "targets_meta": {k: meta[k] for k in ("model_hash", "data_hash", "config") if k in meta},
    }
    if config.online:
        summary["purify_config"] = dataclasses.asdict(purify_config)

    if procs.is_main:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            save_adapter(peft_model, tmp)
            _write_json(tmp / LOSSES_NAME, losses)
            _write_json(
                tmp / SUMMARY_NAME, {k: v for k, v in summary.items() if k != "seconds"}
            )  # stable bytes
            _replace_dir(tmp, out_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the run is done: nothing to resume
    procs.barrier()  # the adapter is on disk before any process returns
    return summary


def merge_and_save(
    model_path: str | Path,
    adapter_dir: str | Path,
    out_dir: str | Path,
    dtype: str = "auto",
    device: str = "cpu",
) -> Path:
    """Merge a saved adapter into its base model and write model + processor into ``out_dir``.

    The result is a plain checkpoint (``save_pretrained``, safetensors) that loads through
    ``AutoModelForImageTextToText`` / ``AutoProcessor``: the next round's generator and teacher, and
    the served model (one forward per token). ``dtype="auto"`` keeps the checkpoint's dtype.
    Written atomically (temporary folder, then rename). In an N-process run only rank 0 merges
    and writes; the others wait for it.
    """
    from seed.model.adapter import load_adapter, merge_adapter
    from seed.model.generate import load_pretrained
    from seed.model.parallel import current_processes

    out_dir = Path(out_dir)
    procs = current_processes(device)
    if procs.is_main:
        model, processor = load_pretrained(model_path, dtype, device)
        merged = merge_adapter(load_adapter(model, adapter_dir))
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            merged.save_pretrained(tmp)
            processor.save_pretrained(tmp)
            _replace_dir(tmp, out_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    procs.barrier()
    return out_dir


__all__ = [
    "DistillConfig",
    "DistillSample",
    "TrainResult",
    "checkpoint_path",
    "counted_tokens",
    "distill",
    "enable_gradient_checkpointing",
    "load_targets",
    "local_indices",
    "lr_factor",
    "merge_and_save",
    "checkpoint_key",
    "sample_order",
    "stack_targets",
    "student_batch",
    "student_logits",
    "train_adapter",
]
