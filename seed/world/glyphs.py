"""The objects' shapes: one fixed 7x7 binary glyph per category.

Each glyph is generated once from a constant seed (the same in every world), horizontally
symmetric, 4-connected, touching all four borders, and at least ``GLYPH_MIN_DISTANCE`` bits away
from every other glyph. `glyph_mask` scales it to an object's pixel size; `glyph_footprint` adds the
one-pixel outline ring that `seed.world.render` draws and `seed.world.scene` uses to place objects.
"""

from __future__ import annotations

import functools

import numpy as np

from seed.world.vocab import CATEGORY_NAMES

GLYPH_GRID = 7
GLYPH_SEED = 20250705
GLYPH_MIN_DISTANCE = 8
GLYPH_FILL = (0.4, 0.75)


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
