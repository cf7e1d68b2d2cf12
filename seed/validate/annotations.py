"""Checks for a world's annotations.json (COCO-instances style): schema, references, bboxes, images.

Every image listed must exist under ``images/<split>/`` and decode within the size limit, with the
declared width and height; annotations must refer to known image and category ids and their bbox
``[x, y, w, h]`` must lie inside the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

from seed.validate.images import ImageChecker, image_rule
from seed.validate.report import Failure
from seed.validate.runner import Table, expect, make_frame

SPLITS = ("train", "seed", "eval")
SECTIONS = ("images", "categories", "annotations")


@dataclass
class AnnotationIndex:
    """What the other checks need from annotations.json: file name -> split and id, per split."""

    split_of: dict[str, str] = field(default_factory=dict)
    id_of: dict[str, Any] = field(default_factory=dict)

    def names(self, split: str) -> set[str]:
        return {name for name, s in self.split_of.items() if s == split}


def _entries(data: dict, key: str) -> list[dict]:
    return [entry if isinstance(entry, dict) else {} for entry in data[key]]


def annotation_tables(
    data: Any, name: str, root: Path, checker: ImageChecker
) -> tuple[list[Table], list[Failure], AnnotationIndex]:
    """Build the images, categories and annotations tables of a parsed annotations.json."""
    index = AnnotationIndex()
    problems = []
    if not isinstance(data, dict):
        problems.append("top level is not a JSON object")
    else:
        problems += [
            f"'{key}' is missing or not a list" for key in SECTIONS if not isinstance(data.get(key), list)
        ]
    if problems:
        failure = Failure(file=name, expectation="schema", message="; ".join(problems), row_kind="")
        return [], [failure], index
    image_rows, sizes = [], {}
    for position, entry in enumerate(_entries(data, "images")):
        file_name, split = entry.get("file_name"), entry.get("split")
        width, height = entry.get("width"), entry.get("height")
        declared = f"{width}x{height}"
        decoded, problem = None, None
        if split in SPLITS:
            problem = checker.problem(root / "images" / split, file_name, f"images/{split}")
            if problem is None and isinstance(file_name, str):
                size = checker.inspect(root / "images" / split / file_name).size
                decoded = f"{size[0]}x{size[1]}"
        if isinstance(file_name, str):
            index.split_of[file_name] = split
            index.id_of[file_name] = entry.get("id")
        if _is_int(entry.get("id")) and _is_number(width) and _is_number(height):
            sizes[entry["id"]] = (width, height)
        image_rows.append(
            {
                **entry,
                "_file": name,
                "_row": position,
                "image_problem": problem,
                "declared_size": declared,
                "decoded_size": decoded,
            }
        )
    images = make_frame(
        image_rows,
        ["id", "file_name", "split", "width", "height", "image_problem", "declared_size", "decoded_size"],
    )
    image_checks = [
        expect("ExpectTableRowCountToBeBetween", "'images' is not empty", min_value=1),
        *_id_checks("id", "image"),
        expect("ExpectColumnValuesToNotBeNull", "every image has a file_name", column="file_name"),
        expect("ExpectColumnValuesToBeUnique", "file_name is unique across splits", column="file_name"),
        expect(
            "ExpectColumnValuesToBeInSet",
            f"split is one of {', '.join(SPLITS)}",
            column="split",
            value_set=list(SPLITS),
        ),
        expect(
            "ExpectColumnValuesToBeNull",
            image_rule("images/<split>", checker.max_side),
            column="image_problem",
        ),
        expect(
            "ExpectColumnPairValuesToBeEqual",
            "width x height match the decoded image",
            column_A="declared_size",
            column_B="decoded_size",
            ignore_row_if="either_value_is_missing",
        ),
    ]
    categories = make_frame(
        [{**entry, "_file": name, "_row": i} for i, entry in enumerate(_entries(data, "categories"))],
        ["id", "name", "supercategory"],
    )
    category_checks = [
        expect("ExpectTableRowCountToBeBetween", "'categories' is not empty", min_value=1),
        *_id_checks("id", "category"),
        expect("ExpectColumnValuesToNotBeNull", "every category has a name", column="name"),
        expect("ExpectColumnValuesToBeUnique", "category names are unique", column="name"),
    ]
    image_ids = sorted({v for v in images["id"].dropna().tolist()}, key=repr)
    category_ids = sorted({v for v in categories["id"].dropna().tolist()}, key=repr)
    annotation_rows = [
        {
            **entry,
            "_file": name,
            "_row": i,
            "bbox_problem": bbox_problem(entry.get("bbox"), sizes.get(entry.get("image_id"))),
        }
        for i, entry in enumerate(_entries(data, "annotations"))
    ]
    annotations = make_frame(annotation_rows, ["id", "image_id", "category_id", "bbox_problem"])
    annotation_checks = [
        *_id_checks("id", "annotation"),
        expect("ExpectColumnValuesToNotBeNull", "every annotation has an image_id", column="image_id"),
        expect(
            "ExpectColumnValuesToBeInSet",
            "image_id refers to an image in 'images'",
            column="image_id",
            value_set=image_ids,
        ),
        expect("ExpectColumnValuesToNotBeNull", "every annotation has a category_id", column="category_id"),
        expect(
            "ExpectColumnValuesToBeInSet",
            "category_id refers to a category in 'categories'",
            column="category_id",
            value_set=category_ids,
        ),
        expect(
            "ExpectColumnValuesToBeNull",
            "bbox is [x, y, w, h], w and h > 0, inside its image",
            column="bbox_problem",
        ),
    ]
    tables = [
        Table(file=name, frame=images, checks=image_checks, row_kind="index", section="images"),
        Table(file=name, frame=categories, checks=category_checks, row_kind="index", section="categories"),
        Table(
            file=name, frame=annotations, checks=annotation_checks, row_kind="index", section="annotations"
        ),
    ]
    return tables, [], index


def _id_checks(column: str, what: str) -> list:
    return [
        expect("ExpectColumnValuesToNotBeNull", f"every {what} has an id", column=column),
        expect("ExpectColumnValuesToBeUnique", f"{what} ids are unique", column=column),
    ]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def bbox_problem(bbox: Any, image_size: tuple[float, float] | None) -> str | None:
    """None when ``bbox`` is [x, y, w, h] with w, h > 0 inside an image of ``image_size`` (w, h).

    An unknown image (``image_size`` None) is left to the image_id check.
    """
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        return f"bbox {bbox!r} is not 4 numbers"
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        return f"bbox {bbox} has a non-positive size"
    if image_size is None:
        return None
    width, height = image_size
    if x < 0 or y < 0 or x + w > width or y + h > height:
        return f"bbox {bbox} exceeds the {width}x{height} image"
    return None
