"""Stage `purify`: the frozen model answers the unlabelled split and becomes its own teacher.

For every human turn of ``data_dir/seed/instructions.json`` (one single-turn sample per turn):

```
 image, instruction --greedy decoding--> response                     (the model's own answer)
 [prompt | response] with the clean image  --+
                                             +--> one forward of 2B --> l_t, n_t on response tokens
 [prompt | response] with the noised image --+        (logits at t predict the token at t + 1)
 purify_logits(l_t, n_t) --> sparsify_targets(top_k) --> shard-NNNNN.safetensors + .samples.json
```

No answer is read anywhere: only images and instructions. The teacher here is the checkpoint itself,
loaded without adapter, in eval mode under ``no_grad``. That is the same function as
`seed.model.adapter.teacher_logits` on the freshly adapted model of stage `distill` (``bias="none"``,
adapter disabled), so targets written here equal the ones the distill stage would compute online.

Each shard covers a fixed slice of ``shard_size`` samples (in file order) and has a sidecar
``shard-NNNNN.samples.json`` with the samples' ids, images, prompts and response texts (what
`seed.distill` needs to rebuild the exact student inputs), the run key (model hash, data hash, every
config value) and the shard's sha256. A rerun into the same folder reuses every shard whose sidecar
has the same run key and whose bytes still match: an interrupted (even SIGKILLed) run resumes where
it stopped, since every file is written atomically (temporary file, then rename).

Launched in N processes (`seed.model.parallel`), shard ``i`` is computed by process ``i % N`` and rank 0
writes the manifest once all have finished: the folder is byte for byte that of one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seed.core.identify import CONFIDENCE_METHODS
from seed.errors import ConfigError, DataError, SeedError
from seed.files.conversation import IMAGE_PLACEHOLDER, load_conversations
from seed.files.inputs import read_json
from seed.params import check_range

if TYPE_CHECKING:
    import torch

    from seed.core.purify import SparseTargets

SECTION = "purify"
DTYPES = ("float32", "bfloat16", "float16")
_DEVICE_RE = re.compile(r"^(cpu|cuda|mps|xpu|npu|hpu)(:\d+)?$")
SHARD_PATTERN = "shard-{:05d}.safetensors"
SAMPLES_SUFFIX = ".samples.json"
SAMPLES_FORMAT = "seed-targets-samples"
INSTRUCTIONS = Path("seed") / "instructions.json"
IMAGES = Path("images") / "seed"


# ---------------------------------------------------------------------------------------------------
# Config


def check_integer(section: str, name: str, value: Any, lo: int | None = None, hi: int | None = None) -> None:
    """Raise ConfigError naming ``section.name`` unless ``value`` is an int (not a bool) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{section}.{name} = {value!r} must be an integer")
    check_range(section, name, value, lo=lo, hi=hi)


def check_number(section: str, name: str, value: Any, **bounds: Any) -> None:
    """Raise ConfigError naming ``section.name`` unless ``value`` is a number within ``bounds``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{section}.{name} = {value!r} must be a number")
    check_range(section, name, value, **bounds)


def check_choice(section: str, name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise ConfigError naming ``section.name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{section}.{name} = {value!r} is unknown; choose one of {', '.join(choices)}")


def check_runtime(section: str, dtype: Any, device: Any) -> None:
    """``dtype`` one of `DTYPES`; ``device`` a torch device string such as ``cpu``, ``cuda`` or ``cuda:1``."""
    check_choice(section, "dtype", dtype, DTYPES)
    if not isinstance(device, str) or not _DEVICE_RE.match(device):
        raise ConfigError(f"{section}.device = {device!r} must be a device such as 'cpu', 'cuda' or 'cuda:0'")


@dataclass
class PurifyConfig:
    """Settings of stage `purify` (params.yaml section ``purify``).

    noise_step: diffusion step ``T`` of the noised image (0..999). cd_alpha / cd_beta: contrast
    strength ``alpha`` and plausibility cut-off ``beta``. adaptive: ``a_t = alpha * (1 - c_t)`` (True)
    or plain VCD ``a_t = alpha``. confidence: ``max_prob`` or ``entropy``. flag_tau: tokens with
    ``c_t < flag_tau`` count as flagged in the report. top_k: stored tokens per target.
    batch_size: samples per generation batch and per teacher batch (the teacher forward holds 2x).
    max_new_tokens: response length cap. shard_size: samples per shard. max_samples: 0 = all.
    seed: base seed of the per-sample noise. dtype / device: where the model runs.
    contrast_dir: "" (default) contrasts with the noised image. A folder instead holds, under each
    SEED image's file name, the image to contrast with: the positive control `seed_oracle` puts the
    same scene rendered without its objects there (`seed data oracle`).
    """

    noise_step: int = 500
    cd_alpha: float = 1.0
    cd_beta: float = 0.1
    adaptive: bool = True
    confidence: str = "max_prob"
    flag_tau: float = 0.5
    top_k: int = 32
    batch_size: int = 16
    max_new_tokens: int = 48
    shard_size: int = 256
    max_samples: int = 0
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"
    contrast_dir: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.contrast_dir, str):
            raise ConfigError(f"{SECTION}.contrast_dir = {self.contrast_dir!r} must be a folder path or ''")
        check_integer(SECTION, "noise_step", self.noise_step, lo=0, hi=999)
        check_number(SECTION, "cd_alpha", self.cd_alpha, lo=0)
        check_number(SECTION, "cd_beta", self.cd_beta, lo=0, hi=1)
        if not isinstance(self.adaptive, bool):
            raise ConfigError(f"{SECTION}.adaptive = {self.adaptive!r} must be true or false")
        check_choice(SECTION, "confidence", self.confidence, CONFIDENCE_METHODS)
        check_number(SECTION, "flag_tau", self.flag_tau, lo=0, hi=1)
        check_integer(SECTION, "top_k", self.top_k, lo=1)
        check_integer(SECTION, "batch_size", self.batch_size, lo=1)
        check_integer(SECTION, "max_new_tokens", self.max_new_tokens, lo=1)
        check_integer(SECTION, "shard_size", self.shard_size, lo=1)
        check_integer(SECTION, "max_samples", self.max_samples, lo=0)
        check_integer(SECTION, "seed", self.seed, lo=0)
        check_runtime(SECTION, self.dtype, self.device)


# ---------------------------------------------------------------------------------------------------
# Samples and models


@dataclass(frozen=True)
class Sample:
    """One unlabelled (image, instruction) pair: ``sample_id`` is ``"<record id>:<turn index>"``."""

    sample_id: str
    image: str
    prompt: str


def load_samples(data_dir: str | Path, max_samples: int = 0) -> list[Sample]:
    """Every human turn of ``data_dir/seed/instructions.json`` as a single-turn sample, in file order.

    The ``<image>`` placeholder is removed from the text (the chat template places the image). Only
    this file is read: it holds no answers, and no other split is opened.
    """
    path = Path(data_dir) / INSTRUCTIONS
    records = load_conversations(path, require_answers=False)
    samples: list[Sample] = []
    seen: set[str] = set()
    for row, record in enumerate(records):
        for turn_index, turn in enumerate(record["conversations"]):
            sample_id = f"{record['id']}:{turn_index}"
            if sample_id in seen:
                raise DataError(path, f"duplicate record id {record['id']!r}", field="id", row=row)
            seen.add(sample_id)
            prompt = turn["value"].replace(IMAGE_PLACEHOLDER, "").strip()
            samples.append(Sample(sample_id, str(record["image"]), prompt))
    return samples[:max_samples] if max_samples else samples


def image_path(data_dir: str | Path, sample: Sample) -> Path:
    """Where a sample's image lies: ``data_dir/images/seed/<image>``."""
    return Path(data_dir) / IMAGES / sample.image


def load_pretrained(model_path: str | Path, dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """``(model, processor)`` of a checkpoint, model in eval mode on ``device``; no adapter."""
    from seed.model.generate import load_model

    return load_model(model_path, dtype=dtype, device=device)


def model_hash(model_path: str | Path) -> str:
    """Content hash of a model folder (a hub id resolves to its local snapshot when one is cached)."""
    from seed.files.targets import content_hash

    local = Path(model_path)
    if not local.exists():
        try:
            from huggingface_hub import snapshot_download

            local = Path(snapshot_download(str(model_path), local_files_only=True))
        except Exception as exc:  # not cached: name the id, as the loader would
            raise DataError(model_path, f"model not found locally: {exc}") from exc
    return content_hash(local)


def data_hash(data_dir: str | Path) -> str:
    """sha256 over what stage `purify` reads: ``seed/instructions.json`` and ``images/seed/``."""
    from seed.files.targets import content_hash

    data_dir = Path(data_dir)
    parts = [f"{INSTRUCTIONS.as_posix()}\0{content_hash(data_dir / INSTRUCTIONS)}"]
    if (data_dir / IMAGES).is_dir():
        parts.append(f"{IMAGES.as_posix()}\0{content_hash(data_dir / IMAGES)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def image_token_ids(processor: Any) -> set[int]:
    """The processor's image placeholder ids (image token, and begin/end-of-image ones where it has them)."""
    ids = getattr(processor, "image_token_ids", None) or [getattr(processor, "image_token_id", None)]
    return {int(i) for i in ids if i is not None}


def usable_response(processor: Any, response: str) -> bool:
    """False for an empty response or one whose text tokenises to an image placeholder token."""
    if not response:
        return False
    ids = set(processor.tokenizer(response, add_special_tokens=False)["input_ids"])
    return not ids & image_token_ids(processor)


# ---------------------------------------------------------------------------------------------------
# The teacher pass (pure functions of a batch)


def response_positions(labels: torch.Tensor) -> torch.Tensor:
    """Positions whose logits predict a response token: ``mask[:, t] = labels[:, t + 1] != -100``.

    Args:
        labels: (batch, seq) labels from `seed.model.batching.build_batch` (-100 on prompt, image, padding).

    Returns:
        (batch, seq) bool; the last column is always False. ``logits[mask]`` (tokens, vocab) lines up
        with ``labels[:, 1:][mask[:, :-1]]``, the response token ids, sample after sample.
    """
    import torch

    from seed.model.batching import IGNORE_INDEX

    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return mask


def response_token_ids(labels: torch.Tensor) -> list[torch.Tensor]:
    """Per sample, the (n_i,) response token ids that the response positions predict."""
    mask = response_positions(labels)
    return [labels[i, 1:][mask[i, :-1]] for i in range(labels.shape[0])]


def _pixel_rows(batch: dict[str, Any], image_ids: set[int]) -> list[int]:
    """How many rows of ``pixel_values`` belong to each sample (one image per sample).

    LLaVA: one row per image; Qwen2-VL: ``prod(image_grid_thw)`` flattened patches per image;
    InternVL (tiles): rows in proportion to the sample's image tokens.
    """
    pixels = batch["pixel_values"]
    n = batch["input_ids"].shape[0]
    if "image_grid_thw" in batch:
        return [int(r) for r in batch["image_grid_thw"].prod(dim=-1).tolist()]
    if pixels.shape[0] == n:
        return [1] * n
    ids = batch["input_ids"]
    counts = sum((ids == i).sum(dim=1) for i in image_ids).tolist()
    total = sum(counts)
    rows = [c * pixels.shape[0] // total for c in counts] if total else []
    if not total or sum(rows) != pixels.shape[0] or any(c * pixels.shape[0] % total for c in counts):
        raise ValueError(
            f"cannot split pixel_values {tuple(pixels.shape)} over {n} samples with image tokens {counts}"
        )
    return rows


def noise_pixels(
    batch: dict[str, Any], sample_ids: Sequence[str], noise_step: int, seed: int, image_ids: set[int]
) -> torch.Tensor:
    """The batch's ``pixel_values`` noised sample by sample (`seed.core.noise.add_diffusion_noise`).

    Sample ``i``'s rows get noise drawn from ``sample_seed(sample_ids[i], seed)``, so its noised
    image is the same in any batch. Any processor layout works: (images, C, H, W), Qwen2-VL's
    flattened patches (its temporal copies get independent noise), InternVL tiles.
    """
    import torch

    from seed.core.noise import add_diffusion_noise, sample_seed

    pixels = batch["pixel_values"]
    parts = torch.split(pixels, _pixel_rows(batch, image_ids))
    if len(parts) != len(sample_ids):
        raise ValueError(f"{len(parts)} images for {len(sample_ids)} sample ids")
    noised = [
        add_diffusion_noise(part.unsqueeze(0), noise_step, seeds=[sample_seed(sid, seed)]).squeeze(0)
        for part, sid in zip(parts, sample_ids, strict=True)
    ]
    return torch.cat(noised)


def contrast_batch(batch: dict[str, Any], noised_pixels: torch.Tensor) -> dict[str, Any]:
    """One batch of 2B: the B samples with clean pixels, then the same B with ``noised_pixels``.

    Every tensor input is repeated along its first dimension (per-sample and per-image inputs alike:
    one image per sample); ``pixel_values`` becomes ``[clean; noised]``; ``labels`` are dropped.
    """
    import torch

    doubled: dict[str, Any] = {}
    for key, value in batch.items():
        if key == "labels":
            continue
        if key == "pixel_values":
            doubled[key] = torch.cat([value, noised_pixels.to(value.dtype)])
        elif isinstance(value, torch.Tensor):
            doubled[key] = torch.cat([value, value])
        else:
            doubled[key] = value
    return doubled


@dataclass(frozen=True)
class SampleTargets:
    """One sample's purified targets: (n, k) sparse targets, (n,) confidence, (n,) response token ids."""

    targets: SparseTargets
    confidence: torch.Tensor
    response_ids: torch.Tensor


def plain_logits(model: Any, **inputs: Any) -> torch.Tensor:
    """Logits of a model without adapter, under ``no_grad`` (the model is already in eval mode)."""
    import torch

    inputs = {key: value for key, value in inputs.items() if key != "labels"}
    inputs.setdefault("use_cache", False)
    with torch.no_grad():
        return model(**inputs).logits


def teacher_targets(
    forward: Callable[..., torch.Tensor],
    batch: dict[str, Any],
    sample_ids: Sequence[str],
    config: PurifyConfig,
    image_ids: set[int],
    dtype: torch.dtype | None = None,
    contrast_pixels: torch.Tensor | None = None,
) -> list[SampleTargets]:
    """Purified sparse targets of one training batch (`seed.model.batching.build_batch` output, with labels).

    Args:
        forward: ``forward(**inputs) -> logits`` of the teacher: `plain_logits` bound to the model,
            or `seed.model.adapter.teacher_logits` bound to a PEFT model (adapter disabled).
        batch: (batch, seq) inputs and labels on the model's device.
        sample_ids: one id per sample, seeding its image noise.
        config: contrast settings (noise_step, cd_alpha, cd_beta, adaptive, confidence, top_k, seed).
        image_ids: the processor's image placeholder ids (to split tiled pixel inputs).
        dtype: the model's dtype, for the pixel inputs (None keeps the processor's).
        contrast_pixels: pixel inputs of the images to contrast with, laid out as the batch's
            ``pixel_values``; None (default) contrasts with the batch's images noised at
            ``config.noise_step``.

    Returns:
        One `SampleTargets` per sample, on the CPU, in the order of the batch.
    """
    from seed.core.identify import token_confidence
    from seed.core.purify import SparseTargets, purify_logits, sparsify_targets

    labels = batch["labels"]
    positions = response_positions(labels)
    if contrast_pixels is None:
        noised = noise_pixels(batch, sample_ids, config.noise_step, config.seed, image_ids)
    else:
        noised = contrast_pixels
    inputs = contrast_batch(batch, noised)
    if dtype is not None:
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    # Only the response positions are projected onto the vocabulary: (2 * tokens, vocab).
    logits = forward(**inputs, logits_to_keep=positions.repeat(2, 1))
    if logits.dim() == 3:  # a model that ignores logits_to_keep returns every position
        logits = logits[positions.repeat(2, 1)]
    tokens = int(positions.sum())
    clean, noised_logits = logits[:tokens], logits[tokens:]
    target_log_probs, support = purify_logits(
        clean, noised_logits, config.cd_alpha, config.cd_beta, config.confidence, config.adaptive
    )
    sparse = sparsify_targets(target_log_probs, support, config.top_k)
    confidence = token_confidence(clean, config.confidence).float()
    counts = positions.sum(dim=1).tolist()
    ids = response_token_ids(labels)
    out: list[SampleTargets] = []
    start = 0
    for i, count in enumerate(counts):
        span = slice(start, start + count)
        part = sparse[span]
        out.append(
            SampleTargets(
                SparseTargets(part.indices.cpu(), part.log_probs.cpu(), part.tail_mass.cpu()),
                confidence[span].cpu(),
                ids[i].cpu(),
            )
        )
        start += count
    return out


def to_device(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    """Every tensor of ``batch`` on ``device``."""
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------------
# The stage


def shard_name(index: int) -> str:
    return SHARD_PATTERN.format(index)


def sidecar_path(shard_path: Path) -> Path:
    return shard_path.with_name(shard_path.name.removesuffix(".safetensors") + SAMPLES_SUFFIX)


def read_sidecar(shard_path: Path) -> dict[str, Any]:
    """The samples sidecar of a shard (ids, images, prompts, responses, run key)."""
    path = sidecar_path(shard_path)
    if not path.is_file():
        raise DataError(path, "samples sidecar of the shard not found")
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != SAMPLES_FORMAT:
        raise DataError(path, f"expected format {SAMPLES_FORMAT!r}", field="format")
    samples = data.get("samples")
    if not isinstance(samples, list) or not all(
        isinstance(s, dict) and all(isinstance(s.get(k), str) for k in ("id", "image", "prompt", "response"))
        for s in samples
    ):
        raise DataError(path, "must be a list of {id, image, prompt, response}", field="samples")
    return data


def _reusable(shard_path: Path, run: dict[str, Any], first: int, count: int) -> dict[str, Any] | None:
    """The sidecar of a finished shard from the same run (same key, same slice, intact bytes), or None."""
    from seed.files.targets import content_hash

    if not shard_path.is_file():
        return None
    try:
        data = read_sidecar(shard_path)
    except DataError:
        return None
    if data.get("run") != run or data.get("first_sample") != first or data.get("num_candidates") != count:
        return None
    return data if data.get("sha256") == content_hash(shard_path) else None


def _purify_shard(
    model: Any,
    processor: Any,
    data_dir: Path,
    samples: Sequence[Sample],
    config: PurifyConfig,
    bar: Any,
) -> tuple[list[Sample], list[str], list[SampleTargets], list[str]]:
    """Generate, then teach, one shard's samples; returns kept samples, responses, targets, skipped ids."""
    from seed.model.batching import build_batch
    from seed.model.generate import answer_batch, open_image

    images = {s.image: None for s in samples}
    for name in images:
        images[name] = open_image(data_dir / IMAGES / name)
    contrast_images = {}
    if config.contrast_dir:
        contrast_images = {name: open_image(Path(config.contrast_dir) / name) for name in images}
    responses: list[str] = []
    for start in range(0, len(samples), config.batch_size):
        chunk = samples[start : start + config.batch_size]
        answers = answer_batch(
            model,
            processor,
            [images[s.image] for s in chunk],
            [s.prompt for s in chunk],
            config.max_new_tokens,
        )
        responses.extend(a.strip() for a in answers)
        bar.update(len(chunk))
    usable = [usable_response(processor, r) for r in responses]
    kept = [(s, r) for s, r, ok in zip(samples, responses, usable, strict=True) if ok]
    skipped = [s.sample_id for s, ok in zip(samples, usable, strict=True) if not ok]
    image_ids = image_token_ids(processor)
    targets: list[SampleTargets] = []
    for start in range(0, len(kept), config.batch_size):
        chunk = kept[start : start + config.batch_size]
        batch = build_batch(
            processor,
            [images[s.image] for s, _ in chunk],
            [s.prompt for s, _ in chunk],
            [r for _, r in chunk],
        )
        batch = to_device(batch, model.device)
        contrast_pixels = None
        if contrast_images:
            contrast = build_batch(
                processor,
                [contrast_images[s.image] for s, _ in chunk],
                [s.prompt for s, _ in chunk],
                [r for _, r in chunk],
            )
            contrast_pixels = contrast["pixel_values"].to(model.device)
        targets.extend(
            teacher_targets(
                lambda **inputs: plain_logits(model, **inputs),
                batch,
                [s.sample_id for s, _ in chunk],
                config,
                image_ids,
                dtype=model.dtype,
                contrast_pixels=contrast_pixels,
            )
        )
    return [s for s, _ in kept], [r for _, r in kept], targets, skipped


def _write_shard(
    shard_path: Path,
    samples: list[Sample],
    responses: list[str],
    targets: list[SampleTargets],
    skipped: list[str],
    run: dict[str, Any],
    first: int,
    count: int,
    flag_tau: float,
) -> dict[str, Any]:
    """Write the shard, then its sidecar (both atomically); returns the sidecar."""
    import torch

    from seed.files.targets import content_hash, write_atomic, write_shard

    confidence = torch.cat([t.confidence for t in targets]) if targets else torch.zeros(0)
    response_ids = torch.cat([t.response_ids for t in targets]) if targets else torch.zeros(0)
    write_shard(
        shard_path,
        [t.targets for t in targets],
        [s.sample_id for s in samples],
        extra={"confidence": confidence.float(), "response_ids": response_ids.to(torch.int64)},
    )
    sidecar = {
        "format": SAMPLES_FORMAT,
        "shard": shard_path.name,
        "sha256": content_hash(shard_path),
        "run": run,
        "first_sample": first,
        "num_candidates": count,
        "num_tokens": int(confidence.numel()),
        "flagged_tokens": int((confidence < flag_tau).sum()),
        "skipped": skipped,
        "samples": [
            {"id": s.sample_id, "image": s.image, "prompt": s.prompt, "response": r}
            for s, r in zip(samples, responses, strict=True)
        ],
    }
    text = json.dumps(sidecar, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    write_atomic(sidecar_path(shard_path), text.encode())
    return sidecar


def _remove_stale(out_dir: Path, keep: set[str]) -> None:
    """Delete shard files and sidecars that this run does not list, and temporary files of a killed run.

    A write killed half-way leaves only its hidden temporary file (``.shard-*.tmp``, see
    `seed.files.atomic.write_atomic`), never a partial shard; those are removed here, before any process
    of this run starts writing.
    """
    stale = list(out_dir.glob("shard-*.safetensors")) + list(out_dir.glob(f"shard-*{SAMPLES_SUFFIX}"))
    for path in stale:
        if path.name not in keep:
            path.unlink()
    for path in [*out_dir.glob(".shard-*.tmp"), *out_dir.glob(".manifest.json.*.tmp")]:
        path.unlink(missing_ok=True)


def shard_owner(index: int, world_size: int) -> int:
    """The rank that computes shard ``index``: ``index % world_size`` (shards are fixed sample slices)."""
    return index % world_size


def build_targets(
    model_path: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    config: PurifyConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Stage `purify`: write the purified sparse targets of the unlabelled split into ``out_dir``.

    Launched in N processes (`seed.model.parallel`), process ``r`` computes the shards ``i`` with
    ``i % N == r``. A shard is a fixed slice of the samples in file order and its targets depend only
    on its own samples, so the shards written are byte for byte those of one process, whatever N.
    Rank 0 clears stale files first; after a barrier every process works on its shards; after a
    second barrier rank 0 reads every sidecar and writes the manifest.

    Returns the manifest's ``meta``: model and data hashes, every config value, counts (samples,
    skipped responses, tokens, shards, reused shards), the number of processes, the flagged-token
    share and the seconds. Every process returns the same counts.
    """
    from tqdm import tqdm

    from seed.files.targets import MANIFEST_NAME, write_manifest
    from seed.model.parallel import current_processes

    config = config or PurifyConfig()
    procs = current_processes(config.device)
    start_time = time.perf_counter()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    samples = load_samples(data_dir, config.max_samples)
    run = {
        "model_hash": model_hash(model_path),
        "data_hash": data_hash(data_dir),
        "config": dataclasses.asdict(config),
    }
    slices = [
        (first, samples[first : first + config.shard_size])
        for first in range(0, len(samples), config.shard_size)
    ]
    names = [shard_name(i) for i in range(len(slices))]
    if procs.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (out_dir / MANIFEST_NAME).unlink()  # rewritten at the end; never stale while shards change
        _remove_stale(out_dir, set(names) | {sidecar_path(Path(n)).name for n in names})
    procs.barrier()

    mine = [i for i in range(len(slices)) if shard_owner(i, procs.world_size) == procs.rank]
    model = processor = None
    reused = 0
    with tqdm(
        total=sum(len(slices[i][1]) for i in mine),
        desc="purify" if not procs.distributed else f"purify [rank {procs.rank}]",
        unit="sample",
        disable=not progress,
        dynamic_ncols=True,
        position=procs.rank,
    ) as bar:
        for i in mine:
            first, chunk = slices[i]
            shard_path = out_dir / names[i]
            if _reusable(shard_path, run, first, len(chunk)) is not None:
                reused += 1
                bar.update(len(chunk))
                continue
            if model is None:
                device = procs.device(config.device)
                model, processor = load_pretrained(model_path, config.dtype, device)
            kept, responses, targets, skipped = _purify_shard(model, processor, data_dir, chunk, config, bar)
            _write_shard(
                shard_path, kept, responses, targets, skipped, run, first, len(chunk), config.flag_tau
            )
    reused = sum(procs.gather(reused))
    procs.barrier()  # every shard is on disk

    sidecars = [read_sidecar(out_dir / name) for name in names]
    for name, sidecar, (first, chunk) in zip(names, sidecars, slices, strict=True):
        if (sidecar.get("run"), sidecar.get("first_sample"), sidecar.get("num_candidates")) != (
            run,
            first,
            len(chunk),
        ):
            raise DataError(
                sidecar_path(out_dir / name), "written by another run while this one ran", field="run"
            )
    tokens = sum(s["num_tokens"] for s in sidecars)
    flagged = sum(s["flagged_tokens"] for s in sidecars)
    meta = {
        "stage": SECTION,
        "model": str(model_path),
        "model_hash": run["model_hash"],
        "data_hash": run["data_hash"],
        "config": run["config"],
        "teacher": "the checkpoint without adapter, eval mode, no_grad (= adapter-disabled student)",
        "counts": {
            "instructions": len(samples),
            "samples": sum(len(s["samples"]) for s in sidecars),
            "skipped_responses": sum(len(s["skipped"]) for s in sidecars),
            "tokens": tokens,
            "shards": len(sidecars),
            "reused_shards": reused,
        },
        "processes": procs.world_size,
        "flagged_share": round(flagged / tokens, 4)
        if tokens
        else 0.0,  # rounded: byte-stable across machines
        "seconds": round(time.perf_counter() - start_time, 3),
    }
    if procs.is_main:
        # the seconds are returned, not written: the targets folder's content hash (DVC) must be a
        # function of model, data, config and code, so a rerun with nothing changed gives the same bytes
        write_manifest(out_dir, names, {k: v for k, v in meta.items() if k != "seconds"})
    procs.barrier()  # the manifest is on disk before any process returns
    return meta


# ---------------------------------------------------------------------------------------------------
# Multi-process check (tests and the benchmark)


def targets_differences(first: str | Path, second: str | Path) -> list[str]:
    """What differs between two targets folders: shard and sidecar bytes, and the manifests' shard lists.

    The manifests' ``shards`` (file, counts, sha256), ``num_samples``, ``num_tokens`` and ``top_k`` must be
    equal; ``meta`` is not compared (it holds the seconds and the number of processes). Returns one line
    per difference: an empty list means the targets are identical.
    """
    from seed.files.targets import MANIFEST_NAME

    first, second = Path(first), Path(second)
    out: list[str] = []
    files = {p.name for p in first.glob("shard-*")} | {p.name for p in second.glob("shard-*")}
    for name in sorted(files):
        a, b = first / name, second / name
        if not a.is_file() or not b.is_file():
            out.append(f"{name}: only in {a.parent if a.is_file() else b.parent}")
        elif a.read_bytes() != b.read_bytes():
            out.append(f"{name}: bytes differ")
    manifests = []
    for folder in (first, second):
        path = folder / MANIFEST_NAME
        manifests.append(json.loads(path.read_text()) if path.is_file() else None)
    if None in manifests:
        out.append(f"{MANIFEST_NAME}: missing in {first if manifests[0] is None else second}")
    else:
        for key in ("shards", "num_samples", "num_tokens", "top_k"):
            if manifests[0].get(key) != manifests[1].get(key):
                out.append(f"{MANIFEST_NAME}: {key} differ")
    return out


def write_purify_params(path: str | Path, config: PurifyConfig) -> Path:
    """A params file whose ``purify`` section is ``config`` (for a `seed purify` run in other processes)."""
    import yaml

    from seed.files.atomic import write_atomic

    text = yaml.safe_dump({SECTION: dataclasses.asdict(config)}, sort_keys=True)
    return write_atomic(path, text.encode())


def check_multiprocess_targets(
    model_path: str | Path,
    data_dir: str | Path,
    work_dir: str | Path,
    config: PurifyConfig,
    num_processes: int = 2,
    timeout: float = 600,
    reference: str | Path | None = None,
) -> dict[str, Any]:
    """Stage purify in one process and in ``num_processes`` processes: are the targets byte-identical?

    Both runs go through ``python -m seed.cli purify`` (the N-process one under ``torchrun
    --standalone``, see `seed.model.parallel.launch_command`) into ``work_dir/processes-1`` and
    ``work_dir/processes-<N>``, which are replaced. ``reference``: a one-process targets folder of the
    same model, data and ``config`` to compare with instead of running one (no "1" in ``seconds``).

    Returns ``{"identical", "differences", "seconds": {"1": s, "<N>": s}, "shards", "num_processes"}``;
    ``identical`` is the benchmark's ``two_process_targets_identical`` for ``num_processes=2``.
    """
    import shutil
    import subprocess

    from seed.model.parallel import launch_command

    work_dir = Path(work_dir)
    params = write_purify_params(work_dir / "purify-params.yaml", config)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.setdefault("HF_HUB_OFFLINE", "1")
    seconds: dict[str, float] = {}
    outs = [] if reference is None else [Path(reference)]
    for n in [num_processes] if reference is not None else [1, num_processes]:
        out = work_dir / f"processes-{n}"
        shutil.rmtree(out, ignore_errors=True)
        args = ["seed.cli", "--quiet", "--params", str(params), "purify"]
        args += ["--model", str(model_path), "--data", str(data_dir), "--out", str(out)]
        start = time.perf_counter()
        done = subprocess.run(
            launch_command(n, args), env=env, capture_output=True, text=True, timeout=timeout
        )
        seconds[str(n)] = round(time.perf_counter() - start, 3)
        if done.returncode != 0:
            raise SeedError(f"purify in {n} process(es) failed ({done.returncode}):\n{done.stderr[-3000:]}")
        outs.append(out)
    differences = targets_differences(*outs)
    return {
        "identical": not differences,
        "differences": differences,
        "seconds": seconds,
        "shards": len(list(outs[0].glob("shard-*.safetensors"))),
        "num_processes": num_processes,
    }


__all__ = [
    "PurifyConfig",
    "Sample",
    "SampleTargets",
    "build_targets",
    "check_multiprocess_targets",
    "contrast_batch",
    "data_hash",
    "load_pretrained",
    "load_samples",
    "model_hash",
    "noise_pixels",
    "plain_logits",
    "read_sidecar",
    "response_positions",
    "response_token_ids",
    "shard_owner",
    "targets_differences",
    "teacher_targets",
]
