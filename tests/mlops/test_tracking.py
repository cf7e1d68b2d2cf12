from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from seed.errors import DataError
from seed.files.hashing import content_hash
from seed.mlops.tracking import (
    DIGEST_CHARS,
    DatasetRef,
    configure,
    dataset_digest,
    dvc_hashes,
    flatten,
    flatten_params,
    git_state,
    log_pipeline_run,
    log_round_runs,
    read_losses,
    tracking_uri,
)


def test_flatten_keeps_numeric_leaves_only():
    tree = {
        "protocol": "greedy",
        "pope": {"seed": {"random": {"f1": 0.5, "f1_ci": [0.4, 0.6], "n": 24}}},
        "mme": {"seed": {"total": 120, "note": None, "bad": math.nan, "flag": True}},
    }
    assert flatten(tree) == {
        "pope/seed/random/f1": 0.5,
        "pope/seed/random/f1_ci/0": 0.4,
        "pope/seed/random/f1_ci/1": 0.6,
        "pope/seed/random/n": 24.0,
        "mme/seed/total": 120.0,
    }
    assert flatten(3, "x") == {"x": 3.0} and flatten([]) == {}


@dataclass
class _Inner:
    image_size: int = 16


@dataclass
class _Config:
    steps: int = 2
    lr: float = 0.001
    benchmarks: list[str] = field(default_factory=lambda: ["pope", "mme"])
    model: _Inner = field(default_factory=_Inner)


def test_flatten_params_expands_configs_by_section():
    params = flatten_params({"pretrain": _Config(), "promote": {"margin": 0.01}, "world": {"name": "w"}})
    assert params == {
        "pretrain.steps": "2",
        "pretrain.lr": "0.001",
        "pretrain.benchmarks": '["pope", "mme"]',
        "pretrain.model.image_size": "16",
        "promote.margin": "0.01",
        "world.name": "w",
    }


def test_read_losses_accepts_both_loss_files(tmp_path):
    distill = tmp_path / "losses.json"
    distill.write_text(json.dumps([2.5, 2.0, 1.5]))
    assert read_losses(distill) == [(0, 2.5), (1, 2.0), (2, 1.5)]
    pretrain = tmp_path / "pretrain_loss.json"
    pretrain.write_text(
        json.dumps([{"step": 0, "loss": 4.0, "lr": 0.1}, {"step": 1, "loss": 3.0, "lr": 0.1}])
    )
    assert read_losses(pretrain) == [(0, 4.0), (1, 3.0)]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([1.0, "x"]))
    with pytest.raises(DataError, match=r"bad\.json, row 1, field 'loss'"):
        read_losses(bad)
    bad.write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        read_losses(bad)
    with pytest.raises(DataError, match="not found"):
        read_losses(tmp_path / "missing.json")


def test_dvc_hashes_come_from_dvc_files_and_the_lock(tmp_path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "data.dvc").write_text(
        "outs:\n- md5: 6c21d166260a4de54b9e5cc20888a035.dir\n  size: 10\n  nfiles: 2\n"
        "  hash: md5\n  path: data\n"
    )
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  purify:\n    cmd: python -m seed.stages purify\n    outs:\n"
        "    - path: artifacts/targets\n      hash: md5\n      md5: 0123456789abcdef0123456789abcdef.dir\n"
        "  validate:\n    cmd: x\n    deps:\n    - path: data\n      hash: md5\n"
        "      md5: 11111111111111111111111111111111.dir\n"
        "    outs:\n    - path: reports/validation.json\n      hash: md5\n"
        "      md5: ffffffffffffffffffffffffffffffff\n"
    )
    assert dvc_hashes(tmp_path) == {
        "data": "11111111111111111111111111111111.dir",  # what the pipeline last read wins over data.dvc
        "artifacts/targets": "0123456789abcdef0123456789abcdef.dir",
        "reports/validation.json": "ffffffffffffffffffffffffffffffff",
    }
    assert dvc_hashes(tmp_path / "nowhere") == {}


def test_dataset_digest_prefers_dvc_and_fits_mlflow(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    assert (
        dataset_digest(tmp_path, "6c21d166260a4de54b9e5cc20888a035.dir")
        == "6c21d166260a4de54b9e5cc20888a035.dir"
    )
    digest = dataset_digest(tmp_path)
    assert digest == content_hash(tmp_path)[:DIGEST_CHARS] and len(digest) <= 36


def test_git_state_outside_a_repository(tmp_path):
    assert git_state(tmp_path) == {"seed.git_commit": "none (no commit yet)"}


@pytest.fixture(scope="module")
def template(mlflow_template) -> Path:
    return mlflow_template


def test_configure_uses_a_local_store_and_artifact_folder(template, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(template, tmp_path / "mlflow.db")
    experiment_id = configure(tmp_path)
    assert mlflow.get_tracking_uri() == tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    experiment = mlflow.get_experiment(experiment_id)
    assert (
        experiment.name == "seed" and experiment.artifact_location == (tmp_path / "mlruns").resolve().as_uri()
    )
    assert configure(tmp_path) == experiment_id  # found, not created twice


def test_log_pipeline_run_logs_everything(template, tmp_path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(template, tmp_path / "mlflow.db")
    experiment_id = configure(tmp_path)
    data = tmp_path / "data"
    (data / "pope").mkdir(parents=True)
    (data / "pope" / "x.json").write_text("{}\n")
    (data / "world.json").write_text("{}")
    reports = tmp_path / "reports"
    (reports / "answers" / "seed").mkdir(parents=True)
    (reports / "answers" / "seed" / "pope_random.jsonl").write_text('{"question_id": 1, "text": "Yes"}\n')
    (reports / "pope_f1.png").write_bytes(b"\x89PNG fake")
    (reports / "validation.json").write_text("{}")
    losses = tmp_path / "losses.json"
    losses.write_text(json.dumps([3.0, 2.0, 1.0]))
    metrics = {"protocol": "greedy", "pope": {"seed": {"adversarial": {"f1": 0.7, "f1_ci": [0.6, 0.8]}}}}
    with mlflow.start_run(experiment_id=experiment_id) as run:
        counts = log_pipeline_run(
            {"pretrain": _Config()},
            {"validate": 1.5, "pretrain": 2.0},
            reports,
            {"distill": losses, "pretrain": tmp_path / "absent.json"},
            [DatasetRef("data", data, "6c21d166260a4de54b9e5cc20888a035.dir", "training")],
            Path(__file__).parents[1],
            metrics,
        )
    assert counts == {"params": 4, "metrics": 5, "loss_points": 3, "datasets": 1, "artifacts": 3}
    client = MlflowClient()
    logged = client.get_run(run.info.run_id)
    assert logged.data.params["pretrain.model.image_size"] == "16"
    assert logged.data.metrics["pope/seed/adversarial/f1"] == 0.7
    assert logged.data.metrics["time/pretrain"] == 2.0
    assert logged.data.tags["seed.protocol"] == "greedy"
    assert "| seed |" in logged.data.tags["mlflow.note.content"]  # the results table as its description
    assert "mlflow.source.git.commit" in logged.data.tags or "seed.git_commit" in logged.data.tags
    history = client.get_metric_history(run.info.run_id, "distill/loss")
    assert [(m.step, m.value) for m in history] == [(0, 3.0), (1, 2.0), (2, 1.0)]
    (dataset,) = logged.inputs.dataset_inputs
    assert dataset.dataset.name == "data" and dataset.dataset.digest == "6c21d166260a4de54b9e5cc20888a035.dir"
    assert [t.value for t in dataset.tags] == ["training"]
    files = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert files == {"plots/pope_f1.png"}
    answers = client.list_artifacts(run.info.run_id, "answers/seed")
    assert [a.path for a in answers] == ["answers/seed/pope_random.jsonl"]
    assert logged.info.artifact_uri.startswith((tmp_path / "mlruns").resolve().as_uri())


def test_round_runs_are_nested_once_even_when_logging_is_retried(template, tmp_path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(template, tmp_path / "mlflow.db")
    experiment_id = configure(tmp_path)
    entries = []
    for r in (1, 2):
        adapter = tmp_path / f"adapter-{r}"
        adapter.mkdir()
        (adapter / "losses.json").write_text(json.dumps([2.0 / r, 1.0 / r]))
        (adapter / "summary.json").write_text(json.dumps({"steps": 2, "loss_first": 2.0 / r}))
        entries.append(
            {"round": r, "generator": f"g{r}", "targets": "", "adapter": str(adapter), "model": f"m{r}"}
        )
    with mlflow.start_run(experiment_id=experiment_id) as parent:
        first = log_round_runs(entries, "seed r2 abc1234")
        again = log_round_runs(entries, "seed r2 abc1234")  # a retried tracking task
    assert first == again and len(set(first)) == 2
    client = MlflowClient()
    children = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.info.run_name for c in children) == ["seed r2 abc1234 round 1", "seed r2 abc1234 round 2"]
    second = client.get_run(first[1])
    assert second.data.params["generator"] == "g2" and second.data.metrics["distill/loss_first"] == 1.0
    history = client.get_metric_history(first[1], "distill/loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5)]


def test_a_store_chosen_here_does_not_stick_but_the_users_does(template, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(template, tmp_path / name / "mlflow.db")
        configure(tmp_path / name)  # MLflow exports MLFLOW_TRACKING_URI each time
        assert mlflow.get_tracking_uri() == tracking_uri(tmp_path / name)
    (tmp_path / "c").mkdir()
    shutil.copy(template, tmp_path / "c" / "mlflow.db")
    user = f"sqlite:///{tmp_path / 'c' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", user)
    configure(tmp_path / "b")
    assert mlflow.get_tracking_uri() == user
