"""The procedurally generated image world: scenes of coloured glyph objects with strong co-occurrence.

`synthesize(out_dir, WorldConfig(...))` writes a world folder in the layout of docs/data-format.md:
training conversations, label-free SEED instructions, and POPE, MME and CHAIR evaluation files.
"""

from __future__ import annotations

from seed.world.config import WorldConfig
from seed.world.synth import synthesize

__all__ = ["WorldConfig", "synthesize"]
