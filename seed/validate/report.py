"""What a validation found: one `Failure` per failed check and file, gathered in a `ValidationReport`.

A failure names the file, the expectation that failed (the great-expectations type, or ``parse_*``
and ``file_exists`` for problems found before any table could be built), the column or field, the
first few unexpected values and the rows they sit on, and one line a person can act on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_SHOWN = 5


@dataclass
class Failure:
    """One failed check in one file.

    ``rows`` are line numbers (1-based) when ``row_kind`` is "line", positions in a JSON array
    (0-based) when it is "index", and empty for a check on the whole file.
    """

    file: str
    expectation: str
    column: str | None = None
    unexpected: list[Any] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    message: str = ""
    count: int = 0
    row_kind: str = "line"
    section: str | None = None

    def location(self) -> str:
        """Where in the file: "line 3, 7", "annotations[4]" or "" for the whole file."""
        if not self.rows:
            return ""
        more = f" (+{self.count - len(self.rows)} more)" if self.count > len(self.rows) else ""
        if self.row_kind == "line":
            word = "line" if len(self.rows) == 1 else "lines"
            return f"{word} {', '.join(str(r) for r in self.rows)}{more}"
        array = self.section or ""
        return ", ".join(f"{array}[{r}]" for r in self.rows) + more

    def format(self) -> str:
        """One line: file, location, message, then the expectation and column that failed."""
        where = self.file
        if self.section and self.row_kind != "index":
            where += f" ({self.section})"
        location = self.location()
        if location:
            where += f" {location}"
        detail = self.expectation + (f" on '{self.column}'" if self.column else "")
        return f"{where}: {self.message} [{detail}]"


@dataclass
class ValidationReport:
    """Failures and what was checked; ``ok`` is true when nothing failed."""

    target: str
    failures: list[Failure] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    seconds: float | None = None  # None: not measured (a report read back from its file)

    @property
    def ok(self) -> bool:
        return not self.failures

    def format(self) -> str:
        """A readable report: verdict, one line per failure, then what was checked."""
        files = sorted({f.file for f in self.failures})
        took = "" if self.seconds is None else f" ({self.seconds:.1f} s)"
        if self.ok:
            head = f"VALID {self.target}: all checks passed{took}"
        else:
            head = (
                f"INVALID {self.target}: {len(self.failures)} failed check(s) in {len(files)} file(s){took}"
            )
        lines = [head]
        lines += [f"  FAIL {failure.format()}" for failure in self.failures]
        lines.append("checked:")
        lines += [f"  {item}" for item in self.checked]
        return "\n".join(lines)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        """The report that `to_dict` wrote (``ok`` is recomputed from the failures)."""
        return cls(
            target=data["target"],
            failures=[Failure(**f) for f in data.get("failures", [])],
            checked=list(data.get("checked", [])),
            seconds=data.get("seconds"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ok, target, seconds (when measured), failures (as dicts) and checked."""
        timed = {} if self.seconds is None else {"seconds": round(self.seconds, 3)}
        return {
            "ok": self.ok,
            "target": self.target,
            **timed,
            "failures": [jsonable(asdict(failure)) for failure in self.failures],
            "checked": list(self.checked),
        }


def jsonable(value: Any) -> Any:
    """Turn numpy scalars, tuples and NaN into plain JSON values (recursively)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, TypeError):
            return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return int(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def shown(values: list[Any]) -> str:
    """The first few distinct values, quoted, for a one-line message."""
    distinct: list[Any] = []
    for value in values:
        value = jsonable(value)
        if value not in distinct:
            distinct.append(value)
    text = ", ".join(f"{v:.4g}" if isinstance(v, float) else repr(v) for v in distinct[:MAX_SHOWN])
    return text + (", ..." if len(distinct) > MAX_SHOWN else "")
