"""Writing a whole world folder: layout, formats, determinism, recipe properties, overwrite rules."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seed.errors import ConfigError, DataError
from seed.eval.mme import MME_SUBTASKS
from seed.eval.pope import POPE_SPLITS
from seed.params import config_from_dict
from seed.world.config import WorldConfig
from seed.world.synth import synthesize
from seed.world.vocab import CATEGORIES

TINY = {"n_train": 20, "n_seed": 5, "n_pope_images": 10, "n_mme_images": 4, "n_chair_images": 5}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world") / "w"
    synthesize(out, WorldConfig(**TINY), progress=False)
    return out


@pytest.fixture(scope="module")
def moderate(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("moderate") / "w"
    synthesize(
        out,
        WorldConfig(n_train=400, n_seed=5, n_pope_images=80, n_mme_images=4, n_chair_images=5),
        progress=False,
    )
    return out


def test_same_seed_gives_identical_bytes_and_another_seed_differs(world, tmp_path):
    again = tmp_path / "again"
    synthesize(again, WorldConfig(**TINY), progress=False)
    first, second = _files(world), _files(again)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []
    other = tmp_path / "other"
    synthesize(other, WorldConfig(**TINY, seed=1), progress=False)
    third = _files(other)
    assert third.keys() == first.keys()
    assert third["annotations.json"] != first["annotations.json"]
    assert third["images/train/train_000000.png"] != first["images/train/train_000000.png"]


def test_layout_and_summary(world, tmp_path):
    summary = synthesize(tmp_path / "w", WorldConfig(**TINY), progress=False)
    # eval: POPE, as many again for the counterfactual split, MME, CHAIR
    assert summary["images"] == {"train": 20, "seed": 5, "eval": 10 + 10 + 4 * 4 + 5}
    assert summary["files"]["pope/world_pope_random.json"] == 60
    for name in (
        "world.json",
        "annotations.json",
        "synonyms.txt",
        "train/conversations.json",
        "seed/instructions.json",
        "mme/meta.json",
        "chair/images.json",
        *(f"pope/world_pope_{s}.json" for s in POPE_SPLITS),
    ):
        assert (world / name).is_file(), name
    assert not list(world.parent.glob(".w.*"))  # no temporary folders left behind


def test_annotations_follow_the_coco_contract(world):
    data = json.loads((world / "annotations.json").read_text())
    assert set(data) == {"info", "images", "categories", "annotations"}
    assert [c["name"] for c in data["categories"]] == [c.name for c in CATEGORIES]
    assert set(data["categories"][0]) == {"id", "name", "supercategory", "colour"}
    ids = [image["id"] for image in data["images"]]
    assert ids == list(range(len(ids)))
    for image in data["images"]:
        assert set(image) == {"id", "file_name", "width", "height", "split", "scene"}
        assert image["file_name"] == f"{image['split']}_{image['id']:06d}.png"
        with Image.open(world / "images" / image["split"] / image["file_name"]) as png:
            assert png.mode == "RGB" and png.size == (48, 48)
    keys = {"id", "image_id", "category_id", "bbox", "area", "colour", "size", "occluded", "iscrowd"}
    for ann in data["annotations"]:
        assert set(ann) == keys
        x, y, w, h = ann["bbox"]
        assert min(x, y) >= 0 and x + w <= 48 and y + h <= 48
        assert 0 < ann["area"] <= w * h
    per_image = Counter(a["image_id"] for a in data["annotations"])
    assert all(2 <= per_image[i] <= 5 for i in ids)


def test_conversations_and_instructions(world):
    train = json.loads((world / "train/conversations.json").read_text())
    assert len(train) == 20
    for item in train:
        assert item["image"] == item["id"] + ".png" and (world / "images/train" / item["image"]).is_file()
        turns = item["conversations"]
        assert turns[0]["from"] == "human" and turns[0]["value"].startswith("<image>\n")
        assert {t["from"] for t in turns[1::2]} == {"gpt"}
    seed = json.loads((world / "seed/instructions.json").read_text())
    assert len(seed) == 5
    for item in seed:
        assert (world / "images/seed" / item["image"]).is_file()
        assert {t["from"] for t in item["conversations"]} == {"human"}


def test_pope_files_parse_and_are_balanced(world):
    eval_files = {p.name for p in (world / "images/eval").iterdir()}
    for split in POPE_SPLITS:
        lines = (world / f"pope/world_pope_{split}.json").read_text().splitlines()
        rows = [json.loads(line) for line in lines]
        assert len(rows) == 60 and list(rows[0]) == ["question_id", "image", "text", "label"]
        assert [r["question_id"] for r in rows] == list(range(1, 61))
        assert Counter(r["label"] for r in rows) == {"yes": 30, "no": 30}
        assert {r["image"] for r in rows} <= eval_files and len({r["image"] for r in rows}) == 10


def test_mme_layout_pairs_and_meta(world):
    meta = json.loads((world / "mme/meta.json").read_text())
    assert len(meta) == 4 * len(MME_SUBTASKS)
    for subtask in MME_SUBTASKS:
        pngs = sorted((world / "mme" / subtask).glob("*.png"))
        assert len(pngs) == 4
        for png in pngs:
            assert png.read_bytes() == (world / "images/eval" / png.name).read_bytes()
            lines = png.with_suffix(".txt").read_text().splitlines()
            assert len(lines) == 2
            answers = sorted(line.split("\t")[1] for line in lines)
            assert answers == ["No", "Yes"]
            assert all(line.split("\t")[0].endswith("Please answer yes or no.") for line in lines)
            record = meta[f"{subtask}/{png.name}"]
            assert {"object", "colour", "canonical_colour", "atypical"} <= set(record)
    colour = [v["atypical"] for k, v in meta.items() if k.startswith("color/")]
    assert sum(colour) == 2


def test_eval_images_are_disjoint_and_distinct_per_use(world):
    data = json.loads((world / "annotations.json").read_text())
    split = {image["file_name"]: image["split"] for image in data["images"]}
    pope = {
        json.loads(line)["image"] for line in (world / "pope/world_pope_random.json").read_text().splitlines()
    }
    mme = {p.name for s in MME_SUBTASKS for p in (world / "mme" / s).glob("*.png")}
    chair = {row["file_name"] for row in json.loads((world / "chair/images.json").read_text())}
    assert len(mme) == 16 and len(chair) == 5
    assert not (pope & mme) and not (pope & chair) and not (mme & chair)
    assert all(split[name] == "eval" for name in pope | mme | chair)
    train_seed = {name for name, s in split.items() if s in ("train", "seed")}
    assert not train_seed & (pope | mme | chair)
    chair_rows = json.loads((world / "chair/images.json").read_text())
    assert all(row["file_name"] == f"eval_{row['image_id']:06d}.png" for row in chair_rows)


def test_synonyms_and_world_json(world):
    lines = (world / "synonyms.txt").read_text().splitlines()
    assert len(lines) == len(CATEGORIES)
    assert "bicycle, bicycles, bike, bikes, cycle, cycles" in lines
    record = json.loads((world / "world.json").read_text())
    assert record["generator"] == "seed.world"
    assert record["config"] == WorldConfig(**TINY).__dict__
    assert len(record["vocabulary"]["categories"]) == len(CATEGORIES)
    assert record["counts"]["images"]["train"] == 20


def test_adversarial_negatives_cooccur_more_than_random_ones(moderate):
    data = json.loads((moderate / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    present: dict[int, set[str]] = {}
    for ann in data["annotations"]:
        present.setdefault(ann["image_id"], set()).add(names[ann["category_id"]])
    together = Counter((a, b) for s in present.values() for a in s for b in s if a != b)

    def mean_cooccurrence(split: str) -> float:
        rows = [json.loads(x) for x in (moderate / f"pope/world_pope_{split}.json").read_text().splitlines()]
        pairs = zip(rows[::2], rows[1::2], strict=True)
        return float(np.mean([together[(y["text"].split()[3], n["text"].split()[3])] for y, n in pairs]))

    assert mean_cooccurrence("adversarial") > 3 * mean_cooccurrence("random")
    assert mean_cooccurrence("popular") > mean_cooccurrence("random")


def test_atypical_colour_rate_roughly_honoured(moderate):
    data = json.loads((moderate / "annotations.json").read_text())
    canonical = {c["id"]: c["colour"] for c in data["categories"]}
    train = {image["id"] for image in data["images"] if image["split"] == "train"}
    anns = [a for a in data["annotations"] if a["image_id"] in train]
    rate = np.mean([a["colour"] != canonical[a["category_id"]] for a in anns])
    assert abs(rate - 0.12) < 0.03


def test_refuses_foreign_folder_and_replaces_previous_world(world, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="refusing"):
        synthesize(foreign, WorldConfig(**TINY), progress=False)
    assert (foreign / "notes.txt").read_text() == "keep me"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DataError):
        synthesize(a_file, WorldConfig(**TINY), progress=False)
    previous = tmp_path / "prev"
    synthesize(previous, WorldConfig(**TINY, seed=3), progress=False)
    (previous / "stale.txt").write_text("old")
    synthesize(previous, WorldConfig(**TINY), progress=False)
    assert not (previous / "stale.txt").exists()
    assert _files(previous) == _files(world)
    empty = tmp_path / "empty"
    empty.mkdir()
    synthesize(empty, WorldConfig(**TINY), progress=False)
    assert (empty / "world.json").is_file()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_size", 8),
        ("n_train", 0),
        ("n_seed", -1),
        ("min_objects", 0),
        ("max_objects", 11),
        ("cooccurrence", 1.5),
        ("atypical_colour_rate", -0.1),
        ("small_object_rate", 2.0),
        ("occlusion_rate", -1.0),
        ("caption_noise_rate", 1.01),
        ("qa_per_image", 0),
        ("min_visible", 0.0),
        ("train_negative_sampling", "popular"),
        ("seed", -3),
        ("n_pope_images", 2.5),
        ("image_size", True),
        ("caption_rate", "high"),
    ],
)
def test_config_rejects_bad_values_by_name(field, value):
    with pytest.raises(ConfigError, match=rf"world\.{field}"):
        WorldConfig(**{field: value})


def test_config_cross_field_and_params_mapping():
    with pytest.raises(ConfigError, match=r"world\.max_objects"):
        WorldConfig(min_objects=4, max_objects=3)
    with pytest.raises(ConfigError, match=r"world\.n_train"):
        WorldConfig(n_train=999_999, n_seed=10)
    with pytest.raises(ConfigError, match=r"world\.colours"):
        config_from_dict(WorldConfig, {"colours": 3}, "world")
    assert config_from_dict(WorldConfig, {"seed": 4}, "world").seed == 4


def _objects_by_image(world: Path) -> tuple[dict[str, str], dict[str, list[dict]]]:
    coco = json.loads((world / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    scene = {image["file_name"]: image["scene"] for image in coco["images"]}
    by_id = {image["id"]: image["file_name"] for image in coco["images"]}
    objects: dict[str, list[dict]] = {}
    for ann in coco["annotations"]:
        objects.setdefault(by_id[ann["image_id"]], []).append(ann | {"name": names[ann["category_id"]]})
    return scene, objects


def test_counterfactual_split_asks_atypical_present_and_typical_absent(world):
    from seed.world.vocab import SCENE_BY_NAME

    rows = [
        json.loads(line) for line in (world / "pope/world_pope_counterfactual.json").read_text().splitlines()
    ]
    scene, objects = _objects_by_image(world)
    assert len(rows) == 60 and [r["question_id"] for r in rows] == list(range(1, 61))
    assert all(list(r) == ["question_id", "image", "text", "label"] for r in rows)
    assert Counter(r["label"] for r in rows) == {"yes": 30, "no": 30}
    assert [r["label"] for r in rows[:6]] == ["yes", "no"] * 3
    other_pope = {
        json.loads(line)["image"] for line in (world / "pope/world_pope_random.json").read_text().splitlines()
    }
    images = {r["image"] for r in rows}
    assert len(images) == 10 and not images & other_pope  # its own images, none shared with POPE
    for row in rows:
        name = row["text"].removeprefix("Is there a ").removesuffix(" in the image?")
        present = {o["name"] for o in objects[row["image"]]}
        typical = set(SCENE_BY_NAME[scene[row["image"]]].typical_names())
        if row["label"] == "yes":
            assert name in present and name not in typical
        else:
            assert name not in present and name in typical
    for image in images:  # three distinct questions of each kind per image
        asked = [r["text"] for r in rows if r["image"] == image]
        assert len(asked) == 6 == len(set(asked))


def _covered(objects: list[dict], shape: tuple[int, int]) -> np.ndarray:
    """(h, w) bool: the pixels the objects' glyphs (fill and outline, one pixel around) cover."""
    from seed.world.glyphs import glyph_footprint

    covered = np.zeros(shape, dtype=bool)
    for obj in objects:
        x, y, px, _ = obj["bbox"]
        fill, outline = glyph_footprint(obj["name"], px)
        window = covered[y - 1 : y + px + 1, x - 1 : x + px + 1]
        window |= (fill | outline)[: window.shape[0], : window.shape[1]]
    return covered


def test_oracle_image_is_the_scene_background_without_its_objects(world, tmp_path):
    from seed.world.redraw import render_oracle_seed_images

    names = render_oracle_seed_images(world, tmp_path / "oracle")
    assert names == sorted(p.name for p in (world / "images/seed").iterdir())
    _, objects = _objects_by_image(world)
    for name in names:
        real = np.asarray(Image.open(world / "images/seed" / name)).astype(int)
        oracle = np.asarray(Image.open(tmp_path / "oracle" / name)).astype(int)
        covered = _covered(objects[name], real.shape[:2])
        assert np.array_equal(real[~covered], oracle[~covered])  # the same background, pixel for pixel
        assert (real[covered] != oracle[covered]).any(axis=-1).mean() > 0.5  # the objects are gone


def test_empty_pope_images_are_the_evaluation_images_without_their_objects(world, tmp_path):
    """Drawn with their objects, the streams give the POPE images byte for byte; without, the same
    background where no object covers it, and every question's image (counterfactual split too)."""
    from seed.eval.pope import load_pope_questions
    from seed.world.redraw import render_empty_pope_images

    same = render_empty_pope_images(world, tmp_path / "with", with_objects=True)
    assert all((tmp_path / "with" / n).read_bytes() == (world / "images/eval" / n).read_bytes() for n in same)
    names = render_empty_pope_images(world, tmp_path / "empty")
    asked = {q["image"] for path in (world / "pope").glob("*.json") for q in load_pope_questions(path)}
    assert names == same and asked <= set(names)
    _, objects = _objects_by_image(world)
    for name in names:
        real = np.asarray(Image.open(world / "images/eval" / name)).astype(int)
        empty = np.asarray(Image.open(tmp_path / "empty" / name)).astype(int)
        covered = _covered(objects[name], real.shape[:2])
        assert covered.any() and np.array_equal(real[~covered], empty[~covered])
        assert (real[covered] != empty[covered]).any(axis=-1).mean() > 0.5


def test_drawn_scene_images_match_their_labels_and_chunks_equal_one_draw():
    from seed.world.redraw import draw_scene_images
    from seed.world.render import render_scene
    from seed.world.scene import sample_scene
    from seed.world.synth import _rng
    from seed.world.vocab import CATEGORY_NAMES

    config = WorldConfig(**TINY, seed=3, cooccurrence=0.0)
    images, labels = draw_scene_images(config, 6)
    assert images.shape == (6, 48, 48, 3) and images.dtype == np.uint8
    assert labels.shape == (6, len(CATEGORY_NAMES)) and labels.dtype == bool
    rng = _rng(config, "vision", 4)  # scene 4 rebuilt by hand from its own stream
    scene = sample_scene(rng, config)
    assert np.array_equal(images[4], render_scene(scene, 48, rng))
    assert set(np.flatnonzero(labels[4])) == {CATEGORY_NAMES.index(o.category) for o in scene.objects}
    tail, tail_labels = draw_scene_images(config, 2, start=4)
    assert np.array_equal(tail, images[4:]) and np.array_equal(tail_labels, labels[4:])
    assert not np.array_equal(draw_scene_images(WorldConfig(**TINY, seed=4), 1)[0], images[:1])
