"""LLaVA conversation JSON: load it, check it, and turn it into chat messages.

A record is ``{"id", "image", "conversations": [{"from": "human"|"gpt", "value": str}, ...]}``; the
first human turn carries the ``<image>`` placeholder. Messages use the multimodal chat schema that
every transformers processor's chat template reads:
``{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": ...}]}``.
"""

from __future__ import annotations

from pathlib import Path

from seed.errors import DataError
from seed.files.inputs import MAX_ANSWER_CHARS, check_prompt, check_relative_name, read_json

IMAGE_PLACEHOLDER = "<image>"
ROLES = {"human": "user", "gpt": "assistant"}


def load_conversations(path: str | Path, require_answers: bool = True) -> list[dict]:
    """Read and check a LLaVA conversation file; errors name the file, the record and the field.

    With ``require_answers=False`` (the unlabelled SEED split) records must hold human turns only.
    Every record's ``image`` must be a relative file name inside the image folder (no ``..``), and
    every human turn must hold a prompt besides ``<image>`` (see `seed.files.inputs.check_prompt`).
    """
    path = Path(path)
    records = read_json(path)
    if not isinstance(records, list):
        raise DataError(path, "top level must be a list of conversation records")
    for row, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(path, "record must be an object", row=row)
        for key in ("id", "image", "conversations"):
            if key not in record:
                raise DataError(path, "missing key", field=key, row=row)
        if isinstance(record["id"], bool) or not isinstance(record["id"], str | int):
            raise DataError(path, "must be a string or an integer", field="id", row=row)
        check_relative_name(record["image"], path, "image", row)
        turns = record["conversations"]
        if not isinstance(turns, list) or not turns:
            raise DataError(path, "must be a non-empty list of turns", field="conversations", row=row)
        for turn in turns:
            if (
                not isinstance(turn, dict)
                or turn.get("from") not in ROLES
                or not isinstance(turn.get("value"), str)
            ):
                raise DataError(
                    path,
                    "each turn needs 'from' in {human, gpt} and a string 'value'",
                    field="conversations",
                    row=row,
                )
            if not turn["value"].strip():
                raise DataError(path, "empty turn text", field="conversations.value", row=row)
            if turn["from"] == "human":  # what the model reads, without the image placeholder
                check_prompt(turn["value"].replace(IMAGE_PLACEHOLDER, ""), path, "conversations.value", row)
            else:
                check_prompt(turn["value"], path, "conversations.value", row, max_chars=MAX_ANSWER_CHARS)
        if turns[0]["from"] != "human" or IMAGE_PLACEHOLDER not in turns[0]["value"]:
            raise DataError(
                path,
                f"first turn must be human and contain {IMAGE_PLACEHOLDER}",
                field="conversations",
                row=row,
            )
        has_gpt = any(t["from"] == "gpt" for t in turns)
        if require_answers and not has_gpt:
            raise DataError(path, "no gpt turn to learn from", field="conversations", row=row)
        if not require_answers and has_gpt:
            raise DataError(
                path, "unlabelled split must hold human turns only", field="conversations", row=row
            )
    return records


def user_message(text: str, with_image: bool) -> dict:
    """One user message; the image item (if any) comes first, as LLaVA places it."""
    content: list[dict] = [{"type": "image"}] if with_image else []
    content.append({"type": "text", "text": text})
    return {"role": "user", "content": content}


def assistant_message(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def to_messages(turns: list[dict]) -> list[dict]:
    """LLaVA turns -> chat messages; the ``<image>`` placeholder becomes an image item."""
    messages = []
    for turn in turns:
        text = turn["value"]
        if turn["from"] == "human":
            with_image = IMAGE_PLACEHOLDER in text
            text = text.replace(IMAGE_PLACEHOLDER, "").strip()
            messages.append(user_message(text, with_image))
        else:
            messages.append(assistant_message(text))
    return messages
