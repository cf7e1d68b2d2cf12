"""Checks for MME subtask folders: each image has a ``.txt`` beside it with exactly two lines
``question<TAB>answer``, answers ``Yes``/``No``, one of each, and the image decodes.

Both release layouts are read: files side by side in the subtask folder, or ``images/`` plus
``questions_answers_YN/``. Two tables cover all subtasks: one row per question file (pairing and
the image) and one row per line (format and answer).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from seed.errors import DataError
from seed.params import check_range
from seed.validate.images import IMAGE_SUFFIXES, ImageChecker
from seed.validate.readers import display_path, missing_file, read_text
from seed.validate.report import Failure, ValidationReport
from seed.validate.runner import Table, build_report, expect, make_frame

MME_ANSWERS = ("Yes", "No")
COMPLETE_PAIR = "No+Yes"
QA_FOLDER = "questions_answers_YN"
IMAGE_FOLDER = "images"


@dataclass
class MmeTables:
    """The tables to run, failures found while reading, and the image files seen."""

    tables: list[Table] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)


def _is_subtask(folder: Path, strict: bool) -> bool:
    """A subtask folder has questions_answers_YN/, or question files (strict: one beside its image)."""
    if (folder / QA_FOLDER).is_dir():
        return True
    stems = {p.stem for p in folder.glob("*.txt")}
    if not strict:
        return bool(stems)
    return any(p.stem in stems for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def find_subtasks(mme_dir: Path) -> list[Path]:
    """The subtask folders under ``mme_dir``, or ``mme_dir`` itself when it is one.

    ``mme_dir`` counts as a subtask only when a question file sits beside its image (a release root
    may hold a readme.txt); a child folder counts when it holds any question file.
    """
    if _is_subtask(mme_dir, strict=True):
        return [mme_dir]
    children = [p for p in mme_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(p for p in children if _is_subtask(p, strict=False))


def _by_stem(paths: Iterable[Path]) -> dict[str, Path]:
    return {p.stem: p for p in sorted(paths)}


def _pairs(folder: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """(image by stem, question file by stem) for one subtask folder, in either layout."""
    if (folder / QA_FOLDER).is_dir():
        image_dir, text_dir = folder / IMAGE_FOLDER, folder / QA_FOLDER
    else:
        image_dir = text_dir = folder
    images = (
        [p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES] if image_dir.is_dir() else []
    )
    texts = [p for p in text_dir.iterdir() if p.suffix.lower() == ".txt"]
    return _by_stem(images), _by_stem(texts)


def mme_tables(
    mme_dir: Path,
    base: Path | None,
    checker: ImageChecker,
    expected_subtasks: Collection[str] = (),
    known_images: Collection[str] | None = None,
) -> MmeTables:
    """Read every subtask folder under ``mme_dir`` into a per-file and a per-line table."""
    out = MmeTables()
    name = display_path(mme_dir, base)
    subtasks = find_subtasks(mme_dir) if mme_dir.is_dir() else []
    found = {folder.name for folder in subtasks}
    for subtask in expected_subtasks:
        if subtask not in found:
            out.failures.append(missing_file(f"{name}/{subtask}", "MME subtask folder with question files"))
    if not subtasks:
        if not expected_subtasks:
            out.failures.append(missing_file(name, "MME subtask folder with question files"))
        return out
    file_rows, line_rows = [], []
    for folder in subtasks:
        images, texts = _pairs(folder)
        for stem in sorted(set(images) | set(texts)):
            image, text = images.get(stem), texts.get(stem)
            if image is not None:
                out.images.append(image)
            file_rows.append(_file_row(image, text, base, checker, line_rows))
    columns = ["image", "text_problem", "image_problem", "n_lines", "answers"]
    files = make_frame(file_rows, columns)
    checks = [
        expect(
            "ExpectColumnValuesToBeNull",
            "each image has a readable question .txt beside it",
            column="text_problem",
        ),
        expect(
            "ExpectColumnValuesToBeNull",
            f"the image beside each .txt exists, decodes, has an 8-bit RGB form, sides <= {checker.max_side} px",
            column="image_problem",
        ),
        expect(
            "ExpectColumnValuesToBeBetween",
            "exactly two question lines",
            column="n_lines",
            min_value=2,
            max_value=2,
        ),
        expect(
            "ExpectColumnValuesToBeInSet",
            "one Yes and one No answer (a complete pair)",
            column="answers",
            value_set=[COMPLETE_PAIR],
        ),
    ]
    if known_images is not None:
        checks.append(
            expect(
                "ExpectColumnValuesToBeInSet",
                "image is an eval-split image of annotations.json",
                column="image",
                value_set=sorted(known_images),
            )
        )
    out.tables.append(Table(file=name, frame=files, checks=checks, row_kind="", section="question files"))
    lines = make_frame(line_rows, ["line_problem", "answer"])
    out.tables.append(
        Table(
            file=name,
            frame=lines,
            checks=[
                expect(
                    "ExpectColumnValuesToBeNull",
                    "line is 'question<TAB>answer' with a question",
                    column="line_problem",
                ),
                expect(
                    "ExpectColumnValuesToBeInSet",
                    "answer is 'Yes' or 'No'",
                    column="answer",
                    value_set=list(MME_ANSWERS),
                ),
            ],
            section="question lines",
        )
    )
    return out


def _file_row(
    image: Path | None, text: Path | None, base: Path | None, checker: ImageChecker, line_rows: list[dict]
) -> dict:
    """One row for an image/question-file pair; appends the file's lines to ``line_rows``."""
    label = display_path(text if text is not None else image, base)
    row: dict = {"_file": label, "_row": None, "image": image.name if image is not None else None}
    if image is None:
        row["image_problem"] = f"no image named '{text.stem}' beside it"
    else:
        info = checker.inspect(image)
        row["image_problem"] = None if info.problem is None else f"{image.name}: {info.problem}"
    if text is None:
        row["text_problem"] = f"no question file '{image.stem}.txt'"
        return row
    content, problems = read_text(text, label)
    if content is None:
        row["text_problem"] = problems[0].message
        return row
    lines = [(n, line) for n, line in enumerate(content.split("\n"), start=1) if line.strip()]
    answers = []
    for line_no, line in lines:
        question, tab, answer = line.rstrip("\r").rpartition("\t")
        if not tab:
            problem, answer = "no TAB between question and answer", None
        else:
            problem = None if question.strip() else "empty question"
            answer = answer.strip()
            answers.append(answer)
        line_rows.append({"_file": label, "_row": line_no, "line_problem": problem, "answer": answer})
    row["n_lines"] = len(lines)
    row["answers"] = "+".join(sorted(answers))
    return row


def validate_mme(mme_dir: Path, max_image_side: int = 1024) -> ValidationReport:
    """Validate an MME folder: its subtask folders (or ``mme_dir`` itself when it is one subtask).

    Raises `DataError` when the folder does not exist; every other problem is a failure in the report.
    """
    started = time.perf_counter()
    mme_dir = Path(mme_dir)
    check_range("validate", "max_image_side", max_image_side, lo=1)
    if not mme_dir.is_dir():
        raise DataError(mme_dir, "MME folder not found")
    checker = ImageChecker(max_image_side)
    found = mme_tables(mme_dir, mme_dir.parent, checker)
    return build_report(str(mme_dir), found.tables, found.failures, checker.count, started)
