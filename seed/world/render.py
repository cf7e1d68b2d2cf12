"""Draw a world scene into an RGB array: a textured background and one glyph per object.

Each category is a fixed 7x7 binary glyph, generated once from a constant seed (the same in every
world), horizontally symmetric, 4-connected, touching all four borders, and at least
``GLYPH_MIN_DISTANCE`` bits away from every other glyph. A glyph is scaled by nearest neighbour to
the object's pixel size, filled with the instance colour and ringed by a one-pixel outline that
contrasts with the fill. At the small size the 7x7 grid loses rows and columns, so small glyphs are
genuinely harder to tell apart.

    background (texture + speckle)  ->  for each object in order: outline ring, then fill
                                        (later objects hide the earlier ones they overlap)
"""

from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from seed.world.vocab import CATEGORY_NAMES, COLOURS, SCENE_BY_NAME

if TYPE_CHECKING:
    from seed.world.scene import WorldScene

GLYPH_GRID = 7
GLYPH_SEED = 20250705
GLYPH_MIN_DISTANCE = 8
GLYPH_FILL = (0.4, 0.75)
DARK_OUTLINE = (28, 28, 28)
LIGHT_OUTLINE = (235, 235, 235)


def _is_connected(mask: np.ndarray) -> bool:
    """True when the set pixels of a 2-D bool mask form one 4-connected component."""
    points = list(zip(*np.nonzero(mask), strict=True))
    if not points:
        return False
    seen = {points[0]}
    stack = [points[0]]
    while stack:
        r, c = stack.pop()
        for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            inside = 0 <= nr < mask.shape[0] and 0 <= nc < mask.shape[1]
            if inside and mask[nr, nc] and (nr, nc) not in seen:
                seen.add((nr, nc))
                stack.append((nr, nc))
    return len(seen) == len(points)


def make_glyphs(
    count: int, grid: int = GLYPH_GRID, min_distance: int = GLYPH_MIN_DISTANCE, seed: int = GLYPH_SEED
) -> np.ndarray:
    """Generate ``count`` distinct symmetric glyph masks, shape (count, grid, grid), bool.

    Rejection sampling from a fixed seed: a candidate is kept when it is 4-connected, touches all
    four borders, fills between 40% and 75% of the grid and differs from every kept glyph in at
    least ``min_distance`` pixels.
    """
    rng = np.random.default_rng(seed)
    half = (grid + 1) // 2
    glyphs: list[np.ndarray] = []
    for _ in range(200_000):
        if len(glyphs) == count:
            break
        left = rng.random((grid, half)) < rng.uniform(0.45, 0.7)
        mask = np.concatenate([left, left[:, : grid // 2][:, ::-1]], axis=1)
        fill = mask.mean()
        borders = mask[0].any() and mask[-1].any() and mask[:, 0].any()
        if not (GLYPH_FILL[0] <= fill <= GLYPH_FILL[1] and borders and _is_connected(mask)):
            continue
        if all(int((mask != other).sum()) >= min_distance for other in glyphs):
            glyphs.append(mask)
    if len(glyphs) < count:
        raise RuntimeError(f"could only make {len(glyphs)} of {count} glyphs at distance {min_distance}")
    return np.stack(glyphs)


@functools.cache
def category_glyphs() -> dict[str, np.ndarray]:
    """The glyph of every vocabulary category, keyed by name (computed once per process)."""
    glyphs = make_glyphs(len(CATEGORY_NAMES))
    glyphs.setflags(write=False)
    return dict(zip(CATEGORY_NAMES, glyphs, strict=True))


@functools.cache
def glyph_mask(category: str, px: int) -> np.ndarray:
    """The category's glyph scaled to (px, px) by nearest neighbour, bool (read-only, cached)."""
    glyph = category_glyphs()[category]
    index = np.minimum(((np.arange(px) + 0.5) * GLYPH_GRID / px).astype(int), GLYPH_GRID - 1)
    mask = glyph[np.ix_(index, index)]
    mask.setflags(write=False)
    return mask


@functools.cache
def glyph_footprint(category: str, px: int) -> tuple[np.ndarray, np.ndarray]:
    """(fill, outline) masks of shape (px + 2, px + 2): the glyph padded by one pixel and its ring."""
    fill = np.pad(glyph_mask(category, px), 1)
    grown = fill.copy()
    grown[1:] |= fill[:-1]
    grown[:-1] |= fill[1:]
    grown[:, 1:] |= fill[:, :-1]
    grown[:, :-1] |= fill[:, 1:]
    outline = grown & ~fill
    fill.setflags(write=False)
    outline.setflags(write=False)
    return fill, outline


def outline_colour(colour: str) -> tuple[int, int, int]:
    """A dark outline for light fills and a light one for dark fills, so every glyph stands out."""
    r, g, b = COLOURS[colour]
    return LIGHT_OUTLINE if 0.299 * r + 0.587 * g + 0.114 * b < 70 else DARK_OUTLINE


def draw_background(scene: str, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """The scene's background, shape (image_size, image_size, 3), uint8.

    The base colour carries a texture (kitchen tiles, a street's road band, park grass speckle, an
    office desk, the beach's sea, a bedroom carpet) plus a little per-pixel noise.
    """
    spec = SCENE_BY_NAME[scene]
    size = image_size
    image = np.empty((size, size, 3), dtype=np.float32)
    image[:] = spec.background
    rows = np.arange(size)
    step = max(4, size // 6)
    if spec.texture == "tiles":
        image[rows % step == 0, :] -= 30
        image[:, rows % step == 0] -= 30
    elif spec.texture == "road":
        top, bottom = int(size * 0.4), int(size * 0.75)
        image[top:bottom] = (82, 82, 88)
        middle = (top + bottom) // 2
        dashes = (rows // max(2, size // 12)) % 2 == 0
        image[middle, dashes] = (215, 205, 150)
    elif spec.texture == "grass":
        speckle = rng.random((size, size)) < 0.2
        image[speckle] += rng.choice([-28.0, 22.0], size=(int(speckle.sum()), 1))
    elif spec.texture == "desk":
        top = int(size * 0.45)
        image[top:] = (150, 108, 66)
        image[top:][(rows[top:] - top) % step == step // 2] -= 22
    elif spec.texture == "sea":
        horizon = int(size * 0.3)
        image[:horizon] = (74, 132, 200)
        image[:horizon][rows[:horizon] % 3 == 1] += 18
    elif spec.texture == "carpet":
        checker = ((rows[:, None] // step) + (rows[None, :] // step)) % 2 == 1
        image[checker] -= 16
    image += rng.normal(0.0, 4.0, size=(size, size, 1))
    return np.clip(image, 0, 255).astype(np.uint8)


def draw_glyph(image: np.ndarray, category: str, colour: str, px: int, x: int, y: int) -> None:
    """Paint one object in place: its outline ring then its fill, footprint top-left at (x - 1, y - 1).

    ``image`` is (height, width, 3) uint8; parts of the footprint outside the image are dropped.
    """
    fill, outline = glyph_footprint(category, px)
    height, width = image.shape[:2]
    x0, y0 = x - 1, y - 1
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + px + 2, width), min(y0 + px + 2, height)
    if xa >= xb or ya >= yb:
        return
    window = image[ya:yb, xa:xb]
    fill = fill[ya - y0 : yb - y0, xa - x0 : xb - x0]
    outline = outline[ya - y0 : yb - y0, xa - x0 : xb - x0]
    window[outline] = outline_colour(colour)
    window[fill] = COLOURS[colour]


def render_scene(scene: WorldScene, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """Pixels of a scene, shape (image_size, image_size, 3), uint8: background, then objects in order."""
    image = draw_background(scene.kind, image_size, rng)
    for obj in scene.objects:
        draw_glyph(image, obj.category, obj.colour, obj.px, obj.x, obj.y)
    return image


def encode_png(image: np.ndarray) -> bytes:
    """An (h, w, 3) uint8 array as RGB PNG bytes with no metadata (equal input gives equal bytes)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def save_png(image: np.ndarray, path: Path) -> None:
    """Write an (h, w, 3) uint8 array as an RGB PNG with no metadata."""
    Path(path).write_bytes(encode_png(image))
