"""Checks for LLaVA conversation JSON (train/conversations.json, seed/instructions.json).

Each entry is {id, image, conversations: [{from: human|gpt, value}]}; the first human turn carries
``<image>``; SEED instructions have no gpt turns. The image must exist, decode, and must not be an
evaluation image, neither by file name nor by the bytes (a copied eval image under a train name).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from seed.validate.images import ImageChecker, image_rule
from seed.validate.report import Failure
from seed.validate.runner import Table, expect, make_frame

ROLES = ("human", "gpt")
IMAGE_TOKEN = "<image>"


def turn_summary(turns: Any) -> tuple[str | None, bool | None, int | None, int | None]:
    """(problem, first human turn has <image>, human turns, gpt turns) of one conversation.

    A malformed conversation gives (problem, None, None, None), so that only the problem is reported.
    """
    if not isinstance(turns, list) or not turns:
        return "conversations is not a non-empty list", None, None, None
    counts = dict.fromkeys(ROLES, 0)
    first_human = None
    for number, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            return f"turn {number} is not {{'from', 'value': str}}", None, None, None
        role = turn.get("from")
        if role not in ROLES:
            return f"turn {number} is from {role!r}, not human or gpt", None, None, None
        counts[role] += 1
        if role == "human" and first_human is None:
            first_human = turn["value"]
    has_token = first_human is not None and IMAGE_TOKEN in first_human
    return None, has_token, counts["human"], counts["gpt"]


def conversation_table(
    data: Any,
    name: str,
    images_dir: Path,
    images_label: str,
    checker: ImageChecker,
    with_answers: bool,
    eval_names: Collection[str],
    eval_digests: Mapping[str, str],
) -> tuple[list[Table], list[Failure]]:
    """Build the checked table of one conversation file (``with_answers`` False for SEED instructions)."""
    if not isinstance(data, list):
        return [], [
            Failure(file=name, expectation="schema", message="top level is not a JSON array", row_kind="")
        ]
    rows = []
    for position, entry in enumerate(data):
        entry = entry if isinstance(entry, dict) else {}
        problem, has_token, humans, gpts = turn_summary(entry.get("conversations"))
        image = entry.get("image")
        image_problem = checker.problem(images_dir, image, images_label)
        twin = None
        if image_problem is None and isinstance(image, str):
            twin = eval_digests.get(checker.inspect(images_dir / image).digest or "")
        rows.append(
            {
                "_file": name,
                "_row": position,
                "id": entry.get("id"),
                "image": image,
                "image_problem": image_problem,
                "turns_problem": problem,
                "has_image_token": has_token,
                "human_turns": humans,
                "gpt_turns": gpts,
                "same_bytes_as_eval": twin,
            }
        )
    frame = make_frame(
        rows,
        [
            "id",
            "image",
            "image_problem",
            "turns_problem",
            "has_image_token",
            "human_turns",
            "gpt_turns",
            "same_bytes_as_eval",
        ],
    )
    checks = [
        expect("ExpectTableRowCountToBeBetween", "the file holds at least one entry", min_value=1),
        expect("ExpectColumnValuesToNotBeNull", "every entry has an id", column="id"),
        expect("ExpectColumnValuesToBeUnique", "ids are unique", column="id"),
        expect("ExpectColumnValuesToNotBeNull", "every entry has an image", column="image"),
        expect(
            "ExpectColumnValuesToBeNull",
            image_rule(images_label, checker.max_side),
            column="image_problem",
        ),
        expect(
            "ExpectColumnValuesToBeNull",
            "conversations is a list of {from: human|gpt, value} turns",
            column="turns_problem",
        ),
        expect(
            "ExpectColumnValuesToBeInSet",
            f"the first human turn contains '{IMAGE_TOKEN}'",
            column="has_image_token",
            value_set=[True],
        ),
        expect("ExpectColumnValuesToBeBetween", "at least one human turn", column="human_turns", min_value=1),
        expect(
            "ExpectColumnValuesToBeNull",
            "image bytes differ from every evaluation image (content hash)",
            column="same_bytes_as_eval",
        ),
    ]
    if with_answers:
        checks.append(
            expect(
                "ExpectColumnValuesToBeBetween", "at least one gpt answer", column="gpt_turns", min_value=1
            )
        )
    else:
        checks.append(
            expect(
                "ExpectColumnValuesToBeBetween",
                "no gpt turns (SEED instructions carry no answers)",
                column="gpt_turns",
                min_value=0,
                max_value=0,
            )
        )
    if eval_names:
        checks.append(
            expect(
                "ExpectColumnValuesToNotBeInSet",
                "image is not an evaluation image (by file name)",
                column="image",
                value_set=sorted(eval_names),
            )
        )
    return [Table(file=name, frame=frame, checks=checks, row_kind="index", section="entry")], []
