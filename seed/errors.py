"""Errors that the `seed` command turns into one readable line and a non-zero exit.

Every error raised on bad input names the file and the field (or key, row, line) at fault, so a
person can act on it without a traceback.
"""

from __future__ import annotations


class SeedError(Exception):
    """Base class: a problem with the user's input or configuration, not a bug."""


class ConfigError(SeedError):
    """A `params.yaml` value (or CLI flag) is missing, unknown or out of range."""


class DataError(SeedError):
    """A data file is unreadable, malformed, or inconsistent with the others."""

    def __init__(self, path: object, message: str, field: str | None = None, row: int | None = None):
        where = str(path)
        if row is not None:
            where += f", row {row}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.field = field
        self.row = row
