"""Hallucination Elimination Adapter: LoRA (peft) on the language model of a vision-language model.

```
            image --> vision tower --> projector --+            (frozen, never targeted)
                                                   v
 prompt + response --> embeddings --> [decoder layer: q k v o | gate up down] x L --> lm_head
                                                   ^ W x + (alpha / r) * B A x      (frozen)
                                                     A, B: the only trainable weights
```

``bias="none"`` and ``B = 0`` at init make the student equal to the base model until its first
step, and ``disable_adapter()`` gives the base model back exactly at any time: the teacher is the
same weights with the adapter off, one copy in memory. For serving, the adapter is merged into the
base weights, so the model costs one plain forward per token.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seed.errors import ConfigError, SeedError
from seed.params import check_range

SECTION = "distill.adapter"  # where params.yaml holds these settings

# Submodule names of vision towers and multimodal projectors across transformers VLMs; a Linear
# layer under one of them is never a LoRA target, even if the language model's prefix covers it.
_VISION_PARTS = re.compile(
    r"(^|\.)(vision_tower|vision_model|visual|vision|image_encoder|multi_modal_projector|mm_projector|"
    r"projector|merger|connector|resampler|vpm|aligner)(\.|$)"
)


@dataclass
class AdapterConfig:
    """LoRA settings (params.yaml section ``adapter``).

    ``target_modules`` is ``"auto"`` (every Linear layer of the language model, see
    `find_lora_targets`), a list of module names (exact full names or name suffixes, as peft matches
    them), or one regular expression that must match a full module name.
    """

    lora_r: int = 16
    lora_alpha: float = 32
    lora_dropout: float = 0.0
    target_modules: str | list[str] = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.lora_r, bool) or not isinstance(self.lora_r, int):
            raise ConfigError(f"{SECTION}.lora_r = {self.lora_r!r} must be a positive integer")
        check_range(SECTION, "lora_r", self.lora_r, lo=1)
        if isinstance(self.lora_alpha, bool) or not isinstance(self.lora_alpha, int | float):
            raise ConfigError(f"{SECTION}.lora_alpha = {self.lora_alpha!r} must be a positive number")
        check_range(SECTION, "lora_alpha", self.lora_alpha, lo=0, lo_open=True)
        if isinstance(self.lora_dropout, bool) or not isinstance(self.lora_dropout, int | float):
            raise ConfigError(f"{SECTION}.lora_dropout = {self.lora_dropout!r} must be a number in [0, 1)")
        check_range(SECTION, "lora_dropout", self.lora_dropout, lo=0, hi=1, hi_open=True)
        self.target_modules = _check_targets(self.target_modules)


def _check_targets(value: Any) -> str | list[str]:
    where = f"{SECTION}.target_modules"
    if isinstance(value, str):
        if not value.strip():
            raise ConfigError(f"{where} is empty; use 'auto', a list of module names or a regex")
        if value != "auto":
            try:
                re.compile(value)
            except re.error as exc:
                raise ConfigError(f"{where} = {value!r} is not a valid regular expression: {exc}") from exc
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) and v.strip() for v in value):
        return list(value)
    raise ConfigError(f"{where} = {value!r} must be 'auto', a non-empty list of module names or a regex")


def _language_model_prefix(model: Any) -> str:
    """Dotted name of the module that owns the input embeddings: the decoder of the language model."""
    embeddings = model.get_input_embeddings()
    for name, module in model.named_modules():
        if module is embeddings:
            return name.rpartition(".")[0]
    raise SeedError(f"{type(model).__name__}: cannot find its input embeddings among its modules")


def find_lora_targets(model: Any) -> list[str]:
    """Full names of the language model's Linear layers (attention and MLP projections).

    The language model is the module that owns the input embeddings (``model.language_model`` in
    transformers 5 VLMs); every ``nn.Linear`` under it is a target. The vision tower, the multimodal
    projector and ``lm_head`` lie outside it and are left out; a name under a known vision or
    projector submodule is dropped even inside it. A layer that an adapter already wraps counts as
    the layer itself (not its ``base_layer`` or LoRA parts). The names match exactly in
    ``LoraConfig(target_modules=...)`` (peft compares the full name or a ``.``-suffix).
    """
    import torch

    prefix = _language_model_prefix(model)
    head = model.get_output_embeddings()
    targets: list[str] = []
    wrapped: list[str] = []  # layers a tuner already wraps (base_layer + lora_A/B inside): count once
    for name, module in model.named_modules():
        if any(name.startswith(w + ".") for w in wrapped):
            continue
        if hasattr(module, "base_layer"):
            wrapped.append(name)
            module = module.get_base_layer()
        if (
            isinstance(module, torch.nn.Linear)
            and (not prefix or name.startswith(prefix + "."))
            and module is not head
            and not _VISION_PARTS.search(name[len(prefix) :])
        ):
            targets.append(name)
    if not targets:
        raise SeedError(
            f"{type(model).__name__}: no Linear layer found in its language model ({prefix or 'root'}); "
            f"set {SECTION}.target_modules to the projection names explicitly"
        )
    return targets


def attach_adapter(model: Any, config: AdapterConfig | None = None) -> Any:
    """Wrap ``model`` in a fresh LoRA `peft.PeftModel`: only the LoRA A/B weights train.

    ``bias="none"``; every base weight, vision tower and projector included, has
    ``requires_grad=False``. The base model's modules are changed in place (LoRA layers wrap its
    Linear layers), as peft does.
    """
    from peft import LoraConfig, get_peft_model

    config = config or AdapterConfig()
    targets = find_lora_targets(model) if config.target_modules == "auto" else config.target_modules
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return get_peft_model(model, lora)


@contextmanager
def _eval_mode(module: Any):
    """Put every submodule in eval mode; restore each one's own train/eval flag on exit."""
    modes = [(sub, sub.training) for sub in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for sub, training in modes:
            sub.training = training


def teacher_logits(peft_model: Any, **inputs: Any) -> Any:
    """Logits (batch, seq, vocab) of the base model: adapter disabled, eval mode, no gradient.

    ``inputs`` are the model inputs (`seed.model.batching.build_batch` output; ``labels`` are ignored).
    The train/eval mode of every submodule is restored afterwards.
    """
    import torch

    inputs = {key: value for key, value in inputs.items() if key != "labels"}
    inputs.setdefault("use_cache", False)  # a teacher pass needs no key/value cache
    with _eval_mode(peft_model), torch.no_grad(), peft_model.disable_adapter():
        return peft_model(**inputs).logits


def merge_adapter(peft_model: Any) -> Any:
    """Fold the LoRA weights into the base weights and return the plain base model (no LoRA left).

    The base model's Linear weights are changed in place; the PeftModel must not be used afterwards.
    """
    return peft_model.merge_and_unload()


def save_adapter(peft_model: Any, out_dir: str | Path) -> Path:
    """Write the adapter in standard PEFT format (adapter_config.json + adapter_model.safetensors)."""
    out_dir = Path(out_dir)
    peft_model.save_pretrained(out_dir, safe_serialization=True)
    # peft keeps target_modules as a set and writes it in hash order, which changes between
    # processes; sorted, the same adapter gives the same bytes (and DVC hash) on every run
    config_path = out_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out_dir


def load_adapter(model: Any, adapter_dir: str | Path, trainable: bool = False) -> Any:
    """Attach a saved adapter to ``model`` (the same base weights it was trained on)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)


def lora_module_names(model: Any) -> list[str]:
    """Names of the modules that carry LoRA weights (peft ``LoraLayer``s) in ``model``."""
    from peft.tuners.lora import LoraLayer

    return [name for name, module in model.named_modules() if isinstance(module, LoraLayer)]


__all__ = [
    "AdapterConfig",
    "attach_adapter",
    "find_lora_targets",
    "load_adapter",
    "lora_module_names",
    "merge_adapter",
    "save_adapter",
    "teacher_logits",
]
