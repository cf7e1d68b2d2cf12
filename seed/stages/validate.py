"""Stage `validate`: its config (params.yaml section ``validate``) and its run.

The checks themselves are the great-expectations suites of `seed.validate`; `run` below
runs them on a world folder and writes ``reports/validation.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from seed.params import check_range

if TYPE_CHECKING:
    from seed.stages import StagePaths


@dataclass
class ValidateConfig:
    """max_image_side: largest accepted image side in pixels (bigger images fail validation)."""

    max_image_side: int = 1024

    def __post_init__(self) -> None:
        check_range("validate", "max_image_side", self.max_image_side, lo=1)


def run(paths: StagePaths, config: ValidateConfig, progress: bool = False) -> dict:
    """Validate the world folder ``paths.data`` with great-expectations, write the report to
    ``paths.reports/validation.json`` (without its run time, so the file is byte-stable) and return it
    as a dict."""
    from seed.files.atomic import write_json
    from seed.validate import validate_world

    summary = validate_world(paths.data, max_image_side=config.max_image_side).to_dict()
    write_json(paths.reports / "validation.json", {k: v for k, v in summary.items() if k != "seconds"})
    return summary


def show(summary: dict) -> tuple[str, int]:
    """The readable report; exit code 1 when a check failed."""
    from seed.validate.report import ValidationReport

    report = ValidationReport.from_dict(summary)
    return report.format(), 0 if report.ok else 1
