"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every artifact and report of the pipeline is written through here (temporary file in the same
folder, fsync, ``os.replace``), so a crash or a kill at any moment leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _fsync_dir(folder: Path) -> None:
    """Persist a rename in ``folder`` (best effort: not every platform can open a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically; values JSON cannot hold are written as strings."""
    return write_atomic(path, (json.dumps(data, indent=2, default=str) + "\n").encode())


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write one JSON object a line, atomically."""
    return write_atomic(path, "".join(json.dumps(row) + "\n" for row in rows).encode())
