"""Tests for seed.validate: a clean generated world passes; each broken file is named in the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seed.errors import ConfigError, DataError
from seed.validate import main_validate, validate_mme, validate_pope, validate_world
from seed.validate.annotations import bbox_problem
from seed.validate.conversations import turn_summary
from seed.validate.images import inspect_image
from seed.validate.report import Failure, ValidationReport
from seed.world.config import WorldConfig
from seed.world.synth import synthesize

TINY = WorldConfig(n_train=20, n_seed=5, n_pope_images=10, n_mme_images=4, n_chair_images=5)


@pytest.fixture(scope="session")
def generated_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("validate") / "world"
    synthesize(root, TINY, progress=False)
    return root


@pytest.fixture
def world(generated_world: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny world that a test may break."""
    return Path(shutil.copytree(generated_world, tmp_path / "world"))


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_lines(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def failures_for(report: ValidationReport, file: str, expectation: str | None = None) -> list[Failure]:
    return [f for f in report.failures if f.file == file and expectation in (None, f.expectation)]


def write_png(path: Path, size: int = 8, value: int = 0) -> None:
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)


# --- a clean world -----------------------------------------------------------------------------------


def test_clean_world_passes(generated_world: Path) -> None:
    report = validate_world(generated_world)
    assert report.ok, report.format()
    assert report.failures == []
    text = report.format()
    assert text.startswith("VALID")
    for name in (
        "annotations.json",
        "pope/world_pope_random.json",
        "mme question files",
        "chair/images.json",
        "train/conversations.json",
        "seed/instructions.json",
    ):
        assert any(name in item for item in report.checked), name
    total = TINY.total_images() + 4 * TINY.n_mme_images  # MME images are copies beside their .txt
    assert f"{total} image files read" in report.checked[-1]
    assert json.loads(json.dumps(report.to_dict()))["ok"] is True


def test_main_validate_exit_codes(
    generated_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main_validate([str(generated_world)]) == 0
    assert "VALID" in capsys.readouterr().out
    assert main_validate([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main_validate(["--mme", str(generated_world / "mme"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    with pytest.raises(SystemExit) as exc:
        main_validate(["--pope", str(generated_world / "pope" / "world_pope_random.json")])
    assert exc.value.code == 2  # --pope needs --images
    with pytest.raises(SystemExit) as exc:
        main_validate(["--help"])
    assert exc.value.code == 0
    assert "--max-image-side" in capsys.readouterr().out


# --- each defect is named: file, row, failed check -----------------------------------------------------
# One world carries every defect, each in its own place, and is validated once (a validation of the
# tiny world costs ~1.5 s of great-expectations overhead). The first test pins the exact set of
# failures, so each defect is shown to produce its own failures and nothing else.

POPE_RANDOM, POPE_POPULAR, POPE_ADVERSARIAL = (
    f"pope/world_pope_{s}.json" for s in ("random", "popular", "adversarial")
)


def break_world(root: Path) -> dict[str, str]:
    """Apply every defect to a copy of the tiny world; returns the names the tests look for."""
    names = {}
    # a truncated PNG and a PNG with garbage in its compressed data
    path = root / "images" / "train" / "train_000003.png"
    path.write_bytes(path.read_bytes()[:-200])
    path = root / "images" / "seed" / "seed_000022.png"  # image id 22: 20 train images come first
    data = path.read_bytes()
    path.write_bytes(data[:60] + b"\x00" * 80 + data[140:])
    # a missing evaluation image (every POPE split asks about every POPE image)
    names["missing"] = read_lines(root / POPE_RANDOM)[0]["image"]
    (root / "images" / "eval" / names["missing"]).unlink()
    # a POPE label "maybe" (line 5), a duplicate question id (lines 3 and 8), a broken JSONL line (10)
    rows = read_lines(root / POPE_RANDOM)
    rows[4]["label"] = "maybe"
    write_lines(root / POPE_RANDOM, rows)
    rows = read_lines(root / POPE_POPULAR)
    rows[7]["question_id"] = rows[2]["question_id"]
    write_lines(root / POPE_POPULAR, rows)
    lines = (root / POPE_ADVERSARIAL).read_text().splitlines()
    lines[9] = lines[9][:-5]
    (root / POPE_ADVERSARIAL).write_text("\n".join(lines) + "\n")
    # evaluation images in training: by name (seed entry 1), by bytes (train_000002.png := a CHAIR image)
    names["chair"] = json.loads((root / "chair" / "images.json").read_text())[0]["file_name"]
    names["pope"] = read_lines(root / POPE_RANDOM)[-1]["image"]
    shutil.copyfile(root / "images" / "eval" / names["chair"], root / "images" / "train" / "train_000002.png")

    def seed_edits(data: list) -> None:
        data[1]["image"] = names["pope"]
        data[0]["conversations"].append({"from": "gpt", "value": "Yes"})

    edit_json(root / "seed" / "instructions.json", seed_edits)
    # MME: a file with one line, a file whose answers are both Yes, an image without its .txt
    for subtask, damage in (("count", "one_line"), ("existence", "same_answers"), ("position", "no_txt")):
        text = sorted((root / "mme" / subtask).glob("*.txt"))[1]
        names[damage] = (
            f"mme/{subtask}/{text.name}" if damage != "no_txt" else f"mme/{subtask}/{text.stem}.png"
        )
        lines = text.read_text().splitlines()
        if damage == "one_line":
            text.write_text(lines[0] + "\n")
        elif damage == "same_answers":
            text.write_text("\n".join(line.rsplit("\t", 1)[0] + "\tYes" for line in lines) + "\n")
        else:
            text.unlink()

    # an annotation with an unknown category, another with a bbox outside the image
    def annotation_edits(data: dict) -> None:
        data["annotations"][3]["category_id"] = 999
        data["annotations"][0]["bbox"] = [40, 0, 20, 5]

    edit_json(root / "annotations.json", annotation_edits)
    return names


@pytest.fixture(scope="module")
def broken(generated_world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[ValidationReport, dict]:
    root = Path(shutil.copytree(generated_world, tmp_path_factory.mktemp("broken") / "world"))
    names = break_world(root)
    return validate_world(root), names


def test_broken_world_fails_exactly_where_it_was_broken(broken: tuple[ValidationReport, dict]) -> None:
    report, names = broken
    assert not report.ok
    found = {
        (f.file, f.expectation.removeprefix("expect_column_"), f.column, tuple(f.rows))
        for f in report.failures
    }
    missing_id = int(names["missing"][5:11])
    assert found == {
        ("annotations.json", "values_to_be_null", "image_problem", (3, 22, missing_id)),
        ("annotations.json", "values_to_be_in_set", "category_id", (3,)),
        ("annotations.json", "values_to_be_null", "bbox_problem", (0,)),
        ("train/conversations.json", "values_to_be_null", "image_problem", (3,)),
        ("train/conversations.json", "values_to_be_null", "same_bytes_as_eval", (2,)),
        ("seed/instructions.json", "values_to_be_null", "image_problem", (1, 2)),
        ("seed/instructions.json", "values_to_not_be_in_set", "image", (1,)),
        ("seed/instructions.json", "values_to_be_between", "gpt_turns", (0,)),
        (POPE_RANDOM, "values_to_be_null", "image_problem", (1, 2, 3, 4, 5)),
        (POPE_RANDOM, "values_to_be_in_set", "label", (5,)),
        (POPE_RANDOM, "mean_to_be_between", "is_yes", ()),
        (POPE_POPULAR, "values_to_be_null", "image_problem", (1, 2, 3, 4, 5)),
        (POPE_POPULAR, "values_to_be_unique", "question_id", (3, 8)),
        (POPE_ADVERSARIAL, "values_to_be_null", "image_problem", (1, 2, 3, 4, 5)),
        (POPE_ADVERSARIAL, "parse_jsonl_line", None, (10,)),
        (POPE_ADVERSARIAL, "mean_to_be_between", "is_yes", ()),  # the unreadable line's label is lost
        (names["one_line"], "values_to_be_between", "n_lines", ()),
        (names["one_line"], "values_to_be_in_set", "answers", ()),
        (names["same_answers"], "values_to_be_in_set", "answers", ()),
        (names["no_txt"], "values_to_be_null", "text_problem", ()),
    }
    text = report.format()
    assert text.startswith(f"INVALID {report.target}: {len(found)} failed check(s) in 9 file(s)")
    assert "Traceback" not in text
    assert json.loads(json.dumps(report.to_dict()))["failures"][0]["file"] == report.failures[0].file


def _one(report: ValidationReport, file: str, column: str | None) -> Failure:
    [failure] = [f for f in report.failures if f.file == file and f.column == column]
    return failure


def test_corrupt_png_is_rejected(broken: tuple[ValidationReport, dict]) -> None:
    report, _ = broken
    failure = _one(report, "annotations.json", "image_problem")
    assert failure.expectation == "expect_column_values_to_be_null" and failure.section == "images"
    assert failure.unexpected[0] == "images/train/train_000003.png: does not decode (image file is truncated)"
    assert failure.unexpected[1].startswith("images/seed/seed_000022.png: does not decode")
    assert "annotations.json images[3], images[22]" in report.format()
    assert "[expect_column_values_to_be_null on 'image_problem']" in report.format()


def test_missing_image_is_rejected(broken: tuple[ValidationReport, dict]) -> None:
    report, names = broken
    failure = _one(report, POPE_RANDOM, "image_problem")
    assert failure.unexpected[0] == f"images/eval/{names['missing']}: missing"
    assert failure.count == 6  # the image's six questions (3 present objects, 3 absent)
    assert (
        f"{POPE_RANDOM} lines 1, 2, 3, 4, 5 (+1 more): the image exists under images/eval/" in report.format()
    )


def test_pope_label_maybe_is_rejected(broken: tuple[ValidationReport, dict]) -> None:
    report, _ = broken
    failure = _one(report, POPE_RANDOM, "label")
    assert failure.expectation == "expect_column_values_to_be_in_set" and failure.unexpected == ["maybe"]
    assert f"{POPE_RANDOM} line 5: label is 'yes' or 'no'" in report.format()
    balance = _one(report, POPE_RANDOM, "is_yes")  # one label fewer breaks our world's exact 50/50
    assert "yes share exactly 0.5" in balance.message


def test_duplicate_question_id_is_rejected(broken: tuple[ValidationReport, dict]) -> None:
    report, _ = broken
    failure = _one(report, POPE_POPULAR, "question_id")
    assert failure.expectation == "expect_column_values_to_be_unique" and failure.rows == [3, 8]
    assert len(set(failure.unexpected)) == 1


def test_malformed_jsonl_line_is_a_failure_not_an_error(broken: tuple[ValidationReport, dict]) -> None:
    report, _ = broken
    failure = _one(report, POPE_ADVERSARIAL, None)
    assert failure.expectation == "parse_jsonl_line" and "not valid JSON" in failure.message


def test_eval_image_in_training_is_rejected(broken: tuple[ValidationReport, dict]) -> None:
    report, names = broken
    by_name = _one(report, "seed/instructions.json", "image")
    assert by_name.unexpected == [names["pope"]] and by_name.rows == [1]
    assert "image is not an evaluation image (by file name)" in by_name.message
    by_bytes = _one(report, "train/conversations.json", "same_bytes_as_eval")
    assert by_bytes.rows == [2] and by_bytes.unexpected == [f"images/eval/{names['chair']}"]
    assert "differ from every evaluation image" in by_bytes.message


def test_unpaired_mme_file_is_rejected(broken: tuple[ValidationReport, dict]) -> None:
    report, names = broken
    assert _one(report, names["one_line"], "n_lines").unexpected == [1]
    assert _one(report, names["one_line"], "answers").unexpected == ["Yes"]
    assert _one(report, names["same_answers"], "answers").unexpected == ["Yes+Yes"]
    assert "one Yes and one No answer" in _one(report, names["same_answers"], "answers").message
    assert _one(report, names["no_txt"], "text_problem").unexpected[0].startswith("no question file")


def test_unknown_category_is_rejected(broken: tuple[ValidationReport, dict]) -> None:
    report, _ = broken
    failure = _one(report, "annotations.json", "category_id")
    assert failure.unexpected == [999] and failure.rows == [3]
    assert (
        "annotations.json annotations[3]: category_id refers to a category in 'categories'" in report.format()
    )


def test_bbox_outside_image_and_gpt_turn_in_seed_are_rejected(broken: tuple[ValidationReport, dict]) -> None:
    report, _ = broken
    assert "exceeds the 48x48 image" in _one(report, "annotations.json", "bbox_problem").unexpected[0]
    assert "no gpt turns" in _one(report, "seed/instructions.json", "gpt_turns").message


def test_missing_and_unparsable_files_are_failures_not_errors(generated_world: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(generated_world, tmp_path / "world"))
    (root / "annotations.json").unlink()
    (root / "chair" / "images.json").write_text('[{"image_id": 1,\n "file_name": }]')
    report = validate_world(root)
    assert {(f.file, f.expectation, tuple(f.rows)) for f in report.failures} == {
        ("annotations.json", "file_exists", ()),
        ("chair/images.json", "parse_json", (2,)),
    }
    assert "chair/images.json line 2: not valid JSON" in report.format()


def test_image_too_large_for_the_limit(generated_world: Path) -> None:
    report = validate_world(generated_world, max_image_side=32)
    [failure] = [f for f in failures_for(report, "annotations.json") if f.column == "image_problem"]
    assert failure.count == TINY.total_images() and "too large: 48x48 > 32 px" in failure.unexpected[0]
    with pytest.raises(ConfigError, match="validate.max_image_side"):
        validate_world(generated_world, max_image_side=0)


# --- standalone POPE and MME ------------------------------------------------------------------------


def _pope_rows(n_yes: int, n_no: int) -> list[dict]:
    labels = ["yes"] * n_yes + ["no"] * n_no
    return [
        {"question_id": i, "image": f"img_{i % 3}.png", "text": "Is there a cat?", "label": label}
        for i, label in enumerate(labels)
    ]


@pytest.mark.parametrize(("n_yes", "ok"), [(50, True), (51, True), (53, False)])
def test_real_pope_balance_tolerance(tmp_path: Path, n_yes: int, ok: bool) -> None:
    images = tmp_path / "val2014"
    images.mkdir()
    for i in range(3):
        write_png(images / f"img_{i}.png")
    path = tmp_path / "coco_pope_random.json"
    write_lines(path, _pope_rows(n_yes, 100 - n_yes))
    report = validate_pope(path, images)
    assert report.ok is ok, report.format()
    if not ok:
        [failure] = report.failures
        assert failure.expectation == "expect_column_mean_to_be_between" and failure.unexpected == [0.53]
    with pytest.raises(DataError, match="image folder not found"):
        validate_pope(path, tmp_path / "absent")


def test_mme_release_layout_with_separate_folders(tmp_path: Path) -> None:
    subtask = tmp_path / "MME" / "existence"
    (subtask / "images").mkdir(parents=True)
    (subtask / "questions_answers_YN").mkdir()
    for stem, answers in (("a", ("Yes", "No")), ("b", ("No", "Yes")), ("c", ("Yes", "Yes"))):
        write_png(subtask / "images" / f"{stem}.jpg")
        (subtask / "questions_answers_YN" / f"{stem}.txt").write_text(
            "".join(f"Is there a dog in the image?\t{a}\n" for a in answers)
        )
    (subtask / "images" / "b.jpg").write_bytes(b"not an image")
    (tmp_path / "MME" / "readme.txt").write_text("not a question file")
    report = validate_mme(tmp_path / "MME")
    assert {(f.file, f.column) for f in report.failures} == {
        ("MME/existence/questions_answers_YN/b.txt", "image_problem"),
        ("MME/existence/questions_answers_YN/c.txt", "answers"),
    }
    alone = validate_mme(subtask)  # one subtask folder given directly
    assert [f.file for f in alone.failures] == [
        f"existence/{f.file.split('/', 2)[2]}" for f in report.failures
    ]


# --- the pure helpers ---------------------------------------------------------------------------------


def test_bbox_problem() -> None:
    assert bbox_problem([0, 0, 48, 48], (48, 48)) is None
    assert bbox_problem([1.5, 2, 3, 4], None) is None
    assert "not 4 numbers" in bbox_problem([0, 0, 1], (48, 48))
    assert "not 4 numbers" in bbox_problem("0 0 1 1", (48, 48))
    assert "non-positive" in bbox_problem([0, 0, 0, 3], (48, 48))
    assert "exceeds" in bbox_problem([-1, 0, 3, 3], (48, 48))
    assert "exceeds" in bbox_problem([0, 46, 3, 3], (48, 48))


def test_turn_summary() -> None:
    human = {"from": "human", "value": "<image>\nIs there a fork?"}
    assert turn_summary([human, {"from": "gpt", "value": "Yes"}]) == (None, True, 1, 1)
    assert turn_summary([{"from": "human", "value": "Is there a fork?"}]) == (None, False, 1, 0)
    assert turn_summary([human, {"from": "bot", "value": "x"}])[0] == "turn 1 is from 'bot', not human or gpt"
    assert turn_summary([])[0] == "conversations is not a non-empty list"


def test_inspect_image(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    Image.fromarray(np.zeros((6, 10), dtype=np.uint8), mode="L").save(path)
    info = inspect_image(path, max_side=10)
    assert info.problem is None and info.size == (10, 6) and len(info.digest) == 64
    assert inspect_image(path, max_side=9).problem == "too large: 10x6 > 9 px"
    assert inspect_image(tmp_path / "absent.png", 10).problem == "missing"
    path.write_bytes(b"hello")
    assert inspect_image(path, 10).problem == "does not decode (not a recognised image format)"
