"""Errors that the `seed` command turns into one readable line and a non-zero exit.

Every error raised on bad input names the file and the field (or key, row, line) at fault, so a
person can act on it without a traceback.
"""

from __future__ import annotations


def one_line(text: str) -> str:
    """``text`` with line breaks shown as ``\\n`` / ``\\r``: an error message is always one line."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


class SeedError(Exception):
    """Base class: a problem with the user's input or configuration, not a bug.

    The message is kept on one line (`one_line`), whatever text from the input it quotes.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(one_line(str(message)))


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
        self.message = message
        self.field = field
        self.row = row

    def __reduce__(self):  # survives pickling (Prefect hands task exceptions across processes)
        return type(self), (self.path, self.message, self.field, self.row)
