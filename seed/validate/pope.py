"""Checks for a POPE question file (official JSONL: question_id, image, text, label).

Labels must be "yes"/"no" and balanced. Our generated world writes exactly half yes, so the world
check demands 0.5 exactly; a real file is allowed ``REAL_BALANCE_TOLERANCE`` (the official COCO
files are exactly 1500/1500, the tolerance only forgives files re-cut by other toolkits).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from pathlib import Path

from seed.errors import DataError
from seed.params import check_range
from seed.validate.images import ImageChecker, image_rule
from seed.validate.readers import read_jsonl
from seed.validate.report import Failure, ValidationReport
from seed.validate.runner import Table, build_report, expect, make_frame

POPE_COLUMNS = ("question_id", "image", "text", "label")
POPE_LABELS = ("yes", "no")
REAL_BALANCE_TOLERANCE = 0.02


def pope_table(
    path: Path,
    name: str,
    images_dir: Path,
    images_label: str,
    checker: ImageChecker,
    balance_tolerance: float,
    known_images: Collection[str] | None = None,
) -> tuple[list[Table], list[Failure]]:
    """Read one POPE file into a checked table; parse problems come back as failures."""
    records, failures = read_jsonl(path, name)
    rows = []
    for line_no, record in records:
        label = record.get("label")
        row = {key: record.get(key) for key in POPE_COLUMNS}
        row.update(
            _file=name,
            _row=line_no,
            image_problem=checker.problem(images_dir, record.get("image"), images_label),
            is_yes=(1.0 if label == "yes" else 0.0) if label in POPE_LABELS else None,
        )
        rows.append(row)
    if not records and failures:
        return [], failures
    frame = make_frame(rows, [*POPE_COLUMNS, "image_problem", "is_yes"])
    checks = [expect("ExpectTableRowCountToBeBetween", "the file holds at least one question", min_value=1)]
    checks += [
        expect("ExpectColumnValuesToNotBeNull", f"every line has '{key}'", column=key) for key in POPE_COLUMNS
    ]
    checks += [
        expect(
            "ExpectColumnValuesToBeInSet",
            "label is 'yes' or 'no'",
            column="label",
            value_set=list(POPE_LABELS),
        ),
        expect("ExpectColumnValuesToBeUnique", "question_id is unique in the file", column="question_id"),
        expect(
            "ExpectColumnValuesToBeNull",
            image_rule(images_label, checker.max_side),
            column="image_problem",
        ),
    ]
    if frame["is_yes"].notna().any():
        share = "exactly 0.5" if balance_tolerance == 0 else f"0.5 +- {balance_tolerance}"
        checks.append(
            expect(
                "ExpectColumnMeanToBeBetween",
                f"labels are balanced: yes share {share}",
                column="is_yes",
                min_value=0.5 - balance_tolerance,
                max_value=0.5 + balance_tolerance,
            )
        )
    if known_images is not None:
        checks.append(
            expect(
                "ExpectColumnValuesToBeInSet",
                "image is an eval-split image of annotations.json",
                column="image",
                value_set=sorted(known_images),
            )
        )
    return [Table(file=name, frame=frame, checks=checks)], failures


def validate_pope(pope_file: Path, images_dir: Path, max_image_side: int = 1024) -> ValidationReport:
    """Validate one POPE file (official JSONL) against its image folder (e.g. COCO ``val2014/``).

    Raises `DataError` when the file or folder does not exist; every other problem is a failure in
    the report. The label balance may be off by ``REAL_BALANCE_TOLERANCE``.
    """
    started = time.perf_counter()
    pope_file, images_dir = Path(pope_file), Path(images_dir)
    check_range("validate", "max_image_side", max_image_side, lo=1)
    if not pope_file.is_file():
        raise DataError(pope_file, "POPE file not found")
    if not images_dir.is_dir():
        raise DataError(images_dir, "image folder not found")
    checker = ImageChecker(max_image_side)
    tables, failures = pope_table(
        pope_file, str(pope_file), images_dir, str(images_dir), checker, REAL_BALANCE_TOLERANCE
    )
    return build_report(str(pope_file), tables, failures, checker.count, started)
