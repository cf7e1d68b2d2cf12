"""The manifest of a purified-targets folder (``manifest.json``): the shard list with sample and
token counts and sha256, plus the run's metadata (model and data hashes, the purify config).

The folder's shards are in the format of `seed.files.targets`; `read_manifest` checks that every
listed shard is inside the folder, has the counts the manifest states and, by default, its sha256.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from seed.errors import DataError
from seed.files.atomic import write_atomic
from seed.files.hashing import content_hash
from seed.files.inputs import read_json
from seed.files.targets import _shard_header

MANIFEST_FORMAT = "seed-targets-manifest"
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class ShardEntry:
    """One shard as the manifest records it; ``path`` is resolved inside the target folder."""

    file: str
    path: Path
    num_samples: int
    num_tokens: int
    sha256: str


@dataclass(frozen=True)
class TargetManifest:
    """A validated ``manifest.json``: the shards in order, the totals, and the run's metadata."""

    path: Path
    shards: list[ShardEntry]
    num_samples: int
    num_tokens: int
    top_k: int | None
    meta: dict[str, Any]


def _inside(folder: Path, candidate: Path) -> bool:
    return candidate.resolve().is_relative_to(folder.resolve())


def write_manifest(folder: str | Path, shards: Sequence[str | Path], meta: dict[str, Any]) -> Path:
    """Write ``folder/manifest.json`` atomically for ``shards`` (paths inside ``folder``).

    The manifest records, per shard, its file name relative to ``folder``, sample and token counts
    and sha256, plus the totals and ``meta`` (e.g. ``model_hash``, ``data_hash`` and the purify
    parameters) as given. ``meta`` must be JSON-serialisable.
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST_NAME
    entries = []
    top_ks = set()
    for i, shard in enumerate(shards):
        shard_path = Path(shard) if Path(shard).is_absolute() else folder / shard
        if not _inside(folder, shard_path):
            raise DataError(manifest_path, f"shard {shard} lies outside {folder}", field=f"shards[{i}].file")
        _, shapes = _shard_header(shard_path)
        if shapes["indices"][0] > 0:  # an empty shard has no meaningful top_k
            top_ks.add(int(shapes["indices"][-1]))
        entries.append(
            {
                "file": shard_path.resolve().relative_to(folder.resolve()).as_posix(),
                "num_samples": shapes["offsets"][0] - 1,
                "num_tokens": shapes["indices"][0],
                "sha256": content_hash(shard_path),
            }
        )
    if len(top_ks) > 1:
        raise DataError(manifest_path, f"shards disagree on top_k: {sorted(top_ks)}", field="top_k")
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "num_samples": sum(e["num_samples"] for e in entries),
        "num_tokens": sum(e["num_tokens"] for e in entries),
        "top_k": top_ks.pop() if top_ks else None,
        "shards": entries,
        "meta": meta,
    }
    try:
        text = json.dumps(manifest, indent=2, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise DataError(manifest_path, f"meta is not JSON-serialisable: {exc}", field="meta") from exc
    return write_atomic(manifest_path, (text + "\n").encode())


def _check_relative(manifest_path: Path, folder: Path, file: object, field_name: str) -> Path:
    """Resolve a manifest's shard name, rejecting anything that could leave ``folder``."""
    if not isinstance(file, str) or not file:
        raise DataError(manifest_path, "must be a non-empty relative path", field=field_name)
    if "\0" in file:
        raise DataError(manifest_path, "path holds a NUL byte", field=field_name)
    posix, windows = PurePosixPath(file), PureWindowsPath(file)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or file.startswith(("/", "\\")):
        raise DataError(manifest_path, f"absolute path {file!r} is not allowed", field=field_name)
    if ".." in posix.parts or ".." in windows.parts:
        raise DataError(manifest_path, f"path {file!r} climbs out of the target folder", field=field_name)
    path = folder / posix
    if not _inside(folder, path):
        raise DataError(manifest_path, f"path {file!r} resolves outside the target folder", field=field_name)
    return path


def read_manifest(folder: str | Path, verify_hashes: bool = True) -> TargetManifest:
    """Read and validate ``folder/manifest.json``.

    Checks that every shard path is relative and stays inside ``folder`` (no absolute paths, no
    ``..``, no symlink leading out), that each shard exists, and (``verify_hashes``) that its sha256
    matches. Any failure raises :class:`DataError` naming the manifest and the field.
    """
    folder = Path(folder)
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        raise DataError(manifest_path, "target manifest not found")
    data = read_json(manifest_path)
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise DataError(manifest_path, f"expected format {MANIFEST_FORMAT!r}", field="format")
    shards = data.get("shards")
    if not isinstance(shards, list):
        raise DataError(manifest_path, "must be a list", field="shards")
    entries = []
    for i, entry in enumerate(shards):
        where = f"shards[{i}]"
        if not isinstance(entry, dict):
            raise DataError(manifest_path, "must be an object", field=where)
        path = _check_relative(manifest_path, folder, entry.get("file"), f"{where}.file")
        if not path.is_file():
            raise DataError(manifest_path, f"shard {entry['file']!r} not found", field=f"{where}.file")
        for key in ("num_samples", "num_tokens"):
            if not isinstance(entry.get(key), int) or entry[key] < 0:
                raise DataError(manifest_path, "must be a non-negative integer", field=f"{where}.{key}")
        expected = entry.get("sha256")
        if not isinstance(expected, str):
            raise DataError(manifest_path, "must be a sha256 hex string", field=f"{where}.sha256")
        if verify_hashes:
            actual = content_hash(path)
            if actual != expected:
                raise DataError(
                    manifest_path,
                    f"shard {entry['file']!r} has sha256 {actual}, manifest says {expected}",
                    field=f"{where}.sha256",
                )
        entries.append(ShardEntry(entry["file"], path, entry["num_samples"], entry["num_tokens"], expected))
    num_samples = sum(e.num_samples for e in entries)
    if data.get("num_samples") != num_samples:
        raise DataError(
            manifest_path,
            f"says {data.get('num_samples')} but shards hold {num_samples}",
            field="num_samples",
        )
    meta = data.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError(manifest_path, "must be an object", field="meta")
    top_k = data.get("top_k")
    return TargetManifest(
        manifest_path, entries, num_samples, sum(e.num_tokens for e in entries), top_k, meta
    )
