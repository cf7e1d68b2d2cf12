"""`seed run` (the flow, locally, no server needed) and `seed serve` (the flow on a cron schedule).

Prefect reads its settings when it is imported, so both commands set its environment first and import
`flows.pipeline` afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from seed.errors import SeedError

RUN_EPILOG = """\
examples:
  seed run                                     the embedded world in data/, in this DVC project
  seed run --data /data/world --workdir runs/a  any world-format folder, without DVC, tracked in runs/a
  HF_HUB_OFFLINE=0 seed run --data /data/coco-world --workdir runs/llava --params gpu.yaml \\
           --base-model llava-hf/llava-1.5-7b-hf   a real checkpoint (skips pretrain)

view the runs:  mlflow ui --backend-store-uri sqlite:///WORKDIR/mlflow.db"""


def prefect_environment(workdir: Path, local: bool = True) -> None:
    """Prefect without a server (``local``: a temporary API on ``<workdir>/.prefect``), no telemetry."""
    if local:
        os.environ.setdefault("PREFECT_HOME", str(workdir.resolve() / ".prefect"))
        Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # its SQLite file needs it
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # the flow's log lines are the progress
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="world-format data folder (default: WORKDIR/data)")
    parser.add_argument(
        "--workdir",
        default=".",
        help="where artifacts/, reports/, mlflow.db and .prefect/ go (default: .); a DVC project "
        "runs its stages through `dvc repro`, any other folder runs them in-process",
    )
    parser.add_argument(
        "--params",
        default=None,
        help="params file (default: WORKDIR/params.yaml in a DVC project, else ./params.yaml; "
        "a missing file means every default)",
    )
    parser.add_argument(
        "--base-model",
        default=None,
        help="start from this checkpoint (folder or hub id) instead of pretraining",
    )


def resolve_paths(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """``(data, workdir, params)`` as absolute paths, with the defaults filled in."""
    from flows.workspace import is_dvc_project

    workdir = Path(args.workdir).resolve()
    data = Path(args.data).resolve() if args.data else workdir / "data"
    if args.params:
        params = Path(args.params).resolve()
    else:
        params = workdir / "params.yaml" if is_dvc_project(workdir) else Path("params.yaml").resolve()
    return data, workdir, params


def format_times(seconds: dict[str, float | None]) -> str:
    """``validate 3.1 s, pretrain up to date, ...``"""
    return ", ".join(f"{s} {'up to date' if t is None else f'{t:.1f} s'}" for s, t in seconds.items())


def main_run(argv: list[str] | None = None) -> int:
    """``seed run``: run the seed-pipeline flow locally; print stage times and the results table."""
    parser = argparse.ArgumentParser(
        prog="seed run",
        description="Run the whole pipeline as the Prefect flow seed-pipeline (no server needed): validate, "
        "pretrain, purify, distill, evolve (rounds 2..N), evaluate, track in MLflow, register and promote the final round.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser)
    parser.add_argument("--no-register", action="store_true", help="track the run but register no model")
    args = parser.parse_args(argv)
    prefect_environment(Path(args.workdir))

    from flows.pipeline import seed_pipeline
    from flows.workspace import load_configs, make_workspace
    from seed.eval.report import results_table

    data, workdir, params = resolve_paths(args)
    try:  # the flow checks these too; checked here they fail in one line, before any server starts
        load_configs(make_workspace(data, workdir, args.base_model), params)
        state = seed_pipeline(
            data_dir=str(data),
            workdir=str(workdir),
            params_path=str(params),
            base_model=args.base_model,
            register_model=not args.no_register,
            return_state=True,
        )
    except SeedError as exc:  # raised before the flow run starts (parameter checks)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not state.is_completed():
        from prefect.exceptions import FailedRun

        error = state.result(raise_on_failure=False)
        if isinstance(error, SeedError):  # bad input found by a stage: one line, the traceback is in the log
            print(f"error: {error}", file=sys.stderr)
            return 2
        if isinstance(error, BaseException) and not isinstance(error, FailedRun):
            raise error  # a bug: Prefect has logged it, Python shows it
        print(f"\n{state.message}", file=sys.stderr)  # the flow stopped itself: the validation report
        return 1
    result = state.result()
    print(f"\nstage times: {format_times(result['seconds'])}")
    if result.get("registration"):
        reg = result["registration"]
        print(f"model: {reg['name']} version {reg['version']} @{reg['alias']}: {reg['reason']}")
    print(
        f"mlflow run: {result['mlflow_run_id']} "
        f"(mlflow ui --backend-store-uri sqlite:///{result['workdir']}/mlflow.db)"
    )
    if result.get("metrics"):
        print("\n" + results_table(result["metrics"]))
        plots = sorted(Path(result["workdir"], "reports").glob("*.png"))
        if plots:
            print(f"\nplots: {', '.join(str(p) for p in plots)}")
    return 0


def main_serve(argv: list[str] | None = None) -> int:
    """``seed serve``: serve the flow as a deployment on a cron schedule against a Prefect server."""
    parser = argparse.ArgumentParser(
        prog="seed serve",
        description="Serve seed-pipeline as a scheduled deployment. Needs a Prefect server: run "
        "`prefect server start` elsewhere and set PREFECT_API_URL=http://127.0.0.1:4200/api.",
    )
    _common(parser)
    parser.add_argument("--cron", default="0 3 * * 0", help='schedule (default: "0 3 * * 0", Sundays 03:00)')
    parser.add_argument("--name", default="scheduled", help="deployment name (default: scheduled)")
    args = parser.parse_args(argv)
    prefect_environment(Path(args.workdir), local=False)

    from prefect.settings import get_current_settings

    from flows.pipeline import build_deployment, serve_deployment

    if not (os.environ.get("PREFECT_API_URL") or get_current_settings().api.url):
        print(
            "error: seed serve needs a Prefect server (a schedule does nothing on the temporary one): "
            "run `prefect server start`, then `export PREFECT_API_URL=http://127.0.0.1:4200/api`",
            file=sys.stderr,
        )
        return 2
    data, workdir, params = resolve_paths(args)
    parameters = {
        "data_dir": str(data),
        "workdir": str(workdir),
        "params_path": str(params),
        "base_model": args.base_model,
    }
    try:
        deployment = build_deployment(args.cron, args.name, parameters)
    except ValueError as exc:
        print(f"error: --cron {args.cron!r}: {exc}", file=sys.stderr)
        return 2
    print(f"serving seed-pipeline/{args.name} on cron {args.cron!r} with {json.dumps(parameters)}")
    serve_deployment(deployment)
    return 0
