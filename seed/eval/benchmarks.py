"""Where the evaluation's benchmarks are, and their files read and checked before any model loads.

`benchmark_paths` resolves the configured real-data paths (official POPE files, a COCO image folder,
the MME release, COCO instances and a synonym list), each defaulting to the world layout under the
data folder (docs/data-format.md). `check_inputs` reads every file an evaluation will read, so bad
data fails as a `DataError` naming file and field before anything is written.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from seed.errors import DataError
from seed.eval.pope import POPE_SPLITS
from seed.files.inputs import check_relative_name, read_json


class BenchmarkSettings(Protocol):
    """Which benchmarks, and where their files are (stage `evaluate`'s `EvaluateConfig` has them all)."""

    benchmarks: list[str]
    pope_dir: str | None
    images_dir: str | None
    mme_dir: str | None
    instances_file: str | None
    synonyms_file: str | None
    chair_images_file: str | None
    chair_n_images: int
    max_image_side: int


@dataclass(frozen=True)
class BenchmarkPaths:
    """Resolved benchmark locations; ``world`` is True when the world diagnostics can run."""

    pope_dir: Path
    images_dir: Path
    mme_dir: Path
    instances_file: Path
    synonyms_file: Path | None
    chair_images_file: Path | None
    world_dir: Path | None


def benchmark_paths(data_dir: Path, config: BenchmarkSettings) -> BenchmarkPaths:
    """The configured real-data paths, each defaulting to the world layout under ``data_dir``."""
    data_dir = Path(data_dir)

    def pick(value: str | None, default: Path) -> Path:
        return Path(value) if value else default

    world_synonyms = data_dir / "synonyms.txt"
    world_chair = data_dir / "chair" / "images.json"
    real_chair = bool(config.instances_file) or bool(config.images_dir)
    own_world = (data_dir / "world.json").is_file() and not (config.pope_dir or config.images_dir)
    return BenchmarkPaths(
        pope_dir=pick(config.pope_dir, data_dir / "pope"),
        images_dir=pick(config.images_dir, data_dir / "images" / "eval"),
        mme_dir=pick(config.mme_dir, data_dir / "mme"),
        instances_file=pick(config.instances_file, data_dir / "annotations.json"),
        synonyms_file=pick(config.synonyms_file, world_synonyms)
        if (config.synonyms_file or world_synonyms.is_file())
        else None,
        chair_images_file=pick(config.chair_images_file, world_chair)
        if (config.chair_images_file or (world_chair.is_file() and not real_chair))
        else None,
        world_dir=data_dir if own_world else None,
    )


def pope_files(pope_dir: Path) -> dict[str, Path]:
    """split -> POPE file in ``pope_dir`` (``*_pope_<split>.json``, as the official files are named)."""
    found = {}
    for split in POPE_SPLITS:
        matches = sorted(Path(pope_dir).glob(f"*_pope_{split}.json"))
        if matches:
            found[split] = matches[0]
    return found


@functools.lru_cache(maxsize=2)
def _instances(path: str, mtime_ns: int) -> tuple[dict, dict, list[str]]:
    """(image_id -> object names, image_id -> file_name, category names) of a COCO instances file."""
    from seed.eval.chair import load_coco_instances

    data = read_json(path)
    objects = load_coco_instances(path, data)  # validates the structure read below
    files = {}
    for index, image in enumerate(data["images"]):
        check_relative_name(image.get("file_name"), path, "images.file_name", index)
        files[image["id"]] = image["file_name"]
    return objects, files, [c["name"] for c in data["categories"]]


def load_instances(path: Path) -> tuple[dict, dict, list[str]]:
    """A COCO instances file, read once per process (cached by path and modification time)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "COCO instances file not found (set evaluate.instances_file)")
    return _instances(str(path), path.stat().st_mtime_ns)


def chair_image_list(paths: BenchmarkPaths, config: BenchmarkSettings) -> list[dict]:
    """The images to caption: ``[{"image_id", "file_name"}]``.

    From ``chair_images_file`` when there is one (the world's ``chair/images.json``); otherwise
    ``chair_n_images`` images of the instances file drawn with a fixed seed (0), in id order, as the
    CHAIR protocol samples 500 COCO val2014 images.
    """
    import numpy as np

    if paths.chair_images_file is not None:
        path = paths.chair_images_file
        listing = read_json(path)
        if not isinstance(listing, list):
            raise DataError(path, "expected a list of {image_id, file_name}")
        for row, item in enumerate(listing):
            for key in ("image_id", "file_name"):
                if not isinstance(item, dict) or key not in item:
                    raise DataError(path, "missing key", field=key, row=row)
            if isinstance(item["image_id"], bool) or not isinstance(item["image_id"], int | str):
                raise DataError(path, "must be an integer or a string", field="image_id", row=row)
            check_relative_name(item["file_name"], path, "file_name", row)
        return listing
    _, files, _ = load_instances(paths.instances_file)
    ids = sorted(files, key=str)
    if len(ids) > config.chair_n_images:
        chosen = np.random.default_rng(0).choice(len(ids), size=config.chair_n_images, replace=False)
        ids = [ids[i] for i in sorted(chosen)]
    return [{"image_id": i, "file_name": files[i]} for i in ids]


def load_mme_meta(path: Path) -> dict[str, dict]:
    """The world's ``mme/meta.json``: ``"<subtask>/<file>" -> {"object", "atypical", ...}``."""
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise DataError(path, "expected a JSON object of '<subtask>/<file>' -> {object, atypical}")
    for key, info in meta.items():
        if not isinstance(info, dict):
            raise DataError(path, 'must be an object such as {"object": ..., "atypical": false}', field=key)
    return meta


def load_world_annotations(path: Path) -> dict[str, list[dict]]:
    """The world's ``annotations.json``, checked for what the colour probe reads.

    Categories need ``id``, ``name`` and ``colour``; images ``id`` and ``file_name``; annotations
    ``image_id``, a known ``category_id`` and ``colour``. `DataError` names the list, index and key.
    """
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(path, "expected a JSON object with images, annotations and categories")
    wanted = {
        "categories": ("id", "name", "colour"),
        "images": ("id", "file_name"),
        "annotations": ("image_id", "category_id", "colour"),
    }
    for section, keys in wanted.items():
        entries = data.get(section)
        if not isinstance(entries, list):
            raise DataError(path, "expected a list", field=section)
        for index, entry in enumerate(entries):
            for key in keys:
                if not isinstance(entry, dict) or key not in entry:
                    raise DataError(path, "missing key", field=f"{section}.{key}", row=index)
                if isinstance(entry[key], list | dict):
                    raise DataError(path, "must be a number or a string", field=f"{section}.{key}", row=index)
    known = {c["id"] for c in data["categories"]}
    for index, annotation in enumerate(data["annotations"]):
        if annotation["category_id"] not in known:
            raise DataError(path, "unknown category", field="annotations.category_id", row=index)
    return data


def check_inputs(data_dir: Path, config: BenchmarkSettings) -> int:
    """Read every file the configured evaluation will read, and decode every image once.

    Runs before any model loads or any answer is written: a malformed POPE line, an unpaired MME
    question, a broken CHAIR list, a corrupt or oversized image or a name that leaves its folder
    fails here, as a `DataError` naming file and field, with nothing written. Returns the number of
    distinct images checked.
    """
    from seed.eval.chair import load_synonyms
    from seed.eval.mme import load_mme
    from seed.eval.pope import load_pope_questions
    from seed.files.inputs import resolve_inside
    from seed.model.generate import open_image

    data_dir = Path(data_dir)
    paths = benchmark_paths(data_dir, config)
    images: dict[Path, None] = {}
    if "pope" in config.benchmarks:
        splits = pope_files(paths.pope_dir)
        if not splits:
            raise DataError(paths.pope_dir, "no POPE files named *_pope_{random,popular,adversarial}.json")
        for path in splits.values():
            names = dict.fromkeys(question["image"] for question in load_pope_questions(path))
            for name in names:  # thousands of questions, a few hundred images
                images[resolve_inside(paths.images_dir, name, path, "image")] = None
    if "mme" in config.benchmarks:
        for rows in load_mme(paths.mme_dir).values():
            images.update(dict.fromkeys(Path(row["image"]) for row in rows))
        if (paths.mme_dir / "meta.json").exists():
            load_mme_meta(paths.mme_dir / "meta.json")
    if paths.world_dir is not None and (data_dir / "annotations.json").exists():
        load_world_annotations(data_dir / "annotations.json")
    if "chair" in config.benchmarks:
        listing = chair_image_list(paths, config)
        source = paths.chair_images_file or paths.instances_file
        for row, item in enumerate(listing):
            images[resolve_inside(paths.images_dir, item["file_name"], source, "file_name", row)] = None
        load_instances(paths.instances_file)
        if paths.synonyms_file is not None:
            load_synonyms(paths.synonyms_file)
    for image in images:
        open_image(image, config.max_image_side)
    return len(images)


def chair_synonyms(paths: BenchmarkPaths) -> dict[str, str]:
    """The CHAIR synonym list, or (without one) each category name of the instances file as itself."""
    from seed.eval.chair import load_synonyms

    if paths.synonyms_file is not None:
        return load_synonyms(paths.synonyms_file)
    _, _, names = load_instances(paths.instances_file)
    print(f"note: no CHAIR synonym list given; matching the {len(names)} category names only")
    return {" ".join(n.lower().split()): " ".join(n.lower().split()) for n in names}
