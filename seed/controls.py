"""`seed controls`: six evaluation rows that tell prior removal from sharpening and a yes-shift.

A POPE gain can come from three effects (docs/method.md, "Reading the numbers"): sharpening, a shift
of the yes-ratio, or removal of the language prior. Each control holds all but one ingredient of
SEED fixed, so the difference between two rows names the effect:

```
 row               model                                  contrast image           what it isolates
 base              the base model                         -                        the starting point
 vcd               the base model, VCD decoding           noised image             contrast at decoding (2 forwards)
 seed              + SEED adapter (purify params)         noised image             SEED as configured
 seed_no_contrast  + adapter, cd_alpha 0                   none                     plain self-distillation:
                                                                                   sharpening, no prior removal
 bias              the base model, yes/no logit bias      -                        a pure yes-shift, tuned on a
                   tuned on a validation world                                     validation world
 seed_oracle       + adapter, contrast with the scene     the same scene without   a positive control: the best
                   drawn without its objects              its objects              prior a contrast can remove
```

Every SEED row uses the same responses (greedy, from the same base model), plausibility cut-off,
LoRA, loss, epochs and centring (``purify.centre``, read on the row's own contrast image); only the
contrast differs. All six go through `seed.stages.evaluate.evaluate_methods`
and are written in the schema of ``reports/metrics.json`` to ``reports/controls.json``.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seed.errors import ConfigError
from seed.files.atomic import write_json

if TYPE_CHECKING:
    from seed.stages.distill import DistillConfig
    from seed.stages.evaluate import EvaluateConfig
    from seed.stages.purify import PurifyConfig

CONTROLS = ("base", "vcd", "seed", "seed_no_contrast", "bias", "seed_oracle")
BIAS_GRID = tuple(round(-3.0 + 0.05 * i, 2) for i in range(121))  # yes/no logit bias candidates


def best_yes_bias(labels: dict[str, list[str]], margins: dict[str, list[float]]) -> tuple[float, float]:
    """The constant bias b (on the "Yes" logit, -b on "No") with the best mean F1 over the splits.

    labels / margins: per split, the questions' "yes"/"no" labels and the first answer token's
    yes-minus-no logit margin. With the bias the model says yes where ``margin + 2 b > 0``. Ties go to
    the smallest ``|b|``. Returns (b, mean F1 at b).
    """
    from seed.eval.pope import pope_metrics

    if not labels or labels.keys() != margins.keys():
        raise ValueError("best_yes_bias needs the same, non-empty set of splits in labels and margins")
    best_bias, best_f1 = 0.0, -1.0
    for bias in sorted(BIAS_GRID, key=abs):  # the first of equal F1s is the smallest |b|
        f1 = sum(
            pope_metrics(labels[s], ["yes" if m + 2 * bias > 0 else "no" for m in margins[s]])["f1"]
            for s in labels
        ) / len(labels)
        if f1 > best_f1 + 1e-12:
            best_bias, best_f1 = bias, f1
    return best_bias, best_f1


def validation_world(data_dir: Path, out_dir: Path, seed: int, n_pope_images: int) -> Path:
    """A small world like ``data_dir``'s but drawn with another ``seed``: POPE files only, for tuning."""
    from seed.world.redraw import redraw_world, world_config

    if seed == world_config(data_dir).seed:
        raise ConfigError(
            f"controls.validation_seed = {seed} is the evaluated world's own seed; choose another"
        )
    return redraw_world(
        data_dir,
        out_dir,
        seed=seed,
        n_train=1,
        n_seed=0,
        n_pope_images=n_pope_images,
        n_mme_images=0,
        n_chair_images=0,
    )


def tune_yes_bias(
    model_dir: Path, world: Path, config: EvaluateConfig, progress: bool = True
) -> dict[str, Any]:
    """Tune the bias control on ``world``'s POPE splits with the base model; returns bias and its F1."""
    from seed.eval.benchmarks import pope_files
    from seed.eval.pope import build_pope_prompt, load_pope_questions
    from seed.model.generate import answer_all, load_model

    model, processor = load_model(model_dir, dtype=config.dtype, device=config.device)
    labels: dict[str, list[str]] = {}
    margins: dict[str, list[float]] = {}
    for split, path in pope_files(world / "pope").items():
        questions = load_pope_questions(path)
        margins[split] = []
        answer_all(
            model,
            processor,
            [world / "images" / "eval" / q["image"] for q in questions],
            [build_pope_prompt(q["text"]) for q in questions],
            batch_size=config.batch_size,
            max_new_tokens=1,
            desc=f"bias-{split}",
            progress=progress,
            margins=margins[split],
        )
        labels[split] = [q["label"] for q in questions]
    bias, f1 = best_yes_bias(labels, margins)
    return {"yes_bias": bias, "validation_mean_f1": round(f1, 4), "validation_splits": sorted(labels)}


def train_adapter(
    model_dir: Path,
    data_dir: Path,
    work: Path,
    purify: PurifyConfig,
    distill: DistillConfig,
    progress: bool = True,
) -> Path:
    """Purify and distil one adapter into ``work/{targets,adapter}``; returns the adapter folder."""
    from seed.stages.distill import distill as run_distill
    from seed.stages.purify import build_targets

    build_targets(model_dir, data_dir, work / "targets", purify, progress=progress)
    run_distill(model_dir, data_dir, work / "targets", work / "adapter", distill, progress=progress)
    return work / "adapter"


def run_controls(
    model_dir: Path,
    data_dir: Path,
    work_dir: Path,
    out_file: Path,
    purify: PurifyConfig,
    distill: DistillConfig,
    evaluate: EvaluateConfig,
    adapter_dir: Path | None = None,
    validation_seed: int = 1,
    validation_pope_images: int = 100,
    progress: bool = True,
) -> dict:
    """Build and evaluate the six control rows; writes ``out_file`` (metrics.json's schema + settings).

    ``adapter_dir``: the SEED adapter of this model and these purify/distill settings (the pipeline's
    ``artifacts/adapter``); None trains it here. Adapters, targets, oracle images, the validation
    world and the answers go under ``work_dir``.
    """
    from seed.stages.evaluate import MethodSpec, evaluate_methods
    from seed.world.redraw import render_oracle_seed_images, world_config

    start = time.perf_counter()
    model_dir, data_dir, work_dir = Path(model_dir), Path(data_dir), Path(work_dir)
    if validation_seed == world_config(data_dir).seed:  # before minutes of training, not after
        raise ConfigError(
            f"controls.validation_seed = {validation_seed} is the evaluated world's own seed; choose another"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    if adapter_dir is None:
        adapter_dir = train_adapter(model_dir, data_dir, work_dir / "seed", purify, distill, progress)
    no_contrast = dataclasses.replace(purify, cd_alpha=0.0, centre="none")
    no_contrast_adapter = train_adapter(
        model_dir, data_dir, work_dir / "seed_no_contrast", no_contrast, distill, progress
    )
    oracle_images = work_dir / "oracle-images"
    shutil.rmtree(oracle_images, ignore_errors=True)
    render_oracle_seed_images(data_dir, oracle_images)
    oracle = dataclasses.replace(purify, contrast_dir=str(oracle_images))  # SEED's centring, read on it
    oracle_adapter = train_adapter(model_dir, data_dir, work_dir / "seed_oracle", oracle, distill, progress)
    world = validation_world(data_dir, work_dir / "validation-world", validation_seed, validation_pope_images)
    bias = tune_yes_bias(model_dir, world, evaluate, progress)
    methods = {
        "base": MethodSpec(),
        "vcd": MethodSpec(vcd=True),
        "seed": MethodSpec(adapter=Path(adapter_dir)),
        "seed_no_contrast": MethodSpec(adapter=no_contrast_adapter),
        "bias": MethodSpec(yes_bias=bias["yes_bias"]),
        "seed_oracle": MethodSpec(adapter=oracle_adapter),
    }
    metrics = evaluate_methods(
        model_dir, data_dir, work_dir / "eval", evaluate, methods, "metrics.json", progress=progress
    )
    metrics["controls"] = {
        "bias": bias | {"validation_seed": validation_seed, "validation_pope_images": validation_pope_images},
        "purify": dataclasses.asdict(purify),
        "no_contrast": {"cd_alpha": 0.0},
        "oracle": {
            "contrast": "the scene rendered without its objects (seed data oracle)",
            "centre": purify.centre,
        },
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json(out_file, metrics)
    return metrics
