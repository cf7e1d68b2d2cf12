"""Read one stage's section of `params.yaml` into that stage's config dataclass.

Each stage owns one dataclass whose `__post_init__` rejects out-of-range values by raising
`ConfigError` with the `params.yaml` key (``section.field``) in the message. This module only maps
YAML onto those dataclasses: unknown keys are rejected by name, missing keys keep their defaults.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

from seed.errors import ConfigError

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")


def read_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Parse a params file into a dict; a missing file gives {} (all defaults)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of stage sections")
    return data


def config_from_dict(
    cls: type[T], values: dict[str, Any] | None, section: str, source: str = "params.yaml"
) -> T:
    """Build ``cls`` from a mapping, naming ``section.key`` for unknown keys and bad values."""
    values = dict(values or {})
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: section '{section}' must be a mapping")
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
            f"known keys: {', '.join(sorted(known))}"
        )
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"{source}: section '{section}': {exc}") from exc


def load_config(cls: type[T], section: str, path: str | Path = DEFAULT_PARAMS, **overrides: Any) -> T:
    """Read ``section`` of ``path`` into ``cls``; keyword overrides (not None) win over the file."""
    values = read_params(path).get(section) or {}
    values.update({k: v for k, v in overrides.items() if v is not None})
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
    """Raise ConfigError naming ``section.name`` unless lo <= value <= hi (open ends if asked)."""
    bad = False
    if lo is not None:
        bad |= value <= lo if lo_open else value < lo
    if hi is not None:
        bad |= value >= hi if hi_open else value > hi
    if bad:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise ConfigError(f"{section}.{name} = {value!r} is out of range {left}{lo}, {hi}{right}")
