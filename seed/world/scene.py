"""Sample the content of one world image: a scene type and a list of placed, coloured objects.

A scene is pure data (no pixels): which objects, in which colour, at which size and where, in the
order they are drawn. Sampling follows the world's hallucination mechanisms:

- co-occurrence: each object comes from the scene's weighted typical set with probability
  ``cooccurrence``, otherwise uniformly from all categories;
- atypical colour: an instance takes a random non-canonical colour with ``atypical_colour_rate``;
- small objects: ``small_object_rate`` of the objects are drawn at the small size;
- occlusion: each object after the first is deliberately placed over an earlier one with
  ``occlusion_rate``; an object more than 30% covered is annotated ``occluded``, and no object is
  ever covered beyond ``1 - min_visible``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from seed.world.glyphs import glyph_footprint
from seed.world.vocab import CATEGORY_BY_NAME, CATEGORY_NAMES, COLOUR_NAMES, SCENE_BY_NAME, SCENES

if TYPE_CHECKING:
    from seed.world.config import WorldConfig

SIZE_PIXELS = {"small": 5, "medium": 8, "large": 12}  # at image_size 48; scaled with the image
LARGE_SHARE = 0.4  # share of the non-small objects drawn large (the rest are medium)
OCCLUDED_SHARE = 0.3  # an object with more than this share of its pixels covered is `occluded`
PLACEMENT_TRIES = 30
SCENE_TRIES = 200


@dataclass
class PlacedObject:
    """One object instance: glyph top-left at (x, y), ``px`` pixels square, drawn in ``colour``."""

    category: str
    colour: str
    size: str
    px: int
    x: int
    y: int
    visible: float = 1.0

    @property
    def occluded(self) -> bool:
        """True when more than OCCLUDED_SHARE of the object's own pixels are hidden by later ones."""
        return self.visible < 1.0 - OCCLUDED_SHARE - 1e-9

    @property
    def atypical(self) -> bool:
        """True when the instance colour differs from its category's canonical colour."""
        return self.colour != CATEGORY_BY_NAME[self.category].colour

    @property
    def centre_x(self) -> float:
        """Horizontal centre in pixels."""
        return self.x + self.px / 2

    def box(self) -> tuple[int, int, int, int]:
        """Footprint box (x0, y0, x1, y1), exclusive ends, including the one-pixel outline."""
        return self.x - 1, self.y - 1, self.x + self.px + 1, self.y + self.px + 1

    def area(self) -> int:
        """Number of fill pixels of the glyph (whether visible or not)."""
        return int(glyph_footprint(self.category, self.px)[0].sum())


@dataclass
class WorldScene:
    """A scene type and its objects in drawing order (later objects hide earlier ones)."""

    kind: str
    objects: list[PlacedObject]

    def counts(self) -> Counter[str]:
        """Instances per category."""
        return Counter(o.category for o in self.objects)

    def categories(self) -> list[str]:
        """Distinct categories present, in order of first appearance."""
        return list(dict.fromkeys(o.category for o in self.objects))

    def absent(self) -> list[str]:
        """Vocabulary categories not present, in vocabulary order."""
        present = set(self.categories())
        return [name for name in CATEGORY_NAMES if name not in present]

    def singles(self) -> list[PlacedObject]:
        """The objects whose category has exactly one instance (unambiguous to ask about)."""
        counts = self.counts()
        return [o for o in self.objects if counts[o.category] == 1]


def size_pixels(size: str, image_size: int) -> int:
    """Glyph side in pixels for a size class at ``image_size`` (small 5, medium 8, large 12 at 48)."""
    return max(3, round(SIZE_PIXELS[size] * image_size / 48))


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def visible_fractions(objects: list[PlacedObject], image_size: int) -> list[float]:
    """Share of each object's fill pixels left uncovered by the objects drawn after it."""
    owner = np.full((image_size + 2, image_size + 2), -1, dtype=np.int16)  # +1 pixel margin each side
    for index, obj in enumerate(objects):
        fill, outline = glyph_footprint(obj.category, obj.px)
        window = owner[obj.y : obj.y + obj.px + 2, obj.x : obj.x + obj.px + 2]
        window[fill | outline] = index
    fractions = []
    for index, obj in enumerate(objects):
        fill, _ = glyph_footprint(obj.category, obj.px)
        window = owner[obj.y : obj.y + obj.px + 2, obj.x : obj.x + obj.px + 2]
        fractions.append(float((window[fill] == index).sum() / fill.sum()))
    return fractions


def draw_category(rng: np.random.Generator, kind: str, cooccurrence: float) -> str:
    """One category: from the scene's weighted typical set with prob ``cooccurrence``, else uniform."""
    if rng.random() < cooccurrence:
        return typical_choice(rng, kind)
    return CATEGORY_NAMES[int(rng.integers(len(CATEGORY_NAMES)))]


def typical_choice(
    rng: np.random.Generator, kind: str, exclude: set[str] | frozenset[str] = frozenset()
) -> str:
    """A category from the scene's typical set, by weight, skipping ``exclude`` (which must leave one)."""
    pairs = [(name, w) for name, w in SCENE_BY_NAME[kind].typical if name not in exclude]
    weights = np.array([w for _, w in pairs])
    return pairs[int(rng.choice(len(pairs), p=weights / weights.sum()))][0]


def draw_colour(rng: np.random.Generator, category: str, atypical_rate: float) -> str:
    """Canonical colour, or with prob ``atypical_rate`` a uniformly chosen other colour."""
    canonical = CATEGORY_BY_NAME[category].colour
    if rng.random() < atypical_rate:
        return other_colour(rng, canonical)
    return canonical


def other_colour(rng: np.random.Generator, colour: str) -> str:
    """A palette colour different from ``colour``, uniformly."""
    choices = [c for c in COLOUR_NAMES if c != colour]
    return choices[int(rng.integers(len(choices)))]


def _place(
    rng: np.random.Generator,
    placed: list[PlacedObject],
    obj: PlacedObject,
    image_size: int,
    occlude: bool,
    min_visible: float,
) -> bool:
    """Choose obj.x, obj.y; True when a position keeps every earlier object at least min_visible seen."""
    hi = image_size - obj.px  # fill top-left in [1, hi - 1] keeps the outline inside the image
    best: tuple[float, int, int] | None = None
    free: tuple[int, int] | None = None
    for _ in range(PLACEMENT_TRIES):
        if occlude and placed:
            target = placed[int(rng.integers(len(placed)))]
            spread = (target.px + obj.px) / 2
            cx = target.centre_x + rng.uniform(-0.6, 0.6) * spread
            cy = target.y + target.px / 2 + rng.uniform(-0.6, 0.6) * spread
            obj.x = int(np.clip(round(cx - obj.px / 2), 1, hi - 1))
            obj.y = int(np.clip(round(cy - obj.px / 2), 1, hi - 1))
        else:
            obj.x = int(rng.integers(1, hi))
            obj.y = int(rng.integers(1, hi))
        if not any(_overlaps(p.box(), obj.box()) for p in placed):
            if not occlude:
                return True
            free = free or (obj.x, obj.y)
            continue
        worst = min(visible_fractions([*placed, obj], image_size)[: len(placed)])
        if worst >= min_visible:
            if occlude:
                return True
            if best is None or worst > best[0]:
                best = (worst, obj.x, obj.y)
    if free is not None:
        obj.x, obj.y = free
        return True
    if best is not None:
        obj.x, obj.y = best[1], best[2]
        return True
    return False


def sample_objects(
    rng: np.random.Generator,
    kind: str,
    n_objects: int,
    config: WorldConfig,
    categories: list[str] | None = None,
) -> list[PlacedObject]:
    """Draw and place ``n_objects`` objects for a scene of type ``kind`` (some may be dropped if no room).

    ``categories`` fixes the categories of the first objects (drawn first, in that order); the rest
    are drawn by the scene's co-occurrence rule.
    """
    placed: list[PlacedObject] = []
    fixed = list(categories or [])
    for index in range(n_objects):
        category = fixed[index] if index < len(fixed) else draw_category(rng, kind, config.cooccurrence)
        colour = draw_colour(rng, category, config.atypical_colour_rate)
        if rng.random() < config.small_object_rate:
            size = "small"
        else:
            size = "large" if rng.random() < LARGE_SHARE else "medium"
        obj = PlacedObject(category, colour, size, size_pixels(size, config.image_size), 0, 0)
        occlude = bool(placed) and rng.random() < config.occlusion_rate
        if _place(rng, placed, obj, config.image_size, occlude, config.min_visible):
            placed.append(obj)
    for obj, fraction in zip(placed, visible_fractions(placed, config.image_size), strict=True):
        obj.visible = fraction
    return placed


def sample_scene(rng: np.random.Generator, config: WorldConfig, min_distinct: int = 1) -> WorldScene:
    """A random scene with between config.min_objects and config.max_objects objects.

    ``min_distinct`` asks for at least that many distinct categories (POPE needs 3); the object count
    is then raised to at least ``min_distinct`` and scenes are redrawn until the condition holds.
    """
    low = max(config.min_objects, min_distinct)
    high = max(config.max_objects, low)
    for _ in range(SCENE_TRIES):
        kind = SCENES[int(rng.integers(len(SCENES)))].name
        objects = sample_objects(rng, kind, int(rng.integers(low, high + 1)), config)
        scene = WorldScene(kind, objects)
        if len(objects) >= config.min_objects and len(scene.categories()) >= min_distinct:
            return scene
    raise RuntimeError(f"no scene with {min_distinct} distinct categories after {SCENE_TRIES} tries")


def atypical_names(kind: str) -> list[str]:
    """The categories outside the scene type's typical set, in vocabulary order."""
    typical = set(SCENE_BY_NAME[kind].typical_names())
    return [name for name in CATEGORY_NAMES if name not in typical]


def sample_counterfactual_scene(rng: np.random.Generator, config: WorldConfig, n_atypical: int) -> WorldScene:
    """A scene holding ``n_atypical`` distinct categories that are atypical for its type, all placed.

    The atypical objects come first (so nothing hides them beyond ``config.min_visible``); up to
    ``config.max_objects - n_atypical`` more objects follow the usual co-occurrence rule, so the
    scene still looks like its type. Used by the counterfactual POPE split.
    """
    for _ in range(SCENE_TRIES):
        kind = SCENES[int(rng.integers(len(SCENES)))].name
        pool = atypical_names(kind)
        picks = rng.choice(len(pool), size=n_atypical, replace=False)
        chosen = [pool[int(i)] for i in picks]
        extra = int(rng.integers(0, max(config.max_objects - n_atypical, 0) + 1))
        objects = sample_objects(rng, kind, n_atypical + extra, config, categories=chosen)
        scene = WorldScene(kind, objects)
        if set(chosen) <= set(scene.categories()):
            return scene
    raise RuntimeError(f"no scene with {n_atypical} atypical categories after {SCENE_TRIES} tries")
