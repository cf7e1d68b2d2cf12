"""The pipeline stages, one module per stage, and the one table that dispatches them (`STAGE_TABLE`)
for `dvc repro` (``python -m seed.stages <name>``, see `__main__`) and the Prefect flow.

Each stage has one name everywhere: the module ``seed.stages.<name>``, the DVC stage, the params.yaml
section, the flow task, the CLI command and the MLflow tag. Its module holds its config dataclass and
``run(paths, config, progress)``; a stage reads its config from its params.yaml section and writes its
outputs atomically.

```
data/ --validate--> reports/validation.json
      --pretrain--> artifacts/base-model
      --purify----> artifacts/targets        (sparse purified targets + manifest)
      --distill---> artifacts/adapter        (PEFT LoRA adapter)  + artifacts/seed-model (merged)
      --evolve----> artifacts/rounds         (rounds 2..N, each taught by the previous round's model)
      --evaluate--> reports/metrics.json, reports/*.png, reports/answers/   (the final round)
```

- `validate`: the great-expectations checks of `seed.validate` on a world (`ValidateConfig`).
- `pretrain`: the embedded base model (`PretrainConfig`, `pretrain`).
- `purify`: the model answers the unlabelled split and becomes its own teacher (`PurifyConfig`,
  `build_targets`).
- `distill`: a LoRA adapter trained toward the purified targets (`DistillConfig`, `distill`,
  `merge_and_save`).
- `evolve`: rounds 2..N of purify -> distill -> merge, each round's model teaching the next
  (`EvolveConfig`, `pipeline_round`, `evolve` for the rounds outside the pipeline).
- `evaluate`: POPE, MME and CHAIR per decoding method (`EvaluateConfig`, `evaluate_stage`); ``seed``
  is the final round.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from pathlib import Path
from typing import Any

# Default locations, relative to the working directory (the repo root for `dvc repro`).
DATA = Path("data")
BASE_MODEL = Path("artifacts/base-model")
TARGETS = Path("artifacts/targets")
ADAPTER = Path("artifacts/adapter")
SEED_MODEL = Path("artifacts/seed-model")
ROUNDS = Path("artifacts/rounds")
REPORTS = Path("reports")


def load_stage_config(stage: str, params: str | Path = "params.yaml", **overrides):
    """The config dataclass of ``stage`` read from its params.yaml section."""
    from seed.params import load_config

    if stage not in STAGE_TABLE:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    return load_config(STAGE_TABLE[stage].config_class(), stage, params, **overrides)


@dataclasses.dataclass(frozen=True)
class StagePaths:
    """Where the stages of one pipeline run read and write; the defaults are the DVC project's layout."""

    data: Path = DATA
    model: str | Path = BASE_MODEL  # the base model that purify, distill and evaluate read (path or hub id)
    base_model: Path = BASE_MODEL  # where pretrain writes
    targets: Path = TARGETS
    adapter: Path = ADAPTER
    seed_model: Path = SEED_MODEL
    rounds: Path = ROUNDS  # rounds 2..N of `evolve` and the list of every round
    reports: Path = REPORTS


def show_json(summary: dict) -> tuple[str, int]:
    """A stage summary as indented JSON (its ``config`` left out), exit code 0."""
    return json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2, default=str), 0


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage: its name (DVC stage, params.yaml section, flow task, MLflow tag, and the module
    ``seed.stages.<name>``) and its config dataclass there. The module's ``run(paths, config,
    progress) -> summary`` runs it; its ``show(summary) -> (text, exit code)``, if it has one, says
    what `python -m seed.stages` prints (default: `show_json`)."""

    name: str
    config: str

    @property
    def module(self) -> str:
        return f"seed.stages.{self.name}"

    def config_class(self) -> type:
        return getattr(importlib.import_module(self.module), self.config)

    def run(self, paths: StagePaths, config: Any, progress: bool = False) -> dict:
        return importlib.import_module(self.module).run(paths, config, progress)

    def show(self, summary: dict) -> tuple[str, int]:
        return getattr(importlib.import_module(self.module), "show", show_json)(summary)


# The one table of the pipeline's stages, in pipeline order; every dispatcher reads it.
STAGE_TABLE: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("validate", "ValidateConfig"),
        Stage("pretrain", "PretrainConfig"),
        Stage("purify", "PurifyConfig"),
        Stage("distill", "DistillConfig"),
        Stage("evolve", "EvolveConfig"),
        Stage("evaluate", "EvaluateConfig"),
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
