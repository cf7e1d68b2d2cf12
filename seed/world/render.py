"""Draw a world scene into an RGB array: a textured background and one glyph per object.

Each category's glyph (`seed.world.glyphs`) is scaled by nearest neighbour to the object's pixel
size, filled with the instance colour and ringed by a one-pixel outline that contrasts with the fill.
At the small size the 7x7 grid loses rows and columns, so small glyphs are genuinely harder to tell
apart.

    background (texture + speckle)  ->  for each object in order: outline ring, then fill
                                        (later objects hide the earlier ones they overlap)
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from seed.world.glyphs import glyph_footprint
from seed.world.vocab import COLOURS, SCENE_BY_NAME

if TYPE_CHECKING:
    from seed.world.scene import WorldScene

DARK_OUTLINE = (28, 28, 28)
LIGHT_OUTLINE = (235, 235, 235)


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
