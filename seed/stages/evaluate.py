"""Stage `evaluate`: POPE (three splits), the MME hallucination subset and CHAIR, per decoding method.

```
 methods   base  = the model, regular decoding            (1 forward per token)
           vcd   = the model, visual contrastive decoding  (2 forwards per token, seed.model.vcd)
           seed  = the model + merged SEED adapter, regular decoding (1 forward per token)
 protocol  greedy                       -> reports/metrics.json
           sample (T=1, top_p=1, seeds) -> reports/metrics_sample.json (mean and *_std over seeds)
```

Answers are written in the official formats (POPE answers JSONL with ``question_id`` and ``text``;
MME lines ``image<TAB>question<TAB>answer<TAB>prediction``; CHAIR captions JSONL) and scored with the
official rules in ``seed.eval``. The evaluation never adapts to the model: prompts and parsing are
fixed (see ``seed.eval.pope.build_pope_prompt``). Every method decodes the same questions in the
same batches through the same loop, which also counts its cost: model forward calls per generated
token and generated tokens per second.

Real data goes through the same code: ``pope_dir`` (the official ``coco_pope_<split>.json`` files)
with ``images_dir`` (a COCO ``val2014/`` folder), ``mme_dir`` (the MME release folder) and, for
CHAIR, ``instances_file`` (COCO ``instances_val2014.json``) with ``synonyms_file``; unset paths
default to the world layout under the data folder (docs/data-format.md).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seed.errors import ConfigError, DataError
from seed.eval.benchmarks import check_inputs
from seed.eval.runner import evaluate_model
from seed.files.adapter_card import write_adapter_card
from seed.files.atomic import write_json as _write_json
from seed.files.inputs import DEFAULT_MAX_IMAGE_SIDE, MAX_PROMPT_CHARS, read_json
from seed.params import check_range

if TYPE_CHECKING:
    from seed.model.vcd import VCDSettings
    from seed.stages import StagePaths

SECTION = "evaluate"
METHODS = ("base", "vcd", "seed")
BENCHMARKS = ("pope", "mme", "chair")
MIN_SAMPLE_SEEDS = 3


@dataclass
class EvaluateConfig:
    """Settings of stage `evaluate` (params.yaml section ``evaluate``).

    protocol: ``greedy`` or ``sample`` (temperature 1, top_p 1, one run per seed of ``sample_seeds``,
    at least 3; metrics are the mean over seeds with ``*_std``). methods: any of base, vcd, seed
    (seed needs an adapter; without one it is skipped). cd_alpha / cd_beta / noise_step: VCD's
    contrast strength, plausibility cut-off and diffusion noise step. yes_bias: a constant added to
    the "Yes" logit and taken from the "No" logit at every step (0: none; the `bias` control sets it,
    tuned on a validation world). pope_dir, images_dir, mme_dir,
    instances_file, synonyms_file: real-data paths (None: the world layout under the data folder).
    chair_images_file: JSON list of ``{"image_id", "file_name"}`` to caption (None: the world's
    ``chair/images.json``, else ``chair_n_images`` images drawn with a fixed seed from the
    instances file). dtype / device: where the model runs. max_image_side: largest image side in
    pixels that is decoded (a bigger image is a `DataError` naming the file).
    """

    protocol: str = "greedy"
    sample_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    batch_size: int = 64
    max_new_tokens: int = 6  # yes/no questions
    caption_max_new_tokens: int = 48
    caption_prompt: str = "Describe the image briefly."
    bootstrap_resamples: int = 1000
    benchmarks: list[str] = field(default_factory=lambda: list(BENCHMARKS))
    cd_alpha: float = 1.0
    cd_beta: float = 0.1
    noise_step: int = 500
    yes_bias: float = 0.0
    pope_dir: str | None = None
    images_dir: str | None = None
    mme_dir: str | None = None
    instances_file: str | None = None
    synonyms_file: str | None = None
    chair_images_file: str | None = None
    chair_n_images: int = 500
    dtype: str = "float32"
    device: str = "cpu"
    max_image_side: int = DEFAULT_MAX_IMAGE_SIDE

    def __post_init__(self) -> None:
        from seed.params import check_runtime

        if self.protocol not in ("greedy", "sample"):
            raise ConfigError(f"{SECTION}.protocol = {self.protocol!r} must be 'greedy' or 'sample'")
        check_range(SECTION, "batch_size", self.batch_size, lo=1)
        check_range(SECTION, "max_new_tokens", self.max_new_tokens, lo=1)
        check_range(SECTION, "caption_max_new_tokens", self.caption_max_new_tokens, lo=1)
        check_range(SECTION, "bootstrap_resamples", self.bootstrap_resamples, lo=0)
        check_range(SECTION, "cd_alpha", self.cd_alpha, lo=0)
        check_range(SECTION, "cd_beta", self.cd_beta, lo=0, hi=1)
        check_range(SECTION, "noise_step", self.noise_step, lo=0, hi=999)
        check_range(SECTION, "chair_n_images", self.chair_n_images, lo=1)
        check_range(SECTION, "max_image_side", self.max_image_side, lo=1)
        if not self.caption_prompt.strip() or len(self.caption_prompt) > MAX_PROMPT_CHARS:
            raise ConfigError(
                f"{SECTION}.caption_prompt must be non-empty and at most {MAX_PROMPT_CHARS} characters"
            )
        self.benchmarks = _names(self.benchmarks)
        self.methods = _names(self.methods)
        for key, values, known in (
            ("benchmarks", self.benchmarks, BENCHMARKS),
            ("methods", self.methods, METHODS),
        ):
            unknown = sorted(set(values) - set(known))
            if unknown:
                raise ConfigError(f"{SECTION}.{key}: unknown {unknown}; choose from {', '.join(known)}")
        if not self.methods:
            raise ConfigError(f"{SECTION}.methods is empty; choose from {', '.join(METHODS)}")
        if len(set(self.sample_seeds)) != len(self.sample_seeds):
            raise ConfigError(f"{SECTION}.sample_seeds = {self.sample_seeds} repeats a seed")
        if self.protocol == "sample" and len(self.sample_seeds) < MIN_SAMPLE_SEEDS:
            raise ConfigError(
                f"{SECTION}.sample_seeds must list at least {MIN_SAMPLE_SEEDS} seeds for the sample "
                f"protocol (mean and std over seeds), got {self.sample_seeds}"
            )
        check_runtime(SECTION, self.dtype, self.device)

    def vcd_settings(self) -> VCDSettings:
        from seed.model.vcd import VCDSettings

        return VCDSettings(cd_alpha=self.cd_alpha, cd_beta=self.cd_beta, noise_step=self.noise_step)


def _names(value: list[str] | str) -> list[str]:
    """A list of names, also from one comma-separated string ("base,vcd" from the command line)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return list(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def mean_over_seeds(runs: list[dict]) -> dict:
    """Merge the metric dicts of runs with different seeds: means, plus ``<key>_std`` per varying number.

    Nested dicts merge key by key. A number becomes the mean over runs and gains ``<key>_std``
    (sample standard deviation, n - 1; 0.0 for one run), except integers equal in every run (counts
    such as ``n``), which stay as they are. Lists of numbers (``f1_ci``) are averaged element-wise.
    Anything else (None, strings) is taken from the first run.
    """
    if not runs:
        raise ValueError("mean_over_seeds needs at least one run")
    merged: dict = {}
    for key, first in runs[0].items():
        values = [run.get(key) for run in runs]
        if all(isinstance(v, dict) for v in values):
            merged[key] = mean_over_seeds(values)
        elif all(_is_number(v) for v in values):
            if all(isinstance(v, int) for v in values) and len(set(values)) == 1:
                merged[key] = first
            else:
                merged[key] = statistics.fmean(values)
                merged[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        elif all(isinstance(v, list) and len(v) == len(first) and all(map(_is_number, v)) for v in values):
            merged[key] = [statistics.fmean(column) for column in zip(*values, strict=True)]
        else:
            merged[key] = first
    return merged


def selected_methods(config: EvaluateConfig, adapter_dir: Path | None) -> list[str]:
    """The configured methods in canonical order (base, vcd, seed); seed only with an adapter."""
    methods = [m for m in METHODS if m in config.methods]
    if "seed" in methods and adapter_dir is None:
        print("note: method 'seed' skipped: no adapter given (--adapter / artifacts/adapter)")
        methods.remove("seed")
    return methods


def metrics_name(protocol: str) -> str:
    """``metrics.json`` for the greedy protocol, ``metrics_sample.json`` for the sampling protocol."""
    return "metrics.json" if protocol == "greedy" else "metrics_sample.json"


def timings_name(metrics_file: str) -> str:
    """Where the wall-clock numbers of a metrics file go: ``metrics.json`` -> ``timings.json``."""
    return metrics_file.replace("metrics", "timings")


# Cost fields measured on the clock (and their ``_std`` over seeds): they differ from machine to
# machine and run to run, so they are kept out of the metrics file, which must be byte-stable.
WALL_CLOCK = ("tokens_per_second", "seconds")


def split_timings(metrics: dict) -> tuple[dict, dict]:
    """``(metrics without wall-clock numbers, the wall-clock numbers)``; `merge_timings` undoes it."""
    stable = {k: v for k, v in metrics.items() if k != "seconds"}
    timings: dict = {"seconds": metrics["seconds"]} if "seconds" in metrics else {}
    if "cost" in metrics:
        stable["cost"] = {}
        for method, cost in metrics["cost"].items():
            clock = {k: v for k, v in cost.items() if k in WALL_CLOCK or k.removesuffix("_std") in WALL_CLOCK}
            stable["cost"][method] = {k: v for k, v in cost.items() if k not in clock}
            if clock:
                timings.setdefault("cost", {})[method] = clock
    return stable, timings


def merge_timings(metrics: dict, timings: dict) -> dict:
    """The metrics with their wall-clock numbers put back (``timings`` as `split_timings` made it)."""
    merged = {**metrics, **({"seconds": timings["seconds"]} if "seconds" in timings else {})}
    if "cost" in metrics or "cost" in timings:
        methods = {**metrics.get("cost", {}), **timings.get("cost", {})}
        merged["cost"] = {
            m: {**metrics.get("cost", {}).get(m, {}), **timings.get("cost", {}).get(m, {})} for m in methods
        }
    return merged


def read_metrics(reports_dir: str | Path, protocol: str = "greedy") -> dict | None:
    """A metrics file of ``reports_dir`` with its timings merged back in; None when it is missing."""
    path = Path(reports_dir) / metrics_name(protocol)
    if not path.is_file():
        return None
    metrics = read_json(path)  # a DataError naming the file when it is not JSON
    timings = Path(reports_dir) / timings_name(metrics_name(protocol))
    return merge_timings(metrics, read_json(timings)) if timings.is_file() else metrics


@dataclass(frozen=True)
class MethodSpec:
    """One row of an evaluation: which adapter is merged (None: the model alone) into which model
    (None: the evaluation's model), whether it decodes with VCD, and its constant yes/no logit bias."""

    adapter: Path | None = None
    model: str | Path | None = None
    vcd: bool = False
    yes_bias: float = 0.0


def evaluate_methods(
    model_dir: Path,
    data_dir: Path,
    out_dir: Path,
    config: EvaluateConfig,
    methods: dict[str, MethodSpec],
    metrics_file: str,
    progress: bool = True,
) -> dict:
    """Evaluate each named method on every configured benchmark; writes answers, ``metrics_file``, plots.

    Methods that share an adapter share one loaded model. Greedy: one run, answers under
    ``out_dir/answers/<method>/``. Sample: one run per seed under ``out_dir/answers_sample/<method>/
    seed-<s>/``, with means and ``*_std`` over seeds. Schema::

        {"protocol", "pope": {method: {split: {accuracy, precision, recall, f1, yes_ratio, f1_ci, auc, n}}},
         "mme": {method: {existence, count, position, color, total, detail}},
         "chair": {method: {chair_s, chair_i, recall, ...}},
         "cost": {method: {forwards_per_token, tokens_per_second, tokens, forwards, steps, seconds}},
         "diagnostics": {method: {...}}, "seconds": {method: s}, "settings": {...}}

    The wall-clock numbers (`WALL_CLOCK` and ``seconds``) are returned but written to the timings file
    beside it (``timings.json``), so that ``metrics_file`` and the plots are byte-stable.
    """
    from seed.eval.report import write_plots
    from seed.model.generate import load_model

    out_dir = Path(out_dir)
    check_inputs(data_dir, config)  # bad data fails here, before a model loads or a file is written
    seeds = [0] if config.protocol == "greedy" else list(config.sample_seeds)
    runs: dict[str, list[dict]] = {}
    model = processor = None
    loaded: object = ()
    for method, spec in methods.items():
        if model is None or (spec.model, spec.adapter) != loaded:
            model = processor = None  # free the previous model before loading the next
            model, processor = load_model(
                spec.model or model_dir, adapter=spec.adapter, dtype=config.dtype, device=config.device
            )
            loaded = (spec.model, spec.adapter)
        method_config = dataclasses.replace(config, yes_bias=spec.yes_bias)
        for seed in seeds:
            if config.protocol == "greedy":
                answers_dir = out_dir / "answers" / method
            else:
                answers_dir = out_dir / "answers_sample" / method / f"seed-{seed}"
            vcd = config.vcd_settings() if spec.vcd else None
            result = evaluate_model(
                model, processor, data_dir, answers_dir, method_config, seed=seed, progress=progress, vcd=vcd
            )
            runs.setdefault(method, []).append(result)
    metrics: dict = {"protocol": config.protocol}
    if config.protocol == "sample":
        metrics["seeds"] = seeds
    for method, results in runs.items():
        merged = results[0] if len(results) == 1 and config.protocol == "greedy" else mean_over_seeds(results)
        for key in (*BENCHMARKS, "cost"):
            if key in merged:
                metrics.setdefault(key, {})[method] = merged[key]
        diagnostics = {k: merged[k] for k in ("colour_by_typicality", "colour_probe") if k in merged}
        if diagnostics:
            metrics.setdefault("diagnostics", {})[method] = diagnostics
        metrics.setdefault("seconds", {})[method] = round(sum(r["seconds"] for r in results), 1)
    metrics["settings"] = {
        "methods": list(methods),
        "vcd": dataclasses.asdict(config.vcd_settings()),
        "batch_size": config.batch_size,
        "max_new_tokens": config.max_new_tokens,
        "caption_max_new_tokens": config.caption_max_new_tokens,
    }
    biases = {m: spec.yes_bias for m, spec in methods.items() if spec.yes_bias}
    if biases:
        metrics["settings"]["yes_bias"] = biases
    stable, timings = split_timings(_finite(metrics))
    _write_json(out_dir / metrics_file, stable)  # the same bytes on every machine
    _write_json(out_dir / timings_name(metrics_file), timings)
    write_plots(stable, out_dir)
    adapters = {spec.adapter for spec in methods.values() if spec.adapter is not None}
    for adapter in adapters:  # the adapter's card gets the results of its evaluation
        if (Path(adapter) / "summary.json").is_file():
            write_adapter_card(adapter, stable)
    return metrics


def evaluate_stage(
    model_dir: Path,
    data_dir: Path,
    out_dir: Path,
    config: EvaluateConfig,
    adapter_dir: Path | None = None,
    progress: bool = True,
    adapter_model: str | Path | None = None,
) -> dict:
    """Stage `evaluate`: every configured method (base, vcd, seed) on every benchmark.

    ``base`` and ``vcd`` run the model, ``seed`` the model (or ``adapter_model``: the final round's
    generator) with ``adapter_dir`` merged (skipped with a note when there is no adapter). Metrics go to ``out_dir/metrics.json`` (greedy) or
    ``out_dir/metrics_sample.json`` (sample); the schema is `evaluate_methods`'.
    """
    specs = {
        "base": MethodSpec(),
        "vcd": MethodSpec(vcd=True),
        "seed": MethodSpec(adapter=Path(adapter_dir) if adapter_dir else None, model=adapter_model),
    }
    methods = {m: specs[m] for m in selected_methods(config, adapter_dir)}
    return evaluate_methods(
        model_dir, data_dir, out_dir, config, methods, metrics_name(config.protocol), progress=progress
    )


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become None."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run(paths: StagePaths, config: EvaluateConfig, progress: bool = False) -> dict:
    """Evaluate the configured methods of ``paths.model`` on ``paths.data``, ``seed`` being the final
    round of `seed.stages.evolve` (round 1: ``paths.adapter`` on ``paths.model``, when it exists);
    metrics, plots and answers go to ``paths.reports``."""
    from seed.files.rounds import ROUNDS_NAME, read_rounds

    final = (read_rounds(paths.rounds) or [{"round": 1}])[-1]
    if final["round"] == 1:  # stages purify and distill; no adapter yet: seed is skipped with a note
        adapter, generator = (paths.adapter if Path(paths.adapter).exists() else None), None
    else:
        adapter, generator = Path(final["adapter"]), final["generator"]
        if not (adapter / "adapter_config.json").is_file():
            raise DataError(
                Path(paths.rounds) / ROUNDS_NAME,
                f"round {final['round']}'s adapter {adapter} is missing; rerun stage evolve",
            )
    return evaluate_stage(
        paths.model, paths.data, paths.reports, config, adapter, progress, adapter_model=generator
    )


def show(summary: dict) -> tuple[str, int]:
    """The results tables (`seed.eval.report.results_table`)."""
    from seed.eval.report import results_table

    return results_table(summary), 0
