"""Scale-out of stage purify: two processes must write byte-identical targets to one process.

`seed.stages.purify.check_multiprocess_targets` runs ``seed purify`` once in one process and once in two
(``torchrun --standalone``, each process computing every other shard) into fresh folders, then
compares every shard and sidecar byte for byte and the manifests' shard lists. The run uses the
params.yaml purify settings on the first `sizes` samples, with small shards so that each process
gets several. Two processes need two GPUs on a GPU run (one NCCL rank per GPU): with fewer, the check
runs on the CPU (gloo), which checks the same sharding code.
"""

from __future__ import annotations

import shutil
from typing import Any

from bench.common import Runtime, base_model, ratio, world


def sizes(rt: Runtime) -> dict[str, int]:
    return {"samples": 32, "shard_size": 8} if rt.quick else {"samples": 64, "shard_size": 16}


def scaleout_device(rt: Runtime) -> str:
    """``rt.device``, or ``cpu`` when a GPU run has fewer than two GPUs."""
    if not rt.cuda:
        return rt.device
    import torch

    return rt.device if torch.cuda.device_count() >= 2 else "cpu"


def run_scaleout(rt: Runtime) -> dict[str, Any]:
    """``two_process_targets_identical`` and the timings of both runs (None with a note if unsupported)."""
    try:
        from seed.stages.purify import check_multiprocess_targets
    except ImportError:
        return {
            "two_process_targets_identical": None,
            "note": "seed.stages.purify has no multi-process purify (check_multiprocess_targets) in this checkout",
        }
    from seed.stages import load_stage_config

    size = sizes(rt)
    device = scaleout_device(rt)
    dtype = rt.dtype if device != "cpu" else "float32"
    config = load_stage_config(
        "purify",
        rt.params,
        max_samples=size["samples"],
        shard_size=size["shard_size"],
        device=device,
        dtype=dtype,
    )
    work = rt.scratch / "scaleout"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result = check_multiprocess_targets(base_model(rt), world(rt), work, config, num_processes=2)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "two_process_targets_identical": result["identical"],
        "differences": result["differences"],
        "seconds": result["seconds"],
        "two_vs_one_process_speed": ratio(result["seconds"]["1"], result["seconds"]["2"]),
        "shards": result["shards"],
        "samples": size["samples"],
        "device": device,
        "dtype": dtype,
        "note": "wall time of each `seed purify` run (process start, imports and model loading included)",
    }
