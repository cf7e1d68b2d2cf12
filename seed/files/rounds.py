"""The list of a pipeline's self-evolving rounds: ``artifacts/rounds/rounds.json``.

```
{"rounds": N, "entries": [{"round": 1, "generator", "targets", "adapter", "model"}, ..., round N]}
```

Written by stage `evolve` (`seed.stages.evolve`), read by `evaluate` (the last entry is the model
it scores as ``seed``) and by the flow (registration, one MLflow run per round). Entries hold paths
only, so the file is the same bytes on every machine. Round ``r`` >= 2 lives in ``round-<r>/``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from seed.errors import DataError
from seed.files.atomic import write_json

ROUNDS_NAME = "rounds.json"
ENTRY_KEYS = ("round", "generator", "targets", "adapter", "model")


def round_dir(work_dir: str | Path, round_index: int) -> Path:
    """``work_dir/round-<r>`` (1-based)."""
    return Path(work_dir) / f"round-{round_index}"


def write_rounds(rounds_dir: str | Path, entries: list[dict[str, Any]]) -> Path:
    """``rounds_dir/rounds.json`` from ``entries`` (rounds 1..N); ``round-<r>`` folders beyond N removed."""
    rounds_dir = Path(rounds_dir)
    check_entries(entries, rounds_dir / ROUNDS_NAME)
    for stale in rounds_dir.glob("round-*") if rounds_dir.is_dir() else []:
        number = stale.name.removeprefix("round-")
        if not number.isdigit() or int(number) > len(entries):
            shutil.rmtree(stale)
    return write_json(rounds_dir / ROUNDS_NAME, {"rounds": len(entries), "entries": entries})


def read_rounds(rounds_dir: str | Path) -> list[dict[str, Any]]:
    """The entries of ``rounds_dir/rounds.json``; ``[]`` when there is none (no `evolve` has run)."""
    path = Path(rounds_dir) / ROUNDS_NAME
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text())["entries"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(path, f"not a rounds list ({type(exc).__name__}: {exc})") from exc
    check_entries(entries, path)
    return entries


def check_entries(entries: Any, path: Path) -> None:
    """Raise DataError naming ``path`` unless ``entries`` are rounds 1..N, each with every key."""
    if not isinstance(entries, list) or not entries:
        raise DataError(path, "entries must be a non-empty list of rounds")
    for number, entry in enumerate(entries, start=1):
        missing = [k for k in ENTRY_KEYS if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise DataError(path, f"round {number} lacks {', '.join(missing)}")
        if entry["round"] != number:
            raise DataError(path, f"entry {number} is round {entry['round']!r}; rounds must be 1..N in order")
