"""POPE: official answer parsing, metrics against hand-computed confusion matrices, loaders, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seed.errors import DataError
from seed.eval.pope import (
    POPE_PROMPT_SUFFIX,
    build_pope_prompt,
    confusion_counts,
    f1_bootstrap_ci,
    load_answers,
    load_pope_questions,
    main_pope_score,
    parse_yes_no,
    pope_metrics,
    pope_score,
)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def from_counts(tp: int, fp: int, tn: int, fn: int) -> tuple[list[str], list[str]]:
    """Labels and predictions that realise a given confusion matrix (yes positive)."""
    labels = ["yes"] * tp + ["no"] * fp + ["no"] * tn + ["yes"] * fn
    predictions = ["yes"] * tp + ["yes"] * fp + ["no"] * tn + ["no"] * fn
    return labels, predictions


# --- prompt -------------------------------------------------------------------------------------


def test_prompt_snapshot():
    assert build_pope_prompt("Is there a fork in the image?") == (
        "Is there a fork in the image?\nAnswer the question using a single word or phrase."
    )


def test_prompt_suffix_is_never_doubled():
    once = build_pope_prompt("Is there a cat in the image?")
    assert build_pope_prompt(once) == once
    assert once.count(POPE_PROMPT_SUFFIX) == 1


# --- parser -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Yes.", "yes"),
        ("No, there is not.", "no"),
        ("There is no dog in the image", "no"),
        ("", "yes"),
        ("I am not sure", "no"),
        ("yes, not really", "no"),
        ("No", "no"),
        ("no.", "no"),
        ("Yes", "yes"),
        ("Yes, there is a dog. No cat is visible.", "yes"),  # only the first sentence counts
        ("No,", "no"),  # the comma is dropped before splitting
        ("NO", "yes"),  # case-sensitive: only No / no / not
        ("Not at all", "yes"),  # "Not" is not one of the three words of the official rule
        ("nothing", "yes"),  # whole words only, not substrings
        ("There is\nno dog", "yes"),  # split on spaces only: "is\nno" is one word
        (".no", "yes"),  # the text before the first '.' is empty
    ],
)
def test_parse_yes_no_official_rule(answer, expected):
    assert parse_yes_no(answer) == expected


@given(st.text())
def test_parse_yes_no_never_raises_and_is_binary(answer):
    assert parse_yes_no(answer) in ("yes", "no")


# --- metrics ------------------------------------------------------------------------------------


def test_metrics_hand_computed_small():
    # tp=3 fp=1 tn=4 fn=2, N=10
    labels, predictions = from_counts(tp=3, fp=1, tn=4, fn=2)
    assert confusion_counts(labels, predictions) == {"tp": 3, "fp": 1, "tn": 4, "fn": 2}
    metrics = pope_metrics(labels, predictions)
    assert metrics["accuracy"] == pytest.approx(7 / 10)
    assert metrics["precision"] == pytest.approx(3 / 4)
    assert metrics["recall"] == pytest.approx(3 / 5)
    # 2 * 3/4 * 3/5 / (3/4 + 3/5) = (9/10) / (27/20) = 2/3
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["yes_ratio"] == pytest.approx(4 / 10)


def test_metrics_hand_computed_balanced_split():
    # tp=45 fp=5 tn=40 fn=10, N=100 (50 yes labels, 50 no labels, as a POPE split)
    labels, predictions = from_counts(tp=45, fp=5, tn=40, fn=10)
    metrics = pope_metrics(labels, predictions)
    assert metrics == pytest.approx(
        {"accuracy": 85 / 100, "precision": 9 / 10, "recall": 9 / 11, "f1": 6 / 7, "yes_ratio": 1 / 2}
    )


def test_metrics_order_does_not_matter():
    labels, predictions = from_counts(tp=3, fp=1, tn=4, fn=2)
    order = [9, 0, 4, 2, 7, 1, 8, 3, 6, 5]
    shuffled = pope_metrics([labels[i] for i in order], [predictions[i] for i in order])
    assert shuffled == pytest.approx(pope_metrics(labels, predictions))


def test_metrics_all_no_predictions_define_zero_precision_and_f1():
    labels, predictions = from_counts(tp=0, fp=0, tn=5, fn=5)
    metrics = pope_metrics(labels, predictions)
    assert metrics == {"accuracy": 0.5, "precision": 0.0, "recall": 0.0, "f1": 0.0, "yes_ratio": 0.0}


def test_metrics_no_yes_labels_define_zero_recall():
    labels, predictions = from_counts(tp=0, fp=2, tn=6, fn=0)
    metrics = pope_metrics(labels, predictions)
    assert metrics == {"accuracy": 6 / 8, "precision": 0.0, "recall": 0.0, "f1": 0.0, "yes_ratio": 2 / 8}


def test_metrics_perfect():
    labels, predictions = from_counts(tp=4, fp=0, tn=4, fn=0)
    assert pope_metrics(labels, predictions) == {
        "accuracy": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "yes_ratio": 0.5,
    }


@pytest.mark.parametrize(
    ("labels", "predictions", "message"),
    [
        (["yes"], ["yes", "no"], "1 labels but 2 predictions"),
        (["yes"], ["maybe"], "predictions"),
        (["Yes"], ["yes"], "labels"),
        ([], [], "at least one"),
    ],
)
def test_metrics_reject_bad_input(labels, predictions, message):
    with pytest.raises(ValueError, match=message):
        pope_metrics(labels, predictions)


@given(st.lists(st.tuples(st.sampled_from(["yes", "no"]), st.sampled_from(["yes", "no"])), min_size=1))
def test_metrics_are_fractions(pairs):
    labels, predictions = [p[0] for p in pairs], [p[1] for p in pairs]
    metrics = pope_metrics(labels, predictions)
    assert all(0.0 <= value <= 1.0 for value in metrics.values())
    assert metrics["yes_ratio"] == predictions.count("yes") / len(pairs)


# --- bootstrap ----------------------------------------------------------------------------------


def test_bootstrap_ci_contains_point_f1_and_is_reproducible():
    labels, predictions = from_counts(tp=45, fp=5, tn=40, fn=10)
    lo, hi = f1_bootstrap_ci(labels, predictions, n_resamples=500, seed=3)
    assert 0.0 <= lo < 6 / 7 < hi <= 1.0
    assert f1_bootstrap_ci(labels, predictions, n_resamples=500, seed=3) == (lo, hi)
    assert f1_bootstrap_ci(labels, predictions, n_resamples=500, seed=4) != (lo, hi)


def test_bootstrap_ci_narrows_with_more_data():
    small = from_counts(tp=9, fp=1, tn=8, fn=2)
    large = from_counts(tp=90, fp=10, tn=80, fn=20)  # same rates, ten times the questions
    lo_small, hi_small = f1_bootstrap_ci(*small, n_resamples=1000, seed=0)
    lo_large, hi_large = f1_bootstrap_ci(*large, n_resamples=1000, seed=0)
    assert lo_large < pope_metrics(*large)["f1"] < hi_large
    assert hi_large - lo_large < 0.6 * (hi_small - lo_small)


def test_bootstrap_ci_level_widens_interval():
    labels, predictions = from_counts(tp=30, fp=8, tn=22, fn=10)
    lo80, hi80 = f1_bootstrap_ci(labels, predictions, level=0.8)
    lo99, hi99 = f1_bootstrap_ci(labels, predictions, level=0.99)
    assert lo99 <= lo80 < hi80 <= hi99


def test_bootstrap_ci_degenerate_and_invalid():
    labels, predictions = from_counts(tp=0, fp=0, tn=5, fn=5)
    assert f1_bootstrap_ci(labels, predictions, n_resamples=50) == (0.0, 0.0)
    with pytest.raises(ValueError, match="level"):
        f1_bootstrap_ci(labels, predictions, level=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        f1_bootstrap_ci(labels, predictions, n_resamples=0)


# --- loaders ------------------------------------------------------------------------------------

QUESTIONS = [
    {"question_id": 1, "image": "eval_000001.png", "text": "Is there a fork in the image?", "label": "yes"},
    {"question_id": 2, "image": "eval_000001.png", "text": "Is there a cat in the image?", "label": "no"},
    {"question_id": 3, "image": "eval_000002.png", "text": "Is there a dog in the image?", "label": "yes"},
    {"question_id": 4, "image": "eval_000002.png", "text": "Is there a cup in the image?", "label": "no"},
]


def test_load_questions_reads_official_jsonl(tmp_path):
    path = tmp_path / "pope.json"
    path.write_text(json.dumps(QUESTIONS[0]) + "\n\n" + json.dumps(QUESTIONS[1]) + "\r\n")
    assert load_pope_questions(path) == QUESTIONS[:2]


def error_of(loader, path: Path) -> DataError:
    with pytest.raises(DataError) as info:
        loader(path)
    assert str(path) in str(info.value)
    return info.value


def test_load_questions_rejects_malformed_json_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(QUESTIONS[0]) + '\n{"question_id": 2, "image": \n')
    error = error_of(load_pope_questions, path)
    assert error.row == 2
    assert "not valid JSON" in str(error)


def test_load_questions_rejects_label_maybe(tmp_path):
    rows = [QUESTIONS[0], {**QUESTIONS[1], "label": "maybe"}]
    error = error_of(load_pope_questions, write_jsonl(tmp_path / "q.jsonl", rows))
    assert (error.row, error.field) == (2, "label")
    assert "'maybe'" in str(error)


def test_load_questions_rejects_duplicate_id(tmp_path):
    rows = [QUESTIONS[0], QUESTIONS[1], {**QUESTIONS[2], "question_id": 1}]
    error = error_of(load_pope_questions, write_jsonl(tmp_path / "q.jsonl", rows))
    assert (error.row, error.field) == (3, "question_id")
    assert "first on line 1" in str(error)


@pytest.mark.parametrize("key", ["question_id", "image", "text", "label"])
def test_load_questions_rejects_missing_key(tmp_path, key):
    row = {k: v for k, v in QUESTIONS[0].items() if k != key}
    error = error_of(load_pope_questions, write_jsonl(tmp_path / "q.jsonl", [row]))
    assert (error.row, error.field) == (1, key)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ('{"question_id": true, "image": "a.png", "text": "t", "label": "yes"}\n', "question_id"),
        ('{"question_id": 1, "image": 7, "text": "t", "label": "yes"}\n', "image"),
        ('{"question_id": 1, "image": "", "text": "t", "label": "yes"}\n', "image"),
        ('{"question_id": 1, "image": "a.png", "text": null, "label": "yes"}\n', "text"),
        ('{"question_id": 1, "image": "a.png", "text": "t", "label": "Yes"}\n', "label"),
    ],
)
def test_load_questions_rejects_bad_values(tmp_path, content, field):
    path = tmp_path / "q.jsonl"
    path.write_text(content)
    assert error_of(load_pope_questions, path).field == field


@pytest.mark.parametrize("content", [b"", b"\n\n", b"[1, 2]\n", b'"text"\n', b"\xff\xfe\x00garbage\n"])
def test_load_questions_rejects_empty_non_object_and_binary(tmp_path, content):
    path = tmp_path / "q.jsonl"
    path.write_bytes(content)
    error_of(load_pope_questions, path)


def test_load_questions_missing_file(tmp_path):
    assert "cannot read" in str(error_of(load_pope_questions, tmp_path / "absent.jsonl"))


def test_load_answers(tmp_path):
    rows = [{"question_id": 1, "text": "Yes", "model_id": "m"}, {"question_id": "q2", "text": ""}]
    assert load_answers(write_jsonl(tmp_path / "a.jsonl", rows)) == {1: "Yes", "q2": ""}


@pytest.mark.parametrize(
    ("rows", "row", "field"),
    [
        ([{"question_id": 1, "text": "Yes"}, {"question_id": 1, "text": "No"}], 2, "question_id"),
        ([{"question_id": 1}], 1, "text"),
        ([{"text": "No"}], 1, "question_id"),
        ([{"question_id": [1], "text": "No"}], 1, "question_id"),
    ],
)
def test_load_answers_rejects_bad_rows(tmp_path, rows, row, field):
    error = error_of(load_answers, write_jsonl(tmp_path / "a.jsonl", rows))
    assert (error.row, error.field) == (row, field)


# --- scoring a file pair and the CLI ------------------------------------------------------------


def answers_for(texts: dict[int, str]) -> list[dict]:
    return [{"question_id": qid, "text": text} for qid, text in texts.items()]


def test_pope_score_matches_by_question_id(tmp_path):
    questions = write_jsonl(tmp_path / "q.jsonl", QUESTIONS)
    # written out of order; labels yes, no, yes, no -> predictions yes, yes, no, no
    answers = write_jsonl(
        tmp_path / "a.jsonl",
        answers_for({4: "No, there is not.", 1: "Yes.", 3: "There is no dog.", 2: "Yes, there is a cat."}),
    )
    # tp=1 (q1) fp=1 (q2) fn=1 (q3) tn=1 (q4)
    assert pope_score(questions, answers) == pytest.approx(
        {"accuracy": 1 / 2, "precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "yes_ratio": 1 / 2}
    )


def test_pope_score_missing_answer_names_question_id(tmp_path):
    questions = write_jsonl(tmp_path / "q.jsonl", QUESTIONS)
    answers = write_jsonl(tmp_path / "a.jsonl", answers_for({1: "Yes", 2: "No", 4: "No"}))
    with pytest.raises(DataError, match="question_id 3") as info:
        pope_score(questions, answers)
    assert str(answers) in str(info.value)


def test_pope_score_extra_answer_is_an_error(tmp_path):
    questions = write_jsonl(tmp_path / "q.jsonl", QUESTIONS)
    answers = write_jsonl(tmp_path / "a.jsonl", answers_for({1: "Yes", 2: "No", 3: "No", 4: "No", 99: "Yes"}))
    with pytest.raises(DataError, match="99"):
        pope_score(questions, answers)


def test_cli_prints_one_json_object(tmp_path, capsys):
    questions = write_jsonl(tmp_path / "q.jsonl", QUESTIONS)
    answers = write_jsonl(tmp_path / "a.jsonl", answers_for({1: "Yes", 2: "No", 3: "Yes", 4: "Yes"}))
    assert main_pope_score(["--questions", str(questions), "--answers", str(answers)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == ["accuracy", "precision", "recall", "f1", "yes_ratio"]
    # tp=2 fp=1 tn=1 fn=0
    assert printed == pytest.approx(
        {"accuracy": 3 / 4, "precision": 2 / 3, "recall": 1.0, "f1": 4 / 5, "yes_ratio": 3 / 4}
    )


def test_cli_reports_data_errors_on_stderr(tmp_path, capsys):
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question_id": 1, "image": "a.png", "text": "t", "label": "maybe"}\n')
    answers = write_jsonl(tmp_path / "a.jsonl", answers_for({1: "Yes"}))
    assert main_pope_score(["--questions", str(questions), "--answers", str(answers)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and "label" in captured.err and str(questions) in captured.err


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as info:
        main_pope_score(["--help"])
    assert info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--questions" in help_text and "--answers" in help_text and "official POPE rule" in help_text


# --- fuzz: loaders raise DataError and nothing else ---------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5)
plausible = st.sampled_from(["yes", "no", "maybe", "a.png", ""]) | st.integers(0, 3)
near_valid_line = st.fixed_dictionaries(
    {},
    optional={key: plausible | json_values for key in ("question_id", "image", "text", "label", "x")},
).map(json.dumps)
fuzz_bytes = st.binary(max_size=300) | st.lists(near_valid_line, max_size=4).map(
    lambda lines: "\n".join(lines).encode()
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(content=fuzz_bytes)
def test_jsonl_loaders_raise_only_data_error(tmp_path, content):
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(content)
    for loader in (load_pope_questions, load_answers):
        try:
            result = loader(path)
        except DataError as error:
            assert str(path) in str(error)
        else:
            assert len(result) >= 1


def test_ranking_auc_counts_ordered_pairs():
    import torch

    from seed.eval.pope import ranking_auc

    positive = torch.tensor([True, False, True, False])
    assert ranking_auc(torch.tensor([3.0, 1.0, 2.0, 0.0]), positive) == 1.0
    assert ranking_auc(torch.tensor([0.0, 1.0, 2.0, 3.0]), positive) == 0.25  # only 2 > 1 of four pairs


def test_margin_auc_against_a_hand_computed_case():
    from seed.eval.pope import margin_auc

    # present margins 2, 1, 0.5 against absent 1, -1: of the 6 pairs, 2 > 1, 2 > -1, 1 > -1 and
    # 0.5 > -1 win, 1 = 1 ties (half), 0.5 < 1 loses: (4 + 0.5) / 6 = 0.75
    assert margin_auc(["yes", "no", "yes", "no", "yes"], [2.0, 1.0, 1.0, -1.0, 0.5]) == pytest.approx(0.75)
    assert margin_auc(["yes", "no"], [1.0, 0.0]) == 1.0 and margin_auc(["yes", "no"], [0.0, 1.0]) == 0.0
    assert margin_auc(["yes", "no", "yes", "no"], [0.3, 0.3, 0.3, 0.3]) == 0.5  # all tied: chance
    assert margin_auc(["yes", "yes"], [1.0, 2.0]) is None  # no absent object: undefined
    with pytest.raises(ValueError):
        margin_auc(["yes", "no"], [1.0])
