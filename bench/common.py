"""What every benchmark section shares: the runtime (device, dtype, size), timing, inputs and models.

Models and data: the default base model (``artifacts/base-model``), its adapter (``artifacts/adapter``),
targets (``artifacts/targets``) and world (``data/``) are used when present. Where one is missing, a
stand-in is built under the run's scratch folder, never trained: a small world
(`seed.world.synth.synthesize`), an untrained model of the default shape, a fresh LoRA adapter.
Timings do not depend on weight values; quality numbers are not measured here.
"""

from __future__ import annotations

import copy
import datetime
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seed.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Runtime:
    """Where and how big: ``device`` (cpu, cuda, cuda:N), ``dtype``, ``quick`` (smaller sizes), paths."""

    device: str = "cpu"
    dtype: str = "float32"
    quick: bool = False
    seed: int = 0
    model: Path = ROOT / "artifacts" / "base-model"
    adapter: Path = ROOT / "artifacts" / "adapter"
    targets: Path = ROOT / "artifacts" / "targets"
    data: Path = ROOT / "data"
    params: Path = ROOT / "params.yaml"
    scratch: Path = Path(tempfile.gettempdir()) / "seed-bench"  # stand-ins and per-run folders

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype {self.dtype!r} is unknown; choose one of {', '.join(DTYPES)}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"--device {self.device!r}: use cpu, cuda or cuda:N")

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)

    def sync(self) -> None:
        """Wait for queued GPU work, so that a timer reads finished work."""
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)


def print_report(report: dict, out: str | Path | None = None) -> None:
    """Print ``report`` as indented JSON and, with ``out``, write the same text there atomically."""
    import json

    from seed.files.atomic import write_json

    print(json.dumps(report, indent=2, default=str))
    if out:
        write_json(out, report)


def timed(rt: Runtime, fn: Callable[[], Any]) -> tuple[float, Any]:
    """``(seconds, result)`` of ``fn()``, with the device synchronised before and after."""
    rt.sync()
    start = time.perf_counter()
    result = fn()
    rt.sync()
    return time.perf_counter() - start, result


def summary(values: list[float]) -> dict[str, float]:
    """Median, min, max and count of repeated measurements."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# ---------------------------------------------------------------------------------------------------
# The machine


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(rt: Runtime) -> dict[str, Any]:
    """Device, library versions, threads, date and git commit of this run."""
    import torch
    import transformers

    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    device = torch.cuda.get_device_name(rt.device) if rt.cuda else cpu_name()
    return {
        "device": rt.device,
        "device_name": device,
        "dtype": rt.dtype,
        "quick": rt.quick,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": commit,
        "git_dirty": bool(dirty) if commit else None,
    }


# ---------------------------------------------------------------------------------------------------
# Data and models (used when present, stand-ins otherwise)


def world(rt: Runtime) -> Path:
    """The world folder: ``rt.data`` when it has the unlabelled split, else a small synthesised one."""
    if (rt.data / "seed" / "instructions.json").is_file() and (rt.data / "chair" / "images.json").is_file():
        return rt.data
    out = rt.scratch / "world"
    if not (out / "world.json").is_file():
        from seed.world.config import WorldConfig
        from seed.world.synth import synthesize

        config = WorldConfig(n_train=8, n_seed=64, n_pope_images=4, n_mme_images=2, n_chair_images=64)
        synthesize(out, config, progress=False)
    return out


def base_model(rt: Runtime) -> Path:
    """The base model folder: ``rt.model`` when present, else an untrained model of the default shape."""
    if (rt.model / "config.json").is_file():
        return rt.model
    out = rt.scratch / "base-model"
    if not (out / "config.json").is_file():
        from seed.base.modeling import ModelConfig, build_model, build_processor, build_tokenizer
        from seed.stages.pretrain import collect_texts

        tokenizer = build_tokenizer(collect_texts(world(rt)))
        config = ModelConfig()
        model = build_model(config, tokenizer, seed=rt.seed)
        model.save_pretrained(out)
        build_processor(tokenizer, config).save_pretrained(out)
    return out


def adapter(rt: Runtime) -> Path:
    """The SEED adapter folder: ``rt.adapter`` when present, else a fresh LoRA adapter of params.yaml's shape.

    A fresh adapter has ``B = 0``; its B weights are filled with small random values so that merging
    changes the weights, as a trained one does (the speed does not depend on the values).
    """
    if (rt.adapter / "adapter_config.json").is_file():
        return rt.adapter
    out = rt.scratch / "adapter"
    if not (out / "adapter_config.json").is_file():
        import torch

        from seed.model.adapter import attach_adapter, save_adapter
        from seed.model.generate import load_model
        from seed.stages import load_stage_config

        distill_config = load_stage_config("distill", rt.params)
        model, _ = load_model(base_model(rt))
        torch.manual_seed(rt.seed)
        peft_model = attach_adapter(model, distill_config.adapter)
        with torch.no_grad():
            for name, parameter in peft_model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0, 0.01)
        save_adapter(peft_model, out)
    return out


def load_processor(rt: Runtime) -> Any:
    from seed.base.tiny import load_processor as load

    return load(base_model(rt))


def build_llava(rt: Runtime, vocab_size: int | None = None, **shape: int) -> Any:
    """An untrained LLaVA of the default model's layout with ``shape`` overrides (`seed.base.modeling.ModelConfig`).

    It reads the default model's processor (same image size, patch size and tokenizer); ``vocab_size``
    widens the embedding and head beyond the tokenizer (ids stay below the tokenizer's size). Built in
    float32 on the CPU with ``rt.seed``, then moved to ``rt.device`` / ``rt.dtype``, in eval mode.
    """
    import torch
    from transformers import LlavaForConditionalGeneration

    from seed.base.modeling import ModelConfig, build_model

    processor = load_processor(rt)
    image = processor.image_processor.crop_size["height"]
    config = ModelConfig(image_size=image, patch_size=processor.patch_size, **shape)
    if vocab_size is None:
        model = build_model(config, processor.tokenizer, seed=rt.seed)
    else:
        small = build_model(
            ModelConfig(image_size=image, patch_size=processor.patch_size, text_layers=1),
            processor.tokenizer,
            seed=rt.seed,
        )
        llava = copy.deepcopy(small.config)
        llava.text_config.vocab_size = vocab_size
        llava.text_config.num_hidden_layers = config.text_layers
        torch.manual_seed(rt.seed)
        model = LlavaForConditionalGeneration(llava)
        model.generation_config = small.generation_config
    return model.to(device=rt.device, dtype=rt.torch_dtype).eval()


def save_llava(rt: Runtime, out: Path, **shape: int) -> Path:
    """`build_llava` written with the default processor into ``out`` (a checkpoint folder for the stages)."""
    if not (out / "config.json").is_file():
        model = build_llava(Runtime(seed=rt.seed, model=rt.model, data=rt.data, scratch=rt.scratch), **shape)
        model.save_pretrained(out)
        load_processor(rt).save_pretrained(out)
    return out


def parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class TeacherSample:
    """One (image, prompt, response) triple of the unlabelled split, as stage purify teaches it."""

    sample_id: str
    image: str
    prompt: str
    response: str


def teacher_samples(rt: Runtime, count: int) -> list[TeacherSample]:
    """The first ``count`` samples with their responses: from the targets sidecars, else generated greedily."""
    import json

    samples: list[TeacherSample] = []
    sidecars = sorted(rt.targets.glob("shard-*.samples.json")) if rt.targets.is_dir() else []
    for sidecar in sidecars if world(rt) == rt.data else []:  # their images live in rt.data
        for s in json.loads(sidecar.read_text())["samples"]:
            samples.append(TeacherSample(s["id"], s["image"], s["prompt"], s["response"]))
        if len(samples) >= count:
            return samples[:count]
    from seed.files.samples import image_path, load_samples
    from seed.model.generate import answer_batch, load_model, open_image, usable_response

    data = world(rt)
    model, processor = load_model(base_model(rt), dtype=rt.dtype, device=rt.device)
    pending = load_samples(data, 0)
    samples = []
    for start in range(0, len(pending), 32):
        chunk = pending[start : start + 32]
        images = [open_image(image_path(data, s)) for s in chunk]
        answers = answer_batch(model, processor, images, [s.prompt for s in chunk], max_new_tokens=24)
        for s, answer in zip(chunk, answers, strict=True):
            if usable_response(processor, answer.strip()):
                samples.append(TeacherSample(s.sample_id, s.image, s.prompt, answer.strip()))
        if len(samples) >= count:
            break
    if len(samples) < count:
        raise ConfigError(f"only {len(samples)} usable samples in {data} (asked for {count})")
    return samples[:count]
