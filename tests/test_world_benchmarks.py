"""POPE and MME items built from world scenes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from seed.world.benchmarks import (
    build_pope,
    category_frequency,
    cooccurrence,
    mme_color,
    mme_count,
    mme_existence,
    mme_position,
    pope_negatives,
)
from seed.world.config import WorldConfig
from seed.world.scene import sample_scene
from seed.world.vocab import CATEGORY_BY_NAME, CATEGORY_NAMES, SCENE_BY_NAME


def test_frequency_and_cooccurrence_count_images():
    sets = [{"cup", "plate"}, {"cup", "fork"}, {"cup", "plate", "fork"}]
    assert category_frequency(sets) == Counter({"cup": 3, "plate": 2, "fork": 2})
    table = cooccurrence(sets)
    assert table["cup"]["plate"] == 2 and table["plate"]["fork"] == 1 and table["cup"]["cup"] == 0


def test_pope_negative_rules_on_a_hand_made_table():
    frequency = Counter({"dog": 50, "car": 40, "bus": 30, "cup": 20, "plate": 10})
    table = {name: Counter() for name in CATEGORY_NAMES}
    table["cup"].update({"plate": 9, "fork": 8, "dog": 1})
    table["spoon"].update({"plate": 7, "knife": 6})
    table["bowl"].update({"banana": 5})
    present = ["cup", "spoon", "bowl", "dog"]
    chosen = ["cup", "spoon", "bowl"]
    rng = np.random.default_rng(0)
    assert pope_negatives("popular", present, chosen, rng, frequency, table) == ["car", "bus", "plate"]
    # cup -> plate; spoon's best (plate) is taken, so knife; bowl -> banana; never a present category
    assert pope_negatives("adversarial", present, chosen, rng, frequency, table) == [
        "plate",
        "knife",
        "banana",
    ]
    random = pope_negatives("random", present, chosen, rng, frequency, table)
    assert len(set(random)) == 3 and not set(random) & set(present)
    with pytest.raises(ValueError):
        pope_negatives("hard", present, chosen, rng, frequency, table)


def test_build_pope_is_balanced_and_interleaved():
    config = WorldConfig()
    rng = np.random.default_rng(0)
    images = [(f"eval_{i:06d}.png", sample_scene(rng, config, min_distinct=3)) for i in range(12)]
    sets = [set(s.categories()) for _, s in images]
    rows = build_pope(images, rng, category_frequency(sets), cooccurrence(sets))
    for split, split_rows in rows.items():
        assert len(split_rows) == 12 * 6, split
        assert [r["question_id"] for r in split_rows] == list(range(1, 73))
        assert [r["label"] for r in split_rows] == ["yes", "no"] * 36
        for row in split_rows:
            name = row["text"].removeprefix("Is there a ").removesuffix(" in the image?")
            present = name in dict(images)[row["image"]].categories()
            assert present == (row["label"] == "yes")
    yes_texts = [[r["text"] for r in rows[s] if r["label"] == "yes"] for s in rows]
    assert yes_texts[0] == yes_texts[1] == yes_texts[2]
    assert rows["random"][0]["text"].startswith("Is there a ")


def test_mme_items_have_one_yes_one_no_and_true_answers():
    config = WorldConfig()
    rng = np.random.default_rng(4)
    for _ in range(40):
        scene = sample_scene(rng, config, min_distinct=2)
        existence = mme_existence(scene, rng)
        assert existence.lines().count("\tYes\n") == 1 and existence.lines().count("\tNo\n") == 1
        assert existence.meta["absent_object"] not in scene.categories()
        if existence.meta["absent_object"] not in SCENE_BY_NAME[scene.kind].typical_names():
            assert set(SCENE_BY_NAME[scene.kind].typical_names()) <= set(scene.categories())
        count = mme_count(scene, rng)
        assert count.meta["count"] == scene.counts()[count.meta["object"]]
        assert count.meta["wrong_count"] >= 1 and count.meta["wrong_count"] != count.meta["count"]
        position = mme_position(scene, rng, 48)
        if position is not None:
            lines = position.lines().splitlines()
            assert len(lines) == 2 and lines[0].endswith("\tYes") and lines[1].endswith("\tNo")
            assert lines[0].split("\t")[0].endswith("in this image? Please answer yes or no.")


def test_mme_color_recolours_and_asks_the_canonical_colour_as_the_trap():
    rng = np.random.default_rng(9)
    config = WorldConfig()
    for atypical in (True, False):
        for _ in range(20):
            scene = sample_scene(rng, config)
            item = mme_color(scene, rng, atypical)
            if item is None:
                continue
            meta = item.meta
            canonical = CATEGORY_BY_NAME[meta["object"]].colour
            obj = next(o for o in scene.objects if o.category == meta["object"])
            assert meta["atypical"] is atypical and obj.colour == meta["colour"]
            assert (obj.colour != canonical) is atypical
            assert f" {obj.colour} {obj.category} " in item.yes
            assert (meta["wrong_colour"] == canonical) is atypical
            assert f" {meta['wrong_colour']} {obj.category} " in item.no
