"""A targets folder as stage `purify` writes it: shard names, samples sidecars, reuse and cleanup.

Each shard ``shard-NNNNN.safetensors`` (format: `seed.files.targets`) covers a fixed slice of the
samples and has a sidecar ``shard-NNNNN.samples.json`` with the samples' ids, images, prompts and
response texts (what `seed.stages.distill` needs to rebuild the exact student inputs), the run key
(model hash, data hash, every config value) and the shard's sha256. A shard is reused when its
sidecar has the same run key and its bytes still match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seed.errors import DataError
from seed.files.inputs import read_json
from seed.files.samples import Sample

if TYPE_CHECKING:
    import torch

    from seed.core.purify import SparseTargets

SHARD_PATTERN = "shard-{:05d}.safetensors"
SAMPLES_SUFFIX = ".samples.json"
SAMPLES_FORMAT = "seed-targets-samples"


@dataclass(frozen=True)
class SampleTargets:
    """One sample's purified targets: (n, k) sparse targets, (n,) confidence, (n,) response token ids."""

    targets: SparseTargets
    confidence: torch.Tensor
    response_ids: torch.Tensor


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


def reusable_sidecar(shard_path: Path, run: dict[str, Any], first: int, count: int) -> dict[str, Any] | None:
    """The sidecar of a finished shard from the same run (same key, same slice, intact bytes), or None."""
    from seed.files.hashing import content_hash

    if not shard_path.is_file():
        return None
    try:
        data = read_sidecar(shard_path)
    except DataError:
        return None
    if data.get("run") != run or data.get("first_sample") != first or data.get("num_candidates") != count:
        return None
    return data if data.get("sha256") == content_hash(shard_path) else None


def write_shard_and_sidecar(
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

    from seed.files.hashing import content_hash
    from seed.files.targets import write_atomic, write_shard

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


def remove_stale(out_dir: Path, keep: set[str]) -> None:
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


def targets_differences(first: str | Path, second: str | Path) -> list[str]:
    """What differs between two targets folders: shard and sidecar bytes, and the manifests' shard lists.

    The manifests' ``shards`` (file, counts, sha256), ``num_samples``, ``num_tokens`` and ``top_k`` must be
    equal; ``meta`` is not compared (it holds the seconds and the number of processes). Returns one line
    per difference: an empty list means the targets are identical.
    """
    from seed.files.manifest import MANIFEST_NAME

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
