"""Read JSON and JSONL files for validation, turning parse errors into `Failure`s instead of raising."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seed.validate.report import MAX_SHOWN, Failure

NESTED_TOO_DEEP = "not valid JSON: nested too deep to parse"


def display_path(path: Path, base: Path | None) -> str:
    """``path`` relative to ``base`` when it lies under it, else as given."""
    if base is not None:
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            pass
    return str(path)


def missing_file(name: str, what: str) -> Failure:
    """The failure for a required file that is not there."""
    return Failure(file=name, expectation="file_exists", message=f"{what} not found", row_kind="")


def read_text(path: Path, name: str) -> tuple[str | None, list[Failure]]:
    """A file's UTF-8 text (a leading BOM dropped), or None and the failure that explains why not."""
    if not path.is_file():
        return None, [missing_file(name, "file")]
    try:
        return path.read_bytes().decode("utf-8-sig"), []
    except OSError as exc:
        message = f"cannot read file: {exc.strerror or exc}"
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text (byte {exc.start})"
    return None, [Failure(file=name, expectation="parse_text", message=message, row_kind="")]


def read_json(path: Path, name: str) -> tuple[Any, list[Failure]]:
    """Parse a JSON file; a missing file or a syntax error is a failure naming the line."""
    text, failures = read_text(path, name)
    if text is None:
        return None, failures
    try:
        return json.loads(text), []
    except json.JSONDecodeError as exc:
        failure = Failure(
            file=name,
            expectation="parse_json",
            rows=[exc.lineno],
            count=1,
            message=f"not valid JSON: {exc.msg} (column {exc.colno})",
        )
        return None, [failure]
    except RecursionError:
        return None, [Failure(file=name, expectation="parse_json", message=NESTED_TOO_DEEP, row_kind="")]


def read_jsonl(path: Path, name: str) -> tuple[list[tuple[int, dict[str, Any]]], list[Failure]]:
    """Parse a JSONL file into (line number, object) pairs; bad lines become one failure per kind."""
    text, failures = read_text(path, name)
    if text is None:
        return [], failures
    records: list[tuple[int, dict[str, Any]]] = []
    bad_json: list[tuple[int, str]] = []
    not_object: list[tuple[int, str]] = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            bad_json.append((line_no, exc.msg))
            continue
        except RecursionError:
            bad_json.append((line_no, NESTED_TOO_DEEP))
            continue
        if isinstance(value, dict):
            records.append((line_no, value))
        else:
            not_object.append((line_no, type(value).__name__))
    if bad_json:
        failures.append(_line_failure(name, "parse_jsonl_line", bad_json, "line is not valid JSON"))
    if not_object:
        failures.append(_line_failure(name, "parse_jsonl_line", not_object, "line is not a JSON object"))
    return records, failures


def _line_failure(name: str, expectation: str, found: list[tuple[int, str]], what: str) -> Failure:
    rows = [line for line, _ in found[:MAX_SHOWN]]
    return Failure(
        file=name,
        expectation=expectation,
        unexpected=[detail for _, detail in found[:MAX_SHOWN]],
        rows=rows,
        count=len(found),
        message=f"{what} ({found[0][1]})",
    )
