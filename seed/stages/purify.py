"""Stage `purify`: the frozen model answers the unlabelled split and becomes its own teacher.

For every human turn of ``data_dir/seed/instructions.json`` (one single-turn sample per turn,
`seed.files.samples`):

```
 image, instruction --greedy decoding--> response                     (the model's own answer)
 [prompt | response] with the clean image  --+
                                             +--> one forward of 2B --> l_t, n_t on response tokens
 [prompt | response] with the noised image --+        (logits at t predict the token at t + 1)
 purify_logits(l_t, n_t) --> sparsify_targets(top_k) --> shard-NNNNN.safetensors + .samples.json
```

No answer is read anywhere: only images and instructions. The teacher is the checkpoint itself without
adapter, in eval mode under ``no_grad`` (`seed.model.teacher`), the same function as
`seed.model.adapter.teacher_logits` on distill's model with the adapter disabled.

Each shard covers a fixed slice of ``shard_size`` samples (file order); its sidecar
``shard-NNNNN.samples.json`` holds the ids, images, prompts and responses, the run key (model hash,
data hash, every config value) and the shard's sha256 (`seed.files.shards`). A rerun reuses every shard
whose run key and bytes match, and files are written atomically, so a killed run resumes where it
stopped. In N processes (`seed.model.parallel`) shard ``i`` is computed by process ``i % N``; rank 0
writes the manifest: the folder is byte for byte that of one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seed.core.identify import CONFIDENCE_METHODS
from seed.errors import ConfigError, DataError, SeedError
from seed.files.hashing import data_hash, model_hash
from seed.files.samples import IMAGES, Sample, load_samples
from seed.files.shards import (
    SampleTargets,
    read_sidecar,
    remove_stale,
    reusable_sidecar,
    shard_name,
    shard_owner,
    sidecar_path,
    targets_differences,
    write_shard_and_sidecar,
)
from seed.model.generate import image_token_ids, load_pretrained, usable_response, yes_no_token_ids
from seed.model.teacher import plain_logits, teacher_targets, to_device
from seed.params import check_choice, check_integer, check_number, check_runtime

if TYPE_CHECKING:
    from seed.stages import StagePaths

SECTION = "purify"
CENTRES = ("none", "image", "split", "rate")


@dataclasses.dataclass
class PurifyConfig:
    """Settings of stage `purify` (params.yaml section ``purify``).

    noise_step: diffusion step ``T`` of the noised image (0..999). noise_draws: noisings per image whose
    logits are averaged into the noised view (the teacher forward holds (1 + K)x). cd_alpha / cd_beta:
    contrast strength and plausibility cut-off. adaptive: ``a_t = alpha * (1 - c_t)`` or plain VCD
    ``a_t = alpha``. confidence: ``max_prob`` or ``entropy``. flag_tau: ``c_t < flag_tau`` counts as
    flagged. top_k: stored tokens per target. batch_size: samples per generation and teacher batch.
    max_new_tokens: response length cap. shard_size: samples per shard. max_samples: 0 = all.
    seed: base seed of the per-sample noise. dtype / device: where the model runs.
    contrast_dir: "" contrasts with the noised image; a folder holds instead, under each SEED image's
    name, the image to contrast with (`seed_oracle`: the scene without its objects).
    centre / centre_weight: "none" (default); "image" or "split": an existence question's noised answer
    margin is first lowered by ``centre_weight`` (0, 1] x its mean over the image's or split's; "rate": by
    the one shift that keeps the split's "yes" rate through the contrast (`image_shifts`). With
    ``contrast_dir`` the contrast image's margins are read in place of the noised view's.
    """

    noise_step: int = 500
    noise_draws: int = 1
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
    centre: str = "none"
    centre_weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.contrast_dir, str):
            raise ConfigError(f"{SECTION}.contrast_dir = {self.contrast_dir!r} must be a folder path or ''")
        check_integer(SECTION, "noise_step", self.noise_step, lo=0, hi=999)
        check_integer(SECTION, "noise_draws", self.noise_draws, lo=1)
        if self.contrast_dir and self.noise_draws != 1:  # a contrast image is given, not drawn
            raise ConfigError(
                f"{SECTION}.noise_draws = {self.noise_draws} needs the noised view; use 1 with contrast_dir"
            )
        check_number(SECTION, "cd_alpha", self.cd_alpha, lo=0)
        check_number(SECTION, "cd_beta", self.cd_beta, lo=0, hi=1)
        if not isinstance(self.adaptive, bool):
            raise ConfigError(f"{SECTION}.adaptive = {self.adaptive!r} must be true or false")
        check_choice(SECTION, "confidence", self.confidence, CONFIDENCE_METHODS)
        check_choice(SECTION, "centre", self.centre, CENTRES)
        check_number(SECTION, "centre_weight", self.centre_weight, lo=0, hi=1, lo_open=True)
        check_number(SECTION, "flag_tau", self.flag_tau, lo=0, hi=1)
        check_integer(SECTION, "top_k", self.top_k, lo=1)
        check_integer(SECTION, "batch_size", self.batch_size, lo=1)
        check_integer(SECTION, "max_new_tokens", self.max_new_tokens, lo=1)
        check_integer(SECTION, "shard_size", self.shard_size, lo=1)
        check_integer(SECTION, "max_samples", self.max_samples, lo=0)
        check_integer(SECTION, "seed", self.seed, lo=0)
        check_runtime(SECTION, self.dtype, self.device)


def _purify_shard(
    model: Any,
    processor: Any,
    data_dir: Path,
    samples: Sequence[Sample],
    config: PurifyConfig,
    bar: Any,
    shifts: dict[str, float] | None = None,
) -> tuple[list[Sample], list[str], list[SampleTargets], list[str]]:
    """Generate, then teach, one shard's samples; returns kept samples, responses, targets, skipped ids."""
    from seed.model.batching import build_batch
    from seed.model.generate import answer_batch, open_image

    images = {name: open_image(data_dir / IMAGES / name) for name in dict.fromkeys(s.image for s in samples)}
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
                answer_shifts=None
                if shifts is None
                else ([shifts.get(s.sample_id, 0.0) for s, _ in chunk], *yes_no_token_ids(processor)),
            )
        )
    return [s for s, _ in kept], [r for _, r in kept], targets, skipped


def image_shifts(model: Any, processor: Any, data_dir: Path, samples: Sequence[Sample], config: PurifyConfig):
    """``{sample id: shift}``: ``centre_weight`` x `seed.model.margins.image_answer_bias` on the split."""
    from seed.model.generate import open_image
    from seed.model.margins import image_answer_bias

    names = sorted({s.image for s in samples})
    images = {name: open_image(data_dir / IMAGES / name) for name in names}
    folder = Path(config.contrast_dir) if config.contrast_dir else None  # its margins stand for the noised
    others = {name: open_image(folder / name) for name in names} if folder else None
    rows = [(s.sample_id, s.image, s.prompt) for s in samples]
    args = (config.noise_step, config.seed, config.batch_size, config.centre, config.noise_draws)
    contrast = (config.cd_alpha, config.cd_beta, config.confidence, config.adaptive)
    bias = image_answer_bias(model, processor, images, rows, *args, contrast, others)
    return {sample_id: config.centre_weight * value for sample_id, value in bias.items()}


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

    from seed.files.manifest import MANIFEST_NAME, write_manifest
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
        remove_stale(out_dir, set(names) | {sidecar_path(Path(n)).name for n in names})
    procs.barrier()

    mine = [i for i in range(len(slices)) if shard_owner(i, procs.world_size) == procs.rank]
    model = processor = None
    shifts: dict[str, float] | None = None
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
            if reusable_sidecar(shard_path, run, first, len(chunk)) is not None:
                reused += 1
                bar.update(len(chunk))
                continue
            if model is None:
                device = procs.device(config.device)
                model, processor = load_pretrained(model_path, config.dtype, device)
                if config.centre != "none":  # over every sample: an image's questions span shards
                    shifts = image_shifts(model, processor, data_dir, samples, config)
            kept, responses, targets, skipped = _purify_shard(
                model, processor, data_dir, chunk, config, bar, shifts
            )
            write_shard_and_sidecar(
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
        # How the run went (seconds, processes, reused shards) is returned, not written: the folder's
        # hash (DVC) depends on model, data, config and code alone, whatever the run's history.
        written = {k: v for k, v in meta.items() if k not in ("seconds", "processes")}
        written["counts"] = {k: v for k, v in meta["counts"].items() if k != "reused_shards"}
        write_manifest(out_dir, names, written)
    procs.barrier()  # the manifest is on disk before any process returns
    return meta


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

    Both run ``python -m seed.cli purify`` (N processes under ``torchrun --standalone``,
    `seed.model.parallel.launch_command`) into ``work_dir/processes-1`` and ``work_dir/processes-<N>``
    (replaced). ``reference``: a one-process targets folder of the same model, data and ``config`` to
    compare with instead of running one. Returns ``{"identical", "differences", "seconds": {"1": s,
    "<N>": s}, "shards", "num_processes"}`` (the benchmark's ``two_process_targets_identical``).
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


__all__ = ["PurifyConfig", "build_targets", "check_multiprocess_targets", "write_purify_params"]


def run(paths: StagePaths, config: PurifyConfig, progress: bool = False) -> dict:
    """The model ``paths.model`` answers the unlabelled split of ``paths.data`` and becomes its own
    teacher: purified sparse targets in ``paths.targets``."""
    return build_targets(paths.model, paths.data, paths.targets, config, progress=progress)
