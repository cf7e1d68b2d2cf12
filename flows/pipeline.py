"""The Prefect flow ``seed-pipeline``: the stages of `seed.stages`, tracked in MLflow, registered, promoted.

```
validate -> pretrain -> purify -> distill -> evolve (rounds 2..N) -> evaluate -> MLflow run -> register
   |  invalid data: the flow ends Failed with the great-expectations report; nothing downstream runs
```

Each stage is one task named after it (the DVC stage, the params.yaml section, the MLflow tag). Where
the stages run:

- in the DVC project (``workdir`` holds dvc.yaml and .dvc/, data is ``workdir/data``): each task is
  ``dvc.repo.Repo().reproduce(<stage>)``, which runs the stage's dvc.yaml command (``python -m
  seed.stages <stage>``) or skips it when nothing changed, and keeps dvc.lock true;
- anywhere else: the same stage function runs in-process on ``workdir`` paths, without DVC; the
  rounds of `evolve` (params.yaml ``evolve.rounds``) are then one task each (``evolve-r<r>``).

With N rounds the MLflow run is named ``seed r<N> <commit>`` and holds one nested run per round; the
final round's adapter is the one evaluated, registered (tagged ``seed.rounds``) and promoted.

No stage logic lives here. Only the I/O tasks (MLflow) retry.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State

from flows.workspace import Workspace, load_configs, make_workspace, workspace_rounds
from seed.stages import BASE_MODEL, STAGE_TABLE, STAGES, TARGETS, StagePaths

FLOW_NAME = "seed-pipeline"
DEFAULT_CRON = "0 3 * * 0"
IO_RETRIES = {"retries": 2, "retry_delay_seconds": 2}


@dataclass(frozen=True)
class StageRun:
    """One stage's outcome: seconds (None: DVC found it up to date), ok, and validate's report text."""

    stage: str
    seconds: float | None
    ok: bool = True
    report: str = ""


def python_first_on_path() -> None:
    """Put this interpreter's folder first on PATH, so that dvc.yaml's ``python`` is this environment's."""
    bin_dir = str(Path(sys.executable).parent)
    paths = os.environ.get("PATH", "").split(os.pathsep)
    if paths[:1] != [bin_dir]:
        os.environ["PATH"] = os.pathsep.join([bin_dir, *[p for p in paths if p != bin_dir]])


def reproduce(root: Path, stage: str) -> bool:
    """``dvc repro --single-item <stage>`` in the project at ``root``; False when it was up to date."""
    from dvc.repo import Repo

    python_first_on_path()
    target = f"{root / 'dvc.yaml'}:{stage}"  # DVC reads a bare stage name against the working directory
    # DVC's INFO lines (running, skipping, lock updated, `git add` hints) would be printed twice, once
    # by DVC and once through Prefect's logger; run_stage prints each stage's start, time and outcome.
    dvc_logger = logging.getLogger("dvc")
    level = dvc_logger.level
    dvc_logger.setLevel(logging.WARNING)
    try:
        with Repo(str(root)) as repo:
            return bool(repo.reproduce(target, single_item=True))
    finally:
        dvc_logger.setLevel(level)


def report_text(path: Path) -> tuple[bool, str]:
    """``(ok, readable report)`` of a validation report JSON written by stage validate."""
    from seed.validate.report import ValidationReport

    report = ValidationReport.from_dict(json.loads(path.read_text()))
    return report.ok, report.format()


def stage_paths(ws: Workspace) -> StagePaths:
    """The workspace's paths, as the stages name them."""
    return StagePaths(
        data=ws.data,
        model=ws.model,
        base_model=ws.root / BASE_MODEL,
        targets=ws.targets,
        adapter=ws.adapter,
        seed_model=ws.seed_model,
        rounds=ws.rounds,
        reports=ws.reports,
    )


def run_in_process(ws: Workspace, stage: str, config: Any) -> dict:
    """Run a stage of `seed.stages.STAGE_TABLE` on the workspace paths; returns its summary."""
    return STAGE_TABLE[stage].run(stage_paths(ws), config, False)


def final_round(ws: Workspace) -> dict[str, Any]:
    """The last entry of the workspace's rounds list (round 1: stages purify and distill)."""
    from seed.stages.evolve import first_round

    return (workspace_rounds(ws) or [first_round(stage_paths(ws))])[-1]


@task(cache_policy=NO_CACHE)
def evolve_round(ws: Workspace, r: int, configs: dict[str, Any]) -> dict[str, Any]:
    """Round ``r`` >= 2 of `seed.stages.evolve`, in-process; returns its rounds-list entry."""
    from seed.stages.evolve import pipeline_round

    start = time.perf_counter()
    entry = pipeline_round(stage_paths(ws), r, configs["purify"], configs["distill"])
    print(f"evolve: round {r} done in {time.perf_counter() - start:.1f} s (taught by {entry['generator']})")
    return entry


def run_rounds(ws: Workspace, configs: dict[str, Any]) -> StageRun:
    """Stage evolve in-process: one `evolve_round` task per round 2..N, then the rounds list."""
    from seed.files.rounds import write_rounds
    from seed.stages.evolve import start_rounds

    rounds = configs["evolve"].rounds
    print(f"evolve: {rounds} round(s) (in-process)")
    start = time.perf_counter()
    entries = start_rounds(stage_paths(ws))
    for r in range(2, rounds + 1):
        entries.append(evolve_round.with_options(name=f"evolve-r{r}")(ws, r, configs))
    write_rounds(ws.rounds, entries)
    return StageRun("evolve", time.perf_counter() - start)


def brief(summary: dict | None) -> str:
    """The scalar entries of a stage summary, as ``key=value`` words."""
    words = [
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in (summary or {}).items()
        if isinstance(v, int | float | str) and not isinstance(v, bool) and len(str(v)) < 40
    ]
    return " ".join(words)


@task(cache_policy=NO_CACHE)
def run_stage(ws: Workspace, stage: str, config: Any) -> StageRun:
    """Run one stage: through DVC in the project (skipped when up to date), in-process elsewhere."""
    print(f"{stage}: started ({'dvc repro' if ws.dvc else 'in-process'})")
    start = time.perf_counter()
    summary: dict | None = None
    if ws.dvc:
        from dvc.exceptions import ReproductionError

        try:
            ran = reproduce(ws.root, stage)
        except ReproductionError:
            report = ws.reports / "validation.json"
            if stage != "validate" or not report.is_file() or report_text(report)[0]:
                raise
            ran = True
        if not ran:
            print(f"{stage}: up to date, skipped (dvc)")
            return StageRun(stage, None)
    else:
        summary = run_in_process(ws, stage, config)
    seconds = time.perf_counter() - start
    if stage == "validate":
        ok, text = report_text(ws.reports / "validation.json")
        print(text)
        return StageRun(stage, seconds, ok, text)
    print(f"{stage}: done in {seconds:.1f} s {brief(summary)}".rstrip())
    return StageRun(stage, seconds)


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def open_run(ws: Workspace, tags: dict[str, str], rounds: int = 1) -> str:
    """Create the MLflow run of this pipeline run in ``<root>/mlflow.db``; returns its id."""
    from mlflow import MlflowClient

    from seed.mlops.tracking import configure

    experiment_id = configure(ws.root)
    run = MlflowClient().create_run(experiment_id, run_name=run_name(rounds), tags=tags)
    print(f"mlflow: run {run.info.run_id} in {ws.root / 'mlflow.db'} (view: mlflow ui in {ws.root})")
    return run.info.run_id


def read_metrics(ws: Workspace, config: Any) -> dict | None:
    """The evaluate stage's metrics (with its timings), or None when it wrote none."""
    from seed.stages.evaluate import read_metrics as read_stage_metrics

    return read_stage_metrics(ws.reports, getattr(config, "protocol", "greedy"))


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def track_run(
    ws: Workspace,
    run_id: str,
    configs: dict[str, Any],
    runs: list[StageRun],
    metrics: dict | None,
    status: str,
) -> dict[str, int]:
    """Log params, losses, metrics, plots, answers, datasets and the git commit into the MLflow run."""
    import mlflow

    from seed.mlops.tracking import (
        DatasetRef,
        configure,
        dataset_digest,
        dvc_hashes,
        log_pipeline_run,
        log_round_runs,
    )

    configure(ws.root)
    sections = dict(configs)
    world = ws.data / "world.json"
    if world.is_file():
        sections["world"] = json.loads(world.read_text()).get("config", {})
    hashes = dvc_hashes(ws.root) if ws.dvc else {}
    datasets = [DatasetRef("data", ws.data, dataset_digest(ws.data, hashes.get("data")), "training")]
    if any(r.stage == "purify" for r in runs) and ws.targets.is_dir():
        digest = dataset_digest(ws.targets, hashes.get(TARGETS.as_posix()))
        datasets.append(DatasetRef("targets", ws.targets, digest, "distillation"))
    model_dir = ws.root / BASE_MODEL if ws.base_model is None else Path(ws.base_model)
    finished = status == "FINISHED"  # a failed run logs what it read, not outputs left by an earlier run
    losses = {"pretrain": model_dir / "pretrain_loss.json", "distill": ws.adapter / "losses.json"}
    mlflow.start_run(run_id=run_id)
    try:
        skipped = [r.stage for r in runs if r.seconds is None]
        mlflow.set_tags({"seed.stages": ",".join(r.stage for r in runs), "seed.skipped": ",".join(skipped)})
        times = {r.stage: r.seconds for r in runs if r.seconds is not None}
        counts = log_pipeline_run(
            sections,
            times,
            ws.reports if finished else None,
            losses if finished else {},
            datasets,
            CODE_ROOT,
            metrics,
        )
        rounds = workspace_rounds(ws) if finished else []
        if len(rounds) > 1:  # one nested run per round
            mlflow.set_tag("seed.rounds", str(len(rounds)))
            log_round_runs(rounds, run_name(len(rounds)))
        validation = ws.reports / "validation.json"
        if not finished and validation.is_file() and any(r.stage == "validate" for r in runs):
            mlflow.log_artifact(str(validation), "reports")
    finally:
        mlflow.end_run(status=status)
    print(f"mlflow: logged {counts}")
    return counts


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def promote(ws: Workspace, run_id: str, metrics: dict | None, config: Any) -> dict[str, Any] | None:
    """Register the adapter as a version of seed-lvlm and move `champion` only if it passes the gate."""
    import mlflow
    from mlflow import MlflowClient

    from seed.mlops import registry
    from seed.mlops.gate import method_scores
    from seed.mlops.registry import MODEL_NAME, register_adapter
    from seed.mlops.tracking import NOTE_TAG, configure, run_note

    final = final_round(ws)  # the last self-evolving round: its adapter on the model that taught it
    adapter, rounds = Path(final["adapter"]), str(final["round"])
    if not (adapter / "adapter_config.json").is_file():
        print(f"registry: no adapter in {adapter}, nothing to register")
        return None
    configure(ws.root)
    mlflow.start_run(run_id=run_id)
    status = "FAILED"  # a retry resumes the run (RUNNING again); only a completed promotion finishes it
    try:
        version, created = register_adapter(adapter, final["generator"], method_scores(metrics, "seed"))
        MlflowClient().set_model_version_tag(MODEL_NAME, version.version, "seed.rounds", rounds)
        decision = registry.promote(version.version, method_scores(metrics, "base"), config)
        verdict = (
            f"**Registry:** {MODEL_NAME} version {version.version} -> @{decision.alias}: {decision.reason}"
        )
        mlflow.set_tags(
            {
                "seed.model_version": version.version,
                "seed.promotion": decision.alias,
                NOTE_TAG: f"{verdict}\n\n{run_note(metrics)}" if metrics else verdict,
            }
        )
        status = "FINISHED"
    finally:
        mlflow.end_run(status=status)
    what = "registered as" if created else "already registered as"
    print(f"registry: {what} {MODEL_NAME} version {version.version} -> @{decision.alias}: {decision.reason}")
    return {
        "name": MODEL_NAME,
        "version": str(version.version),
        "rounds": int(rounds),
        "created": created,
        "alias": decision.alias,
        "reason": decision.reason,
        "changed": decision.changed,
    }


CODE_ROOT = Path(__file__).parents[1]  # the checkout whose code runs; its commit names and tags the run


def run_name(rounds: int = 1) -> str:
    """``seed r<rounds> <short commit>`` (``nogit`` outside a git checkout): what the run is."""
    from seed.mlops.tracking import git_state

    commit = git_state(CODE_ROOT).get("mlflow.source.git.commit")
    return f"seed r{rounds} {commit[:7] if commit else 'nogit'}"


def run_tags(ws: Workspace) -> dict[str, str]:
    """Tags of the MLflow run: mode, paths, and the Prefect flow run it belongs to."""
    from prefect.runtime import flow_run

    return {
        "seed.mode": "dvc" if ws.dvc else "in-process",
        "seed.data": str(ws.data),
        "seed.workdir": str(ws.root),
        "seed.base_model": str(ws.model),
        "prefect.flow_run_id": str(flow_run.id or ""),
        "prefect.flow_run_name": str(flow_run.name or ""),
    }


@flow(name=FLOW_NAME, log_prints=True)
def seed_pipeline(
    data_dir: str = "data",
    workdir: str = ".",
    params_path: str = "params.yaml",
    overrides: dict[str, dict[str, Any]] | None = None,
    base_model: str | None = None,
    register_model: bool = True,
) -> dict[str, Any] | State:
    """Validate, pretrain, purify, distill, evolve and evaluate; track the run in MLflow; register and
    promote the final round."""
    ws = make_workspace(data_dir, workdir, base_model)
    configs = load_configs(ws, params_path, overrides)
    run_id = open_run(ws, run_tags(ws), configs["evolve"].rounds)
    runs: list[StageRun] = []
    try:
        for stage in STAGES:
            if stage == "pretrain" and ws.base_model:
                print(f"pretrain: skipped, starting from {ws.base_model}")
                continue
            if stage == "evolve" and not ws.dvc:
                runs.append(run_rounds(ws, configs))
                continue
            runs.append(run_stage.with_options(name=stage)(ws, stage, configs[stage]))
            if not runs[-1].ok:
                track_run(ws, run_id, configs, runs, None, "FAILED")
                return Failed(message=runs[-1].report)
    except Exception:
        track_run(ws, run_id, configs, runs, None, "FAILED")
        raise
    metrics = read_metrics(ws, configs["evaluate"])
    track_run(ws, run_id, configs, runs, metrics, "FINISHED")
    registration = promote(ws, run_id, metrics, configs["promote"]) if register_model else None
    return {
        "workdir": str(ws.root),
        "mode": "dvc" if ws.dvc else "in-process",
        "seconds": {r.stage: r.seconds for r in runs},
        "metrics": metrics,
        "mlflow_run_id": run_id,
        "registration": registration,
    }


def build_deployment(cron: str = DEFAULT_CRON, name: str = "scheduled", parameters: dict | None = None):
    """The flow as a deployment on a cron schedule (``flow.to_deployment``; needs no server to build)."""
    return seed_pipeline.to_deployment(name=name, cron=cron, parameters=parameters or {})


def serve_deployment(deployment) -> None:
    """Serve the deployment until interrupted (needs a running ``prefect server start``)."""
    from prefect import serve

    serve(deployment)
