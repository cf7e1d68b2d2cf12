"""The unlabelled split as stage `purify` reads it: one single-turn sample per human turn.

``data_dir/seed/instructions.json`` holds LLaVA-format conversations without answers; every human
turn of it becomes a `Sample` (id ``"<record id>:<turn index>"``, image file name, prompt), whose
image lies under ``data_dir/images/seed/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seed.errors import DataError
from seed.files.conversation import IMAGE_PLACEHOLDER, load_conversations

INSTRUCTIONS = Path("seed") / "instructions.json"
IMAGES = Path("images") / "seed"


@dataclass(frozen=True)
class Sample:
    """One unlabelled (image, instruction) pair: ``sample_id`` is ``"<record id>:<turn index>"``."""

    sample_id: str
    image: str
    prompt: str


def load_samples(data_dir: str | Path, max_samples: int = 0) -> list[Sample]:
    """Every human turn of ``data_dir/seed/instructions.json`` as a single-turn sample, in file order.

    The ``<image>`` placeholder is removed from the text (the chat template places the image). Only
    this file is read: it holds no answers, and no other split is opened.
    """
    path = Path(data_dir) / INSTRUCTIONS
    records = load_conversations(path, require_answers=False)
    samples: list[Sample] = []
    seen: set[str] = set()
    for row, record in enumerate(records):
        for turn_index, turn in enumerate(record["conversations"]):
            sample_id = f"{record['id']}:{turn_index}"
            if sample_id in seen:
                raise DataError(path, f"duplicate record id {record['id']!r}", field="id", row=row)
            seen.add(sample_id)
            prompt = turn["value"].replace(IMAGE_PLACEHOLDER, "").strip()
            samples.append(Sample(sample_id, str(record["image"]), prompt))
    return samples[:max_samples] if max_samples else samples


def image_path(data_dir: str | Path, sample: Sample) -> Path:
    """Where a sample's image lies: ``data_dir/images/seed/<image>``."""
    return Path(data_dir) / IMAGES / sample.image
