"""Self-evolution: rounds of purify -> distill -> merge, each round's model teaching the next.

```
 round 1:  base model ----purify----> targets ----distill----> adapter ----merge----> model (round 1)
 round r:  model (r-1) --purify----> targets ----distill----> adapter ----merge----> model (round r)
                                                                                  `--> evaluate(model)
 work_dir/round-<r>/{targets, adapter, model, round.json};  work_dir/rounds.json
```

Round ``r`` generates the responses and the purified targets with the merged model of round
``r - 1`` (round 1: the base model), trains a fresh adapter on top of that same model and merges it.
Only images and instructions of the unlabelled split are read; no label, no external model. With
``distill_config.online`` the targets folder is skipped (targets are computed during training).
An interrupted round resumes its purify stage shard by shard (see `seed.stages.purify`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seed.errors import ConfigError
from seed.files.atomic import write_json as _write_json
from seed.stages.distill import DistillConfig, distill, merge_and_save
from seed.stages.purify import PurifyConfig, build_targets

SECTION = "evolve"
ROUNDS_NAME = "rounds.json"
ROUND_NAME = "round.json"


def round_dir(work_dir: str | Path, round_index: int) -> Path:
    """``work_dir/round-<r>`` (1-based)."""
    return Path(work_dir) / f"round-{round_index}"


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
    """Run ``rounds`` SEED rounds from ``model_path``; returns one summary per round.

    Args:
        model_path: the base model (round 1's generator and teacher).
        data_dir: the data folder (``seed/instructions.json`` and ``images/seed/``).
        work_dir: receives ``round-<r>/{targets,adapter,model}``, ``round-<r>/round.json`` and
            ``rounds.json`` (all round summaries so far).
        purify_config / distill_config: the stages' settings, the same for every round.
        rounds: number of rounds (>= 1).
        evaluate: optional ``evaluate(model_dir) -> dict`` called on each round's merged model; its
            result is stored under ``"eval"`` in the round's summary.

    Returns:
        Per round: ``round``, ``generator`` (the model that taught it), ``targets`` (purify meta, or
        None online), ``distill`` (summary), ``model`` (the merged folder), ``eval`` and ``seconds``.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"{SECTION}.rounds = {rounds!r} must be an integer >= 1")
    purify_config = purify_config or PurifyConfig()
    distill_config = distill_config or DistillConfig()
    work_dir = Path(work_dir)
    current = Path(model_path) if Path(model_path).exists() else model_path
    summaries: list[dict[str, Any]] = []
    for r in range(1, rounds + 1):
        start = time.perf_counter()
        folder = round_dir(work_dir, r)
        targets_meta = None
        if not distill_config.online:
            targets_meta = build_targets(
                current, data_dir, folder / "targets", purify_config, progress=progress
            )
        distill_summary = distill(
            current,
            data_dir,
            None if distill_config.online else folder / "targets",
            folder / "adapter",
            distill_config,
            progress=progress,
            purify_config=purify_config,
        )
        model_dir = merge_and_save(
            current, folder / "adapter", folder / "model", device=distill_config.device
        )
        summary: dict[str, Any] = {
            "round": r,
            "generator": str(current),
            "targets": targets_meta,
            "distill": distill_summary,
            "model": str(model_dir),
            "eval": evaluate(model_dir) if evaluate is not None else None,
            "seconds": round(time.perf_counter() - start, 3),
        }
        _write_json(folder / ROUND_NAME, summary)
        summaries.append(summary)
        _write_json(work_dir / ROUNDS_NAME, summaries)
        current = model_dir
    return summaries


__all__ = ["evolve", "round_dir"]
