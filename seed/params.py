"""Read one stage's section of `params.yaml` into that stage's config dataclass.

Each stage owns one dataclass whose `__post_init__` rejects out-of-range values by raising
`ConfigError` with the `params.yaml` key (``section.field``) in the message. This module only maps
YAML onto those dataclasses: unknown keys are rejected by name, missing keys keep their defaults;
the range, type and choice checks those `__post_init__` methods call live here too.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from seed.errors import ConfigError

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")
DTYPES = ("float32", "bfloat16", "float16")
_DEVICE_RE = re.compile(r"^(cpu|cuda|mps|xpu|npu|hpu)(:\d+)?$")


def read_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Parse a params file into a dict; a missing file gives {} (all defaults)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8-sig")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of stage sections")
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: what is wrong and where (1-based line and column)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


_NUMBER_HINT = " (YAML reads 1e-3 as text: write 1.0e-3)"


def _type_problem(annotation: object, value: Any) -> str | None:
    """Why ``value`` does not fit a config field's annotation, or None (unknown annotations pass)."""

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def is_number(v: Any) -> bool:
        return is_int(v) or isinstance(v, float)

    checks = {
        "int": (is_int, "an integer"),
        "float": (is_number, "a number"),
        "bool": (lambda v: isinstance(v, bool), "true or false"),
        "str": (lambda v: isinstance(v, str), "a string"),
        "str | None": (lambda v: v is None or isinstance(v, str), "a string (or null)"),
        "list[int]": (lambda v: isinstance(v, list) and all(map(is_int, v)), "a list of integers"),
        "list[str]": (
            lambda v: isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
            "a list of strings",
        ),
    }
    if not isinstance(annotation, str) or annotation not in checks:
        return None
    ok, expected = checks[annotation]
    if ok(value):
        return None
    hint = _NUMBER_HINT if annotation in ("int", "float") and isinstance(value, str) else ""
    return f"must be {expected}{hint}"


def config_from_dict(
    cls: type[T], values: dict[str, Any] | None, section: str, source: str = "params.yaml"
) -> T:
    """Build ``cls`` from a mapping, naming ``section.key`` for unknown keys and bad values.

    A value of the wrong type for a plain field (int, float, bool, str, lists of those) is a
    `ConfigError` naming the key before the dataclass sees it; range checks are the dataclass's own.
    """
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"{source}: section '{section}' must be a mapping of keys, got {type(values).__name__}"
        )
    values = dict(values)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
            f"known keys: {', '.join(sorted(known))}"
        )
    annotations = {f.name: f.type for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key, value in values.items():
        problem = _type_problem(annotations[key], value)
        if problem is not None:
            raise ConfigError(f"{source}: {section}.{key} = {value!r} {problem}")
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"{source}: section '{section}': {exc}") from exc


def load_config(cls: type[T], section: str, path: str | Path = DEFAULT_PARAMS, **overrides: Any) -> T:
    """Read ``section`` of ``path`` into ``cls``; keyword overrides (not None) win over the file."""
    values = read_params(path).get(section)
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"{path}: section '{section}' must be a mapping of keys, got {type(values).__name__}"
        )
    values = {**values, **{k: v for k, v in overrides.items() if v is not None}}
    return config_from_dict(cls, values, section, source=str(path))


def check_range(
    section: str,
    name: str,
    value: float,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    """Raise ConfigError naming ``section.name`` unless lo <= value <= hi (open ends if asked).

    A value that is not a number (a string, a list, true/false) is a ConfigError too.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = _NUMBER_HINT if isinstance(value, str) else ""
        raise ConfigError(f"{section}.{name} = {value!r} must be a number{hint}")
    if value != value:  # NaN compares false with everything
        raise ConfigError(f"{section}.{name} = {value!r} must be a number")
    bad = False
    if lo is not None:
        bad |= value <= lo if lo_open else value < lo
    if hi is not None:
        bad |= value >= hi if hi_open else value > hi
    if bad:
        if hi is None:
            allowed = f"must be {'>' if lo_open else '>='} {lo}"
        elif lo is None:
            allowed = f"must be {'<' if hi_open else '<='} {hi}"
        else:
            allowed = f"is out of range {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConfigError(f"{section}.{name} = {value!r} {allowed}")


def check_integer(section: str, name: str, value: Any, lo: int | None = None, hi: int | None = None) -> None:
    """Raise ConfigError naming ``section.name`` unless ``value`` is an int (not a bool) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{section}.{name} = {value!r} must be an integer")
    check_range(section, name, value, lo=lo, hi=hi)


def check_number(section: str, name: str, value: Any, **bounds: Any) -> None:
    """Raise ConfigError naming ``section.name`` unless ``value`` is a number within ``bounds``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{section}.{name} = {value!r} must be a number")
    check_range(section, name, value, **bounds)


def check_choice(section: str, name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise ConfigError naming ``section.name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{section}.{name} = {value!r} is unknown; choose one of {', '.join(choices)}")


def check_runtime(section: str, dtype: Any, device: Any) -> None:
    """``dtype`` one of `DTYPES`; ``device`` a torch device string such as ``cpu``, ``cuda`` or ``cuda:1``."""
    check_choice(section, "dtype", dtype, DTYPES)
    if not isinstance(device, str) or not _DEVICE_RE.match(device):
        raise ConfigError(f"{section}.device = {device!r} must be a device such as 'cpu', 'cuda' or 'cuda:0'")
