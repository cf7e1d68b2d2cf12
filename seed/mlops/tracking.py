"""MLflow tracking of one pipeline run: what went in, what came out, and the code that did it.

One MLflow run per pipeline run, in a local SQLite store (``sqlite:///<root>/mlflow.db``, artifacts
under ``<root>/mlruns``) unless ``MLFLOW_TRACKING_URI`` names another server; ``mlflow ui`` in
``<root>`` shows it with no server running. A run holds:

=================  ==============================================================================
params             every params.yaml section the run used, resolved, as ``<section>.<key>``
metrics            metrics.json flattened (``pope/seed/adversarial/f1``: the UI groups charts by
                   ``/``), stage times (``time/<stage>``), per-step losses (``pretrain/loss``,
                   ``distill/loss``)
datasets           the data folder and the purified targets, with their DVC md5 as digest
artifacts          reports/*.png (plots/), reports/answers (answers/), metrics and validation reports
tags               git commit (``mlflow.source.git.commit``), dirty flag, mode, data path
name               ``seed r<rounds> <short commit>``; the experiment is tagged as model training
=================  ==============================================================================

No Prefect here: the flow in ``flows/`` calls these functions.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seed.errors import DataError

EXPERIMENT = "seed"
# The experiment tag the MLflow UI reads to choose its view: model training, not GenAI development.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
NOTE_TAG = "mlflow.note.content"  # what the UI shows as a run's description
EXPERIMENT_KIND = "custom_model_development"
STORE_NAME = "mlflow.db"
ARTIFACTS_NAME = "mlruns"
DIGEST_CHARS = 32  # MLflow keeps at most 36 characters of a dataset digest (a DVC md5 + ".dir")


def tracking_uri(root: str | Path) -> str:
    """The local SQLite store of ``root``: ``sqlite:///<root>/mlflow.db``."""
    return f"sqlite:///{(Path(root).resolve() / STORE_NAME).as_posix()}"


# mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI (for subprocesses): a value we set is not
# the user's choice and must not stick to the next store this process opens.
_SET_HERE: set[str] = set()


def resolve_uri(default: str) -> str:
    """``MLFLOW_TRACKING_URI`` when the user set it, else ``default``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return env if env and env not in _SET_HERE else default


def use_uri(uri: str) -> None:
    """Point MLflow's tracking and registry at ``uri``."""
    import mlflow

    _SET_HERE.add(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def configure(root: str | Path, experiment: str = EXPERIMENT) -> str:
    """Point MLflow (tracking and registry) at ``root``'s store; create the experiment; return its id.

    ``MLFLOW_TRACKING_URI``, when the user set it, wins over the local store. The experiment keeps its
    artifacts in ``<root>/mlruns`` whatever the working directory. Runs under the store's lock file
    (`seed.mlops.store_lock`): two processes creating one fresh SQLite store at once would corrupt it.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    from seed.mlops.store_lock import store_lock

    uri = resolve_uri(tracking_uri(root))
    use_uri(uri)
    with store_lock(uri):
        found = mlflow.get_experiment_by_name(experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            location = (Path(root).resolve() / ARTIFACTS_NAME).as_uri()
            experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
        # The UI opens an experiment of this kind on its training runs (not on GenAI traces).
        if found is None or found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            mlflow.MlflowClient().set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return experiment_id


# ---------------------------------------------------------------------------------------------------
# Flattening


def flatten(tree: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts/lists as ``{"a/b/0": 1.0}``; strings, None and NaN are left out.

    The ``/`` separator is what the MLflow UI groups charts by (``pope/seed/adversarial/f1`` sits in
    the section ``pope``)."""
    flat: dict[str, float] = {}
    if isinstance(tree, dict):
        items = ((str(k), v) for k, v in tree.items())
    elif isinstance(tree, list | tuple):
        items = ((str(i), v) for i, v in enumerate(tree))
    else:
        if isinstance(tree, int | float) and not isinstance(tree, bool) and math.isfinite(tree):
            flat[prefix] = float(tree)
        return flat
    for key, value in items:
        flat.update(flatten(value, f"{prefix}/{key}" if prefix else key))
    return flat


def flatten_params(sections: dict[str, Any]) -> dict[str, str]:
    """``{"pretrain": {"model": {"image_size": 16}}}`` -> ``{"pretrain.model.image_size": "16"}``.

    Config dataclasses are expanded; lists stay whole (as JSON), so each param is one setting.
    """
    flat: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        else:
            flat[key] = value if isinstance(value, str) else json.dumps(value)

    walk(sections, "")
    return flat


# ---------------------------------------------------------------------------------------------------
# Inputs: losses, hashes, datasets, code


def read_losses(path: str | Path) -> list[tuple[int, float]]:
    """``(step, loss)`` pairs from a loss file: a JSON list of numbers (distill's losses.json) or of
    ``{"step", "loss", ...}`` objects (pretrain_loss.json)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DataError(path, "loss file not found") from exc
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise DataError(path, "must be a JSON list of losses")
    pairs = []
    for i, item in enumerate(data):
        if isinstance(item, dict):
            step, loss = item.get("step", i), item.get("loss")
        else:
            step, loss = i, item
        if isinstance(loss, bool) or not isinstance(loss, int | float) or not isinstance(step, int):
            raise DataError(path, f"expected a number, got {loss!r}", field="loss", row=i)
        pairs.append((step, float(loss)))
    return pairs


def dvc_hashes(root: str | Path) -> dict[str, str]:
    """md5 of every path DVC knows under ``root``: ``{"data": "...dir", "artifacts/targets": ...}``.

    Read from the ``*.dvc`` files at ``root``, then from ``dvc.lock`` (stage deps and outs, which win:
    they are what the pipeline last read and wrote); empty outside a DVC project.
    """
    import yaml

    root = Path(root)
    hashes: dict[str, str] = {}
    for dvc_file in sorted(p for p in root.glob("*.dvc") if p.is_file()):  # not the .dvc/ folder
        for out in (yaml.safe_load(dvc_file.read_text()) or {}).get("outs", []):
            if "md5" in out:
                hashes[out["path"]] = out["md5"]
    lock = root / "dvc.lock"
    if lock.is_file():
        for stage in ((yaml.safe_load(lock.read_text()) or {}).get("stages") or {}).values():
            for entry in [*stage.get("deps", []), *stage.get("outs", [])]:
                if "md5" in entry:
                    hashes[entry["path"]] = entry["md5"]
    return hashes


def dataset_digest(path: str | Path, dvc_md5: str | None = None) -> str:
    """The DVC md5 when DVC tracks ``path``; else the first 32 hex digits of its sha256 content hash."""
    if dvc_md5:
        return dvc_md5
    from seed.files.hashing import content_hash

    return content_hash(path)[:DIGEST_CHARS]


def folder_summary(path: str | Path):
    """A DataFrame with one row per top-level entry of ``path``: name, files, bytes."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such folder to log as a dataset")
    rows = []
    for entry in sorted(path.iterdir()) if path.is_dir() else [path]:
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        rows.append({"name": entry.name, "files": len(files), "bytes": sum(p.stat().st_size for p in files)})
    return pd.DataFrame(rows, columns=["name", "files", "bytes"])


@dataclass(frozen=True)
class DatasetRef:
    """A folder the run read: its MLflow name, path, content digest and context (training, ...)."""

    name: str
    path: Path
    digest: str
    context: str


def log_dataset(ref: DatasetRef) -> None:
    """Log ``ref`` as an input of the active run (``mlflow.data.from_pandas(..., digest=...)``)."""
    import warnings

    import mlflow
    import mlflow.data

    with warnings.catch_warnings():  # "source can be interpreted in multiple ways", integer columns
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(
            folder_summary(ref.path),
            source=Path(ref.path).resolve().as_uri(),
            name=ref.name,
            digest=ref.digest,
        )
        mlflow.log_input(dataset, context=ref.context)


def git_state(root: str | Path) -> dict[str, str]:
    """``{"mlflow.source.git.commit": sha, "seed.git_dirty": "true"|"false"}`` of the repo at ``root``."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"seed.git_commit": "none (no commit yet)"}
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"mlflow.source.git.commit": commit, "seed.git_dirty": "true" if dirty else "false"}


# ---------------------------------------------------------------------------------------------------
# Logging into the active run


def log_losses(key: str, path: str | Path) -> int:
    """Log a loss file as the metric ``key`` (one point per step) in the active run; returns the count."""
    import time

    import mlflow
    from mlflow.entities import Metric

    pairs = read_losses(path)
    now = int(time.time() * 1000)
    run_id = mlflow.active_run().info.run_id
    metrics = [Metric(key, loss, now, step) for step, loss in pairs if math.isfinite(loss)]
    mlflow.MlflowClient().log_batch(run_id, metrics=metrics)
    return len(metrics)


def log_folder(path: str | Path, artifact_path: str, pattern: str = "*") -> int:
    """Log the files of ``path`` matching ``pattern`` (recursively for a folder) under ``artifact_path``."""
    import mlflow

    path = Path(path)
    if path.is_dir() and pattern == "*":
        mlflow.log_artifacts(str(path), artifact_path)
        return sum(1 for p in path.rglob("*") if p.is_file())
    files = sorted(path.glob(pattern)) if path.is_dir() else []
    for file in files:
        mlflow.log_artifact(str(file), artifact_path)
    return len(files)


def run_note(metrics: dict) -> str:
    """The run's description in the UI (markdown): the results tables `make demo` prints."""
    from seed.eval.report import results_table

    return "Results (`reports/metrics.json`; official POPE, MME and CHAIR rules):\n\n" + results_table(
        metrics
    )


def log_pipeline_run(
    configs: dict[str, Any],
    stage_seconds: dict[str, float],
    reports_dir: str | Path | None,
    loss_files: dict[str, Path],
    datasets: list[DatasetRef],
    code_root: str | Path,
    metrics: dict | None = None,
) -> dict[str, int]:
    """Log one pipeline run into the active MLflow run; returns what was logged, counted.

    configs: the resolved config of every section used (``{"pretrain": PretrainConfig, ...}``).
    reports_dir: plots (``*.png``), reports (``*.json``) and answers to log; None logs none.
    loss_files: ``{"pretrain": path, "distill": path}``, logged as ``<stage>/loss`` per step (a
    missing file is skipped: the stage did not run). metrics: the evaluate stage's metrics.json.
    """
    import mlflow

    reports_dir = None if reports_dir is None else Path(reports_dir)
    counts = {"params": 0, "metrics": 0, "loss_points": 0, "datasets": 0, "artifacts": 0}
    params = flatten_params(configs)
    mlflow.log_params(params)
    counts["params"] = len(params)
    mlflow.set_tags(git_state(code_root))
    flat = {f"time/{stage}": seconds for stage, seconds in stage_seconds.items()}
    if metrics:
        flat.update(flatten({k: v for k, v in metrics.items() if k != "protocol"}))
        mlflow.set_tags({"seed.protocol": str(metrics.get("protocol", "")), NOTE_TAG: run_note(metrics)})
    if flat:
        mlflow.log_metrics(flat)
    counts["metrics"] = len(flat)
    for stage, path in loss_files.items():
        if Path(path).is_file():
            counts["loss_points"] += log_losses(f"{stage}/loss", path)
    for ref in datasets:
        if Path(ref.path).exists():
            log_dataset(ref)
            counts["datasets"] += 1
    if reports_dir is not None:
        counts["artifacts"] += log_folder(reports_dir, "plots", "*.png")
        counts["artifacts"] += log_folder(reports_dir, "reports", "*.json")
        if (reports_dir / "answers").is_dir():
            counts["artifacts"] += log_folder(reports_dir / "answers", "answers")
    return counts


def round_metrics(entry: dict[str, Any]) -> dict[str, float]:
    """What one self-evolving round did, as metrics: its targets' manifest and its adapter's summary."""
    from seed.files.inputs import read_json

    found: dict[str, float] = {}
    manifest = Path(entry.get("targets") or "") / "manifest.json"
    if entry.get("targets") and manifest.is_file():
        meta = read_json(manifest).get("meta", {})
        found["purify/flagged_share"] = meta.get("flagged_share")
        found.update(
            {f"purify/{k}": v for k, v in meta.get("counts", {}).items() if k in ("samples", "tokens")}
        )
    summary = Path(entry["adapter"]) / "summary.json"
    if summary.is_file():
        values = read_json(summary)
        found.update(
            {f"distill/{k}": values.get(k) for k in ("steps", "tokens_seen", "loss_first", "loss_last")}
        )
    return {k: float(v) for k, v in found.items() if isinstance(v, int | float) and math.isfinite(v)}


def log_round_runs(entries: list[dict[str, Any]], parent_name: str) -> list[str]:
    """One nested run per self-evolving round under the active run, named ``<parent_name> round <r>``:
    the round's generator, adapter and model as params, `round_metrics` and its distill loss curve.
    A round that already has its nested run (a retried logging task) is not logged twice. Returns
    the nested runs' ids, in round order."""
    import mlflow
    from mlflow import MlflowClient

    parent = mlflow.active_run().info
    experiment = parent.experiment_id  # the parent's experiment, not the default
    children = MlflowClient().search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}'"
    )
    logged = {run.data.tags.get("seed.round"): run.info.run_id for run in children}
    ids = []
    for entry in entries:
        if str(entry["round"]) in logged:
            ids.append(logged[str(entry["round"])])
            continue
        name, tags = f"{parent_name} round {entry['round']}", {"seed.round": str(entry["round"])}
        with mlflow.start_run(run_name=name, nested=True, tags=tags, experiment_id=experiment) as child:
            mlflow.log_params({k: entry[k] for k in ("round", "generator", "adapter", "model")})
            mlflow.log_metrics(round_metrics(entry))
            losses = Path(entry["adapter"]) / "losses.json"
            if losses.is_file():
                log_losses("distill/loss", losses)
            ids.append(child.info.run_id)
    return ids
