"""The pipeline stages, one module per stage, and the functions that run them for the CLI,
`dvc repro` (``python -m seed.stages <name>``, see `__main__`) and the Prefect flow.

Each stage has one name everywhere: the DVC stage, the params.yaml section, the flow task and the
MLflow tag. A stage reads its config from its params.yaml section and writes its outputs atomically.

```
data/ --validate--> reports/validation.json
      --pretrain--> artifacts/base-model
      --purify----> artifacts/targets        (sparse purified targets + manifest)
      --distill---> artifacts/adapter        (PEFT LoRA adapter)  + artifacts/seed-model (merged)
      --evaluate--> reports/metrics.json, reports/*.png, reports/answers/
```

- `validate`: the config of the great-expectations checks of `seed.validate` (`ValidateConfig`).
- `purify`: the model answers the unlabelled split and becomes its own teacher (`PurifyConfig`,
  `build_targets`).
- `distill`: a LoRA adapter trained toward the purified targets (`DistillConfig`, `distill`,
  `merge_and_save`).
- `evaluate`: POPE, MME and CHAIR per decoding method (`EvaluateConfig`, `evaluate_stage`).
- `evolve`: rounds of purify -> distill -> merge, each round's model teaching the next (`evolve`).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seed.files.atomic import write_json

# Default locations, relative to the working directory (the repo root for `dvc repro`).
DATA = Path("data")
BASE_MODEL = Path("artifacts/base-model")
TARGETS = Path("artifacts/targets")
ADAPTER = Path("artifacts/adapter")
SEED_MODEL = Path("artifacts/seed-model")
REPORTS = Path("reports")


def load_stage_config(stage: str, params: str | Path = "params.yaml", **overrides):
    """The config dataclass of ``stage`` read from its params.yaml section."""
    from seed.params import load_config

    if stage not in STAGE_TABLE:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    return load_config(STAGE_TABLE[stage].config_class(), stage, params, **overrides)


def run_validate(data_dir: Path = DATA, report_path: Path = REPORTS / "validation.json", config=None):
    """Validate a world folder with great-expectations; write the report as JSON; return the report."""
    from seed.validate import validate_world

    config = config or load_stage_config("validate")
    report = validate_world(data_dir, max_image_side=config.max_image_side)
    write_json(report_path, report.to_dict())
    return report


def run_pretrain(
    data_dir: Path = DATA, out_dir: Path = BASE_MODEL, config=None, progress: bool = True
) -> dict:
    """Train the embedded base model on the world's supervised split."""
    from seed.stages.pretrain import pretrain

    return pretrain(data_dir, out_dir, config or load_stage_config("pretrain"), progress=progress)


def run_purify(
    model_dir: Path = BASE_MODEL,
    data_dir: Path = DATA,
    out_dir: Path = TARGETS,
    config=None,
    progress: bool = True,
) -> dict:
    """Self-generate responses on the unlabelled split and write purified sparse targets."""
    from seed.stages.purify import build_targets

    return build_targets(
        model_dir, data_dir, out_dir, config or load_stage_config("purify"), progress=progress
    )


def run_distill(
    model_dir: Path = BASE_MODEL,
    data_dir: Path = DATA,
    targets_dir: Path = TARGETS,
    adapter_dir: Path = ADAPTER,
    merged_dir: Path = SEED_MODEL,
    config=None,
    progress: bool = True,
) -> dict:
    """Distil the purified targets into a LoRA adapter, then write the merged model for serving."""
    from seed.stages.distill import distill, merge_and_save

    summary = distill(
        model_dir,
        data_dir,
        targets_dir,
        adapter_dir,
        config or load_stage_config("distill"),
        progress=progress,
    )
    merge_and_save(model_dir, adapter_dir, merged_dir)
    return summary


def run_evaluate(
    model_dir: Path = BASE_MODEL,
    data_dir: Path = DATA,
    out_dir: Path = REPORTS,
    config=None,
    adapter_dir: Path | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate the configured methods (base, vcd, seed) and write reports/metrics.json and plots."""
    from seed.stages.evaluate import evaluate_stage

    return evaluate_stage(
        model_dir,
        data_dir,
        out_dir,
        config or load_stage_config("evaluate"),
        adapter_dir=adapter_dir,
        progress=progress,
    )


@dataclasses.dataclass(frozen=True)
class StagePaths:
    """Where the stages of one pipeline run read and write; the defaults are the DVC project's layout."""

    data: Path = DATA
    model: str | Path = BASE_MODEL  # the base model that purify, distill and evaluate read (path or hub id)
    base_model: Path = BASE_MODEL  # where pretrain writes
    targets: Path = TARGETS
    adapter: Path = ADAPTER
    seed_model: Path = SEED_MODEL
    reports: Path = REPORTS


def _as_json(summary: dict) -> tuple[str, int]:
    return json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2, default=str), 0


def _show_validation(summary: dict) -> tuple[str, int]:
    from seed.validate.report import ValidationReport

    report = ValidationReport.from_dict(summary)
    return report.format(), 0 if report.ok else 1


def _show_results(summary: dict) -> tuple[str, int]:
    from seed.eval.report import results_table

    return results_table(summary), 0


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage: its name (DVC stage, params.yaml section, flow task, MLflow tag), its config
    dataclass (``"module:Class"``), how to run it on a `StagePaths` and how to show its summary."""

    name: str
    config: str
    run: Callable[[StagePaths, Any, bool], dict]  # (paths, config, progress) -> summary
    show: Callable[[dict], tuple[str, int]] = _as_json  # summary -> (text, exit code)

    def config_class(self) -> type:
        module, cls = self.config.split(":")
        return getattr(importlib.import_module(module), cls)


# The one table of the pipeline's stages, in pipeline order; every dispatcher reads it.
STAGE_TABLE: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            "validate",
            "seed.stages.validate:ValidateConfig",
            lambda p, c, progress: run_validate(p.data, p.reports / "validation.json", c).to_dict(),
            _show_validation,
        ),
        Stage(
            "pretrain",
            "seed.stages.pretrain:PretrainConfig",
            lambda p, c, progress: run_pretrain(p.data, p.base_model, c, progress=progress),
        ),
        Stage(
            "purify",
            "seed.stages.purify:PurifyConfig",
            lambda p, c, progress: run_purify(p.model, p.data, p.targets, c, progress=progress),
        ),
        Stage(
            "distill",
            "seed.stages.distill:DistillConfig",
            lambda p, c, progress: run_distill(
                p.model, p.data, p.targets, p.adapter, p.seed_model, c, progress=progress
            ),
        ),
        Stage(
            "evaluate",
            "seed.stages.evaluate:EvaluateConfig",
            lambda p, c, progress: run_evaluate(
                p.model,
                p.data,
                p.reports,
                c,
                adapter_dir=p.adapter if Path(p.adapter).exists() else None,
                progress=progress,
            ),
            _show_results,
        ),
    )
}
STAGES = tuple(STAGE_TABLE)


def main(argv: list[str] | None = None) -> int:
    """``python -m seed.stages <stage>``: run one stage on the default paths (what dvc.yaml calls)."""
    import os

    from seed.errors import SeedError

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1 or argv[0] not in STAGES:
        print(f"usage: python -m seed.stages {{{','.join(STAGES)}}}", file=sys.stderr)
        return 2
    stage = STAGE_TABLE[argv[0]]
    try:
        summary = stage.run(StagePaths(), load_stage_config(stage.name), False)
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text, code = stage.show(summary)
    print(text)
    return code
