"""Sampling scenes: object counts, co-occurrence, colours and occlusion."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from seed.world.config import WorldConfig
from seed.world.glyphs import glyph_footprint
from seed.world.scene import (
    PlacedObject,
    WorldScene,
    sample_scene,
    size_pixels,
    visible_fractions,
)
from seed.world.vocab import CATEGORY_BY_NAME, SCENE_BY_NAME


def _pixels(obj: PlacedObject, which: int) -> set[tuple[int, int]]:
    mask = glyph_footprint(obj.category, obj.px)[which]
    return {(obj.y - 1 + r, obj.x - 1 + c) for r, c in zip(*np.nonzero(mask), strict=True)}


def _reference_visible(objects: list[PlacedObject]) -> list[float]:
    """Pixel-set reference: fill pixels not under the fill or outline of any later object."""
    result = []
    for i, obj in enumerate(objects):
        fill = _pixels(obj, 0)
        covered = set()
        for later in objects[i + 1 :]:
            covered |= _pixels(later, 0) | _pixels(later, 1)
        result.append(len(fill - covered) / len(fill))
    return result


def test_visible_fractions_match_pixel_set_reference():
    a = PlacedObject("plate", "white", "large", 12, 10, 10)
    b = PlacedObject("cup", "blue", "medium", 8, 16, 14)
    c = PlacedObject("fork", "gray", "small", 5, 30, 30)
    objects = [a, b, c]
    got = visible_fractions(objects, 48)
    assert got == pytest.approx(_reference_visible(objects))
    assert 0 < got[0] < 1 and got[1] == 1.0 and got[2] == 1.0
    same = [PlacedObject("cup", "blue", "medium", 8, 5, 5), PlacedObject("cup", "red", "medium", 8, 5, 5)]
    assert visible_fractions(same, 48) == [0.0, 1.0]


def test_occluded_flag_threshold():
    obj = PlacedObject("cup", "blue", "medium", 8, 5, 5, visible=0.71)
    assert not obj.occluded
    obj.visible = 0.69
    assert obj.occluded


def test_size_pixels_scale_with_image():
    assert [size_pixels(s, 48) for s in ("small", "medium", "large")] == [5, 8, 12]
    assert size_pixels("large", 96) == 24 and size_pixels("small", 16) == 3


def test_sampled_scenes_respect_counts_bounds_and_visibility():
    config = WorldConfig(min_objects=2, max_objects=5, occlusion_rate=0.6)
    rng = np.random.default_rng(0)
    for _ in range(200):
        scene = sample_scene(rng, config)
        assert 2 <= len(scene.objects) <= 5
        for obj in scene.objects:
            x0, y0, x1, y1 = obj.box()
            assert x0 >= 0 and y0 >= 0 and x1 <= 48 and y1 <= 48
            assert obj.visible >= config.min_visible
        assert [o.visible for o in scene.objects] == pytest.approx(visible_fractions(scene.objects, 48))
    pope = [sample_scene(rng, config, min_distinct=3) for _ in range(50)]
    assert all(len(s.categories()) >= 3 for s in pope)


def test_cooccurrence_and_rates_are_honoured():
    rng = np.random.default_rng(1)
    config = WorldConfig(cooccurrence=0.85, atypical_colour_rate=0.2, small_object_rate=0.3)
    objects = []
    typical = 0
    for _ in range(600):
        scene = sample_scene(rng, config)
        objects.extend(scene.objects)
        typical += sum(o.category in SCENE_BY_NAME[scene.kind].typical_names() for o in scene.objects)
    n = len(objects)
    assert typical / n > 0.85  # typical draws plus uniform draws that land on a typical object
    assert abs(sum(o.atypical for o in objects) / n - 0.2) < 0.03
    assert abs(sum(o.size == "small" for o in objects) / n - 0.3) < 0.04
    uniform = WorldConfig(cooccurrence=0.0)
    scenes = [sample_scene(rng, uniform) for _ in range(300)]
    share = np.mean([o.category in SCENE_BY_NAME[s.kind].typical_names() for s in scenes for o in s.objects])
    assert share < 0.4


def test_occlusion_rate_raises_occluded_share():
    def occluded_share(rate: float) -> float:
        rng = np.random.default_rng(2)
        config = WorldConfig(occlusion_rate=rate)
        objs = [o for _ in range(300) for o in sample_scene(rng, config).objects]
        return float(np.mean([o.occluded for o in objs]))

    assert occluded_share(0.0) < 0.05
    assert occluded_share(0.8) > 0.2


def test_scene_helpers():
    scene = WorldScene(
        "kitchen",
        [
            PlacedObject("plate", "white", "large", 12, 2, 2),
            PlacedObject("plate", "brown", "large", 12, 20, 2),
            PlacedObject("fork", "pink", "small", 5, 30, 30),
        ],
    )
    assert scene.counts() == Counter({"plate": 2, "fork": 1})
    assert scene.categories() == ["plate", "fork"]
    assert [o.category for o in scene.singles()] == ["fork"]
    assert "plate" not in scene.absent() and "cup" in scene.absent()
    assert scene.objects[2].atypical and CATEGORY_BY_NAME["fork"].colour == "gray"
