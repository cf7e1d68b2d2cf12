from __future__ import annotations

import json
import subprocess
import sys

import pytest

from seed.cli import main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("data", "validate", "pope-score", "pretrain", "purify", "distill", "evaluate", "evolve"):
        assert command in out


def test_each_stage_command_is_named_as_its_stage_and_eval_stays_an_alias(capsys):
    from seed.stages import STAGES

    for stage in STAGES:
        with pytest.raises(SystemExit) as exc:
            main([stage, "--help"])
        assert exc.value.code == 0
        assert f"usage: seed {stage}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "usage: seed eval" in capsys.readouterr().out


def test_pope_score_prints_one_json_object(tmp_path, capsys):
    questions = tmp_path / "q.json"
    answers = tmp_path / "a.jsonl"
    rows = [(1, "yes", "Yes."), (2, "no", "No, there is not."), (3, "yes", "no"), (4, "no", "Yes")]
    questions.write_text(
        "".join(
            json.dumps({"question_id": i, "image": "x.png", "text": "Is there a cat?", "label": lab}) + "\n"
            for i, lab, _ in rows
        )
    )
    answers.write_text("".join(json.dumps({"question_id": i, "text": t}) + "\n" for i, _, t in rows))
    assert main(["pope-score", "--questions", str(questions), "--answers", str(answers)]) == 0
    result = json.loads(capsys.readouterr().out)
    # tp=1 (q1), fn=1 (q3), tn=1 (q2), fp=1 (q4)
    assert result == {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "yes_ratio": 0.5}


def test_bad_input_gives_one_error_line_and_exit_2(tmp_path, capsys):
    questions = tmp_path / "q.json"
    questions.write_text(
        json.dumps({"question_id": 1, "image": "x.png", "text": "?", "label": "maybe"}) + "\n"
    )
    answers = tmp_path / "a.jsonl"
    answers.write_text(json.dumps({"question_id": 1, "text": "yes"}) + "\n")
    assert main(["pope-score", "--questions", str(questions), "--answers", str(answers)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "q.json" in err and "label" in err and "Traceback" not in err


def test_out_of_range_world_option_names_the_params_key(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "w"), "--cooccurrence", "1.5"]) == 2
    assert "world.cooccurrence" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


TINY_WORLD = [
    "--n-train",
    "3",
    "--n-seed",
    "1",
    "--n-pope-images",
    "1",
    "--n-mme-images",
    "1",
    "--n-chair-images",
    "1",
]


def test_a_missing_params_file_is_said_and_the_world_takes_the_built_in_defaults(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "params.yaml").write_text("world:\n  hard_negative_rate: 0.35\n")
    assert main(["-q", "data", "synth", "--out", "bare", *TINY_WORLD]) == 0
    err = capsys.readouterr().err
    assert "no params file params.yaml" in err and str(tmp_path) in err and "--params" in err
    assert json.loads((tmp_path / "bare" / "world.json").read_text())["config"]["hard_negative_rate"] == 0.0

    given = ["-q", "--params", "project/params.yaml", "data", "synth", "--out", "read", *TINY_WORLD]
    assert main(given) == 0
    assert "no params file" not in capsys.readouterr().err
    assert json.loads((tmp_path / "read" / "world.json").read_text())["config"]["hard_negative_rate"] == 0.35


def test_synth_through_the_console_script_is_deterministic(tmp_path):
    for name in ("a", "b"):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "seed.cli",
                "-q",
                "data",
                "synth",
                "--out",
                str(tmp_path / name),
                *TINY_WORLD,
            ],
            check=True,
            capture_output=True,
        )
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files and all(
        (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files
    )


def test_run_and_serve_come_from_the_flows_plugin():
    from flows.cli import main_run, main_serve
    from seed.cli import _delegate

    assert _delegate("run") is main_run and _delegate("serve") is main_serve


def test_a_missing_plugin_is_one_error_line(monkeypatch, capsys):
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **_: [])
    assert main(["run", "--help"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: `seed run` comes from the package `flows`") and err.count("\n") == 1
