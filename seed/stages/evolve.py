"""Stage `evolve`: self-evolution, rounds of purify -> distill -> merge, each round's model teaching the next.

```
 round 1:  base model ----purify----> targets ----distill----> adapter ----merge----> model (round 1)
 round r:  model (r-1) --purify----> targets ----distill----> adapter ----merge----> model (round r)
```

Round ``r`` generates the responses and the purified targets with the merged model of round
``r - 1`` (round 1: the base model), trains a fresh adapter on top of that same model and merges it.
Only images and instructions of the unlabelled split are read; no label, no external model.

In the pipeline (params.yaml ``evolve.rounds``, default 1), round 1 is the stages `purify` and
`distill` (``artifacts/targets``, ``artifacts/adapter``, ``artifacts/seed-model``); this stage runs
rounds 2..N into ``artifacts/rounds/round-<r>/{targets,adapter,model}`` and writes
``artifacts/rounds/rounds.json``, the list of every round's generator, adapter and model. Its last
entry is the final round: the one `evaluate` scores as ``seed``, the flow registers (tagged with the
round count) and MLflow shows as the last nested run. With one round the stage only writes that list.

`evolve` is the same loop outside the pipeline (``seed evolve``): every round, round 1 included,
under ``work_dir/round-<r>/``, with an optional evaluation of each round's model.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seed.errors import DataError
from seed.files.atomic import write_json as _write_json
from seed.files.rounds import ROUNDS_NAME, round_dir, write_rounds
from seed.params import check_integer
from seed.stages.distill import DistillConfig, distill, merge_and_save
from seed.stages.purify import PurifyConfig, build_targets

if TYPE_CHECKING:
    from seed.stages import StagePaths

SECTION = "evolve"
ROUND_NAME = "round.json"
SUMMARIES_NAME = "summaries.json"


@dataclasses.dataclass
class EvolveConfig:
    """Settings of stage `evolve` (params.yaml section ``evolve``).

    rounds: SEED rounds in the pipeline (>= 1). Round 1 is `purify` + `distill`; each further round
    purifies and distils again with the previous round's merged model as generator and teacher, with
    the same ``purify`` and ``distill`` settings.
    """

    rounds: int = 1

    def __post_init__(self) -> None:
        check_integer(SECTION, "rounds", self.rounds, lo=1)


def evolve_round(
    generator: str | Path,
    data_dir: str | Path,
    folder: str | Path,
    purify_config: PurifyConfig,
    distill_config: DistillConfig,
    progress: bool = True,
) -> dict[str, Any]:
    """One round from ``generator``: ``folder/{targets,adapter,model}``; returns what it did.

    ``{"generator", "targets" (purify meta, None online), "distill" (summary), "adapter", "model",
    "seconds"}``. The purify part resumes shard by shard (`seed.stages.purify`).
    """
    start = time.perf_counter()
    folder = Path(folder)
    targets = None if distill_config.online else folder / "targets"
    targets_meta = None
    if targets is not None:
        targets_meta = build_targets(generator, data_dir, targets, purify_config, progress=progress)
    summary = distill(
        generator,
        data_dir,
        targets,
        folder / "adapter",
        distill_config,
        progress=progress,
        purify_config=purify_config,
    )
    model = merge_and_save(generator, folder / "adapter", folder / "model", device=distill_config.device)
    return {
        "generator": str(generator),
        "targets": targets_meta,
        "distill": summary,
        "adapter": str(folder / "adapter"),
        "model": str(model),
        "seconds": round(time.perf_counter() - start, 3),
    }


def evolve(
    model_path: str | Path,
    data_dir: str | Path,
    work_dir: str | Path,
    purify_config: PurifyConfig | None = None,
    distill_config: DistillConfig | None = None,
    rounds: int = 1,
    evaluate: Callable[[Path], dict[str, Any]] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run ``rounds`` SEED rounds from ``model_path`` into ``work_dir``; returns one summary per round.

    Each round is `evolve_round` into ``work_dir/round-<r>`` with ``round`` added and, when given,
    ``eval``: ``evaluate(model_dir)`` on the round's merged model. Each summary is also written to
    ``round-<r>/round.json``, and all so far to ``work_dir/summaries.json``.
    """
    EvolveConfig(rounds)  # the same check as params.yaml's
    purify_config = purify_config or PurifyConfig()
    distill_config = distill_config or DistillConfig()
    work_dir = Path(work_dir)
    current = Path(model_path) if Path(model_path).exists() else model_path
    summaries: list[dict[str, Any]] = []
    for r in range(1, rounds + 1):
        folder = round_dir(work_dir, r)
        summary = {
            "round": r,
            **evolve_round(current, data_dir, folder, purify_config, distill_config, progress),
        }
        summary["eval"] = evaluate(Path(summary["model"])) if evaluate is not None else None
        _write_json(folder / ROUND_NAME, summary)
        summaries.append(summary)
        _write_json(work_dir / SUMMARIES_NAME, summaries)
        current = Path(summary["model"])
    return summaries


def first_round(paths: StagePaths) -> dict[str, Any]:
    """Round 1 of the pipeline: stages `purify` and `distill` (their paths, as the list records them)."""
    return {
        "round": 1,
        "generator": str(paths.model),
        "targets": str(paths.targets),
        "adapter": str(paths.adapter),
        "model": str(paths.seed_model),
    }


def start_rounds(paths: StagePaths) -> list[dict[str, Any]]:
    """The rounds list as a pipeline run starts it: round 1 only. An earlier ``rounds.json`` is
    removed first, so that a run that stops in round ``r`` leaves no list of another run's rounds."""
    (Path(paths.rounds) / ROUNDS_NAME).unlink(missing_ok=True)
    return [first_round(paths)]


def pipeline_round(
    paths: StagePaths,
    r: int,
    purify_config: PurifyConfig,
    distill_config: DistillConfig,
    progress: bool = False,
) -> dict[str, Any]:
    """Round ``r`` >= 2 of the pipeline into ``paths.rounds/round-<r>``, taught by round ``r - 1``'s model."""
    previous = paths.seed_model if r == 2 else round_dir(paths.rounds, r - 1) / "model"
    if not Path(previous).is_dir():
        raise DataError(previous, f"round {r - 1}'s merged model is missing; run the rounds in order")
    folder = round_dir(paths.rounds, r)
    done = evolve_round(previous, paths.data, folder, purify_config, distill_config, progress)
    targets = "" if done["targets"] is None else str(folder / "targets")  # "": online distillation
    return {
        "round": r,
        "generator": str(previous),
        "targets": targets,
        "adapter": done["adapter"],
        "model": done["model"],
    }


def run(
    paths: StagePaths,
    config: EvolveConfig,
    progress: bool = False,
    purify_config: PurifyConfig | None = None,
    distill_config: DistillConfig | None = None,
) -> dict:
    """Rounds 2..``config.rounds`` after `purify` and `distill`, then ``rounds.json``. The rounds use
    ``purify_config`` and ``distill_config``, by default params.yaml's sections."""
    from seed.stages import load_stage_config

    purify_config = purify_config or load_stage_config("purify")
    distill_config = distill_config or load_stage_config("distill")
    entries = start_rounds(paths)
    for r in range(2, config.rounds + 1):
        entries.append(pipeline_round(paths, r, purify_config, distill_config, progress))
    write_rounds(paths.rounds, entries)
    return {"rounds": config.rounds, "final": entries[-1]}


__all__ = [
    "EvolveConfig",
    "evolve",
    "evolve_round",
    "first_round",
    "pipeline_round",
    "round_dir",
    "run",
    "start_rounds",
]
