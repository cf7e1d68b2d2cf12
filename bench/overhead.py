"""What Prefect, MLflow and DVC add over the compute, on a tiny world.

- direct: the stage functions of `seed.stages` (validate, purify, distill, evaluate) called one
  after the other in a fresh process;
- flow: the Prefect flow ``seed-pipeline`` (`flows.pipeline.seed_pipeline`) on the same world, model
  and settings in a fresh process, in-process mode (no DVC): its temporary Prefect API server, the
  MLflow run (params, metrics, artifacts) and the registry step come on top of the same stages;
- DVC: ``dvc status`` in this repository, and ``dvc repro`` with nothing to do in a one-stage project.

Both pipelines start from the default base model (pretrain is skipped, as with ``--base-model``) and
run the settings of `TINY`. Each process's wall time is measured from outside; each one also reports
its import time and its stage seconds. Sections whose tools are not installed are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Runtime, base_model

STAGES = ("validate", "purify", "distill", "evaluate")
TINY = {
    "purify": {"max_samples": 8, "max_new_tokens": 8, "batch_size": 8},
    "distill": {"max_steps": 2, "batch_size": 4, "warmup_steps": 0},
    "evaluate": {"batch_size": 32, "caption_max_new_tokens": 8, "bootstrap_resamples": 10},
}


def tiny_world(rt: Runtime) -> Path:
    out = rt.scratch / "overhead" / "world"
    if not (out / "world.json").is_file():
        from seed.world.config import WorldConfig
        from seed.world.synth import synthesize

        config = WorldConfig(n_train=8, n_seed=4, n_pope_images=4, n_mme_images=2, n_chair_images=4)
        synthesize(out, config, progress=False)
    return out


def overrides(rt: Runtime) -> dict[str, dict[str, Any]]:
    runtime = {"device": rt.device, "dtype": rt.dtype}
    return {stage: {**values, **runtime} for stage, values in TINY.items()}


def run_direct(rt: Runtime, world: Path, model: Path, workdir: Path) -> dict[str, float]:
    """The four stage functions in order on ``workdir`` paths; seconds per stage."""
    from seed import stages

    config = {s: stages.load_stage_config(s, rt.params, **overrides(rt).get(s, {})) for s in STAGES}
    paths = stages.StagePaths(
        data=world,
        model=model,
        targets=workdir / "targets",
        adapter=workdir / "adapter",
        seed_model=workdir / "seed-model",
        rounds=workdir / "rounds",
        reports=workdir / "reports",
    )
    times: dict[str, float] = {}
    for stage in STAGES:
        start = time.perf_counter()
        stages.STAGE_TABLE[stage].run(paths, config[stage], False)
        times[stage] = time.perf_counter() - start
    return times


def run_flow(rt: Runtime, world: Path, model: Path, workdir: Path) -> dict[str, Any]:
    """The Prefect flow on the same inputs; its stage seconds, import seconds and call seconds."""
    from flows.cli import prefect_environment

    prefect_environment(workdir)
    start = time.perf_counter()
    import mlflow  # noqa: F401
    import prefect  # noqa: F401

    from flows.pipeline import seed_pipeline

    imports = time.perf_counter() - start
    start = time.perf_counter()
    result = seed_pipeline(
        data_dir=str(world),
        workdir=str(workdir),
        params_path=str(rt.params),
        overrides=overrides(rt),
        base_model=str(model),
        register_model=True,
    )
    return {
        "stages": {k: v for k, v in result["seconds"].items() if v is not None},
        "flow_imports_seconds": imports,
        "flow_call_seconds": time.perf_counter() - start,
    }


def _child(mode: str, rt: Runtime, threads: int) -> dict[str, Any]:
    """Run ``python -m bench.overhead --mode <mode>`` and time it from outside."""
    world, model = tiny_world(rt), base_model(rt)
    workdir = rt.scratch / "overhead" / mode
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    cmd = [
        sys.executable,
        "-m",
        "bench.overhead",
        "--mode",
        mode,
        "--world",
        str(world),
        "--model",
        str(model),
    ]
    cmd += ["--workdir", str(workdir), "--device", rt.device, "--dtype", rt.dtype, "--threads", str(threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1"}
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    shutil.rmtree(workdir, ignore_errors=True)
    return {**result, "process_wall_seconds": wall}


def _timed_cmd(cmd: list[str], cwd: Path) -> float:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}:\n{out.stderr[-2000:]}")
    return seconds


def dvc_times(rt: Runtime) -> dict[str, Any]:
    """``dvc status`` here, and a no-op ``dvc repro`` in a one-stage project (after a first real run)."""
    dvc = Path(sys.executable).parent / "dvc"
    if not dvc.is_file():
        return {"note": "dvc is not installed here: skipped"}
    out: dict[str, Any] = {}
    if (ROOT / "dvc.yaml").is_file() and (ROOT / ".dvc").is_dir():
        out["repo_dvc_status_seconds"] = _timed_cmd([str(dvc), "status"], ROOT)
    project = rt.scratch / "overhead" / "dvc-project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    _timed_cmd([str(dvc), "init", "--no-scm", "-q"], project)
    stage = {
        "stages": {
            "touch": {"cmd": f"{sys.executable} -c \"open('out.txt', 'w').write('x')\"", "outs": ["out.txt"]}
        }
    }
    (project / "dvc.yaml").write_text(json.dumps(stage))
    out["first_repro_seconds"] = _timed_cmd([str(dvc), "repro", "-q"], project)
    out["noop_repro_seconds"] = _timed_cmd([str(dvc), "repro", "-q"], project)
    out["noop_status_seconds"] = _timed_cmd([str(dvc), "status", "-q"], project)
    shutil.rmtree(project, ignore_errors=True)
    return out


def run_overhead(rt: Runtime, threads: int = 0) -> dict[str, Any]:
    """Wall time of the stages called directly and through the flow, and DVC's fixed costs."""
    import importlib.util

    missing = [m for m in ("prefect", "mlflow") if importlib.util.find_spec(m) is None]
    result: dict[str, Any] = {"settings": TINY}
    if missing:
        result["note"] = f"{', '.join(missing)} not installed here: flow overhead skipped"
    else:
        direct = _child("direct", rt, threads)
        flow = _child("flow", rt, threads)
        result["direct"] = direct
        result["flow"] = flow
        result["flow_minus_direct_seconds"] = flow["process_wall_seconds"] - direct["process_wall_seconds"]
        result["flow_call_minus_stages_seconds"] = flow["flow_call_seconds"] - sum(flow["stages"].values())
    result["dvc"] = dvc_times(rt)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one pipeline overhead run (see bench/overhead.py)")
    parser.add_argument("--mode", choices=("direct", "flow"), required=True)
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rt = Runtime(device=args.device, dtype=args.dtype, scratch=args.workdir.parent)
    if args.mode == "direct":
        import seed.stages  # noqa: F401

        imports = time.perf_counter() - start
        stages = run_direct(rt, args.world, args.model, args.workdir)
        print(json.dumps({"stages": stages, "imports_seconds": imports}))
    else:
        print(json.dumps(run_flow(rt, args.world, args.model, args.workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
