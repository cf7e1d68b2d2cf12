"""Run tables of checks through great-expectations and turn failed results into `Failure`s.

A `Table` is a pandas DataFrame built from one or more files plus the `Check`s (great-expectations
expectations, named by class) that it must pass. Every frame carries two bookkeeping columns,
``_file`` and ``_row``, so that a failed row can be traced back to the file and line (or JSON array
position) it came from. Facts that pandas cannot see directly (does the image decode? is the bbox
inside the image?) are computed while building the frame into a ``*_problem`` column that holds None
or a short reason, and checked with ``ExpectColumnValuesToBeNull``: the reasons become the reported
unexpected values.

    files -> DataFrame (+ _file, _row, *_problem) -> ExpectationSuite -> ValidationDefinition.run
          -> failed results -> one Failure per (expectation, file)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from seed.validate.report import MAX_SHOWN, Failure, ValidationReport, shown

if TYPE_CHECKING:
    import pandas as pd

FILE_COLUMN = "_file"
ROW_COLUMN = "_row"


@dataclass(frozen=True)
class Check:
    """One expectation: its great-expectations class name, what it asserts in words, its arguments."""

    expectation: str
    description: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def expect(expectation: str, description: str, **kwargs: Any) -> Check:
    """Shorthand: ``expect("ExpectColumnValuesToBeUnique", "ids are unique", column="id")``."""
    return Check(expectation, description, kwargs)


@dataclass
class Table:
    """A frame to validate, the file it is reported under, and its checks.

    ``row_kind`` says how ``_row`` reads: "line" (1-based line numbers), "index" (0-based positions
    in the JSON array ``section``) or "" (one row per file, no position).
    """

    file: str
    frame: pd.DataFrame
    checks: list[Check]
    row_kind: str = "line"
    section: str | None = None

    def summary(self) -> str:
        part = f" {self.section}" if self.section else ""
        return f"{self.file}{part}: {len(self.checks)} expectations on {len(self.frame)} rows"


def make_frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """A frame with exactly ``columns`` (plus _file and _row); keys a record lacks become None."""
    import pandas as pd

    names = [FILE_COLUMN, ROW_COLUMN, *columns]
    rows = [[_scalar(record.get(name)) for name in names] for record in records]
    return pd.DataFrame(rows, columns=names)


def _scalar(value: Any) -> Any:
    """Lists and dicts become their repr so that set and uniqueness checks can hash them."""
    return repr(value) if isinstance(value, list | dict) else value


def quiet_gx() -> None:
    """Keep great-expectations' loggers to errors only (call after importing it: some set their own level)."""
    for name in list(logging.root.manager.loggerDict):
        if name == "great_expectations" or name.startswith("great_expectations."):
            logger = logging.getLogger(name)
            if name == "great_expectations" or logger.level != logging.NOTSET:
                logger.setLevel(logging.ERROR)


def run_tables(tables: list[Table]) -> list[Failure]:
    """Validate every table in one ephemeral context (no files written, no progress bars)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    quiet_gx()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas(name="seed_validate")
    failures: list[Failure] = []
    for number, table in enumerate(tables):
        name = f"table_{number}"
        batch = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe(name)
        suite = gx.ExpectationSuite(name=name)
        for check in table.checks:
            suite.add_expectation(
                getattr(gxe, check.expectation)(description=check.description, **check.kwargs)
            )
        suite = context.suites.add(suite)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        frame = table.frame.reset_index(drop=True)
        result = definition.run(batch_parameters={"dataframe": frame}, result_format="COMPLETE")
        for outcome in result.results:
            if not outcome.success:
                failures.extend(failures_from_result(table, frame, outcome))
    return failures


def _exception_message(info: Any) -> str | None:
    """The message of an exception GX caught while evaluating an expectation, if any."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "unknown error")
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "unknown error")
    return None


def _row_message(check: str, values: list[Any], has_rows: bool) -> str:
    if not has_rows:  # one row per file: the file is the location
        return f"{check}; found {shown(values)}"
    return f"{check}: {len(values)} row(s) fail, e.g. {shown(values)}"


def failures_from_result(table: Table, frame: pd.DataFrame, outcome: Any) -> list[Failure]:
    """One Failure per file among the failed rows of one expectation (or one for the whole table)."""
    config = outcome.expectation_config
    kwargs = config.kwargs
    column = (
        kwargs.get("column") or ", ".join(kwargs[k] for k in ("column_A", "column_B") if k in kwargs) or None
    )
    check = config.description or config.type
    base = {
        "expectation": config.type,
        "column": column,
        "row_kind": table.row_kind,
        "section": table.section,
    }
    error = _exception_message(outcome.exception_info)
    if error is not None:
        return [Failure(file=table.file, message=f"{check}: could not be evaluated ({error})", **base)]
    result = outcome.result or {}
    indexes = result.get("unexpected_index_list")
    if indexes is None:
        observed = result.get("observed_value")
        return [
            Failure(
                file=table.file,
                unexpected=[observed],
                message=f"{check}: observed {shown([observed])}",
                **base,
            )
        ]
    values = result.get("unexpected_list") or []
    if len(values) != len(indexes):
        values = [None] * len(indexes)
    by_file: dict[str, list[tuple[Any, Any]]] = {}
    for index, value in zip(indexes, values, strict=True):
        position = int(index)
        by_file.setdefault(str(frame.at[position, FILE_COLUMN]), []).append(
            (frame.at[position, ROW_COLUMN], value)
        )
    if len(by_file) > MAX_SHOWN:  # one line for many files, naming the first few
        return [
            Failure(
                file=table.file,
                unexpected=list(values[:MAX_SHOWN]),
                count=len(indexes),
                message=f"{check}: {len(by_file)} files fail, e.g. {shown(list(by_file))}; "
                f"found {shown(values)}",
                **{**base, "row_kind": ""},
            )
        ]
    failures = []
    for file, found in by_file.items():
        rows = [int(row) for row, _ in found if row is not None and row == row]  # row != row: NaN
        failures.append(
            Failure(
                file=file,
                unexpected=[value for _, value in found[:MAX_SHOWN]],
                rows=rows[:MAX_SHOWN],
                count=len(found) if rows else 0,
                message=_row_message(check, [value for _, value in found], bool(rows)),
                **{**base, "row_kind": table.row_kind if rows else ""},
            )
        )
    return failures


def sort_failures(failures: list[Failure], table_files: list[str]) -> list[Failure]:
    """Order failures as the files were checked (files that never became a table last), then by row."""
    order = list(dict.fromkeys(table_files + [failure.file for failure in failures]))

    def rank(failure: Failure) -> tuple[int, str, int]:
        within = [
            i for i, name in enumerate(order) if failure.file == name or failure.file.startswith(name + "/")
        ]
        return within[0], failure.file, failure.rows[0] if failure.rows else -1

    return sorted(failures, key=rank)


def build_report(
    target: str, tables: list[Table], failures: list[Failure], images_decoded: int, started: float
) -> ValidationReport:
    """Run the tables and gather every failure, in the order the files were checked, into one report."""
    failures = sort_failures(failures + run_tables(tables), [table.file for table in tables])
    checked = [table.summary() for table in tables]
    checked.append(f"{images_decoded} image files read, hashed and decoded")
    return ValidationReport(
        target=target, failures=failures, checked=checked, seconds=time.perf_counter() - started
    )
