"""seed.stages.evaluate: config, seed merging, and the stage end to end on a tiny world and on real-data layouts."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seed.base.tiny import save_tiny
from seed.errors import ConfigError, DataError
from seed.eval.benchmarks import benchmark_paths, chair_image_list
from seed.eval.pope import pope_score
from seed.eval.report import results_table
from seed.stages.evaluate import EvaluateConfig, evaluate_stage, mean_over_seeds, selected_methods
from seed.world.config import WorldConfig
from seed.world.synth import synthesize

POPE_KEYS = {"accuracy", "precision", "recall", "f1", "yes_ratio", "f1_ci"}
MME_KEYS = {"existence", "count", "position", "color", "total"}
FAST = {"batch_size": 8, "max_new_tokens": 3, "caption_max_new_tokens": 5, "bootstrap_resamples": 50}


# ---------------------------------------------------------------------------------------------------
# Config and pure helpers


def test_config_defaults_and_validation():
    config = EvaluateConfig()
    assert config.methods == ["base", "vcd", "seed"] and config.protocol == "greedy"
    assert (config.cd_alpha, config.cd_beta, config.noise_step) == (1.0, 0.1, 500)
    assert config.pope_dir is None and config.instances_file is None
    assert EvaluateConfig(methods="vcd, base").methods == ["vcd", "base"]  # the command-line form
    for kwargs, key in [
        ({"methods": ["base", "opera"]}, "evaluate.methods"),
        ({"methods": []}, "evaluate.methods"),
        ({"protocol": "sample", "sample_seeds": [0, 1]}, "evaluate.sample_seeds"),
        ({"sample_seeds": [1, 1, 2]}, "evaluate.sample_seeds"),
        ({"cd_beta": 1.5}, "evaluate.cd_beta"),
        ({"cd_alpha": -0.5}, "evaluate.cd_alpha"),
        ({"noise_step": 1000}, "evaluate.noise_step"),
        ({"benchmarks": ["pope", "vqa"]}, "evaluate.benchmarks"),
        ({"device": "gpu"}, "evaluate.device"),
    ]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            EvaluateConfig(**kwargs)


def test_mean_over_seeds_by_hand():
    runs = [
        {"pope": {"random": {"f1": 0.5, "n": 6, "f1_ci": [0.4, 0.6]}}, "cost": {"tokens": 10}, "note": "a"},
        {"pope": {"random": {"f1": 0.7, "n": 6, "f1_ci": [0.6, 0.8]}}, "cost": {"tokens": 14}, "note": "b"},
        {"pope": {"random": {"f1": 0.9, "n": 6, "f1_ci": [0.8, 1.0]}}, "cost": {"tokens": 12}, "note": None},
    ]
    merged = mean_over_seeds(runs)
    random = merged["pope"]["random"]
    assert random["f1"] == pytest.approx(0.7) and random["f1_std"] == pytest.approx(0.2)
    assert random["n"] == 6 and "n_std" not in random  # equal counts stay counts
    assert random["f1_ci"] == pytest.approx([0.6, 0.8])
    assert merged["cost"]["tokens"] == 12 and merged["cost"]["tokens_std"] == pytest.approx(2.0)
    assert merged["note"] == "a"
    assert mean_over_seeds(runs[:1])["pope"]["random"]["f1_std"] == 0.0


def test_seed_method_needs_an_adapter(capsys):
    config = EvaluateConfig(methods=["seed", "base", "vcd"])
    assert selected_methods(config, Path("adapter")) == ["base", "vcd", "seed"]
    assert selected_methods(config, None) == ["base", "vcd"]
    assert "'seed' skipped" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------
# The stage on a tiny world


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "world"
    config = WorldConfig(n_train=8, n_seed=4, n_pope_images=4, n_mme_images=2, n_chair_images=2)
    synthesize(out, config, progress=False)
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny("llava", tmp_path_factory.mktemp("eval") / "model", seed=0)


@pytest.fixture(scope="module")
def adapter_dir(model_dir, tmp_path_factory) -> Path:
    """A LoRA adapter whose B weights are non-zero, so that the seed model differs from the base."""
    from seed.model.adapter import AdapterConfig, attach_adapter, save_adapter
    from seed.model.generate import load_model

    model, _ = load_model(model_dir)
    peft_model = attach_adapter(model, AdapterConfig(lora_r=2, lora_alpha=4))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return save_adapter(peft_model, tmp_path_factory.mktemp("eval") / "adapter")


@pytest.fixture(scope="module")
def greedy_run(world, model_dir, adapter_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    metrics = evaluate_stage(
        model_dir, world, out, EvaluateConfig(**FAST), adapter_dir=adapter_dir, progress=False
    )
    return out, metrics


def test_metrics_json_schema(greedy_run):
    from seed.stages.evaluate import read_metrics

    out, returned = greedy_run
    on_disk = json.loads((out / "metrics.json").read_text())
    timings = json.loads((out / "timings.json").read_text())
    # the clock's numbers live beside the metrics, so that metrics.json is byte-stable
    assert "seconds" not in on_disk and set(timings) == {"cost", "seconds"}
    assert all(
        set(cost) == {"forwards_per_token", "tokens", "forwards", "steps"}
        for cost in on_disk["cost"].values()
    )
    metrics = read_metrics(out)
    assert metrics == json.loads(json.dumps(returned))  # merged back, it is what the stage returned
    assert metrics["protocol"] == "greedy"
    methods = ["base", "vcd", "seed"]
    for key in ("pope", "mme", "chair", "cost", "diagnostics", "seconds"):
        assert list(metrics[key]) == methods, key
    for method in methods:
        assert set(metrics["pope"][method]) == {"random", "popular", "adversarial", "counterfactual"}
        for split in metrics["pope"][method].values():
            assert set(split) >= POPE_KEYS and 0 <= split["f1"] <= 1 and len(split["f1_ci"]) == 2
            assert 0 <= split["auc"] <= 1 and 0 <= split["yes_ratio"] <= 1
        assert set(metrics["mme"][method]) >= MME_KEYS and 0 <= metrics["mme"][method]["total"] <= 800
        assert {"chair_s", "chair_i"} <= set(metrics["chair"][method])
        assert {"forwards_per_token", "tokens_per_second"} <= set(metrics["cost"][method])
        assert metrics["cost"][method]["tokens_per_second"] > 0
        assert {"colour_by_typicality", "colour_probe"} <= set(metrics["diagnostics"][method])
    assert [metrics["cost"][m]["forwards_per_token"] for m in methods] == [1.0, 2.0, 1.0]
    assert metrics["settings"]["vcd"] == {"cd_alpha": 1.0, "cd_beta": 0.1, "noise_step": 500}
    assert metrics["pope"] == returned["pope"]


def test_answers_are_written_in_the_official_formats(greedy_run, world):
    out, metrics = greedy_run
    for method in ("base", "vcd", "seed"):
        answers = out / "answers" / method
        for split in ("random", "popular", "adversarial", "counterfactual"):
            scored = pope_score(world / "pope" / f"world_pope_{split}.json", answers / f"pope_{split}.jsonl")
            for key, value in scored.items():
                assert metrics["pope"][method][split][key] == pytest.approx(value)
        for subtask in ("existence", "count", "position", "color"):
            lines = (answers / "mme" / f"{subtask}.txt").read_text().splitlines()
            assert len(lines) == 4 and all(len(line.split("\t")) == 4 for line in lines)
            assert {line.split("\t")[2] for line in lines} == {"Yes", "No"}
        captions = [json.loads(line) for line in (answers / "chair_captions.jsonl").read_text().splitlines()]
        listing = json.loads((world / "chair" / "images.json").read_text())
        assert [c["image_id"] for c in captions] == [item["image_id"] for item in listing]
    base = (out / "answers" / "base" / "chair_captions.jsonl").read_text()
    assert base != (out / "answers" / "seed" / "chair_captions.jsonl").read_text()  # the adapter is merged


def test_plots_and_table(greedy_run):
    out, metrics = greedy_run
    for name in ("pope_adv_vs_cost", "pope_f1", "mme_scores"):
        assert (out / f"{name}.png").stat().st_size > 1000
        assert json.loads((out / "plots" / f"{name}.json").read_text())
    table = results_table(metrics)
    assert all(f"| {m} |" in table for m in ("base", "vcd", "seed"))
    assert "| 2.00 |" in table


def test_sample_protocol_mean_and_std_over_three_seeds(world, model_dir, tmp_path):
    config = EvaluateConfig(protocol="sample", methods=["base", "vcd"], benchmarks=["pope", "mme"], **FAST)
    metrics = evaluate_stage(model_dir, world, tmp_path, config, progress=False)
    assert not (tmp_path / "metrics.json").exists()
    saved = json.loads((tmp_path / "metrics_sample.json").read_text())
    assert saved["protocol"] == "sample" and saved["seeds"] == [0, 1, 2]
    assert set(saved["pope"]) == {"base", "vcd"} and "chair" not in saved
    for method in ("base", "vcd"):
        random = saved["pope"][method]["random"]
        per_seed = [
            pope_score(
                world / "pope" / "world_pope_random.json",
                tmp_path / "answers_sample" / method / f"seed-{s}" / "pope_random.jsonl",
            )["f1"]
            for s in (0, 1, 2)
        ]
        assert random["f1"] == pytest.approx(statistics.fmean(per_seed))
        assert random["f1_std"] == pytest.approx(statistics.stdev(per_seed))
        assert "total_std" in saved["mme"][method] and "f1_std" in random
    assert saved["cost"]["vcd"]["forwards_per_token"] == 2.0
    assert (tmp_path / "pope_adv_vs_cost_sample.png").exists()
    assert "±" in results_table(metrics)


# ---------------------------------------------------------------------------------------------------
# Real data through the same code: hand-made folders in the official layouts


def _jpeg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")


@pytest.fixture(scope="module")
def real_layout(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("real")
    ids = [42, 73, 74]
    names = {i: f"COCO_val2014_{i:012d}.jpg" for i in ids}
    for i in ids:
        _jpeg(root / "val2014" / names[i], i)
    pope = root / "pope"
    pope.mkdir()
    for split in ("random", "popular", "adversarial"):
        rows = [
            {
                "question_id": q + 1,
                "image": names[ids[q % 3]],
                "text": f"Is there a {obj} in the image?",
                "label": label,
            }
            for q, (obj, label) in enumerate([("dog", "yes"), ("cat", "no"), ("dog", "no"), ("cat", "yes")])
        ]
        (pope / f"coco_pope_{split}.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    mme = root / "MME_Benchmark_release_version"
    for n, subtask in enumerate(("existence", "count", "position")):  # image + .txt side by side
        _jpeg(mme / subtask / f"{subtask}_0.jpg", 100 + n)
        (mme / subtask / f"{subtask}_0.txt").write_text(
            "Is there a dog in this image? Please answer yes or no.\tYes\n"
            "Is there a cat in this image? Please answer yes or no.\tNo\n"
        )
    _jpeg(mme / "color" / "images" / "000000012.jpg", 200)  # images/ + questions_answers_YN/
    (mme / "color" / "questions_answers_YN").mkdir(parents=True)
    (mme / "color" / "questions_answers_YN" / "000000012.txt").write_text(
        "Is there a red dog in this image? Please answer yes or no.\tNo\n"
        "Is there a brown dog in this image? Please answer yes or no.\tYes\n"
    )
    instances = {
        "images": [{"id": i, "file_name": names[i], "width": 52, "height": 40} for i in ids],
        "categories": [{"id": 18, "name": "dog"}, {"id": 17, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 42, "category_id": 18, "bbox": [0, 0, 5, 5]},
            {"id": 2, "image_id": 73, "category_id": 17, "bbox": [0, 0, 5, 5]},
        ],
    }
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_val2014.json").write_text(json.dumps(instances))
    (root / "synonyms.txt").write_text("dog, puppy, dogs\ncat, kitten\n")
    (root / "empty").mkdir()
    return {
        "root": root,
        "pope_dir": pope,
        "images_dir": root / "val2014",
        "mme_dir": mme,
        "instances_file": root / "annotations" / "instances_val2014.json",
        "synonyms_file": root / "synonyms.txt",
    }


def _real_config(layout: dict[str, Path], **kwargs) -> EvaluateConfig:
    keys = ("pope_dir", "images_dir", "mme_dir", "instances_file", "synonyms_file")
    return EvaluateConfig(**{k: str(layout[k]) for k in keys}, **FAST, **kwargs)


def test_real_data_layouts_go_through_the_same_code(real_layout, model_dir, tmp_path):
    config = _real_config(real_layout, methods=["base", "vcd"])
    metrics = evaluate_stage(model_dir, real_layout["root"] / "empty", tmp_path, config, progress=False)
    assert set(metrics["pope"]["vcd"]) == {"random", "popular", "adversarial"}
    assert metrics["pope"]["base"]["adversarial"]["n"] == 4
    assert set(metrics["mme"]["base"]["detail"]) == {"existence", "count", "position", "color"}
    assert metrics["chair"]["base"]["n_captions"] == 3
    assert "diagnostics" not in metrics  # world-only diagnostics are skipped on real data
    lines = (tmp_path / "answers" / "vcd" / "pope_random.jsonl").read_text().splitlines()
    assert [json.loads(line)["question_id"] for line in lines] == [1, 2, 3, 4]
    color = (tmp_path / "answers" / "base" / "mme" / "color.txt").read_text().splitlines()
    assert color[0].startswith("000000012.jpg\tIs there a red dog")
    captions = (tmp_path / "answers" / "base" / "chair_captions.jsonl").read_text().splitlines()
    assert [json.loads(c)["image_id"] for c in captions] == [42, 73, 74]


def test_chair_samples_a_fixed_subset_of_the_instances_file(real_layout):
    config = _real_config(real_layout, chair_n_images=2)
    paths = benchmark_paths(real_layout["root"] / "empty", config)
    first = chair_image_list(paths, config)
    assert len(first) == 2 and first == chair_image_list(paths, config)
    assert all(item["file_name"].startswith("COCO_val2014_") for item in first)


def test_missing_pope_image_names_the_file(real_layout, model_dir, tmp_path):
    config = _real_config(real_layout, methods=["base"], benchmarks=["pope"])
    config.images_dir = str(tmp_path / "nowhere")
    with pytest.raises(DataError, match="nowhere"):
        evaluate_stage(model_dir, real_layout["root"] / "empty", tmp_path, config, progress=False)


def test_read_metrics_names_a_broken_timings_file(tmp_path):
    from seed.errors import DataError
    from seed.stages.evaluate import read_metrics

    assert read_metrics(tmp_path) is None
    (tmp_path / "metrics.json").write_text('{"protocol": "greedy", "cost": {"base": {"steps": 3}}}')
    assert read_metrics(tmp_path) == {"protocol": "greedy", "cost": {"base": {"steps": 3}}}
    (tmp_path / "timings.json").write_text('{"cost": {"base": {"seconds": 1.5}}, "seconds": {"base": 2.0}}')
    assert read_metrics(tmp_path)["cost"]["base"] == {"steps": 3, "seconds": 1.5}
    (tmp_path / "timings.json").write_text("{not json")
    with pytest.raises(DataError, match="timings.json"):
        read_metrics(tmp_path)
