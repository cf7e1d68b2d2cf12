"""Data validation with great-expectations: world folders, POPE files and MME folders.

    validate_world(root)               every file of a generated (or assembled) world folder
    validate_pope(pope_file, images)   one official POPE JSONL against its image folder
    validate_mme(mme_dir)              MME subtask folders in either release layout

Each returns a `ValidationReport`; `main_validate` is the ``seed validate`` command.
great-expectations is imported only when a validation runs.
"""

from __future__ import annotations

from seed.validate.cli import main_validate
from seed.validate.mme import validate_mme
from seed.validate.pope import validate_pope
from seed.validate.report import Failure, ValidationReport
from seed.validate.world import validate_world

__all__ = ["Failure", "ValidationReport", "main_validate", "validate_mme", "validate_pope", "validate_world"]
