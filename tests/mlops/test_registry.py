from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from seed.errors import ConfigError, DataError
from seed.mlops.gate import PromoteConfig, method_scores, missing_scores, promotion_decision
from seed.mlops.registry import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    TAG_DECISION,
    TAG_REASON,
    TAG_SCORES,
    alias_version,
    answer,
    load_registered,
    promote,
    register_adapter,
    requirements,
)

MARGIN, TOL = 0.01, 0.02


def scores(
    random=0.80, popular=0.78, adversarial=0.75, existence=180.0, count=150.0, position=120.0, color=160.0
):
    return {
        "pope": {"random": random, "popular": popular, "adversarial": adversarial},
        "mme": {"existence": existence, "count": count, "position": position, "color": color},
    }


BASE = scores(adversarial=0.70)


# ---------------------------------------------------------------------------------------------------
# The gate, alone


def test_first_version_becomes_champion_only_if_it_beats_the_base_model():
    ok, reason = promotion_decision(scores(adversarial=0.75), None, BASE, MARGIN, TOL)
    assert ok and "base model's 0.7000" in reason and "+0.0500" in reason
    ok, reason = promotion_decision(scores(adversarial=0.705), None, BASE, MARGIN, TOL)
    assert not ok and "does not beat the base model's 0.7000" in reason and "margin 0.01" in reason


def test_better_than_the_champion_is_promoted():
    ok, reason = promotion_decision(scores(adversarial=0.80), scores(adversarial=0.75), BASE, MARGIN, TOL)
    assert ok and "champion's 0.7500" in reason


def test_worse_than_the_champion_is_not_promoted():
    ok, reason = promotion_decision(scores(adversarial=0.74), scores(adversarial=0.75), BASE, MARGIN, TOL)
    assert not ok and "does not beat the champion's 0.7500" in reason and "-0.0100" in reason


def test_a_tie_is_not_promoted_even_with_zero_margin():
    champion = scores()
    assert promotion_decision(scores(), champion, BASE, MARGIN, TOL)[0] is False
    assert promotion_decision(scores(), champion, BASE, 0.0, TOL)[0] is False
    # a gain of exactly the margin is not "more than the margin"; float noise does not change that
    assert promotion_decision(scores(adversarial=0.76), champion, BASE, 0.01, TOL)[0] is False
    assert promotion_decision(scores(adversarial=0.7601), champion, BASE, 0.01, TOL)[0] is True


def test_a_regression_on_one_pope_split_blocks_promotion():
    champion = scores()
    candidate = scores(adversarial=0.85, popular=0.78 - 0.03)
    ok, reason = promotion_decision(candidate, champion, BASE, MARGIN, TOL)
    assert not ok and "POPE popular F1 0.7500 < 0.7800" in reason and "tolerance 0.02" in reason
    assert "random" not in reason
    # a drop of exactly the tolerance is allowed
    assert promotion_decision(scores(adversarial=0.85, popular=0.76), champion, BASE, MARGIN, TOL)[0]


def test_a_regression_on_one_mme_subtask_blocks_promotion():
    champion = scores()
    # tolerance 0.02 of the 200-point scale = 4 points
    ok, reason = promotion_decision(scores(adversarial=0.85, count=145.0), champion, BASE, MARGIN, TOL)
    assert not ok and "MME count 145.0 < 150.0" in reason
    assert promotion_decision(scores(adversarial=0.85, count=146.0), champion, BASE, MARGIN, TOL)[0]


def test_incomplete_metrics_never_promote():
    partial = scores(adversarial=0.99)
    del partial["pope"]["popular"]
    ok, reason = promotion_decision(partial, None, BASE, MARGIN, TOL)
    assert not ok and "missing pope.popular" in reason
    for bad in (None, math.nan, "0.9", True):
        candidate = scores(adversarial=0.99)
        candidate["mme"]["color"] = bad
        assert promotion_decision(candidate, None, BASE, MARGIN, TOL) == (
            False,
            "incomplete metrics (missing mme.color): never promoted",
        )
    assert promotion_decision(None, None, BASE, MARGIN, TOL)[0] is False
    assert promotion_decision({}, scores(), BASE, MARGIN, TOL)[0] is False


def test_a_champion_without_complete_scores_is_replaced_by_the_base_model_as_reference():
    ok, reason = promotion_decision(scores(adversarial=0.75), {}, BASE, MARGIN, TOL)
    assert ok and "base model (the champion's scores are incomplete)" in reason
    assert promotion_decision(scores(), None, {}, MARGIN, TOL)[0] is False


def test_method_scores_reads_a_metrics_file():
    metrics = {
        "protocol": "greedy",
        "pope": {"seed": {"random": {"f1": 0.9, "accuracy": 0.5}, "popular": {"f1": 0.8}}},
        "mme": {
            "seed": {"existence": 190.0, "count": 100.0, "position": 80.0, "color": 150.0, "total": 520.0}
        },
    }
    got = method_scores(metrics, "seed")
    assert got == {
        "pope": {"random": 0.9, "popular": 0.8},
        "mme": {"existence": 190.0, "count": 100.0, "position": 80.0, "color": 150.0},
    }
    assert missing_scores(got) == ["pope.adversarial"]
    assert missing_scores(method_scores(metrics, "base")) == [
        "pope.random",
        "pope.popular",
        "pope.adversarial",
        "mme.existence",
        "mme.count",
        "mme.position",
        "mme.color",
    ]
    assert method_scores(None, "seed") == {"pope": {}, "mme": {}}


def test_promote_config_is_checked_by_key():
    assert PromoteConfig() == PromoteConfig(margin=0.005, tolerance=0.02)
    with pytest.raises(ConfigError, match=r"promote\.margin"):
        PromoteConfig(margin=-0.1)
    with pytest.raises(ConfigError, match=r"promote\.tolerance"):
        PromoteConfig(tolerance=2)


def test_requirements_are_pinned():
    pins = requirements()
    assert any(p.startswith("torch==") and "+" not in p for p in pins)
    assert any(p.startswith("peft==") for p in pins) and any(p.startswith("mlflow==") for p in pins)


# ---------------------------------------------------------------------------------------------------
# Registered versions (a tiny model, a local SQLite store)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, mlflow_template) -> dict[str, Path]:
    """A tiny LLaVA checkpoint and two different LoRA adapters for it, and an empty store to copy."""
    import torch  # not at the top: the spawned workers of the concurrency test import this module

    from seed.base.tiny import load_tiny, save_tiny
    from seed.model.adapter import AdapterConfig, attach_adapter, save_adapter

    root = tmp_path_factory.mktemp("registry")
    base = save_tiny("llava", root / "base")
    paths = {"base": base}
    for i, name in enumerate(["adapter_a", "adapter_b"]):
        model, _ = load_tiny(base)
        torch.manual_seed(i)
        peft_model = attach_adapter(model, AdapterConfig(lora_r=2, lora_alpha=4))
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:  # a non-zero adapter, so that it changes the answers
                torch.nn.init.normal_(p, std=0.5)
        paths[name] = save_adapter(peft_model, root / name)
    paths["template"] = mlflow_template
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 30, 30)).save(root / "red.png")
    paths["image"] = root / "red.png"
    return paths


@pytest.fixture
def store(tiny, tmp_path, monkeypatch):
    """A fresh registry in tmp_path (a copy of the empty store), set as MLflow's tracking URI."""
    from seed.mlops.tracking import configure

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(tiny["template"], tmp_path / "mlflow.db")
    return configure(tmp_path)


def _register(adapter: Path, base: Path, version_scores: dict, experiment_id: str):
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id):
        return register_adapter(adapter, base, version_scores)


def test_register_promote_and_load_by_alias(tiny, store):
    from mlflow import MlflowClient

    from seed.model.generate import answer_batch, load_model, open_image

    version, created = _register(tiny["adapter_a"], tiny["base"], scores(adversarial=0.75), store)
    assert created and version.version in (1, "1")
    assert json.loads(version.tags[TAG_SCORES]) == scores(adversarial=0.75)
    decision = promote(version.version, BASE, PromoteConfig(MARGIN, TOL))
    assert decision.champion and decision.changed and decision.alias == CHAMPION
    assert str(alias_version(CHAMPION).version) == "1"
    tags = MlflowClient().get_model_version(MODEL_NAME, "1").tags
    assert tags[TAG_DECISION] == CHAMPION and tags[TAG_REASON] == decision.reason

    model = load_registered(f"models:/{MODEL_NAME}@champion")
    got = answer(model, [tiny["image"], tiny["image"]], ["Is there a cat?", "What is this?"])
    reference, processor = load_model(tiny["base"], adapter=tiny["adapter_a"])
    image = open_image(tiny["image"])
    expected = answer_batch(reference, processor, [image, image], ["Is there a cat?", "What is this?"], 32)
    assert got == expected and all(isinstance(a, str) for a in got)
    base_model, _ = load_model(tiny["base"])
    assert answer_batch(base_model, processor, [image], ["What is this?"], 32) != expected[1:]  # adapter on

    # the same adapter again: no new version; promoting again changes nothing
    again, created = _register(tiny["adapter_a"], tiny["base"], scores(adversarial=0.75), store)
    assert not created and str(again.version) == "1"
    repeat = promote("1", BASE, PromoteConfig(MARGIN, TOL))
    assert repeat.champion and not repeat.changed and repeat.reason == decision.reason
    assert len(MlflowClient().search_model_versions(f"name = '{MODEL_NAME}'")) == 1


def test_a_worse_version_becomes_challenger_and_the_champion_stays(tiny, store):
    from mlflow import MlflowClient

    first, _ = _register(tiny["adapter_a"], tiny["base"], scores(adversarial=0.75), store)
    assert promote(first.version, BASE, PromoteConfig(MARGIN, TOL)).champion
    second, created = _register(tiny["adapter_b"], tiny["base"], scores(adversarial=0.74), store)
    assert created and str(second.version) == "2"
    decision = promote(second.version, BASE, PromoteConfig(MARGIN, TOL))
    assert not decision.champion and decision.alias == CHALLENGER
    assert "does not beat the champion's 0.7500" in decision.reason
    assert str(alias_version(CHAMPION).version) == "1" and str(alias_version(CHALLENGER).version) == "2"
    tags = MlflowClient().get_model_version(MODEL_NAME, "2").tags
    assert tags[TAG_DECISION] == CHALLENGER and tags[TAG_REASON] == decision.reason
    # rolling back is moving the alias; a later promotion compares against the moved champion
    MlflowClient().set_registered_model_alias(MODEL_NAME, CHAMPION, "2")
    assert str(alias_version(CHAMPION).version) == "2"


def test_incomplete_metrics_register_but_never_become_champion(tiny, store):
    partial = scores(adversarial=0.99)
    del partial["mme"]["position"]
    version, _ = _register(tiny["adapter_a"], tiny["base"], partial, store)
    decision = promote(version.version, BASE, PromoteConfig(MARGIN, TOL))
    assert not decision.champion and "missing mme.position" in decision.reason
    assert alias_version(CHAMPION) is None


def test_a_changed_base_model_is_refused_at_load_time(tiny, store, tmp_path):
    moved = Path(shutil.copytree(tiny["base"], tmp_path / "base-copy"))
    version, _ = _register(tiny["adapter_a"], moved, scores(), store)
    (moved / "config.json").write_text((moved / "config.json").read_text() + "\n")
    with pytest.raises(DataError, match="base_model_hash"):
        load_registered(f"models:/{MODEL_NAME}/{version.version}")
    # pointing the version at an unchanged copy works
    model = load_registered(f"models:/{MODEL_NAME}/{version.version}", base_model=str(tiny["base"]))
    assert len(answer(model, [tiny["image"]], ["Is there a cat?"])) == 1


def test_bad_input_names_the_columns(tiny, store):
    import pandas as pd

    version, _ = _register(tiny["adapter_a"], tiny["base"], scores(), store)
    model = load_registered(f"models:/{MODEL_NAME}/{version.version}")
    with pytest.raises(Exception, match="question"):
        model.predict(pd.DataFrame({"image": [str(tiny["image"])]}))


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_a_registered_version_is_logged_from_code_and_holds_no_pickle(tiny, store, tmp_path):
    import mlflow
    import yaml

    version, _ = _register(tiny["adapter_a"], tiny["base"], scores(), store)
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}/{version.version}"))
    names = {p.relative_to(folder).as_posix() for p in _files(folder)}
    pyfunc = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["python_function"]
    adapter = pyfunc["artifacts"]["adapter"]["path"]
    assert "adapter_pyfunc.py" in names and f"{adapter}/adapter_model.safetensors" in names
    assert pyfunc["loader_module"] == "mlflow.pyfunc.loaders.code_model" and "python_model" not in pyfunc
    assert (
        pyfunc["config"]["base_model"] == str(tiny["base"].resolve()) and pyfunc["config"]["base_model_hash"]
    )
    # nothing anywhere in the store (tmp_path: mlflow.db, mlruns/) is a pickle, by name or by content
    for path in [*_files(folder), *_files(tmp_path)]:
        assert path.suffix not in (".pkl", ".pickle"), path
        head = path.read_bytes()[:2]
        if path.suffix != ".safetensors" and path.name != "mlflow.db":
            assert not (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5), f"pickle header in {path}"


def _decision_state(client, version: str) -> tuple[dict, str | None, str | None]:
    champion, challenger = alias_version(CHAMPION), alias_version(CHALLENGER)
    tags = client.get_model_version(MODEL_NAME, version).tags
    return tags, champion and str(champion.version), challenger and str(challenger.version)


def test_a_partly_evaluated_or_failed_run_never_replaces_the_champion(tiny, store, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    first, _ = _register(tiny["adapter_a"], tiny["base"], scores(adversarial=0.75), store)
    assert promote(first.version, BASE, PromoteConfig(MARGIN, TOL)).champion
    # far better on what it has, but MME color was never evaluated
    partial = scores(adversarial=0.99)
    del partial["mme"]["color"]
    second, _ = _register(tiny["adapter_b"], tiny["base"], partial, store)
    decision = promote(second.version, BASE, PromoteConfig(MARGIN, TOL))
    assert not decision.champion and decision.changed and "missing mme.color" in decision.reason
    tags, champion, challenger = _decision_state(client, "2")
    assert (champion, challenger) == ("1", "2") and tags[TAG_DECISION] == CHALLENGER
    assert tags[TAG_REASON] == decision.reason

    # complete and better scores, but logged by a run that ended FAILED
    adapter_c = Path(shutil.copytree(tiny["adapter_b"], tmp_path / "adapter_c"))
    (adapter_c / "README.md").write_text("a third adapter: same weights, another content hash\n")
    with mlflow.start_run(experiment_id=store) as run:
        third, created = register_adapter(adapter_c, tiny["base"], scores(adversarial=0.99))
    assert created
    client.set_terminated(run.info.run_id, "FAILED")
    decision = promote(third.version, BASE, PromoteConfig(MARGIN, TOL))
    assert not decision.champion and f"run {run.info.run_id} ended FAILED" in decision.reason
    assert str(alias_version(CHAMPION).version) == "1"


def test_promoting_the_same_version_twice_changes_nothing(tiny, store):
    from mlflow import MlflowClient

    client = MlflowClient()
    first, _ = _register(tiny["adapter_a"], tiny["base"], scores(adversarial=0.75), store)
    second, _ = _register(tiny["adapter_b"], tiny["base"], scores(adversarial=0.70), store)
    decisions = [promote(v.version, BASE, PromoteConfig(MARGIN, TOL)) for v in (first, second)]
    assert [d.alias for d in decisions] == [CHAMPION, CHALLENGER] and all(d.changed for d in decisions)
    before = [_decision_state(client, v) for v in ("1", "2")]
    # again, in either order, and with a gate that would now decide the other way
    for version in ("2", "1", "2"):
        again = promote(version, BASE, PromoteConfig(margin=0.5, tolerance=0.0))
        assert not again.changed and again.alias == decisions[int(version) - 1].alias
        assert again.reason == decisions[int(version) - 1].reason
    assert [_decision_state(client, v) for v in ("1", "2")] == before


def test_a_champion_without_a_recorded_decision_is_not_demoted(tiny, store):
    """A promotion that stopped between moving the alias and writing its tags, then ran again."""
    from mlflow import MlflowClient

    client = MlflowClient()
    version, _ = _register(tiny["adapter_a"], tiny["base"], scores(adversarial=0.75), store)
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, version.version)
    decision = promote(version.version, BASE, PromoteConfig(MARGIN, TOL))
    assert decision.champion and "already the champion" in decision.reason
    tags, champion, challenger = _decision_state(client, "1")
    assert (champion, challenger) == ("1", None) and tags[TAG_DECISION] == CHAMPION
    assert not promote(version.version, BASE, PromoteConfig(MARGIN, TOL)).changed
    # a champion set by hand on a version with incomplete scores is left alone, and not recorded
    partial = scores()
    del partial["pope"]["random"]
    other, _ = _register(tiny["adapter_b"], tiny["base"], partial, store)
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, other.version)
    decision = promote(other.version, BASE, PromoteConfig(MARGIN, TOL))
    assert decision.champion and not decision.changed and "missing pope.random" in decision.reason
    assert TAG_DECISION not in client.get_model_version(MODEL_NAME, other.version).tags


# ---------------------------------------------------------------------------------------------------
# Two pipeline runs at once: separate processes on one SQLite store


def _pipeline_worker(root: str, jobs: list[tuple[str, dict]], base: str, barrier, results) -> None:
    """What the flow does, in a fresh process: open the store, then register and promote each adapter."""
    import os

    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the parent's store, exported by mlflow.set_tracking_uri
    import mlflow

    from seed.mlops.tracking import configure

    try:
        barrier.wait(timeout=120)
        experiment_id = configure(root)
        for adapter, version_scores in jobs:
            with mlflow.start_run(experiment_id=experiment_id):
                version, created = register_adapter(adapter, base, version_scores)
            decision = promote(version.version, BASE, PromoteConfig(MARGIN, TOL))
            results.put((adapter, str(version.version), created, decision.changed))
    except BaseException as exc:  # reported to the test, which fails on it
        results.put((None, f"{type(exc).__name__}: {exc}", None, None))


def test_concurrent_pipeline_runs_leave_one_consistent_store(tiny, tmp_path, monkeypatch):
    """Two processes start together; each registers A (0.75) and B (0.80), in opposite orders.

    Whatever the interleaving: each adapter is registered and decided once, and B (better than A and
    the base by more than the margin) ends as champion with complete scores. Unlocked, both could
    register one adapter twice, or compare with the same old champion and leave A as champion.
    (A fresh store is created under the same lock: tests/test_store_lock.py.)
    """
    import multiprocessing
    import sqlite3

    from mlflow import MlflowClient

    from seed.mlops.tracking import configure, tracking_uri

    shutil.copy(tiny["template"], tmp_path / "mlflow.db")  # a fresh store costs seconds; created once here
    configure(tmp_path)
    a = (str(tiny["adapter_a"]), scores(adversarial=0.75))
    b = (str(tiny["adapter_b"]), scores(adversarial=0.80))
    # Fresh processes as two pipeline runs are, forked from a clean server that imported seed once
    # (spawn would import mlflow and seed in each child, many seconds on busy cores).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        [__name__, "seed.mlops.tracking", "seed.files.targets", "seed.stages.purify"]
    )
    barrier, results = context.Barrier(2), context.Queue()
    processes = [
        context.Process(
            target=_pipeline_worker, args=(str(tmp_path), jobs, str(tiny["base"]), barrier, results)
        )
        for jobs in ([a, b], [b, a])
    ]
    for process in processes:
        process.start()
    got = [results.get(timeout=180) for _ in range(4)]
    for process in processes:
        process.join(timeout=30)
    assert all(adapter is not None for adapter, *_ in got), got
    versions_of = {adapter: {version for name, version, *_ in got if name == adapter} for adapter, *_ in got}
    assert {name: len(v) for name, v in versions_of.items()} == {a[0]: 1, b[0]: 1}
    assert sorted(created for _, _, created, _ in got) == [False, False, True, True]
    assert sorted(changed for *_, changed in got) == [False, False, True, True]  # each decided once

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client = MlflowClient(tracking_uri(tmp_path), registry_uri=tracking_uri(tmp_path))
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert sorted(e.name for e in client.search_experiments()) == ["Default", "seed"]
    champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    assert {str(champion.version)} == versions_of[b[0]]
    assert (
        missing_scores(json.loads(champion.tags[TAG_SCORES])) == []
        and champion.tags[TAG_DECISION] == CHAMPION
    )
    assert all(TAG_DECISION in v.tags and TAG_REASON in v.tags for v in versions)
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
