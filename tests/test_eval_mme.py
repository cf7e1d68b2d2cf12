"""MME hallucination subset: official answer parsing, release layouts, acc / acc+ / score."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seed.errors import DataError
from seed.eval.mme import (
    MME_SUBTASKS,
    load_mme,
    load_mme_subtask,
    mme_score,
    mme_subtask_score,
    parse_mme_answer,
)

# --- parser -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", "yes"),
        ("no", "no"),
        ("  YES \n", "yes"),
        ("Yes, there is a dog.", "yes"),
        ("No.", "no"),
        ("Not sure", "no"),  # "not " holds "no" in its first 4 characters
        ("nope", "no"),
        ("know", "no"),  # the official rule is a substring test on the first 4 characters
        ("I think yes", "other"),  # "yes" lies beyond the first 4 characters
        ("There is a dog.", "other"),
        ("", "other"),
        ("y", "other"),
    ],
)
def test_parse_mme_answer_official_rule(text, expected):
    assert parse_mme_answer(text) == expected


@given(st.text())
def test_parse_mme_answer_never_raises(text):
    assert parse_mme_answer(text) in ("yes", "no", "other")


# --- loading the release layouts ----------------------------------------------------------------


def make_pair(
    folder: Path, stem: str, lines: str, image_dir: Path | None = None, suffix: str = ".png"
) -> Path:
    """Write an (unreadable but present) image and its question file; return the image path."""
    image_dir = image_dir or folder
    image_dir.mkdir(parents=True, exist_ok=True)
    image = image_dir / f"{stem}{suffix}"
    image.write_bytes(b"not decoded by the loader")
    (folder / f"{stem}.txt").write_text(lines)
    return image


TWO_LINES = "Is there a dog in this image?\tYes\nIs there a cat in this image?\tNo\n"


def test_load_side_by_side_layout(tmp_path):
    a = make_pair(tmp_path, "eval_000002", TWO_LINES)
    b = make_pair(tmp_path, "eval_000001", "Is the cup red?\tNo\r\n\r\nIs the cup blue?\tYes", suffix=".jpg")
    (tmp_path / "meta.json").write_text("{}")  # unrelated files are ignored
    rows = load_mme_subtask(tmp_path)
    assert rows == [
        {"image": str(b), "question": "Is the cup red?", "answer": "no", "pair_id": "eval_000001"},
        {"image": str(b), "question": "Is the cup blue?", "answer": "yes", "pair_id": "eval_000001"},
        {
            "image": str(a),
            "question": "Is there a dog in this image?",
            "answer": "yes",
            "pair_id": "eval_000002",
        },
        {
            "image": str(a),
            "question": "Is there a cat in this image?",
            "answer": "no",
            "pair_id": "eval_000002",
        },
    ]


def test_load_images_and_questions_folders_layout(tmp_path):
    qa_dir = tmp_path / "questions_answers_YN"
    qa_dir.mkdir()
    image = make_pair(qa_dir, "0001", TWO_LINES, image_dir=tmp_path / "images", suffix=".jpg")
    rows = load_mme_subtask(tmp_path)
    assert [(r["image"], r["answer"], r["pair_id"]) for r in rows] == [
        (str(image), "yes", "0001"),
        (str(image), "no", "0001"),
    ]


def test_load_mme_reads_the_four_subtasks(tmp_path):
    for name in MME_SUBTASKS:
        make_pair(tmp_path / name, f"{name}_0", TWO_LINES)
    loaded = load_mme(tmp_path)
    assert list(loaded) == list(MME_SUBTASKS)
    assert all(len(rows) == 2 for rows in loaded.values())


def expect_error(folder: Path, culprit: Path) -> DataError:
    with pytest.raises(DataError) as info:
        load_mme_subtask(folder)
    assert str(culprit) in str(info.value)
    return info.value


def test_image_without_question_file_is_named(tmp_path):
    make_pair(tmp_path, "ok", TWO_LINES)
    lonely = tmp_path / "lonely.png"
    lonely.write_bytes(b"x")
    expect_error(tmp_path, lonely)


def test_question_file_without_image_is_named(tmp_path):
    make_pair(tmp_path, "ok", TWO_LINES)
    orphan = tmp_path / "orphan.txt"
    orphan.write_text(TWO_LINES)
    expect_error(tmp_path, orphan)


@pytest.mark.parametrize(
    ("lines", "row", "field"),
    [
        ("Is there a dog?\tYes\n", None, None),  # incomplete: one line
        ("Is there a dog?\tYes\nIs there a cat?\tYes\n", None, "answer"),  # not one of each
        ("Is there a dog?\tYes\nIs there a cat? No\n", 2, None),  # no tab
        ("Is there a dog?\tYes\nIs there a cat?\tMaybe\n", 2, "answer"),
        ("\tYes\nIs there a cat?\tNo\n", 1, "question"),
        ("A?\tYes\nB?\tNo\nC?\tNo\n", 3, None),  # three questions
        ("", None, None),
    ],
)
def test_malformed_question_file_is_named_with_line(tmp_path, lines, row, field):
    image = make_pair(tmp_path, "bad", lines)
    error = expect_error(tmp_path, image.with_suffix(".txt"))
    assert (error.row, error.field) == (row, field)


def test_question_file_not_utf8(tmp_path):
    image = make_pair(tmp_path, "bad", "")
    image.with_suffix(".txt").write_bytes(b"\xff\xfe\xfa\tYes\n")
    expect_error(tmp_path, image.with_suffix(".txt"))


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(content=st.binary(max_size=200) | st.text(alphabet="YesNo?\t\n\r ab", max_size=60).map(str.encode))
def test_question_file_fuzz_raises_only_data_error(tmp_path, content):
    image = make_pair(tmp_path, "fuzz", "")
    image.with_suffix(".txt").write_bytes(content)
    try:
        rows = load_mme_subtask(tmp_path)
    except DataError as error:
        assert str(tmp_path) in str(error)
    else:
        assert sorted(row["answer"] for row in rows) == ["no", "yes"]


def test_missing_and_empty_folders(tmp_path):
    expect_error(tmp_path / "absent", tmp_path / "absent")
    expect_error(tmp_path, tmp_path)
    (tmp_path / "questions_answers_YN").mkdir()
    expect_error(tmp_path, tmp_path / "images")


def test_two_images_with_one_stem(tmp_path):
    make_pair(tmp_path, "twin", TWO_LINES)
    (tmp_path / "twin.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match="twin"):
        load_mme_subtask(tmp_path)


# --- scoring ------------------------------------------------------------------------------------


def test_subtask_score_pair_logic_hand_computed(tmp_path):
    make_pair(tmp_path, "a", "Is there a dog?\tYes\nIs there a cat?\tNo\n")
    make_pair(tmp_path, "b", "Is there a cup?\tYes\nIs there a fork?\tNo\n")
    make_pair(tmp_path, "c", "Are there two cups?\tNo\nAre there three cups?\tYes\n")
    rows = load_mme_subtask(tmp_path)
    predictions = {
        ("a", "Is there a dog?"): "Yes",  # right
        ("a", "Is there a cat?"): "No, there is no cat.",  # right
        ("b", "Is there a cup?"): "Yes",  # right
        ("b", "Is there a fork?"): "Yes",  # wrong answer
        ("c", "Are there two cups?"): "There are three cups.",  # "other": always wrong
        ("c", "Are there three cups?"): "yes",  # right
    }
    scored = [{**row, "prediction": predictions[row["pair_id"], row["question"]]} for row in rows]
    result = mme_subtask_score(scored)
    # 4 of 6 questions right; only image a has both right: acc = 2/3, acc+ = 1/3
    assert result["acc"] == pytest.approx(2 / 3)
    assert result["acc_plus"] == pytest.approx(1 / 3)
    assert result["score"] == pytest.approx(100 * 2 / 3 + 100 * 1 / 3)
    assert (result["n_questions"], result["n_images"], result["n_other"]) == (6, 3, 1)


def rows_for(hits: list[int]) -> list[dict]:
    """One pair of rows per entry of `hits`: that many of the image's two questions answered right."""
    rows = []
    for pair_id, n_right in enumerate(hits):
        for j, answer in enumerate(("yes", "no")):
            wrong = "no" if answer == "yes" else "yes"
            rows.append(
                {"pair_id": pair_id, "answer": answer, "prediction": answer if j < n_right else wrong}
            )
    return rows


def test_mme_score_total_over_four_subtasks():
    by_subtask = {
        "existence": rows_for([2, 2]),  # acc 1, acc+ 1 -> 200
        "count": rows_for([2, 1]),  # acc 3/4, acc+ 1/2 -> 125
        "position": rows_for([1, 1]),  # acc 1/2, acc+ 0 -> 50
        "color": rows_for([0, 0]),  # acc 0, acc+ 0 -> 0
    }
    result = mme_score(by_subtask)
    assert [result[name]["score"] for name in MME_SUBTASKS] == pytest.approx([200, 125, 50, 0])
    assert result["total"] == pytest.approx(375)


def test_perfect_answers_reach_the_maxima():
    perfect = {name: rows_for([2, 2, 2]) for name in MME_SUBTASKS}
    result = mme_score(perfect)
    assert all(result[name]["score"] == 200 for name in MME_SUBTASKS)
    assert result["total"] == 800


def test_mme_score_needs_all_four_subtasks():
    with pytest.raises(DataError, match="color"):
        mme_score({name: rows_for([2]) for name in ("existence", "count", "position")})


@pytest.mark.parametrize(
    ("rows", "field"),
    [
        ([{"pair_id": 0, "answer": "yes", "prediction": "yes"}], "pair_id"),  # unpaired row
        ([{"pair_id": 0, "answer": "yes"}], "prediction"),
        ([{"pair_id": 0, "answer": "maybe", "prediction": "yes"}], "answer"),
        ([{"pair_id": 0, "answer": "yes", "prediction": None}], "prediction"),
        ([], None),
    ],
)
def test_subtask_score_rejects_bad_rows(rows, field):
    with pytest.raises(DataError) as info:
        mme_subtask_score(rows, source="preds.jsonl")
    assert info.value.field == field
    assert "preds.jsonl" in str(info.value)
