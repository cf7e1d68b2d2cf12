"""Config of stage `validate` (params.yaml section ``validate``).

The checks themselves are the great-expectations suites of `seed.validate`; `seed.stages.run_validate`
runs them on a world folder and writes ``reports/validation.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

from seed.params import check_range


@dataclass
class ValidateConfig:
    """max_image_side: largest accepted image side in pixels (bigger images fail validation)."""

    max_image_side: int = 1024

    def __post_init__(self) -> None:
        check_range("validate", "max_image_side", self.max_image_side, lo=1)
