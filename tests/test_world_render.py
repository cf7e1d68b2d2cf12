"""Glyphs and pixels of the generated world."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from seed.world.glyphs import (
    GLYPH_MIN_DISTANCE,
    category_glyphs,
    glyph_footprint,
    glyph_mask,
    make_glyphs,
)
from seed.world.render import draw_background, draw_glyph, encode_png
from seed.world.vocab import CATEGORY_NAMES, COLOURS, SCENES


def test_glyphs_pairwise_distinct_symmetric_and_full_size():
    glyphs = category_glyphs()
    assert list(glyphs) == list(CATEGORY_NAMES)
    stack = np.stack(list(glyphs.values()))
    distance = (stack[:, None] != stack[None]).sum(axis=(2, 3))
    np.fill_diagonal(distance, 10**6)
    assert distance.min() >= GLYPH_MIN_DISTANCE
    for mask in stack:
        assert (mask == mask[:, ::-1]).all()
        assert mask[0].any() and mask[-1].any() and mask[:, 0].any()
        assert 0.4 <= mask.mean() <= 0.75


def test_glyphs_are_fixed_and_independent_of_count():
    assert (make_glyphs(5) == make_glyphs(8)[:5]).all()


def test_glyph_mask_scaling():
    glyph = category_glyphs()["fork"]
    assert (glyph_mask("fork", 7) == glyph).all()
    doubled = glyph_mask("fork", 14)
    assert (doubled[::2, ::2] == glyph).all() and (doubled[1::2, 1::2] == glyph).all()
    medium = {name: glyph_mask(name, 8).tobytes() for name in CATEGORY_NAMES}
    assert len(set(medium.values())) == len(CATEGORY_NAMES)


def test_footprint_outline_is_the_one_pixel_ring():
    fill, outline = glyph_footprint("cup", 8)
    assert fill.shape == outline.shape == (10, 10)
    assert not (fill & outline).any()
    assert not fill[0].any() and not fill[:, 0].any()
    # every outline pixel touches the fill, every fill neighbour outside the fill is outline
    padded = np.pad(fill, 1)
    touch = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    assert (outline == (touch & ~fill)).all()


def test_draw_glyph_paints_fill_and_outline_and_clips():
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    draw_glyph(image, "apple", "red", 8, 5, 5)
    fill, outline = glyph_footprint("apple", 8)
    assert (image[4:14, 4:14][fill] == COLOURS["red"]).all()
    assert (image[4:14, 4:14][outline] == (28, 28, 28)).all()
    assert (image[:4] == 0).all() and (image[14:] == 0).all()
    edge = np.zeros((6, 6, 3), dtype=np.uint8)
    draw_glyph(edge, "apple", "black", 8, 1, 1)  # larger than the image: clipped, not an error
    assert (edge == COLOURS["black"]).all(axis=2).any()


def test_backgrounds_differ_per_scene_and_png_round_trips():
    rng = np.random.default_rng(0)
    means = [draw_background(s.name, 48, rng).reshape(-1, 3).mean(axis=0) for s in SCENES]
    for i in range(len(means)):
        for j in range(i):
            assert np.abs(means[i] - means[j]).sum() > 10
    image = draw_background("park", 32, np.random.default_rng(1))
    png = encode_png(image)
    assert png == encode_png(image)
    decoded = Image.open(io.BytesIO(png))
    assert decoded.mode == "RGB" and decoded.size == (32, 32)
    assert (np.asarray(decoded) == image).all()
    assert not decoded.info.get("dpi") and "tIME" not in str(png[:200])
