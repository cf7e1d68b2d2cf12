"""``--shape llava-1.5-7b`` (bench/shape.py, bench/scale7b*.py, bench/shape_report.py): config, slice, projection, CPU runs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from bench.common import Runtime  # noqa: E402
from bench.shape import image_tokens, load_shape, parameter_count, project_round, sliced  # noqa: E402
from bench.shape_report import markers, section, update  # noqa: E402

NAME = "llava-1.5-7b"


def test_config_states_the_published_dimensions():
    shape = load_shape(NAME)
    text, vision = shape["text_config"], shape["vision_config"]
    assert "llava-hf/llava-1.5-7b-hf" in shape["source"] and "config.json" in shape["source"]
    assert (text["hidden_size"], text["num_hidden_layers"], text["num_attention_heads"]) == (4096, 32, 32)
    assert (text["intermediate_size"], text["vocab_size"], text["num_key_value_heads"]) == (11008, 32064, 32)
    assert (vision["hidden_size"], vision["num_hidden_layers"], vision["patch_size"]) == (1024, 24, 14)
    assert vision["image_size"] == 336 and image_tokens(shape) == 576
    assert shape["published"]["vision_feature_layer"] == -2
    assert shape["published"]["projector_hidden_act"] == "gelu"
    assert parameter_count(shape) == 7_063_427_072  # LLaVA-1.5-7B's published size, 7.06 B


def test_slice_keeps_every_width():
    shape = load_shape(NAME)
    cut = sliced(shape)
    assert cut["text_config"]["num_hidden_layers"] == 2 and cut["vision_config"]["num_hidden_layers"] == 2
    for part in ("text_config", "vision_config"):
        rest = {k: v for k, v in cut[part].items() if k != "num_hidden_layers"}
        assert rest == {k: v for k, v in shape[part].items() if k != "num_hidden_layers"}
    assert shape["text_config"]["num_hidden_layers"] == 32  # the original is untouched


def test_project_round_by_hand():
    rates = {
        "generate_samples_per_second": 10.0,
        "teacher_samples_per_second": 20.0,
        "distill_seconds_per_step": 2.0,
        "distill_batch": 16,
        "epochs": 1,
    }
    out = project_round(1000, rates)
    # 1000 / 10 = 100 s; 1000 / 20 = 50 s; ceil(1000 / 16) = 63 steps x 2 s = 126 s
    assert out["generate_seconds"] == pytest.approx(100.0)
    assert out["teacher_seconds"] == pytest.approx(50.0)
    assert out["distill_steps"] == 63 == math.ceil(1000 / 16)
    assert out["total_seconds"] == pytest.approx(276.0)
    assert out["total_hours"] == pytest.approx(276.0 / 3600)
    assert project_round(1000, {**rates, "epochs": 2})["distill_steps"] == 126


def test_update_replaces_only_the_marked_section():
    start, end = markers(NAME)
    doc = f"# B\n\nkeep\n\n{start}\nold\n{end}\n\ntail\n"
    new = update(doc, f"{start}\nnew\n{end}\n", NAME)
    assert "old" not in new and "new" in new and new.startswith("# B\n\nkeep") and new.endswith("tail\n")
    assert update("# B\n", f"{start}\nx\n{end}\n", NAME) == f"# B\n\n{start}\nx\n{end}\n"


def test_cpu_run_of_the_slice(tmp_path):
    """Every section on the 2-layer slice (every width kept; 56 px images for speed) and the JSON it writes."""
    from bench.scale7b import CHECKS, SECTIONS, run_shape

    size = {
        "layers": 2,
        "image_size": 56,
        "generate_batch": 1,
        "response_tokens": 3,
        "teacher_batch": 1,
        "repeats": 1,
        "decode_batch": 1,
        "decode_tokens": 2,
        "decode_repeats": 1,
        "distill_batch": 1,
        "distill_steps": 1,
        "memory_batches": [1],
        "memory_steps": 1,
        "full_finetune": False,
        "square": 128,
    }
    rt = Runtime(dtype="bfloat16", scratch=tmp_path / "scratch")
    out = tmp_path / "bench.json"
    results, failed = run_shape(rt, NAME, out, list(SECTIONS), size=size, command="test")
    assert failed == []
    saved = json.loads(out.read_text())
    model = saved["model"]
    assert (model["text_layers"], model["vision_layers"], model["text_hidden"]) == (2, 2, 4096)
    assert model["vocab_size"] == 32064 and model["image_tokens"] == 16
    assert model["parameters"] == parameter_count(sliced(load_shape(NAME)), image_size=56)
    assert saved["published_parameters"] == parameter_count(load_shape(NAME))
    assert saved["generate"]["tokens_per_second"] > 0 and saved["purify"]["samples_per_second"] > 0
    assert saved["purify"]["forward_batch"] == 2 and saved["purify"]["fraction_of_peak"] > 0
    methods = saved["decode"]["methods"]
    assert set(methods) == {"base", "vcd", "seed_unmerged", "seed_merged"}
    assert methods["vcd"]["forwards_per_token"] == 2 and methods["seed_merged"]["forwards_per_token"] == 1
    modes = {(r["mode"], r["batch"]) for r in saved["distill"]["memory"]}
    assert modes == {("adapter_teacher", 1), ("separate_teacher_lora", 1)}
    assert all(r["finite_loss"] for r in saved["distill"]["memory"])
    assert saved["distill"]["offline_seconds_per_step"] > 0
    assert saved["distill"]["gradient_checkpointing"] is False
    assert "checkpointing_step_time_ratio" not in saved["distill"]
    rounds = saved["projection"]["rounds"]
    assert [r["samples"] for r in rounds] == [10_000, 100_000]
    assert rounds[1]["total_seconds"] > rounds[0]["total_seconds"] > 0
    assert [row["check"] for row in saved["acceptance"]] == [f"{s}.{k}" for s, k, _, _ in CHECKS]
    text = section(saved, out)
    assert text.startswith(markers(NAME)[0]) and "Projected wall time" in text


def test_cpu_distill_of_the_slice_with_gradient_checkpointing(tmp_path):
    """``--gradient-checkpointing``: every mode trains with it, the offline step is timed with and without."""
    from bench.scale7b import run_shape

    size = {
        "layers": 2,
        "image_size": 28,
        "response_tokens": 2,
        "teacher_batch": 1,
        "repeats": 1,
        "distill_batch": 1,
        "distill_steps": 1,
        "memory_batches": [1],
        "memory_steps": 1,
        "full_finetune": False,
        "square": 128,
    }
    rt = Runtime(dtype="bfloat16", scratch=tmp_path / "scratch")
    out = tmp_path / "bench.json"
    results, failed = run_shape(
        rt, NAME, out, ["purify", "distill"], size=size, command="test", gradient_checkpointing=True
    )
    assert failed == []
    distill = json.loads(out.read_text())["distill"]
    assert distill["gradient_checkpointing"] is True
    assert (
        distill["offline_seconds_per_step"] > 0
        and distill["offline_seconds_per_step_without_checkpointing"] > 0
    )
    assert distill["checkpointing_step_time_ratio"] > 0
    assert {(r["mode"], r["batch"]) for r in distill["memory"]} == {
        ("adapter_teacher", 1),
        ("separate_teacher_lora", 1),
    }
    assert all(r["finite_loss"] for r in distill["memory"])
