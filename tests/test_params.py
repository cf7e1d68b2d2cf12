"""seed/params.py: every bad params.yaml value is a one-line ConfigError naming file and key."""

from __future__ import annotations

import pickle

import pytest

from seed.errors import ConfigError, DataError
from seed.params import check_range, load_config, read_params
from seed.stages.evaluate import EvaluateConfig


def write(tmp_path, text: str):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, words",
    [
        ("evaluate:\n  batch_size: '8'\n", "evaluate.batch_size = '8' must be an integer"),
        ("evaluate:\n  batch_size: 8.5\n", "evaluate.batch_size = 8.5 must be an integer"),
        ("evaluate:\n  batch_size: true\n", "must be an integer"),
        ("evaluate:\n  cd_alpha: 1e-3\n", "write 1.0e-3"),
        ("evaluate:\n  methods: 3\n", "evaluate.methods = 3 must be a list of strings"),
        ("evaluate:\n  sample_seeds: [0, x]\n", "must be a list of integers"),
        ("evaluate:\n  pope_dir: [a]\n", r"must be a string \(or null\)"),
        ("evaluate: 3\n", "section 'evaluate' must be a mapping"),
        ("evaluate:\n  batch_size: 0\n", "evaluate.batch_size = 0 must be >= 1"),
        ("evaluate:\n  cd_beta: 2\n", r"evaluate.cd_beta = 2 is out of range \[0, 1\]"),
        ("evaluate:\n  cd_alpha: .nan\n", "evaluate.cd_alpha = nan must be a number"),
        ("evaluate:\n  nope: 1\n", "unknown key"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=words) as info:
        load_config(EvaluateConfig, "evaluate", path)
    assert str(path) in str(info.value)


def test_good_values_and_comma_lists_still_load(tmp_path):
    path = write(tmp_path, "evaluate:\n  methods: base,vcd\n  cd_alpha: 2\n  pope_dir: null\n")
    config = load_config(EvaluateConfig, "evaluate", path, batch_size=4)
    assert config.methods == ["base", "vcd"] and config.cd_alpha == 2 and config.batch_size == 4


@pytest.mark.parametrize("text, words", [("a: [\n", "line 2"), ("\t- x", "line 1"), ("- 1\n", "mapping")])
def test_unreadable_params_files_give_one_line(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=words) as info:
        read_params(path)
    assert "\n" not in str(info.value)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="UTF-8"):
        read_params(path)


def test_check_range_messages():
    check_range("s", "k", 0.5, lo=0, hi=1)
    with pytest.raises(ConfigError, match=r"s.k = 0 must be > 0"):
        check_range("s", "k", 0, lo=0, lo_open=True)
    with pytest.raises(ConfigError, match=r"s.k = 3 must be <= 2"):
        check_range("s", "k", 3, hi=2)
    with pytest.raises(ConfigError, match="must be a number"):
        check_range("s", "k", "x", lo=0)


def test_errors_stay_on_one_line_and_survive_pickling():
    error = DataError("a.json", "bad\nvalue", field="key\n", row=2)
    assert "\n" not in str(error) and "\n" not in str(ConfigError("x\ny"))
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and (copy.path, copy.field, copy.row) == ("a.json", "key\n", 2)
