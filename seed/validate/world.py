"""Validate a whole world folder (see docs/data-format.md) in one report.

Order matters only for the disjointness check: the evaluation images (eval split of
annotations.json, plus every image that POPE, MME and CHAIR refer to) are gathered first, by name
and by SHA-256 of their bytes, then the train conversations and SEED instructions are checked
against them.

    annotations.json -> pope/*.json -> mme/ -> chair/images.json -> eval names + hashes
                     -> train/conversations.json, seed/instructions.json -> great-expectations
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from seed.errors import DataError
from seed.eval.mme import MME_SUBTASKS
from seed.params import check_range
from seed.validate.annotations import AnnotationIndex, annotation_tables
from seed.validate.conversations import conversation_table
from seed.validate.images import ImageChecker, image_rule
from seed.validate.mme import mme_tables
from seed.validate.pope import pope_table
from seed.validate.readers import missing_file, read_json
from seed.validate.report import Failure, ValidationReport
from seed.validate.runner import Table, build_report, expect, make_frame

EVAL_IMAGES = "images/eval"


def chair_table(
    data: Any, name: str, root: Path, checker: ImageChecker, index: AnnotationIndex | None
) -> tuple[list[Table], list[Failure]]:
    """chair/images.json: a list of {image_id, file_name} naming annotated eval images.

    ``index`` is None when annotations.json could not be read; the cross-checks are then skipped.
    """
    if not isinstance(data, list):
        return [], [
            Failure(file=name, expectation="schema", message="top level is not a JSON array", row_kind="")
        ]
    rows = []
    for position, entry in enumerate(data):
        entry = entry if isinstance(entry, dict) else {}
        file_name = entry.get("file_name")
        rows.append(
            {
                "_file": name,
                "_row": position,
                "image_id": entry.get("image_id"),
                "file_name": file_name,
                "image_problem": checker.problem(root / EVAL_IMAGES, file_name, EVAL_IMAGES),
                "annotated_id": index.id_of.get(file_name) if index and isinstance(file_name, str) else None,
            }
        )
    frame = make_frame(rows, ["image_id", "file_name", "image_problem", "annotated_id"])
    checks = [
        expect("ExpectTableRowCountToBeBetween", "at least one image to caption", min_value=1),
        expect("ExpectColumnValuesToNotBeNull", "every entry has an image_id", column="image_id"),
        expect("ExpectColumnValuesToBeUnique", "image ids are unique", column="image_id"),
        expect("ExpectColumnValuesToNotBeNull", "every entry has a file_name", column="file_name"),
        expect(
            "ExpectColumnValuesToBeNull",
            image_rule(EVAL_IMAGES, checker.max_side),
            column="image_problem",
        ),
    ]
    if index is not None:
        checks += [
            expect(
                "ExpectColumnValuesToBeInSet",
                "file_name is an eval-split image of annotations.json",
                column="file_name",
                value_set=sorted(index.names("eval")),
            ),
            expect(
                "ExpectColumnPairValuesToBeEqual",
                "image_id equals the image's id in annotations.json",
                column_A="image_id",
                column_B="annotated_id",
                ignore_row_if="either_value_is_missing",
            ),
        ]
    return [Table(file=name, frame=frame, checks=checks, row_kind="index", section="entry")], []


def _referenced(tables: list[Table], column: str) -> set[str]:
    """The plain relative image names in ``column`` of ``tables`` (others are reported by their table)."""
    names: set[str] = set()
    for table in tables:
        for value in table.frame[column].tolist():
            if (
                isinstance(value, str)
                and value
                and not Path(value).is_absolute()
                and ".." not in Path(value).parts
            ):
                names.add(value)
    return names


def fingerprint_eval_images(
    root: Path, paths: list[Path], checker: ImageChecker
) -> tuple[set[str], dict[str, str]]:
    """(file names, SHA-256 -> path under root) of the evaluation images that could be read."""
    digests: dict[str, str] = {}
    for path in sorted(paths):
        digest = checker.inspect(path).digest
        if digest is not None:
            digests.setdefault(digest, path.relative_to(root).as_posix())
    return {path.name for path in paths}, digests


def validate_world(root: Path, max_image_side: int = 1024) -> ValidationReport:
    """Validate every file of a world folder; raises `DataError` only when ``root`` is not a folder."""
    started = time.perf_counter()
    root = Path(root)
    check_range("validate", "max_image_side", max_image_side, lo=1)
    if not root.is_dir():
        raise DataError(root, "world folder not found")
    checker = ImageChecker(max_image_side)
    tables: list[Table] = []
    failures: list[Failure] = []

    def read(relative: str) -> Any:
        data, found = read_json(root / relative, relative)
        failures.extend(found)
        return data

    world = read("world.json")
    if world is not None and not isinstance(world, dict):
        failures.append(
            Failure(
                file="world.json", expectation="schema", message="top level is not a JSON object", row_kind=""
            )
        )
    annotations = read("annotations.json")
    index: AnnotationIndex | None = None  # None: annotations.json unusable, its cross-checks are skipped
    if annotations is not None:
        found_tables, found, index = annotation_tables(annotations, "annotations.json", root, checker)
        tables += found_tables
        failures += found
        index = index if found_tables else None
    eval_split = index.names("eval") if index else set()
    known = eval_split if index else None

    pope_files = sorted((root / "pope").glob("*.json")) if (root / "pope").is_dir() else []
    if not pope_files:
        failures.append(missing_file("pope/*.json", "POPE question file"))
    pope_tables: list[Table] = []
    for path in pope_files:
        found_tables, found = pope_table(
            path,
            f"pope/{path.name}",
            root / EVAL_IMAGES,
            EVAL_IMAGES,
            checker,
            balance_tolerance=0.0,
            known_images=known,
        )
        pope_tables += found_tables
        failures += found
    mme = mme_tables(root / "mme", root, checker, expected_subtasks=MME_SUBTASKS, known_images=known)
    failures += mme.failures
    chair = read("chair/images.json")
    chair_tables: list[Table] = []
    if chair is not None:
        chair_tables, found = chair_table(chair, "chair/images.json", root, checker, index)
        failures += found
    tables += pope_tables + mme.tables + chair_tables

    eval_paths = [
        root / EVAL_IMAGES / name
        for name in eval_split | _referenced(pope_tables, "image") | _referenced(chair_tables, "file_name")
    ] + mme.images
    eval_names, eval_digests = fingerprint_eval_images(root, eval_paths, checker)
    for relative, split, with_answers in (
        ("train/conversations.json", "train", True),
        ("seed/instructions.json", "seed", False),
    ):
        data = read(relative)
        if data is not None:
            found_tables, found = conversation_table(
                data,
                relative,
                root / "images" / split,
                f"images/{split}",
                checker,
                with_answers,
                eval_names,
                eval_digests,
            )
            tables += found_tables
            failures += found
    return build_report(str(root), tables, failures, checker.count, started)
