"""How stage purify and stage distill grow with the dataset (3 sizes) and the model (2 sizes).

Each point is one fresh run of the stage function (`seed.stages.purify.build_targets`, then
`seed.stages.distill.distill` on its targets) with the params.yaml settings and ``purify.max_samples`` = N,
into an empty folder (nothing reused or resumed), timed end to end (model loading included). The two
models: the default base model, and an untrained one of the same layout with a 2x wider, 2x deeper
decoder. An untrained model rarely ends its answers, so responses are capped at `MAX_NEW_TOKENS`
tokens (instead of ``purify.max_new_tokens``) to give both models answers of similar length.
The growth exponent ``b`` of ``seconds = c * N^b`` is the log-log least-squares slope
(`bench.metrics.fit_exponent`); fixed costs (loading, hashing) pull it below 1 at small N.
"""

from __future__ import annotations

import math
import shutil
import time
from typing import Any

from bench.common import Runtime, base_model, save_llava, world
from bench.metrics import fit_exponent

WIDE = {"text_hidden": 256, "text_layers": 8, "text_heads": 8, "text_intermediate": 768}
MAX_NEW_TOKENS = 12  # answers of equal length for both models (the trained one averages ~7 tokens)


def sizes(rt: Runtime) -> dict[str, Any]:
    return {"samples": [16, 32, 64] if rt.quick else [32, 64, 128]}


def stage_times(rt: Runtime, model_dir: Any, samples: int, work: Any) -> dict[str, Any]:
    """Seconds of purify then distill on the first ``samples`` samples, in fresh folders under ``work``."""
    from seed.stages import load_stage_config
    from seed.stages.distill import distill
    from seed.stages.purify import build_targets

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    purify_config = load_stage_config(
        "purify",
        rt.params,
        max_samples=samples,
        max_new_tokens=MAX_NEW_TOKENS,
        device=rt.device,
        dtype=rt.dtype,
    )
    distill_config = load_stage_config("distill", rt.params, device=rt.device, dtype=rt.dtype)
    data = world(rt)
    rt.sync()
    start = time.perf_counter()
    meta = build_targets(model_dir, data, work / "targets", purify_config, progress=False)
    rt.sync()
    purify_seconds = time.perf_counter() - start
    start = time.perf_counter()
    summary = distill(model_dir, data, work / "targets", work / "adapter", distill_config, progress=False)
    rt.sync()
    distill_seconds = time.perf_counter() - start
    shutil.rmtree(work, ignore_errors=True)
    return {
        "samples": samples,
        "purify_seconds": purify_seconds,
        "distill_seconds": distill_seconds,
        "target_tokens": meta["counts"]["tokens"],
        "distill_steps": summary["steps"],
    }


def run_scaling(rt: Runtime) -> dict[str, Any]:
    """Seconds per stage at every (model, N); exponents over N per model and over parameters per N."""
    from safetensors import safe_open
    from transformers import AutoConfig

    models = {
        "default": base_model(rt),
        "wide": save_llava(rt, rt.scratch / "wide-model", **WIDE),
    }
    results: dict[str, Any] = {}
    for name, path in models.items():
        config = AutoConfig.from_pretrained(path)
        with safe_open(str(path / "model.safetensors"), framework="pt") as fh:
            params = sum(math.prod(fh.get_slice(key).get_shape()) for key in fh.keys())  # noqa: SIM118
        points = [
            stage_times(rt, path, n, rt.scratch / "scaling" / f"{name}-{n}") for n in sizes(rt)["samples"]
        ]
        ns = [p["samples"] for p in points]
        results[name] = {
            "parameters": params,
            "text_hidden": config.text_config.hidden_size,
            "text_layers": config.text_config.num_hidden_layers,
            "points": points,
            "purify_exponent": fit_exponent(ns, [p["purify_seconds"] for p in points])[0],
            "distill_exponent": fit_exponent(ns, [p["distill_seconds"] for p in points])[0],
        }
    by_params = {}
    for stage in ("purify", "distill"):
        by_params[stage] = [
            fit_exponent(
                [results[m]["parameters"] for m in models],
                [results[m]["points"][i][f"{stage}_seconds"] for m in models],
            )[0]
            for i in range(len(sizes(rt)["samples"]))
        ]
    return {"models": results, "parameter_exponents_per_size": by_params, "samples": sizes(rt)["samples"]}
