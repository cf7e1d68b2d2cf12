"""The stage table of `seed.stages`: one name per stage, in the order of dvc.yaml, with its config."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from seed.stages import STAGE_TABLE, STAGES, load_stage_config, main

ROOT = Path(__file__).resolve().parents[2]


def test_the_table_is_dvc_yaml_in_order_and_each_command_names_its_stage():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert list(dvc) == list(STAGES)
    for name, stage in dvc.items():
        assert stage["cmd"] == f"python -m seed.stages {name}"
        # a stage reads its own section; evolve also those of the stages its rounds repeat
        repeated = ["purify", "distill"] if name == "evolve" else []
        assert stage.get("params", [name]) == [name, *repeated]


@pytest.mark.parametrize("name", STAGES)
def test_each_stage_config_is_its_params_section(name):
    stage = STAGE_TABLE[name]
    cls = stage.config_class()
    module = importlib.import_module(cls.__module__)
    assert module.__name__ == f"seed.stages.{name}"
    assert getattr(module, "SECTION", name) == name
    assert isinstance(load_stage_config(name, ROOT / "params.yaml"), cls)


def test_an_unknown_stage_is_a_usage_error(capsys):
    with pytest.raises(ValueError, match="unknown stage 'eval'; stages: validate, pretrain"):
        load_stage_config("eval")
    assert main(["eval"]) == 2
    assert (
        "usage: python -m seed.stages {validate,pretrain,purify,distill,evolve,evaluate}"
        in capsys.readouterr().err
    )


def test_validate_shows_its_report_and_fails_the_command_on_a_failed_check():
    from seed.validate.report import Failure, ValidationReport

    failed = ValidationReport(
        "w", [Failure("w/pope/x.json", "expect_x", "label", ["maybe"], [3])], ["pope"], 1.5
    )
    text, code = STAGE_TABLE["validate"].show(failed.to_dict())
    assert (text, code) == (failed.format(), 1)
    assert text.startswith("INVALID w: 1 failed check(s) in 1 file(s)")
    passed = ValidationReport("w", [], ["pope"], 1.5)
    assert STAGE_TABLE["validate"].show(passed.to_dict()) == (passed.format(), 0)
