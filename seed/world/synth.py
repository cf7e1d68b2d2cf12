"""Generate a whole world folder (`seed data synth`): images, annotations and every benchmark file.

The layout is the contract in docs/data-format.md. Every image has its own random stream,
``numpy.random.default_rng([seed, stream, index])``, and its words a second one, so the same seed
and options give byte-identical files, and changing one split's size leaves the other splits alone.
The folder is built beside its destination and renamed into place at the end.

    train   images + annotations + LLaVA conversations (answers)          images/train, train/
    seed    images + label-free instructions (human turns only)           images/seed, seed/
    eval    POPE images | MME existence, count, position, color | CHAIR    images/eval, pope/, mme/, chair/
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from seed.errors import ConfigError, DataError
from seed.eval.mme import MME_SUBTASKS
from seed.world.benchmarks import (
    POPE_PER_IMAGE,
    MmeItem,
    build_pope,
    build_pope_counterfactual,
    category_frequency,
    cooccurrence,
    mme_color,
    mme_count,
    mme_existence,
    mme_position,
)
from seed.world.config import SECTION, WorldConfig
from seed.world.glyphs import GLYPH_GRID, GLYPH_MIN_DISTANCE, GLYPH_SEED
from seed.world.render import encode_png, render_scene
from seed.world.scene import SCENE_TRIES, WorldScene, sample_counterfactual_scene, sample_scene
from seed.world.text import seed_instructions, train_conversation
from seed.world.vocab import CATEGORIES, vocabulary_record

GENERATOR = "seed.world"
GENERATOR_VERSION = "2"
# Random stream numbers: one per split / purpose, so each can change size without moving the others.
STREAM = {
    "train": 1,
    "seed": 2,
    "pope": 3,
    "existence": 4,
    "count": 5,
    "position": 6,
    "color": 7,
    "chair": 8,
    "pope_questions": 9,
    "train_text": 11,
    "seed_text": 12,
    "counterfactual": 13,
    "counterfactual_questions": 14,
    "vision": 15,
}


def _rng(config: WorldConfig, stream: str, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([config.seed, STREAM[stream], index])


def is_world(path: Path) -> bool:
    """True when ``path`` holds a world.json written by this generator."""
    try:
        return json.loads((path / "world.json").read_text()).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def _check_destination(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(out_dir, "exists and is not a folder; refusing to overwrite it")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_world(out_dir):
        raise DataError(
            out_dir,
            "folder is not empty and is not a generated world "
            "(no world.json from seed.world); refusing to overwrite it",
        )


def _json(value: object, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent) + "\n"


class _Writer:
    """Collects images and annotations of a world being written under ``root``."""

    def __init__(self, root: Path, config: WorldConfig, progress: Callable[[], None]):
        self.root = root
        self.config = config
        self.progress = progress
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.category_ids = {c.name: i + 1 for i, c in enumerate(CATEGORIES)}

    def add(self, split: str, scene: WorldScene, rng: np.random.Generator) -> tuple[str, bytes]:
        """Render, write and annotate one image; returns its file name and PNG bytes."""
        image_id = len(self.images)
        file_name = f"{split}_{image_id:06d}.png"
        png = encode_png(render_scene(scene, self.config.image_size, rng))
        (self.root / "images" / split / file_name).write_bytes(png)
        size = self.config.image_size
        self.images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": size,
                "height": size,
                "split": split,
                "scene": scene.kind,
            }
        )
        for obj in scene.objects:
            self.annotations.append(
                {
                    "id": len(self.annotations),
                    "image_id": image_id,
                    "category_id": self.category_ids[obj.category],
                    "bbox": [obj.x, obj.y, obj.px, obj.px],
                    "area": obj.area(),
                    "colour": obj.colour,
                    "size": obj.size,
                    "occluded": obj.occluded,
                    "iscrowd": 0,
                }
            )
        self.progress()
        return file_name, png


def _mme_scene(
    subtask: str, rng: np.random.Generator, config: WorldConfig, index: int
) -> tuple[WorldScene, MmeItem]:
    share = config.mme_atypical_share  # image i is atypical when floor(i * share) steps up at i + 1
    atypical = int((index + 1) * share) > int(index * share)
    for _ in range(SCENE_TRIES):
        scene = sample_scene(rng, config, min_distinct=2 if subtask == "position" else 1)
        if subtask == "existence":
            item: MmeItem | None = mme_existence(scene, rng)
        elif subtask == "count":
            item = mme_count(scene, rng)
        elif subtask == "position":
            item = mme_position(scene, rng, config.image_size)
        else:
            item = mme_color(scene, rng, atypical)
        if item is not None:
            return scene, item
    raise RuntimeError(f"no scene suits MME {subtask} after {SCENE_TRIES} tries")


FOLDERS = (
    "images/train",
    "images/seed",
    "images/eval",
    "train",
    "seed",
    "pope",
    "chair",
    *(f"mme/{s}" for s in MME_SUBTASKS),
)


def _write_train(writer: _Writer, config: WorldConfig) -> None:
    conversations = []
    for index in range(config.n_train):
        rng = _rng(config, "train", index)
        scene = sample_scene(rng, config)
        file_name, _ = writer.add("train", scene, rng)
        turns = train_conversation(scene, _rng(config, "train_text", index), config)
        conversations.append({"id": file_name[:-4], "image": file_name, "conversations": turns})
    (writer.root / "train" / "conversations.json").write_text(_json(conversations))


def _write_seed(writer: _Writer, config: WorldConfig) -> None:
    instructions = []
    for index in range(config.n_seed):
        rng = _rng(config, "seed", index)
        scene = sample_scene(rng, config)
        file_name, _ = writer.add("seed", scene, rng)
        turns = seed_instructions(scene, _rng(config, "seed_text", index), config)
        instructions.append({"id": file_name[:-4], "image": file_name, "conversations": turns})
    (writer.root / "seed" / "instructions.json").write_text(_json(instructions))


def _write_pope(writer: _Writer, config: WorldConfig) -> list[tuple[str, WorldScene]]:
    """POPE images (>= 3 distinct categories each); their questions come once all images exist."""
    images = []
    for index in range(config.n_pope_images):
        rng = _rng(config, "pope", index)
        scene = sample_scene(rng, config, min_distinct=3)
        file_name, _ = writer.add("eval", scene, rng)
        images.append((file_name, scene))
    return images


def _pope_rows(
    writer: _Writer, config: WorldConfig, images: list[tuple[str, WorldScene]]
) -> dict[str, list[dict]]:
    """The three POPE files; frequency and co-occurrence are counted over every annotated image."""
    names = {i + 1: c.name for i, c in enumerate(CATEGORIES)}
    by_image: dict[int, set[str]] = {}
    for ann in writer.annotations:
        by_image.setdefault(ann["image_id"], set()).add(names[ann["category_id"]])
    sets = list(by_image.values())
    rng = _rng(config, "pope_questions")
    rows = build_pope(images, rng, category_frequency(sets), cooccurrence(sets))
    for split, split_rows in rows.items():
        text = "".join(_json(row) for row in split_rows)
        (writer.root / "pope" / f"world_pope_{split}.json").write_text(text)
    return rows


def _write_pope_counterfactual(writer: _Writer, config: WorldConfig) -> list[dict]:
    """The counterfactual split's own images (3 atypical objects each) and its file.

    Written after the other POPE files, so their co-occurrence counts do not see these images.
    """
    images = []
    for index in range(config.n_pope_images):
        rng = _rng(config, "counterfactual", index)
        scene = sample_counterfactual_scene(rng, config, POPE_PER_IMAGE)
        file_name, _ = writer.add("eval", scene, rng)
        images.append((file_name, scene))
    rows = build_pope_counterfactual(images, _rng(config, "counterfactual_questions"))
    text = "".join(_json(row) for row in rows)
    (writer.root / "pope" / "world_pope_counterfactual.json").write_text(text)
    return rows


def _write_mme(writer: _Writer, config: WorldConfig) -> dict[str, dict]:
    meta: dict[str, dict] = {}
    for subtask in MME_SUBTASKS:
        folder = writer.root / "mme" / subtask
        for index in range(config.n_mme_images):
            rng = _rng(config, subtask, index)
            scene, item = _mme_scene(subtask, rng, config, index)
            file_name, png = writer.add("eval", scene, rng)
            (folder / file_name).write_bytes(png)
            (folder / file_name.replace(".png", ".txt")).write_text(item.lines())
            meta[f"{subtask}/{file_name}"] = item.meta
    (writer.root / "mme" / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return meta


def _write_chair(writer: _Writer, config: WorldConfig) -> None:
    chair = []
    for index in range(config.n_chair_images):
        rng = _rng(config, "chair", index)
        file_name, _ = writer.add("eval", sample_scene(rng, config), rng)
        chair.append({"image_id": writer.images[-1]["id"], "file_name": file_name})
    (writer.root / "chair" / "images.json").write_text(_json(chair, indent=1))


def _write_metadata(writer: _Writer, config: WorldConfig, counts: dict) -> None:
    root = writer.root
    (root / "synonyms.txt").write_text("".join(", ".join(c.words()) + "\n" for c in CATEGORIES))
    categories = [
        {"id": i + 1, "name": c.name, "supercategory": c.supercategory, "colour": c.colour}
        for i, c in enumerate(CATEGORIES)
    ]
    info = {
        "description": "seed generated world",
        "generator": GENERATOR,
        "version": GENERATOR_VERSION,
        "seed": config.seed,
    }
    coco = {
        "info": info,
        "images": writer.images,
        "categories": categories,
        "annotations": writer.annotations,
    }
    (root / "annotations.json").write_text(_json(coco))
    world = {
        "generator": GENERATOR,
        "version": GENERATOR_VERSION,
        "config": dataclasses.asdict(config),
        "glyphs": {"grid": GLYPH_GRID, "seed": GLYPH_SEED, "min_distance": GLYPH_MIN_DISTANCE},
        "vocabulary": vocabulary_record(),
        "counts": counts,
    }
    (root / "world.json").write_text(json.dumps(world, indent=1, sort_keys=True) + "\n")


def _write_world(root: Path, config: WorldConfig, tick: Callable[[], None]) -> dict:
    """Every file of the world under ``root``, in a fixed order (image ids follow it); returns counts."""
    for folder in FOLDERS:
        (root / folder).mkdir(parents=True)
    writer = _Writer(root, config, tick)
    _write_train(writer, config)
    _write_seed(writer, config)
    pope_images = _write_pope(writer, config)
    mme_meta = _write_mme(writer, config)
    _write_chair(writer, config)
    pope = _pope_rows(writer, config, pope_images)
    pope["counterfactual"] = _write_pope_counterfactual(writer, config)
    counts = _counts(writer, config, pope, mme_meta)
    _write_metadata(writer, config, counts)
    return counts


def _counts(writer: _Writer, config: WorldConfig, pope: dict[str, list[dict]], mme_meta: dict) -> dict:
    split_of = {image["id"]: image["split"] for image in writer.images}
    images = {split: 0 for split in ("train", "seed", "eval")}
    for image in writer.images:
        images[image["split"]] += 1
    annotations = {split: 0 for split in images}
    for ann in writer.annotations:
        annotations[split_of[ann["image_id"]]] += 1
    files = {
        "annotations.json": len(writer.annotations),
        "train/conversations.json": config.n_train,
        "seed/instructions.json": config.n_seed,
        "chair/images.json": config.n_chair_images,
        "mme/meta.json": len(mme_meta),
        "synonyms.txt": len(CATEGORIES),
    }
    files |= {f"pope/world_pope_{split}.json": len(pope[split]) for split in pope}
    files |= {f"mme/{subtask}": config.n_mme_images for subtask in MME_SUBTASKS}
    return {"images": images, "annotations": annotations, "files": files}


def synthesize(out_dir: Path, config: WorldConfig, progress: bool = True) -> dict:
    """Write the world described by ``config`` to ``out_dir``; returns counts per split and per file.

    The folder is built in a hidden sibling and renamed into place. An existing ``out_dir`` is
    replaced only when it is empty or a previous world (it has our world.json); otherwise DataError.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    _check_destination(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    start = time.perf_counter()
    try:
        with tqdm(total=config.total_images(), desc="world", unit="img", disable=not progress) as bar:
            try:
                counts = _write_world(tmp, config, lambda: bar.update(1))
            except RuntimeError as exc:
                raise ConfigError(
                    f"{SECTION}.image_size = {config.image_size} leaves no room for "
                    f"{config.min_objects}-{config.max_objects} objects: {exc}"
                ) from exc
        _check_destination(out_dir)
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return {"out_dir": str(out_dir), "seconds": round(time.perf_counter() - start, 2), **counts}
