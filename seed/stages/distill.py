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
(`seed.model.trainer.enable_gradient_checkpointing`): the same loss and gradients, less memory, a
slower step.

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
from typing import TYPE_CHECKING, Any

from seed.core.losses import LOSS_KINDS
from seed.errors import ConfigError, DataError
from seed.files.adapter_card import write_adapter_card
from seed.files.atomic import write_json as _write_json
from seed.files.hashing import content_hash
from seed.model.adapter import AdapterConfig
from seed.model.student import DistillSample, answer_balanced, load_targets
from seed.model.trainer import online_samples, train_adapter
from seed.params import check_choice, check_integer, check_number, check_runtime
from seed.stages.purify import PurifyConfig

if TYPE_CHECKING:
    from seed.stages import StagePaths

SECTION = "distill"
BALANCES = ("none", "answer")
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
    in the backward pass instead of storing them (`seed.model.trainer.enable_gradient_checkpointing`;
    same loss and gradients, less activation memory, a slower step; off by default). adapter: LoRA settings
    (`seed.model.adapter.AdapterConfig`; a mapping from YAML is accepted). balance: ``none`` (default) or
    ``answer``: the loss weighs samples whose target answers "yes" and "no" equally (`seed.core.balance`).
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
    balance: str = "none"

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
        check_choice(SECTION, "balance", self.balance, BALANCES)
        if self.online and self.balance != "none":  # the answers are read from stored targets
            raise ConfigError(
                f"{SECTION}.balance = {self.balance!r} needs stored targets; use none with online"
            )
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
            self.adapter = AdapterConfig(**self.adapter)  # its errors name distill.adapter.<field>
        elif not isinstance(self.adapter, AdapterConfig):
            raise ConfigError(f"{SECTION}.adapter = {self.adapter!r} must be a mapping of LoRA settings")


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
        parameters, sample and token counts, processes, the step resumed from, every config value, and
        the answer balance (`seed.model.student.answer_balanced`'s summary; None without it).
    """
    import torch

    from seed.files.hashing import model_hash
    from seed.files.manifest import read_manifest
    from seed.model.adapter import attach_adapter, save_adapter
    from seed.model.generate import load_pretrained
    from seed.model.parallel import current_processes

    config = config or DistillConfig()
    purify_config = purify_config or PurifyConfig()
    if config.online and purify_config.centre != "none":
        raise ConfigError(
            f"{SECTION}.online computes uncentred targets, but purify.centre is "
            f"{purify_config.centre!r}; set purify.centre: none or {SECTION}.online: false"
        )
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
    balance = None
    if config.balance == "answer":
        samples, balance = answer_balanced(samples, processor)
    if config.online:
        samples = online_samples(model, processor, data_dir, purify_config, progress, procs)
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
        "targets_hash": content_hash(targets_path) if targets_path is not None else None,
        "balance": balance,
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
            run_only = ("seconds", "processes", "resumed_from_step")  # how the run went: not written
            _write_json(tmp / SUMMARY_NAME, {k: v for k, v in summary.items() if k not in run_only})
            write_adapter_card(tmp)  # replaces peft's empty template
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


def run(paths: StagePaths, config: DistillConfig, progress: bool = False) -> dict:
    """Distil ``paths.targets`` into an adapter on ``paths.model``, then the merged model for serving."""
    summary = distill(paths.model, paths.data, paths.targets, paths.adapter, config, progress=progress)
    merge_and_save(paths.model, paths.adapter, paths.seed_model)
    return summary
