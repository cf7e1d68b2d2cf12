"""The seed-pipeline flow on a tiny world, under one Prefect test harness for the whole session."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

# Prefect reads its settings at import: a private home, no telemetry, a patient temporary server.
_PREFECT_HOME = tempfile.mkdtemp(prefix="seed-test-prefect-")
atexit.register(shutil.rmtree, _PREFECT_HOME, True)
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import pytest  # noqa: E402
import yaml  # noqa: E402

from flows.cli import main_run, main_serve  # noqa: E402
from flows.pipeline import (  # noqa: E402
    FLOW_NAME,
    build_deployment,
    load_configs,
    make_workspace,
    promote,
    run_stage,
    seed_pipeline,
)
from seed.errors import ConfigError, DataError  # noqa: E402
from seed.files.hashing import content_hash  # noqa: E402
from seed.mlops.gate import PromoteConfig  # noqa: E402
from seed.mlops.registry import MODEL_NAME, TAG_DECISION, TAG_REASON  # noqa: E402
from seed.world.config import WorldConfig  # noqa: E402
from seed.world.synth import synthesize  # noqa: E402

TINY_MODEL = {
    "image_size": 16,
    "patch_size": 8,
    "vision_hidden": 16,
    "vision_layers": 1,
    "vision_heads": 2,
    "text_hidden": 16,
    "text_layers": 1,
    "text_heads": 2,
    "text_intermediate": 32,
}
TINY = {
    "validate": {"max_image_side": 1024},
    "pretrain": {"steps": 2, "batch_size": 4, "warmup_steps": 0, "model": TINY_MODEL},
    "purify": {"max_samples": 4, "max_new_tokens": 4, "batch_size": 4, "top_k": 4},
    "distill": {"max_steps": 2, "batch_size": 2, "warmup_steps": 0},
    "evaluate": {"batch_size": 32, "caption_max_new_tokens": 4, "bootstrap_resamples": 10},
    "promote": {"margin": 0.0, "tolerance": 0.02},
}


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API for every flow run of the session (~10 s once)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("flows") / "world"
    config = WorldConfig(n_train=8, n_seed=4, n_pope_images=4, n_mme_images=2, n_chair_images=2)
    synthesize(out, config, progress=False)
    return out


@pytest.fixture
def workdir(tmp_path, tmp_path_factory, monkeypatch, mlflow_template) -> Path:
    """An empty run folder holding a copy of an empty MLflow store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(mlflow_template, folder / "mlflow.db")
    return folder


def corrupt_one_png(world: Path, into: Path) -> tuple[Path, str]:
    data = Path(shutil.copytree(world, into))
    broken = sorted((data / "images" / "seed").glob("*.png"))[0]
    broken.write_bytes(b"this is not a PNG")
    return data, broken.name


def _mlflow_run(workdir: Path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    (run,) = mlflow.search_runs(experiment_names=["seed"], output_format="list")
    return run


# ---------------------------------------------------------------------------------------------------
# End to end


def test_seed_run_end_to_end_on_a_tiny_world(prefect_harness, world, workdir, capsys):
    from mlflow import MlflowClient

    params = workdir.parent / "params.yaml"
    params.write_text(yaml.safe_dump(TINY))
    code = main_run(["--data", str(world), "--workdir", str(workdir), "--params", str(params)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "stage times: validate " in out and ", evaluate " in out and "up to date" not in out
    assert "| base |" in out and "| seed |" in out  # the results table
    assert f"model: {MODEL_NAME} version 1 @" in out
    assert f"mlflow ui --backend-store-uri sqlite:///{workdir}/mlflow.db" in out  # where to look next
    assert f"plots: {workdir / 'reports' / 'mme_scores.png'}" in out

    # every stage wrote where a run outside the repository writes, without DVC
    for path in ["artifacts/base-model", "artifacts/targets", "artifacts/adapter", "artifacts/seed-model"]:
        assert (workdir / path).is_dir(), path
    metrics = json.loads((workdir / "reports" / "metrics.json").read_text())
    assert {"base", "seed"} <= set(metrics["pope"])
    assert not (workdir / "dvc.lock").exists()

    run = _mlflow_run(workdir)
    client = MlflowClient()
    assert run.info.status == "FINISHED"
    assert run.data.params["pretrain.steps"] == "2" and run.data.params["pretrain.model.text_hidden"] == "16"
    assert run.data.params["world.n_train"] == "8" and run.data.params["promote.margin"] == "0.0"
    assert {"validate.max_image_side", "purify.max_samples", "distill.max_steps", "evaluate.protocol"} <= set(
        run.data.params
    )
    assert run.data.metrics["pope/seed/adversarial/f1"] == metrics["pope"]["seed"]["adversarial"]["f1"]
    assert run.data.metrics["mme/base/total"] == metrics["mme"]["base"]["total"]
    assert {f"time/{s}" for s in ["validate", "pretrain", "purify", "distill", "evaluate"]} <= set(
        run.data.metrics
    )
    assert [m.step for m in client.get_metric_history(run.info.run_id, "pretrain/loss")] == [0, 1]
    distill_losses = json.loads((workdir / "artifacts/adapter/losses.json").read_text())
    history = client.get_metric_history(run.info.run_id, "distill/loss")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(distill_losses)
    digests = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    assert digests == {
        "data": content_hash(world)[:32],
        "targets": content_hash(workdir / "artifacts/targets")[:32],
    }
    assert run.data.tags["seed.mode"] == "in-process" and run.data.tags["prefect.flow_run_id"]
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/pope_f1.png" in plots
    answers = {a.path for a in client.list_artifacts(run.info.run_id, "answers/seed")}
    assert "answers/seed/pope_adversarial.jsonl" in answers

    # registered, gated (a random tiny model does not beat its own base), reason on the version
    version = client.get_model_version(MODEL_NAME, "1")
    assert version.tags[TAG_DECISION] in ("champion", "challenger") and version.tags[TAG_REASON]
    assert version.description == f"@{version.tags[TAG_DECISION]}: {version.tags[TAG_REASON]}"  # in full
    # the UI shows the work as model training, runs named after what they are
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    commit = run.data.tags.get("mlflow.source.git.commit")
    assert run.info.run_name == f"seed r1 {commit[:7] if commit else 'nogit'}"
    assert run.data.tags["seed.model_version"] == "1"
    # the registration task is safe to retry: same adapter, same version, nothing changes
    ws = make_workspace(world, workdir)
    again = promote.fn(ws, run.info.run_id, metrics, PromoteConfig(0.0, 0.02))
    assert again["version"] == "1" and not again["created"] and not again["changed"]
    assert len(client.search_model_versions(f"name = '{MODEL_NAME}'")) == 1
    # the run's description: the gate's verdict (once, after the retry too), then the results tables
    note = client.get_run(run.info.run_id).data.tags["mlflow.note.content"]
    assert note.startswith(f"**Registry:** {MODEL_NAME} version 1 -> @{version.tags[TAG_DECISION]}: ")
    assert note.count("**Registry:**") == 1 and "| method | POPE rand F1 |" in note


def test_two_rounds_end_to_end_each_round_in_mlflow_and_the_final_one_registered(
    prefect_harness, world, workdir, capsys
):
    import mlflow
    from huggingface_hub import ModelCard
    from mlflow import MlflowClient

    from seed.files.manifest import read_manifest
    from seed.mlops.registry import TAG_BASE_MODEL

    params = workdir.parent / "params.yaml"
    params.write_text(yaml.safe_dump({**TINY, "evolve": {"rounds": 2}}))
    code = main_run(["--data", str(world), "--workdir", str(workdir), "--params", str(params)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert ", evolve " in out  # its time among the stage times
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:  # round 2 ran as a task of its own
        names = [t.name for t in prefect.read_task_runs()]
    assert any(name.startswith("evolve-r2") for name in names), names

    # round 2 was taught by round 1's merged model, and its adapter is what evaluate scored as seed
    listed = json.loads((workdir / "artifacts/rounds/rounds.json").read_text())
    assert listed["rounds"] == 2 and [e["round"] for e in listed["entries"]] == [1, 2]
    first, second = listed["entries"]
    assert first["model"] == second["generator"] == str(workdir / "artifacts/seed-model")
    round_two = workdir / "artifacts/rounds/round-2"
    assert read_manifest(round_two / "targets").meta["model_hash"] == content_hash(
        workdir / "artifacts/seed-model"
    )
    assert (round_two / "model" / "model.safetensors").is_file()
    card = ModelCard.load(round_two / "adapter" / "README.md")
    assert card.data.base_model == str(workdir / "artifacts/seed-model") and card.data.eval_results

    # MLflow: the run is named for its two rounds and holds one nested run per round
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["seed"], output_format="list")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    children.sort(key=lambda r: int(r.data.tags["seed.round"]))
    assert len(runs) == 3 and parent.info.run_name.startswith("seed r2 ")
    assert [c.info.run_name for c in children] == [f"{parent.info.run_name} round {r}" for r in (1, 2)]
    assert parent.data.tags["seed.rounds"] == "2"
    client = MlflowClient()
    for child, entry in zip(children, listed["entries"], strict=True):
        assert child.data.params["generator"] == entry["generator"]
        assert child.data.metrics["distill/steps"] == 2 and "purify/flagged_share" in child.data.metrics
        losses = json.loads((Path(entry["adapter"]) / "losses.json").read_text())
        history = client.get_metric_history(child.info.run_id, "distill/loss")
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(losses)

    # the registry holds the final round, on the model that taught it, tagged with the round count
    version = client.get_model_version(MODEL_NAME, "1")
    assert version.tags["seed.rounds"] == "2"
    assert version.tags[TAG_BASE_MODEL] == str((workdir / "artifacts/seed-model").resolve())
    assert version.tags["seed.adapter_hash"] == content_hash(round_two / "adapter")


def test_failed_validation_stops_the_flow_before_pretrain(prefect_harness, world, workdir, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    data, broken = corrupt_one_png(world, tmp_path / "bad-world")
    state = seed_pipeline(
        data_dir=str(data),
        workdir=str(workdir),
        params_path=str(tmp_path / "no-params.yaml"),
        overrides=TINY,
        return_state=True,
    )
    assert state.is_failed()
    assert state.message.startswith("INVALID") and broken in state.message  # the great-expectations report
    report = json.loads((workdir / "reports" / "validation.json").read_text())
    assert report["ok"] is False
    assert not (workdir / "artifacts").exists()  # neither pretrain nor anything after it ran
    with get_client(sync_client=True) as client:
        flow_run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        names = {t.name.rsplit("-", 1)[0] for t in client.read_task_runs(flow_run_filter=flow_run_filter)}
    assert "validate" in names and not names & {"pretrain", "purify", "distill", "evaluate"}
    run = _mlflow_run(workdir)
    assert run.info.status == "FAILED" and run.data.tags["seed.stages"] == "validate"
    from mlflow import MlflowClient

    assert [a.path for a in MlflowClient().list_artifacts(run.info.run_id, "reports")] == [
        "reports/validation.json"
    ]


def test_seed_run_prints_the_report_and_exits_1_on_invalid_data(
    prefect_harness, world, workdir, tmp_path, capsys
):
    data, broken = corrupt_one_png(world, tmp_path / "bad-world")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY))
    assert main_run(["--data", str(data), "--workdir", str(workdir), "--params", str(params)]) == 1
    err = capsys.readouterr().err
    assert "INVALID" in err and broken in err and "Traceback" not in err
    assert not (workdir / "artifacts").exists()


# ---------------------------------------------------------------------------------------------------
# Inside a DVC project: stages go through `dvc repro`


def test_dvc_project_reproduces_skips_and_stops_on_invalid_data(world, tmp_path, monkeypatch, capfd):
    from dvc.repo import Repo

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the stages must run in the project, whatever the cwd
    project = tmp_path / "project"
    Repo.init(str(project), no_scm=True).close()
    shutil.copytree(world, project / "data")
    (project / "params.yaml").write_text(yaml.safe_dump({"validate": {"max_image_side": 1024}}))
    (project / "dvc.yaml").write_text(
        "stages:\n  validate:\n    cmd: python -m seed.stages validate\n    deps:\n      - data\n"
        "    params:\n      - validate\n    outs:\n      - reports/validation.json:\n          cache: false\n"
    )
    ws = make_workspace(project / "data", project)
    assert ws.dvc
    config = load_configs(ws, project / "params.yaml")["validate"]
    first = run_stage.fn(ws, "validate", config)
    assert first.ok and first.seconds is not None and first.report.startswith("VALID")
    second = run_stage.fn(ws, "validate", config)
    assert second.ok and second.seconds is None  # up to date: DVC skipped it
    shown = capfd.readouterr()
    assert "validate: up to date, skipped (dvc)" in shown.out
    for dvc_line in ("Running stage", "didn't change", "Updating lock file"):  # run_stage says it once
        assert dvc_line not in shown.out + shown.err
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["validate"]["params"]["params.yaml"] == {"validate": {"max_image_side": 1024}}
    with Repo(str(project)) as repo:
        assert repo.status() == {}  # dvc.lock is true
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == []

    broken = sorted((project / "data" / "images" / "seed").glob("*.png"))[0]
    broken.write_bytes(b"not a PNG")
    third = run_stage.fn(ws, "validate", config)
    assert not third.ok and third.report.startswith("INVALID") and broken.name in third.report


def test_workspace_and_config_checks(world, tmp_path):
    project = tmp_path / "project"
    (project / ".dvc").mkdir(parents=True)
    (project / "dvc.yaml").write_text("stages: {}\n")
    (project / "data").mkdir()
    with pytest.raises(ConfigError, match="pass --workdir"):
        make_workspace(world, project)
    with pytest.raises(ConfigError, match="base model comes from stage pretrain"):
        make_workspace(project / "data", project, base_model="llava-hf/llava-1.5-7b-hf")
    ws = make_workspace(project / "data", project)
    with pytest.raises(ConfigError, match="read params.yaml only"):
        load_configs(ws, project / "params.yaml", {"pretrain": {"steps": 1}})
    with pytest.raises(DataError, match="no such data folder"):
        make_workspace(tmp_path / "nowhere", tmp_path)
    outside = make_workspace(world, tmp_path / "run", base_model="some/checkpoint")
    assert not outside.dvc and outside.model == "some/checkpoint"
    configs = load_configs(outside, tmp_path / "none.yaml", TINY)
    assert (
        "pretrain" not in configs and configs["distill"].max_steps == 2 and configs["promote"].margin == 0.0
    )
    with pytest.raises(ConfigError, match="unknown section"):
        load_configs(outside, tmp_path / "none.yaml", {"pretrian": {}})
    with pytest.raises(ConfigError, match=r"pretrain\.steps"):
        load_configs(
            make_workspace(world, tmp_path / "run"), tmp_path / "none.yaml", {"pretrain": {"steps": 0}}
        )


def test_rounds_written_by_dvc_stages_are_read_against_the_project_root(world, tmp_path, monkeypatch):
    from flows.workspace import workspace_rounds
    from seed.files.rounds import write_rounds

    project = tmp_path / "project"
    (project / ".dvc").mkdir(parents=True)
    (project / "dvc.yaml").write_text("stages: {}\n")
    (project / "data").mkdir()
    for folder in ("artifacts/base-model", "artifacts/seed-model", "artifacts/rounds/round-2/model"):
        (project / folder).mkdir(parents=True)
    entries = [  # relative to the project, as `dvc repro` writes them
        {"round": 1, "generator": "artifacts/base-model", "targets": "artifacts/targets",
         "adapter": "artifacts/adapter", "model": "artifacts/seed-model"},
        {"round": 2, "generator": "artifacts/seed-model", "targets": "",
         "adapter": "artifacts/rounds/round-2/adapter", "model": "artifacts/rounds/round-2/model"},
    ]  # fmt: skip
    write_rounds(project / "artifacts/rounds", entries)
    monkeypatch.chdir(tmp_path)  # the flow started from another folder
    ws = make_workspace(project / "data", project)
    read = workspace_rounds(ws)
    assert read[1] == {
        "round": 2,
        "generator": str(project / "artifacts/seed-model"),
        "targets": "",
        "adapter": str(project / "artifacts/rounds/round-2/adapter"),
        "model": str(project / "artifacts/rounds/round-2/model"),
    }
    assert read[0]["generator"] == str(project / "artifacts/base-model")
    # a hub id is no folder of the project: it stays as written
    entries[0]["generator"] = "llava-hf/llava-1.5-7b-hf"
    write_rounds(project / "artifacts/rounds", entries)
    assert workspace_rounds(ws)[0]["generator"] == "llava-hf/llava-1.5-7b-hf"


def test_cli_defaults_follow_the_workdir(tmp_path, monkeypatch):
    import argparse

    from flows.cli import resolve_paths

    monkeypatch.chdir(tmp_path)
    project = tmp_path / "project"
    (project / ".dvc").mkdir(parents=True)
    (project / "dvc.yaml").write_text("stages: {}\n")
    args = argparse.Namespace(data=None, workdir=str(project), params=None)
    assert resolve_paths(args) == (project / "data", project, project / "params.yaml")
    args = argparse.Namespace(data="world", workdir="run", params=None)
    assert resolve_paths(args) == (tmp_path / "world", tmp_path / "run", tmp_path / "params.yaml")


def test_seed_run_reports_bad_arguments_in_one_line(world, tmp_path, capsys):
    assert main_run(["--data", str(tmp_path / "nowhere"), "--workdir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such data folder" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------------
# Scheduling


def test_deployment_carries_the_cron_schedule(world, tmp_path):
    deployment = build_deployment("0 3 * * 0", "weekly", {"data_dir": str(world), "workdir": str(tmp_path)})
    assert deployment.name == "weekly" and deployment.flow_name == FLOW_NAME
    (schedule,) = deployment.schedules
    assert schedule.schedule.cron == "0 3 * * 0"
    assert deployment.parameters["data_dir"] == str(world)


def test_seed_serve_builds_the_deployment_it_serves(prefect_harness, world, tmp_path, monkeypatch, capsys):
    import flows.pipeline

    served = []
    monkeypatch.setattr(flows.pipeline, "serve_deployment", served.append)
    argv = ["--data", str(world), "--workdir", str(tmp_path), "--cron", "*/30 * * * *", "--name", "often"]
    assert main_serve(argv) == 0
    (deployment,) = served
    assert deployment.name == "often" and deployment.schedules[0].schedule.cron == "*/30 * * * *"
    assert deployment.parameters["workdir"] == str(tmp_path.resolve())
    assert main_serve([*argv[:4], "--cron", "every sunday"]) == 2
    assert "error: --cron 'every sunday'" in capsys.readouterr().err


def test_seed_serve_needs_a_server(monkeypatch, capsys):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(updates={PREFECT_API_URL: None}):
        assert main_serve(["--cron", "0 3 * * 0"]) == 2
    assert "prefect server start" in capsys.readouterr().err
